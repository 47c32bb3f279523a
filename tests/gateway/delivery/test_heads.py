"""The queue heads (gateway.delivery.heads) stay what the deliveries say after every change:
each queue's earliest pending, dead or parked delivery, due when a worker may claim it; and
two workers claiming at once never hold two deliveries of one queue."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from typing import Any

import pytest
from gateway_factories import register_publisher
from sqlalchemy import select

from gateway.delivery import feed
from gateway.delivery.heads import OPEN
from gateway.delivery.jobs import Job, claim_due_deliveries
from gateway.delivery.outbox import Accepted, enqueue
from gateway.delivery.subscriptions import create_subscription, set_status
from gateway.delivery.worker import Result, record_all
from gateway.models import Delivery, DeliveryHead, Subscription
from gateway.registry.service import set_agency_status
from gateway.runtime import Runtime

A, B = "91350900587527783P", "91350100MA2XY0129P"
LEASE = dt.timedelta(seconds=60)
DELIVERED = Result(204, None, None, 1.0)
FAILED = Result(500, "http_500", "boom", 1.0)


def subscribe(runtime: Runtime) -> str:
    register_publisher(
        runtime, "fj-cib", ["measure.applied"], roles=["bank"], subscribe=["grade.awarded"]
    )
    with runtime.db.transaction() as session:
        return create_subscription(
            session,
            agency_id="fj-cib",
            url="https://receiver.example/hook",
            types=["grade.awarded"],
            now=runtime.clock.now(),
            allowed_hosts=["receiver.example"],
        ).id


def queue(runtime: Runtime, *items: tuple[int, str]) -> None:
    accepted = [
        Accepted(i, str(uuid.UUID(int=i)), "grade.awarded", uscc, "350102", "C", frozenset())
        for i, uscc in items
    ]
    with runtime.db.transaction() as session:
        enqueue(session, accepted, runtime.clock.now())


def claim(runtime: Runtime, sub: str, limit: int = 64, schedule: Any = (0, 60)) -> dict[int, Job]:
    """Claim and return the jobs by log index."""
    now = runtime.clock.now()
    with runtime.db.transaction() as session:
        ids = claim_due_deliveries(session, now, limit, LEASE)
        index = {i: n for i, n in session.execute(select(Delivery.id, Delivery.log_index))}
    subscription = {"id": sub, "agency_id": "fj-cib", "schedule": list(schedule)}
    return {index[i]: Job(i, 0, subscription, "", b"", "", "", lease=now + LEASE) for i in ids}


def record(runtime: Runtime, *outcomes: tuple[Job, Result]) -> None:
    record_all(runtime, list(outcomes), runtime.clock.now())


def heads(runtime: Runtime) -> dict[str, tuple[int, dt.datetime | None]]:
    """The stored heads, checked against the deliveries: (log index, due) by enterprise."""
    with runtime.db.reader() as session:
        stored = {
            (h.subscription_id, h.uscc): (h.log_index, h.due_at)
            for h in session.scalars(select(DeliveryHead))
        }
        deliveries = list(session.scalars(select(Delivery).order_by(Delivery.log_index)))
        subs = {s.id: s for s in session.scalars(select(Subscription))}
    expected: dict[tuple[str, str], tuple[int, dt.datetime | None]] = {}
    for d in deliveries:
        key = (d.subscription_id, d.uscc)
        if d.status not in OPEN or key in expected:
            continue
        sub = subs[d.subscription_id]
        pushable = sub.status == "active" and sub.url  # the claim checks the agency
        due = None
        if d.status == "pending" and pushable:
            due = max(d.next_attempt_at, d.claimed_until or d.next_attempt_at)
        expected[key] = (d.log_index, due)
    assert stored == expected
    return {uscc: head for (_, uscc), head in stored.items()}


def test_a_head_follows_every_result_and_operator_action(runtime: Runtime) -> None:
    sub = subscribe(runtime)
    now = runtime.clock.now()
    queue(runtime, (1, A), (2, A), (3, A), (4, B))
    assert heads(runtime) == {A: (1, now), B: (4, now)}

    jobs = claim(runtime, sub)
    assert sorted(jobs) == [1, 4]  # one per queue
    assert heads(runtime) == {A: (1, now + LEASE), B: (4, now + LEASE)}
    assert claim(runtime, sub) == {}  # both leased

    record(runtime, (jobs[1], DELIVERED), (jobs[4], FAILED))
    retry = heads(runtime)[B][1]
    assert retry is not None
    assert retry > now  # a retry moves the head's due time
    assert heads(runtime)[A] == (2, now)
    assert sorted(claim(runtime, sub, schedule=[0])) == [2]

    runtime.clock.advance(seconds=1)
    record(runtime, (claim_again(runtime, sub, 2), FAILED))  # schedule [0]: dead at once
    assert heads(runtime)[A] == (2, None)  # a dead delivery holds its queue
    runtime.clock.advance(days=2)
    assert sorted(claim(runtime, sub)) == [4]  # B's retry, not A's 3
    with runtime.db.transaction() as session:
        feed.skip(session, sub, [2], runtime.clock.now())
    assert heads(runtime)[A] == (3, now)
    jobs = claim(runtime, sub)
    assert sorted(jobs) == [3]
    record(runtime, (jobs[3], DELIVERED))
    assert A not in heads(runtime)  # nothing open: no head

    with runtime.db.transaction() as session:  # an operator's redelivery reopens the queue
        feed.replay(session, sub, runtime.clock.now(), from_index=1, to_index=1)
    assert heads(runtime)[A] == (1, runtime.clock.now())
    assert sorted(claim(runtime, sub)) == [1]


def claim_again(runtime: Runtime, sub: str, index: int) -> Job:
    """The job of a delivery this test claimed before (its lease passed)."""
    runtime.clock.advance(seconds=LEASE.total_seconds() + 1)
    jobs = claim(runtime, sub, schedule=[0])
    return jobs[index]


def test_a_parked_delivery_holds_its_queue_until_replayed(runtime: Runtime) -> None:
    sub = subscribe(runtime)
    queue(runtime, (1, A), (2, A))
    jobs = claim(runtime, sub)
    record(runtime, (jobs[1], Result(None, "parked", "no view", 0.0)))
    assert heads(runtime)[A] == (1, None)
    assert claim(runtime, sub) == {}
    with runtime.db.transaction() as session:
        feed.replay(session, sub, runtime.clock.now(), from_index=1)
    assert heads(runtime)[A] == (1, runtime.clock.now())


def test_paused_disabled_and_gone_subscriptions_hold_their_heads(runtime: Runtime) -> None:
    sub = subscribe(runtime)
    now = runtime.clock.now()
    queue(runtime, (1, A), (2, B))
    with runtime.db.transaction() as session:
        set_status(session, sub, "paused")
    assert heads(runtime) == {A: (1, None), B: (2, None)}
    queue(runtime, (3, A), (4, "91350100MA2XY0567C"))  # a paused subscription keeps queueing
    assert claim(runtime, sub) == {}
    with runtime.db.transaction() as session:
        set_status(session, sub, "active")
    assert heads(runtime)[A] == (1, now)
    with runtime.db.transaction() as session:
        set_agency_status(
            session, runtime.signer, agency_id="fj-cib", status="disabled", reason="audit", now=now
        )
    assert claim(runtime, sub) == {}  # its heads stay due; the claim checks the agency
    with runtime.db.transaction() as session:
        set_agency_status(
            session, runtime.signer, agency_id="fj-cib", status="active", reason="done", now=now
        )
    jobs = claim(runtime, sub)
    assert sorted(jobs) == [1, 2, 4]
    record(runtime, (jobs[1], Result(410, "http_410", None, 1.0)))  # 410: disabled
    assert set(heads(runtime).values()) == {(1, None), (2, None), (4, None)}


def test_a_publish_behind_a_head_that_moves_on_is_seen(runtime: Runtime) -> None:
    """PostgreSQL: a worker recording the head's result while a publisher queues the next
    delivery of its enterprise waits for the publisher, then moves the head onto it."""
    if runtime.db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    sub = subscribe(runtime)
    queue(runtime, (1, A))
    jobs = claim(runtime, sub)
    publishing = runtime.db.sessions()
    worker = threading.Thread(target=record, args=(runtime, (jobs[1], DELIVERED)))
    try:
        publishing.begin()
        item = Accepted(2, str(uuid.UUID(int=2)), "grade.awarded", A, "350102", "C", frozenset())
        enqueue(publishing, [item], runtime.clock.now())
        worker.start()
        time.sleep(0.5)
        assert worker.is_alive()  # waiting for the publisher's lock on A's head
        publishing.commit()
    finally:
        publishing.close()
        if worker.is_alive() or worker.ident:
            worker.join(10)
    assert heads(runtime)[A] == (2, runtime.clock.now())


def test_concurrent_claims_never_hold_two_deliveries_of_one_queue(runtime: Runtime) -> None:
    """PostgreSQL: two workers drain 12 queues of 6 deliveries, each in log order."""
    if runtime.db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite claims under its single writer")
    sub = subscribe(runtime)
    enterprises = [f"91350100MA2XY{n:05d}" for n in range(12)]
    queue(runtime, *[(i, enterprises[i % 12]) for i in range(72)])
    uscc_of = {i: enterprises[i % 12] for i in range(72)}
    claimed: list[int] = []
    failures: list[str] = []

    def work() -> None:
        idle = 0
        while idle < 20:
            jobs = claim(runtime, sub, limit=5)
            if not jobs:
                idle += 1
                time.sleep(0.02)
                continue
            idle = 0
            claimed.extend(jobs)
            # Everything before a claimed delivery of its queue has been recorded: had the
            # other worker still held one, this claim would have taken a second of a queue.
            with runtime.db.reader() as session:
                for index in jobs:
                    earlier = session.scalars(
                        select(Delivery.status).where(
                            Delivery.uscc == uscc_of[index], Delivery.log_index < index
                        )
                    )
                    if set(earlier) - {"delivered"}:
                        failures.append(f"{index} claimed before all of {uscc_of[index]}")
            record(runtime, *[(job, DELIVERED) for job in jobs.values()])

    workers = [threading.Thread(target=work) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert failures == []
    assert sorted(claimed) == list(range(72))  # each once
    assert heads(runtime) == {}
