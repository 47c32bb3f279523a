"""An enterprise's registration status on the day asked (domain.md §4, 闽安委〔2017〕1号 四（二）):
达标 only while it holds a grade valid that day; 新增 only for a while after registration or
inclusion in the required ledger, and never once it held a grade; 未达标 otherwise. Pure.

The status is computed as of the day, not stored: a grade lapses at its valid_to whether or not
anybody publishes grade.expired, and 新增 ends when its period does, with no message at all.
"""

from __future__ import annotations

from datetime import date

__all__ = ["ACHIEVED", "NEW", "NOT_ACHIEVED", "STATUSES", "grade_held_on", "status_on"]

NEW, ACHIEVED, NOT_ACHIEVED = "新增", "达标", "未达标"
STATUSES = (NEW, ACHIEVED, NOT_ACHIEVED)


def grade_held_on(
    grade_status: str,
    valid_to: date | None,
    closed_on: date | None,
    on: date,
    held_since: date | None = None,
) -> bool:
    """A grade is held on `on` while active, from the start of its holding (the award's
    valid_from; renewals keep it; None: not known, no bound) to its valid_to (inclusive), and
    while the enterprise exists: a closed enterprise holds none from its closure."""
    if closed_on is not None and closed_on <= on:
        return False
    return (
        grade_status == "active"
        and (valid_to is None or on <= valid_to)
        and (held_since is None or held_since <= on)
    )


def status_on(
    grade_status: str,
    valid_to: date | None,
    new_until: date | None,
    closed_on: date | None,
    on: date,
    held_since: date | None = None,
) -> str:
    """The registration status on `on`. `new_until` is the first day the enterprise is no
    longer 新增 without a grade (None: rows from before the period was kept, read as 新增
    until they hold a grade, as they were)."""
    if grade_held_on(grade_status, valid_to, closed_on, on, held_since):
        return ACHIEVED
    closed = closed_on is not None and closed_on <= on
    if grade_status == "none" and not closed and (new_until is None or on < new_until):
        return NEW
    return NOT_ACHIEVED
