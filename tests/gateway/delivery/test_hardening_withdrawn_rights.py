"""Issue 20, finding 6: after `DELETE …/rights/subscribe/listing.added`, a new `listing.added`
still reached the agency's feed as a notice `{type, subject, issuer, issued_at}`: it told a
bank who was black-listed after its right was withdrawn. Without the right nothing is queued,
sent or shown. What was queued before the withdrawal is judged when it would go out: a push
delivery then ends `withheld` (never sent, never retried; only an operator's replay, which
checks the right again, sends it), and the feed leaves it out while the right is missing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from contract_factories import make_listing, make_registration
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient
from gateway_factories import Publisher, bearer, publish, register_publisher
from loopback import serving
from sqlalchemy import select

from gateway.delivery.worker import make_client, run_once
from gateway.models import Delivery, DeliveryAttempt, LogEntry
from gateway.runtime import Runtime

RIGHT = "/v1/agencies/fj-cib/rights/subscribe/listing.added"
TYPES = ["enterprise.registered", "listing.added"]


@pytest.fixture
def received() -> Iterator[tuple[list[dict[str, Any]], str]]:
    bodies: list[dict[str, Any]] = []
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> Response:
        bodies.append(json.loads(await request.body()))
        return Response(status_code=204)

    with serving(app) as base:
        yield bodies, base + "/hook"


@pytest.fixture
def bank(runtime: Runtime) -> Publisher:
    return register_publisher(runtime, "fj-cib", [], roles=["bank"], subscribe=TYPES)


def subscribe(client: TestClient, url: str | None, view: str, types: list[str] = TYPES) -> str:
    body = {"agency_id": "fj-cib", "url": url, "types": types, "view": view}
    made = client.post("/v1/subscriptions", json=body)
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def feed(client: TestClient, runtime: Runtime, subscription: str) -> dict[str, Any]:
    answer = client.get(
        f"/v1/subscriptions/{subscription}/feed?after=-1",
        headers=bearer(runtime, "fj-cib", "subscribe"),
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def listing(authority: Publisher, number: int) -> bytes:
    return authority.message("listing.added", make_listing(listing_id=f"FJ-SX-2026-{number:04d}"))


def deliver(runtime: Runtime) -> None:
    with make_client(runtime) as http:
        for _ in range(3):
            run_once(runtime, http)


def index_of(runtime: Runtime, token: bytes) -> int:
    with runtime.db.reader() as session:
        return int(session.scalar(select(LogEntry.idx).where(LogEntry.jws == token)) or -1)


@pytest.mark.parametrize("view", ["notice", "fields", "full"])
def test_a_withdrawn_right_shows_and_sends_nothing_of_that_type(
    client: TestClient,
    runtime: Runtime,
    authority: Publisher,
    bank: Publisher,
    received: tuple[list[dict[str, Any]], str],
    view: str,
) -> None:
    bodies, url = received
    pull, push = subscribe(client, None, view), subscribe(client, url, view)
    assert publish(client, authority.message("enterprise.registered", make_registration()))
    before = listing(authority, 1)
    assert publish(client, before).status_code == 201  # queued while the right was held
    assert client.delete(RIGHT).status_code == 200
    after = listing(authority, 2)
    assert publish(client, after).status_code == 201

    for subscription in (pull, push):
        shown = feed(client, runtime, subscription)
        assert [item["type"] for item in shown["items"]] == ["enterprise.registered"]
        assert shown["parked"] == []
        assert shown["next"] < index_of(runtime, before)  # the cursor names no hidden item
        assert "listing" not in json.dumps(shown)
    with runtime.db.reader() as session:
        queued_after = session.scalars(
            select(Delivery).where(Delivery.log_index == index_of(runtime, after))
        ).all()
    assert queued_after == []  # never queued for a subscriber without the right

    deliver(runtime)
    assert [body["type"] for body in bodies] == ["enterprise.registered"]
    with runtime.db.reader() as session:
        held = session.scalars(
            select(Delivery).where(
                Delivery.subscription_id == push,
                Delivery.log_index == index_of(runtime, before),
            )
        ).one()
        assert (held.status, held.last_error) == (
            "withheld",
            "fj-cib holds no subscribe right for listing.added",
        )
        attempt = session.scalars(
            select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == held.id)
        ).one()
        assert (attempt.error_class, attempt.status_code) == ("withheld", None)

    # A new grant does not send what was withheld, nor queue what was published meanwhile;
    # a replay (checked against the right again) sends the withheld one.
    assert client.put(RIGHT).status_code == 200
    deliver(runtime)
    assert [body["type"] for body in bodies] == ["enterprise.registered"]
    replayed = client.post(f"/v1/subscriptions/{push}/replay", json={"from_index": 0})
    assert replayed.status_code == 200, replayed.text
    deliver(runtime)
    assert [body["type"] for body in bodies] == ["enterprise.registered"] * 2 + ["listing.added"]


def test_a_withdrawal_while_a_delivery_waits_for_its_retry_withholds_it(
    client: TestClient,
    runtime: Runtime,
    authority: Publisher,
    bank: Publisher,
) -> None:
    """A delivery already failing (the receiver down) is withheld at its next attempt."""
    down = "http://127.0.0.1:9/hook"  # nothing listens on port 9
    push = subscribe(client, down, "fields", types=["listing.added"])
    assert publish(client, authority.message("enterprise.registered", make_registration()))
    assert publish(client, listing(authority, 3)).status_code == 201
    deliver(runtime)
    with runtime.db.reader() as session:
        assert session.scalars(select(Delivery.attempts)).all() == [1]  # waiting to be retried
    assert client.delete(RIGHT).status_code == 200
    client.post(f"/v1/subscriptions/{push}/replay", json={"from_index": 0})  # due again now
    deliver(runtime)
    with runtime.db.reader() as session:
        states = dict(
            session.execute(
                select(LogEntry.type, Delivery.status).join(
                    LogEntry, LogEntry.idx == Delivery.log_index
                )
            ).all()
        )
    assert states == {"listing.added": "withheld"}
