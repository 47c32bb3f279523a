"""Rules linking a rectification.overdue message to the rectification.ordered it reports on
(a major hazard not rectified by its deadline is a revocation trigger, domain.md §3).
"""

from __future__ import annotations

from collections.abc import Mapping

from contracts.dates import date_field
from contracts.errors import RectificationRuleError

__all__ = ["RectificationRuleError", "check_overdue"]


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
