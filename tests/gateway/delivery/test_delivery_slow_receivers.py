"""A receiver that answers slowly holds only its own deliveries. The worker recorded a round
when its slowest attempt ended, and a round takes deliveries of every subscription, so two
receivers answering a byte a second held every other agency's deliveries (bench/
hostile_receivers.py: 54 of 960 delivered in 60 s against 720 of 720 without them). The
long-running worker now records each result as its attempt ends."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from contract_factories import make_award, make_registration
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient
from gateway_factories import Publisher, publish, register_publisher
from loopback import serving
from sqlalchemy import select

from contracts.uscc import complete_uscc
from gateway.delivery.subscriptions import create_subscription
from gateway.delivery.worker import run_until
from gateway.models import Delivery
from gateway.runtime import Runtime

ENTERPRISES = 6


def receiver(held: threading.Event | None, seen: list[str]) -> FastAPI:
    app = FastAPI()

    @app.post("/hook")
    def hook(request: Request) -> Response:  # a thread of its own per request
        seen.append(request.headers["webhook-id"])
        if held is not None:
            held.wait(60)  # answers only once the test lets it
        return Response(status_code=204)

    return app


def until(condition: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


@pytest.fixture
def receivers() -> Iterator[tuple[str, str, threading.Event, list[str], list[str]]]:
    held = threading.Event()
    slow_seen: list[str] = []
    fast_seen: list[str] = []
    try:
        with serving(receiver(held, slow_seen)) as slow, serving(receiver(None, fast_seen)) as fast:
            yield slow, fast, held, slow_seen, fast_seen
    finally:
        held.set()


def statuses(runtime: Runtime) -> dict[str, list[str]]:
    with runtime.db.reader() as session:
        rows = session.execute(
            select(Delivery.subscription_id, Delivery.status).order_by(Delivery.log_index)
        ).all()
    found: dict[str, list[str]] = {}
    for subscription, status in rows:
        found.setdefault(subscription, []).append(status)
    return found


def test_a_held_receiver_does_not_hold_another_agencys_deliveries(
    client: TestClient,
    authority: Publisher,
    runtime: Runtime,
    receivers: tuple[str, str, threading.Event, list[str], list[str]],
) -> None:
    slow_url, fast_url, held, slow_seen, fast_seen = receivers
    config = runtime.settings.delivery
    config.timeout_seconds = 120  # the held attempt outlasts the test unless it is let go
    config.lease_seconds = 600
    config.idle_sleep_seconds = 0.02
    subscriptions = {}
    for agency, role, url in (("fj-picc", "insurer", slow_url), ("fj-cib", "bank", fast_url)):
        register_publisher(runtime, agency, [], roles=[role], subscribe=["grade.awarded"])
        with runtime.db.transaction() as session:
            created = create_subscription(
                session,
                agency_id=agency,
                url=f"{url}/hook",
                types=["grade.awarded"],
                now=runtime.clock.now(),
                allowed_hosts=["127.0.0.1"],
            )
            subscriptions[agency] = str(created.id)
    for n in range(ENTERPRISES):
        code = complete_uscc(f"91350100MA0001{n:02d}")
        for token in (
            authority.message("enterprise.registered", make_registration(), subject=code),
            authority.message("grade.awarded", make_award(), subject=code),
        ):
            assert publish(client, token).status_code == 201

    stop = threading.Event()
    worker = threading.Thread(target=run_until, args=(runtime, stop))
    worker.start()
    try:
        until(lambda: len(slow_seen) >= 1, "the held receiver was never called")
        until(
            lambda: statuses(runtime).get(subscriptions["fj-cib"]) == ["delivered"] * ENTERPRISES,
            "the bank's deliveries waited for the insurer's held receiver",
        )
        assert len(fast_seen) == ENTERPRISES
        assert "delivered" not in statuses(runtime)[subscriptions["fj-picc"]]  # still held
        held.set()
        until(
            lambda: statuses(runtime)[subscriptions["fj-picc"]] == ["delivered"] * ENTERPRISES,
            "the insurer's deliveries did not follow once its receiver answered",
        )
    finally:
        held.set()
        stop.set()
        worker.join(30)
    assert not worker.is_alive()
