"""Which deliveries are due and what each one sends: the claim (the due heads of the
(subscription, enterprise) queues, none behind a dead or parked delivery; a lease) and
the job it becomes (the document of the subscriber's view, rendered and checked).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from connectors import CONNECTORS, Decision, ViewContractError
from gateway.connectors.context import render_document
from gateway.delivery.heads import STUCK, deliveries_at, pushable
from gateway.delivery.heads import lease as lease_heads
from gateway.delivery.webhooks import cloud_event
from gateway.errors import GatewayError
from gateway.models import Agency, Delivery, DeliveryHead, LogEntry, Subscription, table_of
from gateway.registry.rights import View, subscribe_views
from keys.jws import parse_compact

__all__ = ["STUCK", "Job", "claim_due_deliveries", "disabled_agencies", "load_jobs"]


@dataclass(frozen=True)
class Job:
    delivery_id: int
    attempts: int
    subscription: dict[str, Any]
    webhook_id: str
    body: bytes
    message_id: str
    leaf_hash: str
    parked: str | None = None  # why the document failed its view contract: never sent
    # why it may not go out at all: its agency no longer holds the subscribe right of the
    # message's type (never sent, never shown; the body is empty)
    withheld: str | None = None
    lease: dt.datetime | None = None  # the claimed_until this worker wrote: its claim token


def claim_due_deliveries(
    session: Session, now: dt.datetime, limit: int, lease: dt.timedelta
) -> list[int]:
    """Lease up to `limit` due deliveries, each the head of its (subscription, enterprise)
    queue (its earliest pending delivery, with nothing dead or parked before it), longest due
    first.

    The heads are rows of their own (gateway.delivery.heads), walked by due time through
    ix_delivery_heads_due: the cost is the claim's, whatever the backlog (grouping every
    pending delivery by queue to find the heads cost 659 ms at 100,000 pending). The head's
    delivery and subscription are checked here as well: a head's due time only ever errs
    early."""
    postgresql = session.get_bind().dialect.name == "postgresql"
    found = _walk_postgresql(session, now, limit) if postgresql else _walk(session, now, limit)
    candidates = [
        d
        for d in found
        if d.status == "pending"
        and d.next_attempt_at <= now
        and (d.claimed_until is None or d.claimed_until < now)
    ]
    # PostgreSQL's walk says which subscriptions have a rate limit: most rounds read none
    limited = {d.subscription_id for d in candidates if not postgresql or d.limited}
    ids = set(_within_rate_limits(session, candidates, now, limited))
    if ids:  # now + lease is the claim's token: the result is recorded only while it holds
        kept = [d for d in candidates if d.id in ids]
        queues = [(d.subscription_id, d.uscc) for d in kept]
        lease_heads(session, [d.id for d in kept], queues, now + lease)
    return [r.id for r in candidates if r.id in ids]


def _blocked(now: dt.datetime) -> Select[Any]:
    """Subscriptions no worker may push to now. NOT IN stays a hashed subplan: the planner
    cannot turn it into a join and start from the subscriptions (it did, on a table not yet
    analysed, and walked every pending delivery: 155 ms at 20,000)."""
    return select(Subscription.id).where(
        ~and_(
            pushable(),
            # a disabled agency's deliveries wait, as a paused subscription's do
            Subscription.agency_id.not_in(disabled_agencies()),
            or_(
                Subscription.breaker_open_until.is_(None),
                Subscription.breaker_open_until <= now,
            ),
        )
    )


def _walk(session: Session, now: dt.datetime, limit: int) -> list[Any]:
    """The due heads' deliveries, longest due first (SQLite: under its write lock)."""
    heads = table_of(DeliveryHead)
    due = (
        select(heads.c.subscription_id, heads.c.uscc, heads.c.log_index, heads.c.due_at)
        .where(heads.c.due_at <= now, heads.c.subscription_id.not_in(_blocked(now)))
        .order_by(heads.c.due_at, heads.c.log_index)
        .limit(limit)
    )
    walked = list(session.execute(due))
    if not walked:
        return []
    # The deliveries by their key alone, checked by the caller rather than in SQL: a
    # condition on their status or due time let the planner, on a table not yet analysed,
    # prefer ix_deliveries_due and hash every pending delivery (44 ms at 20,000).
    rows = deliveries_at(session, [(h.subscription_id, h.log_index) for h in walked])
    found = {(d.subscription_id, d.log_index): d for d in session.execute(rows)}
    return [
        d for d in (found.get((h.subscription_id, h.log_index)) for h in walked) if d is not None
    ]


# PostgreSQL: the walk, its deliveries and whether their subscriptions have a rate limit in one
# statement, on the driver's text (with the lease's one statement, the claim cost 20 µs of
# worker CPU a delivery against 94 µs in five statements of SQLAlchemy's, bench/outbox_round.py;
# each statement's construct was built, compiled and processed every round). The blocked
# subscriptions are `_blocked`'s (pushable(), disabled_agencies(), the breaker), written out.
# Each head is locked, then its delivery by its key alone, in a lateral subquery: with its
# FOR UPDATE the subquery stays one index lookup per head (see `_walk` on a condition on the
# deliveries' status), as long as it is planned for the table as it is: a generic plan kept
# from a table of a few rows looked it up through ix_deliveries_subscription_status, 3,313
# rows a head, until gateway.db had PostgreSQL plan each execution.
_WALK_POSTGRESQL = (
    "SELECT d.id, h.subscription_id, h.uscc, h.log_index, d.status, d.next_attempt_at,"
    " d.claimed_until, s.rate_limit IS NOT NULL AS limited"
    " FROM (SELECT subscription_id, uscc, log_index, due_at FROM delivery_heads"
    " WHERE due_at <= %(now)s AND subscription_id NOT IN (SELECT id FROM subscriptions"
    " WHERE NOT (status = 'active' AND url IS NOT NULL"
    " AND agency_id NOT IN (SELECT id FROM agencies WHERE status != 'active')"
    " AND (breaker_open_until IS NULL OR breaker_open_until <= %(now)s)))"
    " ORDER BY due_at, log_index LIMIT %(limit)s FOR UPDATE SKIP LOCKED) AS h"
    " CROSS JOIN LATERAL (SELECT id, status, next_attempt_at, claimed_until FROM deliveries"
    " WHERE subscription_id = h.subscription_id AND log_index = h.log_index"
    " FOR UPDATE SKIP LOCKED) AS d"
    " JOIN subscriptions AS s ON s.id = h.subscription_id"
    " ORDER BY h.due_at, h.log_index"
)


def _walk_postgresql(session: Session, now: dt.datetime, limit: int) -> list[Any]:
    """`_walk` on PostgreSQL: heads and deliveries locked, skipping those another worker
    holds; each row says whether its subscription has a rate limit."""
    parameters = {"now": now, "limit": limit}
    return list(session.connection().exec_driver_sql(_WALK_POSTGRESQL, parameters).all())


def disabled_agencies() -> Select[Any]:
    """The ids of the agencies an operator disabled (gateway agency disable)."""
    return select(Agency.id).where(Agency.status != "active")


def _within_rate_limits(
    session: Session, candidates: list[Any], now: dt.datetime, wanted: set[str]
) -> list[int]:
    """Keep what each subscription's token bucket allows (burst = one second's worth), of the
    subscriptions `wanted` (those that may have a rate limit; none: nothing is read).

    The bucket lives on the subscription row, inside the claim's transaction, so all workers
    share it; what is left out stays unclaimed for a later round.
    """
    if not wanted:
        return [row.id for row in candidates]
    limited = {
        s.id: s
        for s in session.scalars(
            select(Subscription).where(
                Subscription.id.in_(wanted), Subscription.rate_limit.is_not(None)
            )
        )
    }
    if not limited:
        return [row.id for row in candidates]
    for sub in limited.values():
        rate = float(sub.rate_limit or 0)
        elapsed = (now - sub.rate_tokens_at).total_seconds() if sub.rate_tokens_at else 1.0
        tokens = sub.rate_tokens if sub.rate_tokens is not None else rate
        sub.rate_tokens = min(max(rate, 1.0), tokens + rate * max(0.0, elapsed))
        sub.rate_tokens_at = now
    kept = []
    for row in candidates:
        limiting = limited.get(row.subscription_id)
        if limiting is not None:
            if (limiting.rate_tokens or 0) < 1:
                continue
            limiting.rate_tokens = (limiting.rate_tokens or 0) - 1
        kept.append(row.id)
    return kept


def _view(
    subscription: Subscription, envelope: dict[str, Any], right: View
) -> tuple[dict[str, Any], bool]:
    """The event data this subscription sees under its agency's current subscribe right, and
    whether the publisher's JWS may travel with it (only when the view is the whole message).

    Rights are read at delivery time: a right narrowed after the message was accepted is
    respected by every later attempt, replay and feed read (one withdrawn: `load_jobs`
    withholds the delivery, nothing of it is shown)."""
    if subscription.view in ("full", "fields"):
        whole = right.fields is None
        return right.project(envelope["data"]), whole and subscription.view == "full"
    # notice (or a connector view whose right no longer covers the whole message): that
    # something happened, about whom, from whom
    return {
        "type": envelope["type"],
        "subject": envelope["subject"],
        "issuer": envelope["issuer"],
        "issued_at": envelope["issued_at"],
    }, False


def load_jobs(
    session: Session,
    ids: list[int],
    source: str,
    now: dt.datetime | None = None,
    lease: dt.datetime | None = None,
) -> list[Job]:
    now = now or dt.datetime.now(dt.UTC)
    rows = list(
        session.execute(
            select(Delivery, Subscription, LogEntry)
            .join(Subscription, Subscription.id == Delivery.subscription_id)
            .join(LogEntry, LogEntry.idx == Delivery.log_index)
            .where(Delivery.id.in_(ids))
            .order_by(Delivery.log_index)
        )
    )
    rights = subscribe_views(session, {subscription.agency_id for _, subscription, _ in rows})
    jobs = []
    for delivery, subscription, entry in rows:
        right = rights.get((subscription.agency_id, entry.type))
        if right is None:  # withdrawn since it was queued: not even a notice (finding 6)
            jobs.append(_withheld(delivery, subscription, entry, lease))
            continue
        token = entry.jws.decode()
        envelope = json.loads(parse_compact(token).payload)
        parked: str | None = None
        connector = CONNECTORS.get(subscription.view)
        if connector is not None and right.fields is not None:
            # A connector's document is made from the whole message: under a right since
            # narrowed it cannot be made, and `_view` gives the notice instead.
            connector = None
        if connector is not None:  # the connector's document, checked against its contract
            data, with_jws = {}, False
            try:
                data = render_document(session, connector, _decision(entry, envelope))
            except ViewContractError as exc:
                parked = str(exc)
            except (KeyError, ValueError, TypeError, GatewayError) as exc:
                parked = f"{connector.name}: cannot render the document: {exc!r}"[:480]
        else:
            data, with_jws = _view(subscription, envelope, right)
        body = cloud_event(
            source=source,
            message_id=entry.message_id,
            message_type=entry.type,
            subject=entry.subject or "",
            time=entry.accepted_at.isoformat(),
            sequence=entry.idx,
            subseq=delivery.subseq,
            leaf_hash=entry.leaf_hash,
            data=data,
            jws=token if with_jws else None,
            dataschema=connector.schema["$id"] if connector else None,
        )
        jobs.append(
            Job(
                delivery_id=delivery.id,
                attempts=delivery.attempts,
                subscription={
                    "id": subscription.id,
                    "agency_id": subscription.agency_id,
                    "url": subscription.url,
                    "signing": list(subscription.signing),
                    "hmac_secrets": [subscription.hmac_secret]
                    + (
                        [subscription.previous_hmac_secret]
                        if subscription.previous_hmac_secret
                        and subscription.previous_valid_until
                        and subscription.previous_valid_until > now
                        else []
                    )
                    if subscription.hmac_secret
                    else [],
                    "schedule": list(subscription.retry_schedule),
                },
                webhook_id=f"msg_{entry.message_id}.{subscription.id}",
                body=body,
                message_id=entry.message_id,
                leaf_hash=entry.leaf_hash.hex(),
                parked=parked,
                lease=lease,
            )
        )
    return jobs


def _withheld(
    delivery: Delivery, subscription: Subscription, entry: LogEntry, lease: dt.datetime | None
) -> Job:
    """The job of a delivery its agency may no longer receive: nothing rendered, nothing to
    send; the worker records it `withheld`, the feed leaves it out."""
    why = f"{subscription.agency_id} holds no subscribe right for {entry.type}"
    return Job(
        delivery_id=delivery.id,
        attempts=delivery.attempts,
        subscription={"id": subscription.id, "agency_id": subscription.agency_id},
        webhook_id=f"msg_{entry.message_id}.{subscription.id}",
        body=b"",
        message_id=entry.message_id,
        leaf_hash="",
        withheld=why,
        lease=lease,
    )


def _decision(entry: LogEntry, envelope: dict[str, Any]) -> Decision:
    return Decision(
        index=entry.idx,
        message_id=entry.message_id,
        type=entry.type,
        issuer=entry.issuer,
        subject=entry.subject or "",
        issued_at=str(envelope["issued_at"]),
        data=envelope["data"],
    )
