"""Push delivery under hostile or broken conditions: junk headers, bugs in one attempt, slow
receivers and lost leases, stuck queue heads, and rights that change under a connector view."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import email.utils
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import respx
from contract_factories import make_award, make_registration, make_revocation
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient
from gateway_factories import Publisher, allow_subscribe, bearer, publish, register_publisher
from loopback import RawServer, free_port, serving
from sqlalchemy import select

from connectors import CONNECTORS
from contracts.uscc import complete_uscc
from gateway.delivery import worker
from gateway.delivery.jobs import Job
from gateway.delivery.subscriptions import create_subscription
from gateway.delivery.worker import make_client, run_once
from gateway.models import Delivery, DeliveryAttempt
from gateway.registry import rights
from gateway.runtime import Runtime

A = complete_uscc("91350100MA000011")
B = complete_uscc("91350200MA000012")
MOCKED = "https://receiver.example/hook"


@dataclass
class Receiver:
    """A loopback endpoint that answers 204 and keeps what arrived; answers 500 while
    `failures[(enterprise, message type)]` > 0."""

    events: list[dict[str, Any]] = field(default_factory=list)
    failures: dict[tuple[str, str], int] = field(default_factory=dict)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            event = json.loads(await request.body())
            key = (event["subject"], event["type"])
            if self.failures.get(key, 0) > 0:
                self.failures[key] -= 1
                return Response(status_code=500)
            self.events.append(event)
            return Response(status_code=204)

        return app


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    rec = Receiver()
    with serving(rec.app()) as base:
        yield rec, base + "/hook"


def subscribe_bank(
    runtime: Runtime, url: str, *, schedule: list[float], types: list[str] | None = None
) -> str:
    types = types or ["grade.awarded"]
    register_publisher(runtime, "fj-cib", ["measure.applied"], roles=["bank"], subscribe=types)
    with runtime.db.transaction() as session:
        sub = create_subscription(
            session,
            agency_id="fj-cib",
            url=url,
            types=types,
            now=runtime.clock.now(),
            allowed_hosts=[httpx.URL(url).host],
            retry_schedule=schedule,
        )
        return sub.id


def award(client: TestClient, authority: Publisher, *codes: str) -> None:
    for code in codes:
        for token in (
            authority.message("enterprise.registered", make_registration(), subject=code),
            authority.message("grade.awarded", make_award(), subject=code),
        ):
            assert publish(client, token).status_code == 201


def deliveries(runtime: Runtime) -> dict[str, Delivery]:
    with runtime.db.reader() as session:
        return {d.uscc: d for d in session.scalars(select(Delivery))}


def deliveries_all(runtime: Runtime) -> list[Delivery]:
    with runtime.db.reader() as session:
        return list(session.scalars(select(Delivery).order_by(Delivery.log_index)))


def attempts_of(runtime: Runtime, delivery_id: int) -> list[DeliveryAttempt]:
    with runtime.db.reader() as session:
        query = select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == delivery_id)
        return list(session.scalars(query.order_by(DeliveryAttempt.id)))


# --- 1. a malformed Retry-After, or any bug in one attempt, is that attempt's failure ----------


def _http_date(at: dt.datetime) -> str:
    """An RFC 5322 date ending `-0000` ("no zone information"): Python parses it naive."""
    return email.utils.format_datetime(at.replace(tzinfo=None))


@pytest.mark.parametrize(
    "retry_after", [b"soon", b"", "²".encode("latin-1"), b"in 600", b"2026-11-01T08:10:00Z"]
)
def test_a_malformed_retry_after_is_ignored_and_the_round_is_recorded(
    client: TestClient, authority: Publisher, runtime: Runtime, retry_after: bytes
) -> None:
    runtime.settings.delivery.allowed_hosts.append("receiver.example")
    subscribe_bank(runtime, MOCKED, schedule=[0, 60, 600])
    award(client, authority, A, B)

    def answer(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["subject"] == A:
            return httpx.Response(429, headers=[(b"retry-after", retry_after)])
        return httpx.Response(204)

    with respx.mock() as mock, make_client(runtime) as http:
        route = mock.post(MOCKED).mock(side_effect=answer)
        assert run_once(runtime, http) == 2
    assert route.call_count == 2
    stored = deliveries(runtime)
    assert stored[B].status == "delivered"
    assert (stored[A].status, stored[A].attempts, stored[A].claimed_until) == ("pending", 1, None)
    assert [a.error_class for a in attempts_of(runtime, stored[A].id)] == ["http_429"]
    delay = (stored[A].next_attempt_at - runtime.clock.now()).total_seconds()
    assert 48 <= delay <= 72  # the schedule's 60 s, with its ±20 % jitter


def test_a_retry_after_date_without_a_zone_is_read_as_utc(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    runtime.settings.delivery.allowed_hosts.append("receiver.example")
    subscribe_bank(runtime, MOCKED, schedule=[0, 5, 600])
    award(client, authority, A)
    later = _http_date(runtime.clock.now() + dt.timedelta(seconds=900))
    assert later.endswith("-0000")
    with respx.mock() as mock, make_client(runtime) as http:
        mock.post(MOCKED).return_value = httpx.Response(503, headers={"retry-after": later})
        assert run_once(runtime, http) == 1
    delivery = deliveries(runtime)[A]
    assert delivery.status == "pending"
    assert (delivery.next_attempt_at - runtime.clock.now()).total_seconds() == pytest.approx(900)


def test_an_unexpected_error_in_one_attempt_is_recorded_and_the_round_goes_on(
    client: TestClient,
    authority: Publisher,
    runtime: Runtime,
    receiver: tuple[Receiver, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rec, url = receiver
    subscribe_bank(runtime, url, schedule=[0, 60, 600])
    award(client, authority, A, B)
    real = worker.signature_header

    def broken_for_a(webhook_id: str, timestamp: int, body: bytes, **kw: Any) -> str:
        if json.loads(body)["subject"] == A:
            raise RuntimeError("a bug that only this message reaches")
        return real(webhook_id, timestamp, body, **kw)

    monkeypatch.setattr(worker, "signature_header", broken_for_a)
    with make_client(runtime) as http:
        assert run_once(runtime, http) == 2
    assert [e["subject"] for e in rec.events] == [B]
    stored = deliveries(runtime)
    assert stored[B].status == "delivered"
    assert (stored[A].status, stored[A].attempts, stored[A].claimed_until) == ("pending", 1, None)
    (failed,) = attempts_of(runtime, stored[A].id)
    assert failed.error_class == "internal_error"
    assert failed.response_excerpt == "RuntimeError: a bug that only this message reaches"


# --- 4. Retry-After lengthens the schedule within its bound, never shortens it -----------------


def test_a_short_retry_after_does_not_shorten_a_long_scheduled_wait(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    runtime.settings.delivery.allowed_hosts.append("receiver.example")
    assert runtime.settings.delivery.max_retry_after_seconds == 3600
    subscribe_bank(runtime, MOCKED, schedule=[0, 7200, 7200])
    award(client, authority, A)
    with respx.mock() as mock, make_client(runtime) as http:
        mock.post(MOCKED).return_value = httpx.Response(503, headers={"retry-after": "1"})
        assert run_once(runtime, http) == 1
    delay = (deliveries(runtime)[A].next_attempt_at - runtime.clock.now()).total_seconds()
    assert 5760 <= delay <= 8640  # the schedule's 2 h (±20 %), not the 1 h bound on Retry-After


# --- 3. a dead or parked delivery keeps its place in its enterprise's queue ---------------------


def drain(runtime: Runtime, rounds: int = 4, advance: float = 10) -> None:
    with make_client(runtime) as http:
        for _ in range(rounds):
            run_once(runtime, http)
            runtime.clock.advance(seconds=advance)  # type: ignore[attr-defined]


def award_and_revoke(client: TestClient, authority: Publisher, code: str) -> None:
    award(client, authority, code)
    token = authority.message("grade.revoked", make_revocation(), subject=code)
    assert publish(client, token).status_code == 201


def sent(rec: Receiver) -> list[tuple[str, str]]:
    return [(e["subject"], e["type"]) for e in rec.events]


GRADES = ["grade.awarded", "grade.revoked"]


def test_a_dead_delivery_blocks_its_enterprise_until_replayed_while_others_flow(
    client: TestClient, authority: Publisher, runtime: Runtime, receiver: tuple[Receiver, str]
) -> None:
    rec, url = receiver
    sub = subscribe_bank(runtime, url, schedule=[0, 5], types=GRADES)
    rec.failures[(A, "grade.awarded")] = 2  # dies after two attempts
    award_and_revoke(client, authority, A)
    award(client, authority, B)
    drain(runtime)
    assert sent(rec) == [(B, "grade.awarded")]  # A's revocation waits behind its dead award
    stored = {(d.uscc, d.log_index): d.status for d in deliveries_all(runtime)}
    assert sorted(stored.values()) == ["dead", "delivered", "pending"]
    dead = client.get(f"/v1/subscriptions/{sub}/dead-letters").json()["items"]
    index = dead[0]["log_index"]
    replay = {"from_index": index, "to_index": index}
    assert client.post(f"/v1/subscriptions/{sub}/replay", json=replay).json() == {"replayed": 1}
    drain(runtime)
    assert sent(rec) == [(B, "grade.awarded"), (A, "grade.awarded"), (A, "grade.revoked")]


def test_skipping_a_dead_delivery_lets_its_enterprise_go_on_and_is_recorded(
    client: TestClient, authority: Publisher, runtime: Runtime, receiver: tuple[Receiver, str]
) -> None:
    rec, url = receiver
    sub = subscribe_bank(runtime, url, schedule=[0], types=GRADES)
    rec.failures[(A, "grade.awarded")] = 1
    award_and_revoke(client, authority, A)
    drain(runtime)
    assert sent(rec) == []
    (dead,) = client.get(f"/v1/subscriptions/{sub}/dead-letters").json()["items"]
    (pending,) = [d for d in deliveries_all(runtime) if d.status == "pending"]
    refused = client.post(
        f"/v1/subscriptions/{sub}/skip", json={"log_indexes": [pending.log_index]}
    )
    assert (refused.status_code, refused.json()["code"]) == (409, "not_stuck")
    unknown = client.post(f"/v1/subscriptions/{sub}/skip", json={"log_indexes": [10_000]})
    assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_delivery")
    skip = {"log_indexes": [dead["log_index"]]}
    assert client.post(f"/v1/subscriptions/{sub}/skip", json=skip).json() == {"skipped": 1}
    drain(runtime)
    assert sent(rec) == [(A, "grade.revoked")]
    assert client.get(f"/v1/subscriptions/{sub}/dead-letters").json()["items"] == []
    assert [a.error_class for a in attempts_of(runtime, dead["delivery_id"])] == [
        "http_500",
        "skipped",
    ]
    # the pull feed reads the log, not the push state: both messages, in log order
    feed = client.get(f"/v1/subscriptions/{sub}/feed?after=-1").json()
    assert [i["type"] for i in feed["items"]] == GRADES


def test_a_parked_delivery_blocks_its_enterprise_until_skipped(
    client: TestClient,
    authority: Publisher,
    runtime: Runtime,
    receiver: tuple[Receiver, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rec, url = receiver
    register_publisher(runtime, "fj-cib", [], roles=["bank"], subscribe=GRADES)
    body = {"agency_id": "fj-cib", "url": url, "types": GRADES, "view": "bank_credit"}
    created = client.post("/v1/subscriptions", json=body)
    assert created.status_code == 201, created.text
    sub = created.json()["id"]
    real = CONNECTORS["bank_credit"]

    def leaky(ctx: Any) -> dict[str, Any]:  # a bug that would leak a field outside the view
        document = real.render(ctx)
        if ctx.decision.type == "grade.awarded":
            document["certificate_no"] = ctx.decision.data["certificate_no"]
        return document

    monkeypatch.setitem(CONNECTORS, "bank_credit", dataclasses.replace(real, render=leaky))
    award_and_revoke(client, authority, A)
    drain(runtime)
    assert sent(rec) == []  # the revocation of an award the bank never had waits
    (parked,) = [d for d in deliveries_all(runtime) if d.status == "parked"]
    skip = {"log_indexes": [parked.log_index]}
    assert client.post(f"/v1/subscriptions/{sub}/skip", json=skip).json() == {"skipped": 1}
    drain(runtime)
    assert sent(rec) == [(A, "grade.revoked")]


# --- 5. a connector view is made only under a right to the whole message -----------------------

NOTICE = {"type", "subject", "issuer", "issued_at"}


def test_a_connector_view_needs_the_whole_contract_and_follows_a_narrowed_or_revoked_right(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    register_publisher(runtime, "fj-cib", [], roles=["bank"])
    allow_subscribe(runtime, "fj-cib", ["grade.revoked"], fields=["reason_code"])
    body = {"agency_id": "fj-cib", "url": None, "types": ["grade.revoked"], "view": "bank_credit"}
    refused = client.post("/v1/subscriptions", json=body)
    assert (refused.status_code, refused.json()["code"]) == (403, "view_not_permitted")
    assert "grade.revoked" in refused.json()["detail"]

    allow_subscribe(runtime, "fj-cib", ["grade.revoked"])  # the whole contract
    created = client.post("/v1/subscriptions", json=body)
    assert created.status_code == 201, created.text
    feed_url = f"/v1/subscriptions/{created.json()['id']}/feed?after=-1"
    award_and_revoke(client, authority, A)

    def item() -> dict[str, Any]:
        page = client.get(feed_url, headers=bearer(runtime, "fj-cib", "subscribe")).json()
        (only,) = page["items"]
        assert "jws" not in only
        return dict(only)

    whole = item()
    assert whole["data"]["enterprise_name"]
    assert whole["dataschema"]
    allow_subscribe(runtime, "fj-cib", ["grade.revoked"], fields=["reason_code"])  # narrowed
    narrowed = item()
    assert set(narrowed["data"]) == NOTICE
    assert "dataschema" not in narrowed
    with runtime.db.transaction() as session:
        rights.revoke(
            session,
            runtime.signer,
            agency_id="fj-cib",
            action="subscribe",
            contract="grade.revoked",
            now=runtime.clock.now(),
        )
    page = client.get(feed_url, headers=bearer(runtime, "fj-cib", "subscribe")).json()
    assert page["items"] == []  # withdrawn: not even a notice (issue 20, finding 6)


# --- 2. an attempt ends by its deadline, and only the lease holder records a result -------------


class Dripping(RawServer):
    """A raw HTTP server on loopback whose first answer comes one byte at a time, in its
    headers or in its body, each byte well within the read timeout: only an overall deadline
    ends that attempt. Every later request gets a 204 at once."""

    def __init__(self, part: str) -> None:
        self.part, self.requests = part, 0
        super().__init__()

    def answer(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            self.requests += 1
            if self.requests > 1:
                conn.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                return
            if self.part == "headers":
                head, drip = b"HTTP/1.1 500 Internal Server Error\r\n", b"x-slow: " + b"x" * 40
                tail = b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            else:
                head, drip, tail = (
                    b"HTTP/1.1 500 Oops\r\ncontent-length: 40\r\n\r\n",
                    b"x" * 40,
                    b"",
                )
            conn.sendall(head)
            for byte in drip:  # 4 s in all, against a deadline of 0.3 s
                if self.stopped.wait(0.1):
                    return
                conn.sendall(bytes([byte]))
            conn.sendall(tail)


@pytest.fixture(params=["headers", "body"])
def dripping(request: pytest.FixtureRequest) -> Iterator[Dripping]:
    server = Dripping(request.param)
    try:
        yield server
    finally:
        server.close()


def test_a_receiver_dripping_its_answer_is_cut_off_at_the_attempts_deadline(
    client: TestClient, authority: Publisher, runtime: Runtime, dripping: Dripping
) -> None:
    runtime.settings.delivery.timeout_seconds = 0.3  # each read: every byte comes within it
    subscribe_bank(runtime, dripping.url, schedule=[0, 60])
    award(client, authority, A)
    with make_client(runtime) as http:
        assert run_once(runtime, http) == 1
    delivery = deliveries(runtime)[A]
    assert (delivery.status, delivery.attempts, delivery.claimed_until) == ("pending", 1, None)
    assert [a.error_class for a in attempts_of(runtime, delivery.id)] == ["timeout"]


def test_a_round_hands_back_unattempted_what_it_cannot_start_within_half_the_lease(
    client: TestClient, authority: Publisher, runtime: Runtime, dripping: Dripping
) -> None:
    # The round is over 1 s after its claim: A's attempt (its receiver drips for 4 s) is cut
    # off then, and B's can no longer start. With 0.4 s, a loaded machine once took that long
    # to reach A's attempt after the claim, and handed both back.
    runtime.settings.delivery.timeout_seconds = 1.0
    runtime.settings.delivery.lease_seconds = 2.0
    subscribe_bank(runtime, dripping.url, schedule=[0, 60])
    award(client, authority, A, B)
    with make_client(runtime) as http:
        assert run_once(runtime, http) == 1  # A's attempt used the round up; B was not tried
        stored = deliveries(runtime)
        assert [a.error_class for a in attempts_of(runtime, stored[A].id)] == ["timeout"]
        assert (stored[B].status, stored[B].attempts, stored[B].claimed_until) == (
            "pending",
            0,
            None,
        )
        assert attempts_of(runtime, stored[B].id) == []
        assert run_once(runtime, http) == 1  # B, in the next round
    assert deliveries(runtime)[B].status == "delivered"


def test_a_result_recorded_after_the_lease_passed_to_another_worker_is_dropped(
    client: TestClient, authority: Publisher, runtime: Runtime, receiver: tuple[Receiver, str]
) -> None:
    rec, url = receiver
    subscribe_bank(runtime, url, schedule=[0, 5, 5], types=GRADES)
    rec.failures[(A, "grade.awarded")] = 1
    award_and_revoke(client, authority, A)
    with make_client(runtime) as http:
        slow = worker.claim_and_post(runtime, http)  # worker 1: the award fails (500) …
        assert [r.error_class for _, r in slow] == ["http_500"]
        runtime.clock.advance(seconds=runtime.settings.delivery.lease_seconds + 1)  # type: ignore[attr-defined]
        run_once(runtime, http)  # … its lease runs out, worker 2 delivers the award
        run_once(runtime, http)  # and then the revocation
        assert worker.record_all(runtime, slow, runtime.clock.now()) == []  # worker 1, late
        drain(runtime, advance=10)
    assert sent(rec) == [(A, "grade.awarded"), (A, "grade.revoked")]
    stored = deliveries_all(runtime)
    assert [(d.status, d.attempts) for d in stored] == [("delivered", 0), ("delivered", 0)]
    assert [a.status_code for a in attempts_of(runtime, stored[0].id)] == [204]


def test_a_host_renamed_to_an_internal_address_after_the_check_is_never_reached(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name answers a public address when the endpoint is checked and a
    loopback one a moment later. The worker's connections go to an address vetted as they
    are opened, so the internal service behind the second answer is never hit."""
    hits: list[str | None] = []
    internal = FastAPI()

    @internal.post("/internal")
    async def note(request: Request) -> Response:
        hits.append(request.headers.get("host"))
        return Response(status_code=204)

    real = socket.getaddrinfo
    answers = iter(["93.184.216.34"])  # then 127.0.0.1 for every later lookup

    def rebinding(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.example":
            return real(next(answers, "127.0.0.1"), *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    runtime.settings.delivery.allowed_hosts.clear()  # production: no allow-list
    port = free_port()
    subscription = {
        "url": f"http://rebind.example:{port}/internal",
        "signing": ["v1a"],
        "hmac_secrets": [],
    }
    job = Job(1, 0, subscription, "msg_rebind", b"{}", "m", "00")
    with serving(internal, port), make_client(runtime) as http:
        result = worker.attempt(runtime, http, job)
    assert (result.status_code, result.error_class) == (None, "unsafe_endpoint")
    assert "127.0.0.1" in str(result.excerpt)
    assert hits == []


@pytest.mark.parametrize("allow_listed", [False, True])
def test_a_name_whose_lookup_hangs_ends_the_attempt_at_its_deadline(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, allow_listed: bool
) -> None:
    """The lookup is part of the attempt: a dead name server (getaddrinfo retrying for tens of
    seconds) used to hold the attempt, and its claim, past the deadline. Checked before the
    attempt when the name is vetted, and when connecting when it is allow-listed."""
    released = threading.Event()
    real = socket.getaddrinfo

    def hanging(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "slow.example":
            released.wait(30)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    runtime.settings.delivery.allowed_hosts[:] = ["slow.example"] if allow_listed else []
    subscription = {"url": "https://slow.example/hook", "signing": ["v1a"], "hmac_secrets": []}
    job = Job(1, 0, subscription, "msg_slow", b"{}", "m", "00")
    try:
        with make_client(runtime) as http:
            began = time.monotonic()
            result = worker.attempt(runtime, http, job, deadline=began + 0.3)
            spent = time.monotonic() - began
    finally:
        released.set()
    assert (result.status_code, result.error_class) == (None, "timeout")
    assert spent < 2
