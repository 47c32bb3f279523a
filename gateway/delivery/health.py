"""How deliveries are going, across subscriptions: each subscription's last 24 hours
(attempts, success rate, latency, last error), its breaker and next attempt; the deliveries
failing now; every dead or parked delivery. Read-only; for operators (API, CLI, console) and,
cut to one agency, for the agency itself."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Integer, and_, case, cast, func, or_, select
from sqlalchemy.orm import Session

from gateway.delivery.jobs import STUCK
from gateway.models import Delivery, DeliveryAttempt, LogEntry, Subscription

WINDOW = dt.timedelta(hours=24)
# Attempt rows that record what an operator did, not a POST (gateway.delivery.feed).
OPERATOR_ACTIONS = ("replay", "skipped")
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
    """Every subscription (or one agency's), ordered by agency and creation."""
    since = now - WINDOW
    subs = list(
        session.scalars(
            select(Subscription)
            .where(*([Subscription.agency_id == agency_id] if agency_id else []))
            .order_by(Subscription.agency_id, Subscription.created_at)
        )
    )
    wanted = [s.id for s in subs]
    posts = and_(
        DeliveryAttempt.at >= since,
        or_(
            DeliveryAttempt.error_class.is_(None),
            DeliveryAttempt.error_class.not_in(OPERATOR_ACTIONS),
        ),
    )
    ok = and_(DeliveryAttempt.status_code >= 200, DeliveryAttempt.status_code < 300)
    window = {
        row.subscription_id: row
        for row in session.execute(
            select(
                Delivery.subscription_id,
                func.count().label("attempts"),
                func.sum(cast(case((ok, 1), else_=0), Integer)).label("succeeded"),
                func.avg(DeliveryAttempt.latency_ms).label("latency"),
                func.max(case((~ok, DeliveryAttempt.id), else_=None)).label("last_failed"),
            )
            .join(Delivery, Delivery.id == DeliveryAttempt.delivery_id)
            .where(posts, Delivery.subscription_id.in_(wanted))
            .group_by(Delivery.subscription_id)
        )
    }
    failed_ids = [row.last_failed for row in window.values() if row.last_failed is not None]
    last_errors = {
        a.id: a
        for a in session.scalars(select(DeliveryAttempt).where(DeliveryAttempt.id.in_(failed_ids)))
    }
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
        row = window.get(s.id)
        failed = last_errors.get(row.last_failed) if row is not None else None
        out.append(
            Health(
                subscription_id=s.id,
                agency_id=s.agency_id,
                host=urlsplit(s.url).hostname if s.url else None,
                status=s.status,
                attempts=int(row.attempts) if row else 0,
                succeeded=int(row.succeeded or 0) if row else 0,
                mean_latency_ms=round(float(row.latency), 1) if row and row.latency else None,
                breaker_open_until=s.breaker_open_until
                if s.breaker_open_until and s.breaker_open_until > now
                else None,
                consecutive_failures=s.consecutive_failures or 0,
                last_error=_error_text(failed) if failed else None,
                last_error_at=failed.at if failed else None,
                next_attempt_at=next_at.get(s.id),
                counts=counts.get(s.id, {}),
            )
        )
    return out


def _error_text(attempt: DeliveryAttempt) -> str:
    parts = [attempt.error_class or f"http_{attempt.status_code}"]
    if attempt.response_excerpt:
        parts.append(attempt.response_excerpt.strip()[:120])
    return ": ".join(parts)


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


def status_counts(session: Session) -> dict[str, int]:
    """Deliveries by status, over every subscription."""
    rows = session.execute(select(Delivery.status, func.count()).group_by(Delivery.status))
    return {status: n for status, n in rows}


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
