"""The head of each (subscription, enterprise) delivery queue, one `delivery_heads` row each,
kept as deliveries are queued, recorded, replayed or skipped, and as subscriptions are
paused, disabled or let go, so that a claim reads the due heads (a cost independent of the
backlog) instead of grouping every pending delivery.

A queue's head is its earliest delivery that is pending, dead or parked. Its `due_at` is when
a worker may claim it: the later of its next attempt and its lease; None when it is dead or
parked (the queue waits for an operator) or its subscription cannot be pushed to now (paused,
disabled, pull-only). The claim still checks the delivery, the subscription, its breaker and
its agency's status: `due_at` only has to be never later than the truth.

Locks, on PostgreSQL: whoever moves a head locks its row first and reads the queue after, in
a statement of its own (READ COMMITTED: a fresh snapshot), and a publisher queueing behind an
existing head locks that row too, so a head that moves on while a delivery is queued behind
it sees that delivery. Each statement locks its rows in (subscription, enterprise) order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar, Unpack

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    case,
    delete,
    func,
    literal,
    select,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import InstrumentedAttribute, Session

from gateway.bulk import BulkInsert, Writes
from gateway.models import Delivery, DeliveryHead, Subscription, table_of

STUCK = ("dead", "parked")  # statuses that keep blocking their enterprise's later deliveries
OPEN = ("pending", *STUCK)  # a queue's head is its earliest delivery in one of these
CHUNK = 500  # queues per statement

Queue = tuple[str, str]  # (subscription_id, uscc)
Column = ColumnElement[Any] | InstrumentedAttribute[Any]
SelectT = TypeVar("SelectT", bound="Select[Unpack[tuple[Any, ...]]]")  # noqa: UP044 (3.11)

_heads = table_of(DeliveryHead)
# Core columns in the statements every round runs: the ORM's select of the same columns cost
# a worker more in Python than the database spent running it.
_deliveries = table_of(Delivery)


def keyed(
    session: Session,
    query: SelectT,
    first: Column,
    second: Column,
    pairs: Iterable[tuple[Any, Any]],
) -> SelectT:
    """`query` kept to the rows whose (first, second) is one of `pairs`. On PostgreSQL a join
    on two arrays unnested: a short list, so the planner looks each pair up in an index even
    on tables never analysed; a row-value IN list was read as the common `first` alone (77 ms
    to lease 64 heads of one subscription at 20,000 pending), and a VALUES list cost more to
    build in SQLAlchemy (its rows are compiled each time) than the claim itself."""
    return query.where(_pairs(session, first, second, pairs))


def deliveries_at(
    session: Session, pairs: Iterable[tuple[str, int]]
) -> Select[Unpack[tuple[Any, ...]]]:  # noqa: UP044 (3.11)
    """What a head is made from, of the deliveries at these (subscription, log index)
    places."""
    return keyed(
        session,
        select(
            _deliveries.c.id,
            _deliveries.c.subscription_id,
            _deliveries.c.uscc,
            _deliveries.c.log_index,
            _deliveries.c.status,
            _deliveries.c.next_attempt_at,
            _deliveries.c.claimed_until,
        ),
        _deliveries.c.subscription_id,
        _deliveries.c.log_index,
        pairs,
    )


def _pairs(
    session: Session, first: Column, second: Column, pairs: Iterable[tuple[Any, Any]]
) -> ColumnElement[bool]:
    """The condition of `keyed`, for a SELECT, an UPDATE (… FROM) or a DELETE (… USING)."""
    pairs = sorted(set(pairs))
    if session.get_bind().dialect.name != "postgresql":
        return tuple_(first, second).in_(pairs)
    keys = (
        func.unnest(
            literal([a for a, _ in pairs], ARRAY(first.expression.type)),
            literal([b for _, b in pairs], ARRAY(second.expression.type)),
        )
        .table_valued("a", "b")
        .render_derived(name="keys")
    )
    return and_(first == keys.c.a, second == keys.c.b)


def pushable() -> ColumnElement[bool]:
    """Whether a worker may push to a subscription, as far as the subscription says: active,
    with a URL. Its agency's status and its breaker are checked by the claim alone (so that
    `gateway.registry`, which disables agencies, need not import this package)."""
    return and_(Subscription.status == "active", Subscription.url.is_not(None))


def _insert(dialect: str) -> Any:
    return (postgresql_insert if dialect == "postgresql" else sqlite_insert)(_heads)


# Built once: a statement built per call (the upsert's `excluded` columns made anew each time)
# cost a third of `outbox.enqueue`'s CPU, and psycopg's executemany sent a row a statement.
_QUEUE_BEHIND = BulkInsert(
    _heads,
    on_conflict="ON CONFLICT (subscription_id, uscc) DO UPDATE SET"
    " log_index = excluded.log_index, due_at = excluded.due_at"
    " WHERE delivery_heads.log_index > excluded.log_index",  # never so: it only locks
)


def queue_behind(writes: Writes, rows: Sequence[dict[str, Any]], held: set[str]) -> None:
    """After queueing the delivery `rows` (each with subscription_id, uscc, log_index,
    next_attempt_at): each becomes the head of a queue that had none; a queue that has one is
    locked (not changed), so that it cannot move on past the new delivery unseen. `held`:
    subscriptions whose new heads get no due time (not pushable now)."""
    first: dict[Queue, dict[str, Any]] = {}
    for row in rows:
        key = (row["subscription_id"], row["uscc"])
        if key not in first or row["log_index"] < first[key]["log_index"]:
            first[key] = row
    if not first:
        return
    writes.add(
        _QUEUE_BEHIND,
        [
            {
                "subscription_id": key[0],
                "uscc": key[1],
                "log_index": row["log_index"],
                "due_at": None if key[0] in held else row["next_attempt_at"],
            }
            for key, row in sorted(first.items())
        ],
    )


def settle_deliveries(session: Session, delivery_ids: Iterable[int]) -> None:
    """Settle the queues of these deliveries (after their status, due time or lease changed)."""
    ids = sorted(set(delivery_ids))
    queues: set[Queue] = set()
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        queues.update(
            (s, u)
            for s, u in session.execute(
                select(Delivery.subscription_id, Delivery.uscc).where(Delivery.id.in_(chunk))
            )
        )
    settle(session, queues)


def settle(session: Session, queues: Iterable[Queue]) -> None:
    """Point each queue's head row at its earliest open delivery, with its due time; remove
    the row of a queue with none."""
    ordered = sorted(set(queues))
    for start in range(0, len(ordered), CHUNK):
        _settle(session, ordered[start : start + CHUNK])


def _settle(session: Session, queues: list[Queue]) -> None:
    """Lock the queues' heads, then (a statement later) read where they go and move them."""
    if session.get_bind().dialect.name == "postgresql":
        _settle_postgresql(session, queues)
        return
    locked = {
        (s, u)
        for s, u in session.execute(
            keyed(
                session,
                select(_heads.c.subscription_id, _heads.c.uscc),
                _heads.c.subscription_id,
                _heads.c.uscc,
                queues,
            )
            .order_by(_heads.c.subscription_id, _heads.c.uscc)
            .with_for_update(of=_heads)
        )
    }
    heads = _first_open(session, queues)  # after the lock: see the module's docstring
    where = and_(
        _heads.c.subscription_id == bindparam("b_subscription_id"),
        _heads.c.uscc == bindparam("b_uscc"),
    )
    moved = [heads[q] for q in queues if q in locked and q in heads]
    if moved:
        session.execute(
            update(_heads)
            .where(where)
            .values(log_index=bindparam("b_log_index"), due_at=bindparam("b_due_at")),
            moved,
        )
    gone = [q for q in queues if q in locked and q not in heads]
    if gone:
        session.execute(
            delete(_heads).where(_pairs(session, _heads.c.subscription_id, _heads.c.uscc, gone))
        )
    new = [heads[q] for q in queues if q not in locked and q in heads]
    if new:  # a replay reopening a queue; a publisher may have opened it meanwhile
        statement = _insert(session.get_bind().dialect.name)
        statement = statement.on_conflict_do_update(
            index_elements=[_heads.c.subscription_id, _heads.c.uscc],
            set_={
                "log_index": statement.excluded.log_index,
                "due_at": statement.excluded.due_at,
            },
            where=_heads.c.log_index > statement.excluded.log_index,  # the earlier one heads
        )
        session.execute(
            statement,
            [
                {
                    "subscription_id": h["b_subscription_id"],
                    "uscc": h["b_uscc"],
                    "log_index": h["b_log_index"],
                    "due_at": h["b_due_at"],
                }
                for h in new
            ],
        )


# PostgreSQL: `_settle` in two statements on the driver's text, the keys as arrays in binary
# (%b: psycopg's text form escaped each element in Python, 54 against 14 µs for 64 keys).
# First the heads' rows are locked; then, in a statement of its own (a fresh snapshot, see the
# module's docstring), each queue's earliest open delivery is read (pending and stuck apart, so
# that each reads its partial index, as `_first_open` does) and the heads are moved, removed or
# added at once: the three sets of queues are apart (locked and open, locked and not, not
# locked), so no row is written twice. `_first_open`, `_held` and `pushable()` written out:
# with this and the round's lock (gateway.delivery.worker) on the driver's text, a recorded
# round cost 74 instead of 132 µs of worker CPU a delivery (bench/outbox_round.py).
_KEYS = "unnest(CAST(%(subscriptions)b AS VARCHAR(36)[]), CAST(%(usccs)b AS VARCHAR(18)[])"
_LOCK_HEADS_POSTGRESQL = (
    f"SELECT h.subscription_id, h.uscc FROM delivery_heads AS h, {_KEYS}) AS keys(a, b)"
    " WHERE h.subscription_id = keys.a AND h.uscc = keys.b"
    " ORDER BY h.subscription_id, h.uscc FOR UPDATE OF h"
)
_MOVE_HEADS_POSTGRESQL = (
    f"WITH keys AS (SELECT * FROM {_KEYS}, CAST(%(locked)b AS BOOLEAN[])) AS k(a, b, locked)),"
    " mins AS (SELECT d.subscription_id AS a, d.uscc AS b, min(d.log_index) AS log_index"
    " FROM deliveries AS d JOIN keys ON d.subscription_id = keys.a AND d.uscc = keys.b"
    " WHERE d.status = 'pending' GROUP BY 1, 2"
    " UNION ALL SELECT d.subscription_id, d.uscc, min(d.log_index)"
    " FROM deliveries AS d JOIN keys ON d.subscription_id = keys.a AND d.uscc = keys.b"
    " WHERE d.status IN ('dead', 'parked') GROUP BY 1, 2),"
    " first AS (SELECT keys.a, keys.b, keys.locked, d.log_index,"
    " CASE WHEN d.status = 'pending' AND s.status = 'active' AND s.url IS NOT NULL"
    " THEN GREATEST(d.next_attempt_at, d.claimed_until) END AS due_at"
    " FROM keys JOIN (SELECT a, b, min(log_index) AS log_index FROM mins GROUP BY a, b) AS m"
    " ON m.a = keys.a AND m.b = keys.b"
    " JOIN deliveries AS d ON d.subscription_id = keys.a AND d.log_index = m.log_index"
    " JOIN subscriptions AS s ON s.id = keys.a),"
    " moved AS (UPDATE delivery_heads AS h SET log_index = first.log_index, due_at = first.due_at"
    " FROM first WHERE first.locked AND h.subscription_id = first.a AND h.uscc = first.b),"
    " gone AS (DELETE FROM delivery_heads AS h USING keys"
    " WHERE keys.locked AND h.subscription_id = keys.a AND h.uscc = keys.b"
    " AND NOT EXISTS (SELECT FROM first WHERE first.a = keys.a AND first.b = keys.b))"
    # a replay reopening a queue; a publisher may have opened it meanwhile
    " INSERT INTO delivery_heads (subscription_id, uscc, log_index, due_at)"
    " SELECT a, b, log_index, due_at FROM first WHERE NOT locked"
    " ON CONFLICT (subscription_id, uscc) DO UPDATE"
    " SET log_index = excluded.log_index, due_at = excluded.due_at"
    " WHERE delivery_heads.log_index > excluded.log_index"  # the earlier one heads
)


def _settle_postgresql(session: Session, queues: list[Queue]) -> None:
    """`_settle` in two statements: `_first_open`, `_held` and the writes are the second."""
    connection = session.connection()
    keys: dict[str, list[Any]] = {
        "subscriptions": [s for s, _ in queues],
        "usccs": [u for _, u in queues],
    }
    locked = {(s, u) for s, u in connection.exec_driver_sql(_LOCK_HEADS_POSTGRESQL, keys).all()}
    keys["locked"] = [q in locked for q in queues]
    connection.exec_driver_sql(_MOVE_HEADS_POSTGRESQL, keys)


def _first_open(session: Session, queues: list[Queue]) -> dict[Queue, dict[str, Any]]:
    """Each queue's earliest pending, dead or parked delivery and its due time, as parameters
    of the head's row; queues with none are left out. Pending and stuck are read apart, so
    that each reads its partial index (ix_deliveries_pending_order, ix_deliveries_stuck_order)
    rather than all of a subscription's deliveries."""
    first: dict[Queue, int] = {}
    mins = select(
        _deliveries.c.subscription_id, _deliveries.c.uscc, func.min(_deliveries.c.log_index)
    )
    both = union_all(  # one round trip; each part still reads its own partial index
        *(
            keyed(session, mins, _deliveries.c.subscription_id, _deliveries.c.uscc, queues)
            .where(status)
            .group_by(_deliveries.c.subscription_id, _deliveries.c.uscc)
            for status in (_deliveries.c.status == "pending", _deliveries.c.status.in_(STUCK))
        )
    )
    for sub, uscc, index in session.execute(both):
        first[(sub, uscc)] = min(index, first.get((sub, uscc), index))
    heads: dict[Queue, dict[str, Any]] = {}
    if first:
        held = _held(session, {s for s, _ in first})
        pairs = [(s, i) for (s, _), i in first.items()]
        for d in session.execute(deliveries_at(session, pairs)):
            heads[(d.subscription_id, d.uscc)] = {
                "b_subscription_id": d.subscription_id,
                "b_uscc": d.uscc,
                "b_log_index": d.log_index,
                "b_due_at": None
                if d.status != "pending" or d.subscription_id in held
                else max(d.next_attempt_at, d.claimed_until or d.next_attempt_at),
            }
    return heads


def _held(session: Session, subscription_ids: set[str]) -> set[str]:
    """Of these subscriptions, those a worker may not push to now."""
    return {
        sid
        for sid, ok in session.execute(
            select(Subscription.id, pushable()).where(Subscription.id.in_(subscription_ids))
        )
        if not ok
    }


def held_subscriptions(session: Session) -> set[str]:
    """Every subscription a worker may not push to now (for a publish's new heads)."""
    return {sid for sid, ok in session.execute(select(Subscription.id, pushable())) if not ok}


def refresh(session: Session, subscription_ids: Iterable[str]) -> None:
    """Give the heads of these subscriptions their due times again, or none while a
    subscription cannot be pushed to (after a pause, a resume, a 410)."""
    wanted = set(subscription_ids)
    if not wanted:
        return
    session.flush()
    held = _held(session, wanted)
    for sid in sorted(wanted):
        _lock_subscription(session, sid)
        if sid in held:
            session.execute(
                update(_heads).where(_heads.c.subscription_id == sid).values(due_at=None)
            )
            continue
        head = (
            select(
                case(
                    (
                        and_(
                            Delivery.claimed_until.is_not(None),
                            Delivery.claimed_until > Delivery.next_attempt_at,
                        ),
                        Delivery.claimed_until,
                    ),
                    else_=Delivery.next_attempt_at,
                )
            )
            .where(
                Delivery.subscription_id == _heads.c.subscription_id,
                Delivery.log_index == _heads.c.log_index,
                Delivery.status == "pending",
            )
            .scalar_subquery()
        )
        session.execute(update(_heads).where(_heads.c.subscription_id == sid).values(due_at=head))


def _lock_subscription(session: Session, subscription_id: str) -> None:
    """Lock a subscription's head rows in queue order before rewriting them all."""
    session.execute(
        select(_heads.c.uscc)
        .where(_heads.c.subscription_id == subscription_id)
        .order_by(_heads.c.uscc)
        .with_for_update()
    ).all()


def lease(
    session: Session, delivery_ids: Sequence[int], queues: Sequence[Queue], until: dt.datetime
) -> None:
    """Lease the claimed deliveries until `until`, and their queues' heads: due again when the
    lease ends. One statement on PostgreSQL."""
    if not delivery_ids:
        return
    if session.get_bind().dialect.name == "postgresql":
        keys = sorted(set(queues))
        session.connection().exec_driver_sql(
            _LEASE_POSTGRESQL,
            {
                "until": until,
                "ids": list(delivery_ids),
                "subscriptions": [s for s, _ in keys],
                "usccs": [u for _, u in keys],
            },
        )
        return
    # The table's UPDATE, not the ORM's: the ORM first evaluated its WHERE against the
    # session's objects (8 % of a claim's CPU in a cProfile of bench/outbox_vs_queues.py's
    # loop).
    session.execute(
        update(_deliveries).where(_deliveries.c.id.in_(delivery_ids)).values(claimed_until=until)
    )
    where = _pairs(session, _heads.c.subscription_id, _heads.c.uscc, queues)
    session.execute(update(_heads).where(where).values(due_at=until))


# Both of the lease's updates, the keys as arrays in binary (%b: psycopg's text form escaped
# each element in Python, 54 against 14 µs for 64 keys). The two tables' rows are distinct, and
# the claim holds their locks already.
_LEASE_POSTGRESQL = (
    "WITH leased AS (UPDATE deliveries SET claimed_until = %(until)s"
    " WHERE id = ANY(CAST(%(ids)b AS BIGINT[])))"
    " UPDATE delivery_heads SET due_at = %(until)s"
    " FROM unnest(CAST(%(subscriptions)b AS VARCHAR(36)[]), CAST(%(usccs)b AS VARCHAR(18)[]))"
    " AS keys(a, b) WHERE delivery_heads.subscription_id = keys.a AND delivery_heads.uscc = keys.b"
)
