"""Rules of rectification orders (责令整改): an order's dates and kind, an overdue report
against its order (a revocation trigger for a major hazard, domain.md §3), and a re-check
against its order (a failed one is the seed's revocation cause, 闽安委〔2017〕1号 四（二）).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from contracts.dates import date_field
from contracts.errors import RectificationRuleError

__all__ = ["RectificationRuleError", "check_order", "check_overdue", "check_verification"]


def check_order(order: Mapping[str, object], kind: str) -> None:
    """A hazard order names its hazard level, and only a hazard order does; the deadline is
    not before the order."""
    if kind == "hazard" and "hazard_level" not in order:
        raise RectificationRuleError(
            "an order of kind hazard names its hazard_level (major or ordinary)",
            "/data/hazard_level",
        )
    if kind != "hazard" and "hazard_level" in order:
        raise RectificationRuleError(
            f"hazard_level is for hazard orders, not for {kind}", "/data/hazard_level"
        )
    if date_field(order, "deadline") < date_field(order, "ordered_on"):
        raise RectificationRuleError(
            "the rectification deadline is before the order date", "/data/deadline"
        )


def check_verification(
    order: Mapping[str, object], verified: Mapping[str, object], last_check: date | None
) -> None:
    """A re-check comes on or after its order (and after an earlier re-check): a re-check
    before the order was given checks nothing."""
    verified_on = date_field(verified, "verified_on")
    ordered_on = date_field(order, "ordered_on")
    if verified_on < ordered_on:
        raise RectificationRuleError(
            f"verified_on {verified_on} is before the order ({ordered_on})", "/data/verified_on"
        )
    if last_check is not None and verified_on < last_check:
        raise RectificationRuleError(
            f"verified_on {verified_on} is before the order's last re-check ({last_check})",
            "/data/verified_on",
        )


def check_overdue(order: Mapping[str, object], overdue: Mapping[str, object]) -> None:
    """Refuse an overdue report that names another order, another deadline, or a day that is
    not after the deadline (work done on the deadline day is in time)."""
    if overdue["rectification_id"] != order["rectification_id"]:
        raise RectificationRuleError(
            f"rectification {overdue['rectification_id']} is not order {order['rectification_id']}"
        )
    deadline, reported = date_field(order, "deadline"), date_field(overdue, "deadline")
    if reported != deadline:
        raise RectificationRuleError(f"the order's deadline is {deadline}, not {reported}")
    found_on = date_field(overdue, "found_on")
    if found_on <= deadline:
        raise RectificationRuleError(
            f"found_on {found_on} is not after the deadline {deadline}; nothing is overdue yet"
        )
