"""Term rules of red, black and focus lists (domain.md §5): how long an entry may last and when
it may be removed. The month figures come from policy data, never from this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from contracts.dates import add_months, date_field
from contracts.errors import ListingRuleError
from contracts.policy import Policy

__all__ = ["ListingRuleError", "check_listing_added", "check_listing_removed"]


def _max_term_months(list_type: str, policy: Policy) -> int:
    # Red: the term of the incentive (2017 rules, 3 years); black: the management term of the
    # 2023 serious-dishonesty rules (3 years); focus: our assumption (see data/policy.json).
    terms = {
        "red": policy.red_list_term_months,
        "black": policy.black_list_max_term_months,
        "focus": policy.focus_list_max_term_months,
    }
    if list_type not in terms:
        raise ListingRuleError(f"list type {list_type!r} is not red, black or focus")
    return terms[list_type]


def check_listing_added(data: Mapping[str, object], policy: Policy) -> None:
    """Refuse a listing.added whose term is empty or longer than its list allows.

    A red term may be shorter than the policy's term: the decision states the term, and a day's
    difference in how an end date is written must not refuse a lawful decision.
    """
    list_type = str(data["list_type"])
    term_start, term_end = date_field(data, "term_start"), date_field(data, "term_end")
    if term_end <= term_start:
        raise ListingRuleError(f"term_end {term_end} must be after term_start {term_start}")
    decided_on = date_field(data, "decided_on")
    if term_start < decided_on:
        raise ListingRuleError(
            f"term_start {term_start} is before the decision ({decided_on}): a term runs from "
            "its decision on"
        )
    if list_type == "black":
        # a shorter term would end before the earliest early removal the rules allow
        shortest = policy.black_list_early_removal_min_months
        if term_end < add_months(term_start, shortest):
            raise ListingRuleError(
                f"a black list term lasts at least {shortest} months (early removal only "
                f"after {shortest}): term_end {term_end} is too early"
            )
    months = _max_term_months(list_type, policy)
    latest = add_months(term_start, months)
    if term_end > latest:
        raise ListingRuleError(
            f"a {list_type} list term may last at most {months} months: term_end {term_end} "
            f"is after {latest}"
        )


def check_listing_removed(
    added: Mapping[str, object], removed: Mapping[str, object], policy: Policy
) -> None:
    """Refuse a listing.removed that contradicts the listing it removes (`added` is that
    listing.added data) or comes at a time its reason does not allow."""
    if removed["listing_id"] != added["listing_id"]:
        raise ListingRuleError(
            f"listing {removed['listing_id']} is not listing {added['listing_id']}"
        )
    if removed["list_type"] != added["list_type"]:
        raise ListingRuleError(
            f"listing {added['listing_id']} is on the {added['list_type']} list, "
            f"not the {removed['list_type']} list"
        )
    term_start, term_end = date_field(added, "term_start"), date_field(added, "term_end")
    removed_on, reason = date_field(removed, "removed_on"), str(removed["removal_reason"])
    if removed_on < term_start:
        raise ListingRuleError(f"removed_on {removed_on} is before the term began ({term_start})")
    if reason == "term_ended" and removed_on < term_end:
        raise ListingRuleError(
            f"the term ends {term_end}; removal for term_ended on {removed_on} is early"
        )
    if reason == "early_removal":
        _check_early_removal(str(added["list_type"]), term_start, term_end, removed_on, policy)


def _check_early_removal(
    list_type: str, term_start: date, term_end: date, removed_on: date, policy: Policy
) -> None:
    if removed_on >= term_end:
        raise ListingRuleError(
            f"the term ended {term_end}; a removal on {removed_on} is term_ended, not early"
        )
    if list_type != "black":
        return
    # 2023 serious-dishonesty rules: early removal (提前移出) only after a minimum time listed.
    months = policy.black_list_early_removal_min_months
    earliest = add_months(term_start, months)
    if removed_on < earliest:
        raise ListingRuleError(
            f"a black listing may be removed early only {months} months after term_start "
            f"{term_start}, that is from {earliest}"
        )
