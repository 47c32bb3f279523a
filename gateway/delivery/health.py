"""How deliveries are going, across subscriptions: each subscription's last 24 hours
(attempts, success rate, latency, last error), its breaker and next attempt; the deliveries
failing now; every dead or parked delivery. Read-only (but for `count_attempts`, which the
workers call as they record attempts); for operators (API, CLI, console) and, cut to one
agency, for the agency itself.

The 24 hours are counted in whole hours: the attempts of the hour that began 24 hours ago and
of every hour since (so up to 25 hours), read from hourly rows the workers keep per
subscription (`delivery_hours`) rather than from every attempt."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from gateway.delivery.jobs import STUCK
from gateway.models import Delivery, DeliveryHour, LogEntry, Subscription, table_of

WINDOW = dt.timedelta(hours=24)
MAX_ROWS = 500


@dataclass(frozen=True)
class Health:
    """One subscription's delivery health over the window."""

    subscription_id: str
    agency_id: str
    host: str | None  # the endpoint's host (None: a pull-only feed)
    status: str
    attempts: int
    succeeded: int
    mean_latency_ms: float | None
    breaker_open_until: dt.datetime | None
    consecutive_failures: int
    last_error: str | None
    last_error_at: dt.datetime | None
    next_attempt_at: dt.datetime | None
    counts: dict[str, int]

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.attempts if self.attempts else None

    @property
    def failing(self) -> bool:
        """Its endpoint fails now: failures in a row, an open breaker, or disabled by a 410."""
        return self.consecutive_failures > 0 or self.status == "disabled"

    def as_dict(self) -> dict[str, Any]:
        return {
            "subscription_id": self.subscription_id,
            "agency_id": self.agency_id,
            "endpoint_host": self.host,
            "status": self.status,
            "attempts_24h": self.attempts,
            "succeeded_24h": self.succeeded,
            "success_rate_24h": self.success_rate,
            "mean_latency_ms_24h": self.mean_latency_ms,
            "breaker_open_until": _iso(self.breaker_open_until),
            "consecutive_failures": self.consecutive_failures,
            "last_error": self.last_error,
            "last_error_at": _iso(self.last_error_at),
            "next_attempt_at": _iso(self.next_attempt_at),
            "deliveries": self.counts,
        }


def subscription_health(
    session: Session, now: dt.datetime, agency_id: str | None = None
) -> list[Health]:
    """Every subscription (or one agency's), ordered by agency and creation; the window's
    counts from the hourly rows."""
    since = now - WINDOW
    subs = list(
        session.scalars(
            select(Subscription)
            .where(*([Subscription.agency_id == agency_id] if agency_id else []))
            .order_by(Subscription.agency_id, Subscription.created_at)
        )
    )
    wanted = [s.id for s in subs]
    window: dict[str, _Window] = {}
    for hour in session.scalars(
        select(DeliveryHour).where(
            DeliveryHour.hour >= on_the_hour(since), DeliveryHour.subscription_id.in_(wanted)
        )
    ):
        window.setdefault(hour.subscription_id, _Window()).add(hour)
    counts: dict[str, dict[str, int]] = {}
    for sub_id, status, n in session.execute(
        select(Delivery.subscription_id, Delivery.status, func.count())
        .where(Delivery.subscription_id.in_(wanted))
        .group_by(Delivery.subscription_id, Delivery.status)
    ):
        counts.setdefault(sub_id, {})[status] = n
    next_at: dict[str, dt.datetime] = dict(
        session.execute(
            select(Delivery.subscription_id, func.min(Delivery.next_attempt_at))
            .join(Subscription, Subscription.id == Delivery.subscription_id)
            .where(
                Delivery.status == "pending",
                Subscription.url.is_not(None),
                Delivery.subscription_id.in_(wanted),
            )
            .group_by(Delivery.subscription_id)
        ).all()
    )
    out = []
    for s in subs:
        row = window.get(s.id, _Window())
        out.append(
            Health(
                subscription_id=s.id,
                agency_id=s.agency_id,
                host=urlsplit(s.url).hostname if s.url else None,
                status=s.status,
                attempts=row.attempts,
                succeeded=row.succeeded,
                mean_latency_ms=round(row.latency_ms_sum / row.attempts, 1)
                if row.attempts
                else None,
                breaker_open_until=s.breaker_open_until
                if s.breaker_open_until and s.breaker_open_until > now
                else None,
                consecutive_failures=s.consecutive_failures or 0,
                last_error=row.last_error,
                last_error_at=row.last_failed_at,
                next_attempt_at=next_at.get(s.id),
                counts=counts.get(s.id, {}),
            )
        )
    return out


@dataclass
class _Window:
    """A subscription's hourly rows summed over the window."""

    attempts: int = 0
    succeeded: int = 0
    latency_ms_sum: float = 0.0
    last_failed_at: dt.datetime | None = None
    last_error: str | None = None

    def add(self, hour: DeliveryHour) -> None:
        self.attempts += hour.attempts
        self.succeeded += hour.succeeded
        self.latency_ms_sum += hour.latency_ms_sum
        if hour.last_failed_at and (
            self.last_failed_at is None or hour.last_failed_at > self.last_failed_at
        ):
            self.last_failed_at, self.last_error = hour.last_failed_at, hour.last_error


def on_the_hour(moment: dt.datetime) -> dt.datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def error_text(error_class: str | None, status_code: int | None, excerpt: str | None) -> str:
    """An attempt's error as the overviews show it: its class (or HTTP status) and the start
    of what the receiver answered."""
    parts = [error_class or f"http_{status_code}"]
    if excerpt:
        parts.append(excerpt.strip()[:120])
    return ": ".join(parts)[:500]


def count_attempts(session: Session, attempts: list[dict[str, Any]]) -> None:
    """Add a round's push attempts (each with `subscription_id`, `at`, `status_code`,
    `latency_ms`, `error_class`, `response_excerpt`) to their subscriptions' hourly rows: one
    upsert per subscription and hour, whatever the number of workers (the database adds)."""
    hours: dict[tuple[str, dt.datetime], _Window] = {}
    for attempt in attempts:
        row = hours.setdefault((attempt["subscription_id"], on_the_hour(attempt["at"])), _Window())
        row.attempts += 1
        row.latency_ms_sum += float(attempt["latency_ms"] or 0)
        code = attempt["status_code"]
        if code is not None and 200 <= code < 300:
            row.succeeded += 1
        elif row.last_failed_at is None or attempt["at"] >= row.last_failed_at:
            row.last_failed_at = attempt["at"]
            row.last_error = error_text(attempt["error_class"], code, attempt["response_excerpt"])
    if not hours:
        return
    statement = _upsert_hours(session.get_bind().dialect.name)
    for (subscription_id, hour), row in sorted(hours.items()):  # one lock order for all
        session.execute(
            statement,
            {
                "subscription_id": subscription_id,
                "hour": hour,
                "attempts": row.attempts,
                "succeeded": row.succeeded,
                "latency_ms_sum": row.latency_ms_sum,
                "last_failed_at": row.last_failed_at,
                "last_error": row.last_error,
            },
        )


_HOURS = table_of(DeliveryHour)


@functools.cache
def _upsert_hours(dialect: str) -> Any:
    """The hourly row's upsert, built once per dialect rather than once per round (the values
    travel as parameters), on the table: the ORM's insert of the same row went through its
    bulk-insert machinery, 5 % of a worker's time under bench/e2e.py at 200/s (py-spy)."""
    statement = (postgresql_insert if dialect == "postgresql" else sqlite_insert)(_HOURS)
    table, new = _HOURS.c, statement.excluded
    newer = case(
        (
            and_(
                new.last_failed_at.is_not(None),
                or_(table.last_failed_at.is_(None), new.last_failed_at >= table.last_failed_at),
            ),
            True,
        ),
        else_=False,
    )
    return statement.on_conflict_do_update(
        index_elements=["subscription_id", "hour"],
        set_={
            "attempts": table.attempts + new.attempts,
            "succeeded": table.succeeded + new.succeeded,
            "latency_ms_sum": table.latency_ms_sum + new.latency_ms_sum,
            "last_failed_at": case((newer, new.last_failed_at), else_=table.last_failed_at),
            "last_error": case((newer, new.last_error), else_=table.last_error),
        },
    )


def failing_deliveries(
    session: Session, agency_id: str | None = None, limit: int = MAX_ROWS
) -> list[dict[str, Any]]:
    """Push deliveries that failed and wait for their next attempt, oldest message first."""
    query = (
        select(Delivery, Subscription.agency_id, Subscription.url, LogEntry.type)
        .join(Subscription, Subscription.id == Delivery.subscription_id)
        .join(LogEntry, LogEntry.idx == Delivery.log_index)
        .where(Delivery.status == "pending", Delivery.attempts > 0, Subscription.url.is_not(None))
        .order_by(Delivery.log_index)
        .limit(limit)
    )
    if agency_id:
        query = query.where(Subscription.agency_id == agency_id)
    return [
        _delivery_row(d, agency, url, message_type)
        for d, agency, url, message_type in session.execute(query)
    ]


def stuck_deliveries(
    session: Session,
    agency_id: str | None = None,
    subscription_id: str | None = None,
    limit: int = MAX_ROWS,
) -> list[dict[str, Any]]:
    """Dead and parked deliveries across subscriptions (each holds back the later ones about
    its enterprise until replayed or skipped), by log index."""
    query = (
        select(Delivery, Subscription.agency_id, Subscription.url, LogEntry.type)
        .join(Subscription, Subscription.id == Delivery.subscription_id)
        .join(LogEntry, LogEntry.idx == Delivery.log_index)
        .where(Delivery.status.in_(STUCK))
        .order_by(Delivery.log_index, Delivery.subscription_id)
        .limit(limit)
    )
    if agency_id:
        query = query.where(Subscription.agency_id == agency_id)
    if subscription_id:
        query = query.where(Delivery.subscription_id == subscription_id)
    return [
        _delivery_row(d, agency, url, message_type)
        for d, agency, url, message_type in session.execute(query)
    ]


def _delivery_row(d: Delivery, agency: str, url: str | None, message_type: str) -> dict[str, Any]:
    return {
        "subscription_id": d.subscription_id,
        "agency_id": agency,
        "endpoint_host": urlsplit(url).hostname if url else None,
        "log_index": d.log_index,
        "message_id": d.message_id,
        "type": message_type,
        "enterprise": d.uscc,
        "status": d.status,
        "attempts": d.attempts,
        "last_error": d.last_error,
        "next_attempt_at": _iso(d.next_attempt_at) if d.status == "pending" else None,
    }


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def delivery_states(session: Session, log_indexes: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Per log index, each subscription's delivery of it: agency, status, attempts, when
    delivered. Looked up through the (subscription, log index) key: subscriptions are few."""
    if not log_indexes:
        return {}
    subs: dict[str, str] = dict(
        session.execute(select(Subscription.id, Subscription.agency_id)).all()
    )
    rows = session.execute(
        select(Delivery)
        .where(Delivery.subscription_id.in_(list(subs)), Delivery.log_index.in_(log_indexes))
        .order_by(Delivery.log_index, Delivery.subscription_id)
    ).scalars()
    out: dict[int, list[dict[str, Any]]] = {}
    for d in rows:
        out.setdefault(d.log_index, []).append(
            {
                "subscription_id": d.subscription_id,
                "agency_id": subs[d.subscription_id],
                "status": d.status,
                "attempts": d.attempts,
                "delivered_at": d.delivered_at,
                "last_error": d.last_error,
            }
        )
    return out


def recent_deliveries(session: Session, subscription_id: str, limit: int = 20) -> list[Delivery]:
    """A subscription's latest deliveries, newest first."""
    return list(
        session.scalars(
            select(Delivery)
            .where(Delivery.subscription_id == subscription_id)
            .order_by(Delivery.log_index.desc())
            .limit(limit)
        )
    )
