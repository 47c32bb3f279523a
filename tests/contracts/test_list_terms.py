"""List term rules (domain.md §5): maximum terms per list, early removal, end of term."""

from __future__ import annotations

from typing import Any

import pytest
from contract_factories import make_listing, make_policy, make_removal

from contracts.listings import ListingRuleError, check_listing_added, check_listing_removed

POLICY = make_policy()


def refused_added(**overrides: Any) -> str:
    with pytest.raises(ListingRuleError) as caught:
        check_listing_added(make_listing(**overrides), POLICY)
    return caught.value.message


def refused_removed(added: dict[str, Any], **overrides: Any) -> str:
    with pytest.raises(ListingRuleError) as caught:
        check_listing_removed(added, make_removal(**overrides), POLICY)
    return caught.value.message


@pytest.mark.parametrize(
    ("list_type", "term_end"),
    [
        ("black", "2028-07-01"),  # 36 months
        ("black", "2026-07-01"),
        ("red", "2028-07-01"),
        ("red", "2028-06-30"),  # a red term may be written to the day before
        ("focus", "2027-07-01"),  # 24 months
    ],
)
def test_terms_within_the_maximum_are_accepted(list_type: str, term_end: str) -> None:
    check_listing_added(make_listing(list_type=list_type, term_end=term_end), POLICY)


@pytest.mark.parametrize(
    ("list_type", "term_end", "months"),
    [("black", "2028-07-02", 36), ("red", "2028-07-02", 36), ("focus", "2027-07-02", 24)],
)
def test_terms_past_the_maximum_are_refused(list_type: str, term_end: str, months: int) -> None:
    message = refused_added(list_type=list_type, term_end=term_end)
    assert f"a {list_type} list term may last at most {months} months" in message


@pytest.mark.parametrize("term_end", ["2025-07-01", "2025-06-30"])
def test_an_empty_term_is_refused(term_end: str) -> None:
    assert "must be after term_start" in refused_added(term_end=term_end)


def test_maximum_terms_come_from_policy() -> None:
    listing = make_listing(list_type="focus", term_end="2028-07-01")
    check_listing_added(listing, make_policy(focus_list_max_term_months=36))


@pytest.mark.parametrize("removed_on", ["2028-07-01", "2028-08-01"])
def test_term_ended_on_or_after_the_end(removed_on: str) -> None:
    check_listing_removed(make_listing(), make_removal(removed_on=removed_on), POLICY)


def test_term_ended_before_the_end_is_refused() -> None:
    assert "is early" in refused_removed(make_listing(), removed_on="2028-06-30")


def test_black_early_removal_from_the_minimum_time() -> None:
    removal = make_removal(removal_reason="early_removal", removed_on="2026-07-01")
    check_listing_removed(make_listing(), removal, POLICY)


def test_black_early_removal_before_the_minimum_time_is_refused() -> None:
    message = refused_removed(
        make_listing(), removal_reason="early_removal", removed_on="2026-06-30"
    )
    assert "only 12 months after term_start 2025-07-01, that is from 2026-07-01" in message


def test_early_removal_minimum_comes_from_policy() -> None:
    removal = make_removal(removal_reason="early_removal", removed_on="2026-01-01")
    check_listing_removed(
        make_listing(), removal, make_policy(black_list_early_removal_min_months=6)
    )


@pytest.mark.parametrize("list_type", ["red", "focus"])
def test_other_lists_may_be_left_early_at_any_time(list_type: str) -> None:
    added = make_listing(list_type=list_type, term_end="2027-07-01")
    removal = make_removal(
        list_type=list_type, removal_reason="early_removal", removed_on="2025-07-02"
    )
    check_listing_removed(added, removal, POLICY)


def test_early_removal_after_the_term_is_refused() -> None:
    message = refused_removed(
        make_listing(), removal_reason="early_removal", removed_on="2028-07-01"
    )
    assert "is term_ended, not early" in message


def test_repeal_is_allowed_at_any_time() -> None:
    removal = make_removal(removal_reason="repealed", removed_on="2025-07-02")
    check_listing_removed(make_listing(), removal, POLICY)


def test_list_types_must_match() -> None:
    message = refused_removed(make_listing(), list_type="red")
    assert "is on the black list, not the red list" in message


def test_listing_ids_must_match() -> None:
    assert "is not listing" in refused_removed(make_listing(), listing_id="OTHER-1")


def test_a_term_runs_from_its_decision_and_a_black_one_outlasts_the_early_removal_minimum() -> None:
    """A term backdated before its decision, or a black term shorter than the 12 months before
    which no early removal is allowed, would let the listing end sooner than the rules do."""
    assert "term_start 2024-07-01 is before the decision (2025-07-01)" in refused_added(
        term_start="2024-07-01", term_end="2027-06-30"
    )
    assert "a black list term lasts at least 12 months" in refused_added(term_end="2025-08-01")
    check_listing_added(make_listing(term_end="2026-07-01"), POLICY)  # exactly 12 months
    check_listing_added(  # red: a shorter term stays lawful
        make_listing(list_type="red", term_end="2025-08-01"), POLICY
    )


@pytest.mark.parametrize("reason", ["repealed", "early_removal", "term_ended"])
def test_nothing_is_removed_before_its_term_began(reason: str) -> None:
    added = make_listing(list_type="red", term_start="2025-07-01", term_end="2028-07-01")
    says = refused_removed(added, list_type="red", removed_on="2020-01-01", removal_reason=reason)
    assert "removed_on 2020-01-01 is before the term began (2025-07-01)" in says
