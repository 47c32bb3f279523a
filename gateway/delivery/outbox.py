"""The transactional outbox: delivery rows written in the transaction that accepts a message.

Nothing in memory stands between acceptance and delivery: a message that got a receipt has
its delivery rows committed with it, for every matching subscription, whatever its status
(a paused or disabled endpoint keeps queueing, so re-enabling it catches up in order), whose
agency holds the subscribe right of the message's type at that moment: a message accepted
after the right was withdrawn is never queued for it (issue 20, finding 6).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import and_, bindparam, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from gateway.bulk import BulkInsert, BulkUpdate, Writes
from gateway.delivery.heads import pushable, queue_behind
from gateway.delivery.wakeup import announce
from gateway.models import AccessRight, Delivery, Subscription, table_of

if TYPE_CHECKING:
    from gateway.ledger.state import EnterpriseState


@dataclass(frozen=True)
class Accepted:
    """An accepted message with the enterprise facts the filters look at, as of that message.

    `levels` holds the grade level before and after it, so a grade filter also matches the
    revocation or expiry of a grade at that level.
    """

    index: int
    message_id: str
    type: str
    subject: str
    region_code: str | None
    industry_section: str | None
    levels: frozenset[str]

    @classmethod
    def of(
        cls,
        index: int,
        message_id: str,
        message_type: str,
        subject: str,
        before: str | None,
        enterprise: EnterpriseState | None,
    ) -> Accepted:
        after = enterprise.grade_level if enterprise else None
        return cls(
            index=index,
            message_id=message_id,
            type=message_type,
            subject=subject,
            region_code=enterprise.region_code if enterprise else None,
            industry_section=enterprise.industry_section if enterprise else None,
            levels=frozenset(level for level in (before, after) if level),
        )


@dataclass
class _Target:
    """What routing an accepted message needs of a subscription, and its delivery count."""

    id: str
    agency_id: str
    types: list[str]
    region_prefix: str | None
    industry_section: str | None
    grade_level: str | None
    queued: int
    pushable: bool  # whether its new queue heads are due (gateway.delivery.heads)
    allowed: set[str]  # the types its agency holds the subscribe right of


def matches(subscription: _Target | Subscription, item: Accepted) -> bool:
    if item.type not in subscription.types:
        return False
    region, section = item.region_code or "", item.industry_section
    if subscription.region_prefix and not region.startswith(subscription.region_prefix):
        return False
    if subscription.industry_section and section != subscription.industry_section:
        return False
    return not subscription.grade_level or subscription.grade_level in item.levels


# Built once, and run through Core: every publishing transaction runs them (the ORM's
# statement building and unit of work cost more than the statements, bench/profile_publish.py).
# A subscription comes once for each type of the group its agency holds the subscribe right
# of (the rights, read apart, cost a round trip more), and not at all without one.
_TARGETS = select(
    Subscription.id,
    Subscription.agency_id,
    Subscription.types,
    Subscription.region_prefix,
    Subscription.industry_section,
    Subscription.grade_level,
    Subscription.queued,
    pushable().label("pushable"),
    AccessRight.contract,
).join(
    AccessRight,
    and_(
        AccessRight.agency_id == Subscription.agency_id,
        AccessRight.action == "subscribe",
        AccessRight.contract.in_(bindparam("types", expanding=True)),
    ),
)
_SET_QUEUED = BulkUpdate(table_of(Subscription), "id")
_INSERT_DELIVERIES = BulkInsert(table_of(Delivery))


def _targets(connection: Connection, types: set[str]) -> list[_Target]:
    targets: dict[str, _Target] = {}
    for row in connection.execute(_TARGETS, {"types": sorted(types)}):
        target = targets.get(row.id)
        if target is None:
            target = targets[row.id] = _Target(
                id=row.id,
                agency_id=row.agency_id,
                types=row.types,
                region_prefix=row.region_prefix,
                industry_section=row.industry_section,
                grade_level=row.grade_level,
                queued=row.queued,
                pushable=row.pushable,
                allowed=set(),
            )
        target.allowed.add(row.contract)
    return list(targets.values())


def enqueue(
    session: Session, accepted: list[Accepted], now: dt.datetime, writes: Writes | None = None
) -> int:
    """Insert the delivery rows for `accepted`, and the heads of the queues they open; returns
    how many. Runs in the transaction that appends them, after the log head is locked:
    publishers take turns counting `queued`. With `writes`, the rows go with the caller's
    other writes (sent by the caller before commit); else at once."""
    if not accepted:
        return 0
    connection = session.connection()
    targets = _targets(connection, {item.type for item in accepted})
    if not targets:
        return 0
    rows = []
    counted: dict[str, _Target] = {}
    for item in accepted:
        for target in targets:
            if item.type in target.allowed and matches(target, item):
                # `subseq` counts a subscription's deliveries 1, 2, 3 …: a consumer that sees
                # a number skipped knows it missed one (the log index skips filtered entries).
                target.queued = (target.queued or 0) + 1
                counted[target.id] = target
                rows.append(
                    {
                        "subscription_id": target.id,
                        "log_index": item.index,
                        "message_id": item.message_id,
                        "uscc": item.subject,
                        "subseq": target.queued,
                        "status": "pending",
                        "attempts": 0,
                        "next_attempt_at": now,
                    }
                )
    if rows:
        own = writes is None
        if writes is None:
            writes = Writes(connection)
        writes.add(_INSERT_DELIVERIES, rows)
        queue_behind(writes, rows, {t.id for t in targets if not t.pushable})
        writes.add(_SET_QUEUED, [{"id": t.id, "queued": t.queued} for t in counted.values()])
        announce(writes)
        if own:
            writes.send()
    return len(rows)
