"""Calendar arithmetic for terms stated in months or years, and reading the "YYYY-MM-DD" dates
of message data that already passed its schema.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone

__all__ = ["LOCAL", "add_months", "date_field", "local_date"]

# The agencies' dates (decided_on, applied_on, …) are calendar days in Fujian: China Standard
# Time, UTC+8 all year (no daylight saving).
LOCAL = timezone(timedelta(hours=8), "UTC+08:00")


def local_date(moment: datetime) -> date:
    """The calendar day in Fujian at `moment` (an aware datetime)."""
    return moment.astimezone(LOCAL).date()


def add_months(start: date, months: int) -> date:
    """`start` moved by whole calendar months; a day past the target month's end becomes its last
    day (2024-02-29 + 12 months = 2025-02-28), the usual reading of a term "of N months"."""
    month_index = start.year * 12 + start.month - 1 + months
    year, month0 = divmod(month_index, 12)
    day = min(start.day, calendar.monthrange(year, month0 + 1)[1])
    return date(year, month0 + 1, day)


def date_field(data: Mapping[str, object], name: str) -> date:
    """The date in `data[name]`, given as a date or an ISO "YYYY-MM-DD" string.

    KeyError or ValueError mean the data skipped schema validation: a caller's bug.
    """
    value = data[name]
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        return date.fromisoformat(value)
    raise ValueError(f"{name} must be a date, got {type(value).__name__}")
