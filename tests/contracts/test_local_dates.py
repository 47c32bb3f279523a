"""Agencies' dates are days in Fujian (UTC+8): the day turns at 16:00 UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from contracts.dates import local_date


def test_the_fujian_day_turns_at_sixteen_hundred_utc() -> None:
    assert local_date(datetime(2026, 11, 29, 15, 59, 59, tzinfo=UTC)) == date(2026, 11, 29)
    assert local_date(datetime(2026, 11, 29, 16, 0, tzinfo=UTC)) == date(2026, 11, 30)
    # an offset of its own is read as the moment it names
    new_york = timezone(timedelta(hours=-5))
    assert local_date(datetime(2026, 11, 29, 11, 30, tzinfo=new_york)) == date(2026, 11, 30)
