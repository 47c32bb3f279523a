"""Pull feed per subscription: items shaped like push bodies, ascending by log index."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from gateway.delivery import heads
from gateway.delivery.jobs import STUCK, load_jobs
from gateway.delivery.subscriptions import get_subscription
from gateway.errors import BadRequest, Conflict, NotFound
from gateway.models import (
    AccessRight,
    ConsumerReceipt,
    Delivery,
    DeliveryAttempt,
    LogEntry,
    Subscription,
    table_of,
)

MAX_LIMIT = 500


def read_feed(
    session: Session, subscription_id: str, after: int | None, limit: int, source: str
) -> dict[str, Any]:
    """Items after `after` (default: the acknowledged cursor); `next` is the cursor to pass."""
    subscription = get_subscription(session, subscription_id)
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest("invalid_limit", f"limit must be between 1 and {MAX_LIMIT}")
    start = subscription.acked_index if after is None else after
    # Only what the agency may see now: the types it holds the subscribe right of, nothing a
    # worker withheld. A right withdrawn hides even that something happened (issue 20,
    # finding 6: a notice told a bank who was black-listed after its right was withdrawn);
    # `next` moves over shown items only, so no cursor points at a hidden one.
    rows = list(
        session.execute(
            select(Delivery.id, Delivery.log_index)
            .join(LogEntry, LogEntry.idx == Delivery.log_index)
            .join(
                AccessRight,
                and_(
                    AccessRight.agency_id == subscription.agency_id,
                    AccessRight.action == "subscribe",
                    AccessRight.contract == LogEntry.type,
                ),
            )
            .where(
                Delivery.subscription_id == subscription_id,
                Delivery.log_index > start,
                Delivery.status != "withheld",
            )
            .order_by(Delivery.log_index)
            .limit(limit + 1)
        )
    )
    more = len(rows) > limit
    rows = rows[:limit]
    loaded = load_jobs(session, [r.id for r in rows], source) if rows else []
    jobs = [job for job in loaded if job.withheld is None]  # a right withdrawn meanwhile
    index_of = {r.id: r.log_index for r in rows}
    return {
        "subscription": subscription_id,
        "after": start,
        "items": [orjson.loads(job.body) for job in jobs if job.parked is None],
        # documents that failed the connector's view contract: never sent, named here so the
        # gap in `subseq` is explained
        "parked": [
            {"sequence": orjson.loads(job.body)["sequence"], "reason": job.parked}
            for job in jobs
            if job.parked is not None
        ],
        "next": max((index_of[job.delivery_id] for job in jobs), default=start),
        "has_more": more,
    }


def acknowledge(session: Session, subscription_id: str, index: int) -> int:
    """Move the server-side cursor forward (never back); returns it."""
    subscription = get_subscription(session, subscription_id)
    subscription.acked_index = max(subscription.acked_index, index)
    return subscription.acked_index


def dead_letters(session: Session, subscription_id: str) -> list[dict[str, Any]]:
    get_subscription(session, subscription_id)
    rows = session.scalars(
        select(Delivery)
        .where(Delivery.subscription_id == subscription_id, Delivery.status == "dead")
        .order_by(Delivery.log_index)
    )
    return [
        {
            "delivery_id": d.id,
            "log_index": d.log_index,
            "message_id": d.message_id,
            "enterprise": d.uscc,
            "attempts": d.attempts,
            "last_error": d.last_error,
        }
        for d in rows
    ]


def replay(
    session: Session,
    subscription_id: str,
    now: dt.datetime,
    *,
    from_index: int | None = None,
    to_index: int | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    operator: str = "operator",
    reason: str | None = None,
) -> int:
    """Queue deliveries again (same webhook-id), by log-index range or acceptance time window.

    Each replayed delivery gets an attempt row saying who replayed it and why, so replays are
    recorded.
    """
    get_subscription(session, subscription_id)
    query = select(Delivery.id).where(Delivery.subscription_id == subscription_id)
    if from_index is not None:
        query = query.where(Delivery.log_index >= from_index)
    if to_index is not None:
        query = query.where(Delivery.log_index <= to_index)
    if since is not None or until is not None:
        query = query.join(LogEntry, LogEntry.idx == Delivery.log_index)
        if since is not None:
            query = query.where(LogEntry.accepted_at >= since)
        if until is not None:
            query = query.where(LogEntry.accepted_at < until)
    ids = list(session.scalars(query))
    if not ids:
        return 0
    session.execute(
        update(Delivery)
        .where(Delivery.id.in_(ids))
        .values(status="pending", attempts=0, next_attempt_at=now, claimed_until=None)
    )
    heads.settle_deliveries(session, ids)
    _note_operator_action(session, ids, now, "replay", _note("replayed", operator, reason), now)
    return len(ids)


def skip(
    session: Session,
    subscription_id: str,
    log_indexes: list[int],
    now: dt.datetime,
    *,
    operator: str = "operator",
    reason: str | None = None,
) -> int:
    """Give up on dead or parked deliveries for good, so their enterprises' later deliveries
    go out (a stuck one blocks them until replayed or skipped). Only dead or parked ones can
    be skipped; each gets an attempt row saying who skipped it. Returns how many."""
    get_subscription(session, subscription_id)
    rows = list(
        session.execute(
            select(Delivery.id, Delivery.log_index, Delivery.status).where(
                Delivery.subscription_id == subscription_id,
                Delivery.log_index.in_(set(log_indexes)),
            )
        )
    )
    missing = sorted(set(log_indexes) - {r.log_index for r in rows})
    if missing:
        raise NotFound("unknown_delivery", f"no delivery of log index {missing} here")
    moving = sorted(r.log_index for r in rows if r.status not in STUCK)
    if moving:
        raise Conflict(
            "not_stuck",
            f"only dead or parked deliveries can be skipped; not log index {moving}",
        )
    ids = [r.id for r in rows]
    session.execute(update(Delivery).where(Delivery.id.in_(ids)).values(status="skipped"))
    heads.settle_deliveries(session, ids)  # their queues move on
    _note_operator_action(session, ids, now, "skipped", _note("skipped", operator, reason), None)
    return len(ids)


def _note(done: str, operator: str, reason: str | None) -> str:
    """The attempt row's text for an operator's action: "replayed by fj-dsj: the reason"."""
    return f"{done} by {operator}" + (f": {reason.strip()}" if reason and reason.strip() else "")


def _note_operator_action(
    session: Session,
    ids: list[int],
    now: dt.datetime,
    action: str,
    note: str,
    next_attempt_at: dt.datetime | None,
) -> None:
    """An attempt row per delivery saying what an operator did to it, and who."""
    session.execute(
        table_of(DeliveryAttempt).insert(),
        [
            {
                "delivery_id": i,
                "at": now,
                "status_code": None,
                "latency_ms": 0,
                "error_class": action,
                "response_excerpt": note,
                "next_attempt_at": next_attempt_at,
            }
            for i in ids
        ],
    )


def delivery_counts(session: Session) -> dict[str, dict[str, int]]:
    rows = session.execute(
        select(Subscription.id, Delivery.status, func.count())
        .join(Delivery, Delivery.subscription_id == Subscription.id)
        .group_by(Subscription.id, Delivery.status)
    )
    counts: dict[str, dict[str, int]] = {}
    for sub, status, n in rows:
        counts.setdefault(sub, {})[status] = n
    receipts = session.execute(
        select(Delivery.subscription_id, func.count())
        .join(ConsumerReceipt, ConsumerReceipt.delivery_id == Delivery.id)
        .group_by(Delivery.subscription_id)
    )
    for sub, n in receipts:
        counts.setdefault(sub, {})["consumer_receipts"] = n
    return counts
