"""gateway.delivery.outbox.enqueue: a group of accepted messages of several types is queued for
each subscription only for the types its agency holds the subscribe right of at that moment,
and `subseq` counts each subscription's own deliveries."""

from __future__ import annotations

import uuid

from gateway_factories import register_publisher
from sqlalchemy import select

from gateway.delivery.outbox import Accepted, enqueue
from gateway.delivery.subscriptions import create_subscription
from gateway.models import Delivery, DeliveryHead, Subscription
from gateway.registry import rights
from gateway.runtime import Runtime

A, B = "91350900587527783P", "91350100MA2XY0129P"


def subscribe(runtime: Runtime, agency: str, types: list[str], withdrawn: list[str]) -> str:
    """A subscription to `types`, whose agency's subscribe rights to `withdrawn` were then
    withdrawn (a subscription needs the rights when it is made)."""
    register_publisher(runtime, agency, ["measure.applied"], roles=["bank"], subscribe=types)
    with runtime.db.transaction() as session:
        made = create_subscription(
            session,
            agency_id=agency,
            url=f"http://127.0.0.1:9/{agency}",
            types=types,
            now=runtime.clock.now(),
            allowed_hosts=["127.0.0.1"],
        ).id
        for contract in withdrawn:
            rights.revoke(
                session,
                runtime.signer,
                agency_id=agency,
                action="subscribe",
                contract=contract,
                now=runtime.clock.now(),
            )
    return made


def test_a_group_of_several_types_is_queued_by_each_agencys_rights(runtime: Runtime) -> None:
    both = ["grade.awarded", "listing.added"]
    # a bank subscribed to awards and listings, left with the right to awards only
    cib = subscribe(runtime, "fj-cib", both, withdrawn=["listing.added"])
    # an insurer subscribed to listings, with its right
    picc = subscribe(runtime, "fj-picc", ["listing.added"], withdrawn=[])
    # an agency subscribed to both, left without any subscribe right
    none = subscribe(runtime, "fj-none", both, withdrawn=both)
    group = [
        (1, "grade.awarded", A),
        (2, "listing.added", A),
        (3, "grade.awarded", B),
        (4, "enterprise.registered", B),  # nobody subscribed
    ]
    accepted = [
        Accepted(i, str(uuid.UUID(int=i)), kind, uscc, "350102", "C", frozenset())
        for i, kind, uscc in group
    ]
    with runtime.db.transaction() as session:
        assert enqueue(session, accepted, runtime.clock.now()) == 3

    with runtime.db.reader() as session:
        queued = {
            (d.subscription_id, d.log_index, d.subseq) for d in session.scalars(select(Delivery))
        }
        counted = session.execute(select(Subscription.id, Subscription.queued))
        counts = {subscription: n for subscription, n in counted}
        heads = {
            (h.subscription_id, h.uscc, h.log_index) for h in session.scalars(select(DeliveryHead))
        }
    assert queued == {(cib, 1, 1), (cib, 3, 2), (picc, 2, 1)}
    assert (counts[cib], counts[picc], counts[none] or 0) == (2, 1, 0)
    assert heads == {(cib, A, 1), (cib, B, 3), (picc, A, 2)}

    # the next group goes on counting, and a queue with a head keeps it
    more = [Accepted(5, str(uuid.UUID(int=5)), "grade.awarded", A, "350102", "C", frozenset())]
    with runtime.db.transaction() as session:
        assert enqueue(session, more, runtime.clock.now()) == 1
    with runtime.db.reader() as session:
        last = session.scalars(select(Delivery).where(Delivery.log_index == 5)).one()
        head = session.get(DeliveryHead, (cib, A))
    assert (last.subscription_id, last.subseq) == (cib, 3)
    assert head is not None
    assert head.log_index == 1
