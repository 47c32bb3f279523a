"""Push delivery and the pull feed (protocol.md §4-5) against real HTTP servers on loopback."""

from __future__ import annotations

import base64
import datetime as dt
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from contract_factories import make_award, make_registration, make_revocation
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient
from gateway_factories import Publisher, bearer, publish, register_publisher
from loopback import serving
from sqlalchemy import func, select
from standardwebhooks import Webhook

from contracts.registry import MESSAGE_TYPES
from contracts.uscc import complete_uscc
from gateway.clock import FixedClock
from gateway.delivery import subscriptions
from gateway.delivery.worker import make_client, run_once
from gateway.models import Delivery, DeliveryAttempt, Subscription
from gateway.runtime import Runtime
from keys.jws import sign_compact

A = complete_uscc("91350100MA000011")
B = complete_uscc("91350200MA000012")


@dataclass
class Receiver:
    """An agency's endpoint: records what arrives; fails while `failures[uscc]` > 0."""

    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    status: int = 500
    signer: Publisher | None = None  # answers 200 with a signed receipt when set
    tamper: bool = False

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            body = await request.body()
            subject = json.loads(body)["subject"]
            if self.failures.get(subject, 0) > 0:
                self.failures[subject] -= 1
                return Response(status_code=self.status)
            self.received.append((dict(request.headers), body))
            if self.signer is None:
                return Response(status_code=204)
            event = json.loads(body)
            claims = {"message_id": event["id"], "leaf_hash": event["leafhash"]}
            if self.tamper:
                claims["leaf_hash"] = "00" * 32
            payload = json.dumps(claims).encode()
            token = sign_compact(payload, self.signer.key, typ="gateway-consumer-receipt+jws")
            return Response(token, media_type="application/jose")

        return app

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    rec = Receiver()
    with serving(rec.app()) as base:
        yield rec, base + "/hook"


@pytest.fixture
def insurer(runtime: Runtime) -> Publisher:
    return register_publisher(
        runtime, "fj-picc", ["measure.applied"], roles=["insurer"], subscribe=MESSAGE_TYPES
    )


def subscribe(client: TestClient, url: str | None, **extra: Any) -> dict[str, Any]:
    body = {"agency_id": "fj-picc", "url": url, "types": ["grade.awarded", "grade.revoked"]}
    response = client.post("/v1/subscriptions", json=body | extra)
    assert response.status_code == 201, response.text
    return response.json()


def drain(runtime: Runtime, rounds: int = 20, advance: float = 0) -> None:
    with make_client(runtime) as http:
        for _ in range(rounds):
            if advance and isinstance(runtime.clock, FixedClock):
                runtime.clock.advance(seconds=advance)
            run_once(runtime, http)


def register_and_award(authority: Publisher, client: TestClient, code: str) -> None:
    for token in (
        authority.message("enterprise.registered", make_registration(), subject=code),
        authority.message("grade.awarded", make_award(), subject=code),
    ):
        assert publish(client, token).status_code == 201


def test_signed_cloudevent_verifies_with_standardwebhooks_and_by_hand(
    client: TestClient, authority: Publisher, insurer: Publisher, runtime: Runtime, receiver: Any
) -> None:
    rec, url = receiver
    sub = subscribe(client, url, signing=["v1a", "v1"])
    register_and_award(authority, client, A)
    drain(runtime, rounds=2)
    assert len(rec.received) == 1  # registration is not subscribed to
    headers, body = rec.received[0]

    Webhook(sub["hmac_secret"]).verify(body, headers)  # v1, independent library

    # v1a written from the Standard Webhooks spec: Ed25519 over "{id}.{timestamp}.{body}".
    public = base64.b64decode(sub["v1a_public_key"].removeprefix("whpk_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    v1a = [p.split(",", 1)[1] for p in headers["webhook-signature"].split() if p.startswith("v1a,")]
    Ed25519PublicKey.from_public_bytes(public).verify(base64.b64decode(v1a[0]), signed)

    event = json.loads(body)
    assert event["specversion"] == "1.0"
    assert event["type"] == "grade.awarded"
    assert event["subject"] == A
    issuer = bearer(runtime, "fj-yjt", "ledger.read")  # its own message: whole (finding 8)
    stored = client.get(f"/v1/messages/{event['id']}", headers=issuer).json()
    assert event["sequence"] == f"{stored['index']:020d}"
    assert event["leafhash"] == stored["leaf_hash"]
    assert event["jws"] == stored["jws"]  # full view: the publisher's own signature travels


def test_order_per_enterprise_with_retries_while_others_flow(
    client: TestClient, authority: Publisher, insurer: Publisher, runtime: Runtime, receiver: Any
) -> None:
    rec, url = receiver
    subscribe(client, url, retry_schedule=[0, 10, 10, 10, 10])
    rec.failures[A] = 2
    register_and_award(authority, client, A)
    assert (
        publish(
            client, authority.message("grade.revoked", make_revocation(), subject=A)
        ).status_code
        == 201
    )
    register_and_award(authority, client, B)
    drain(runtime, rounds=1)
    assert [(e["subject"], e["type"]) for e in rec.events()] == [(B, "grade.awarded")]
    drain(runtime, rounds=6, advance=15)
    assert [(e["subject"], e["type"]) for e in rec.events()] == [
        (B, "grade.awarded"),
        (A, "grade.awarded"),
        (A, "grade.revoked"),
    ]
    ids = [h["webhook-id"] for h, _ in rec.received]
    assert len(set(ids)) == 3


def test_the_24_hour_health_counts_every_attempt_the_workers_made(
    client: TestClient, authority: Publisher, insurer: Publisher, runtime: Runtime, receiver: Any
) -> None:
    """The overviews read hourly rows the workers keep; they must say what the attempts
    themselves say: attempts, successes, mean latency, the last error."""
    rec, url = receiver
    sub = subscribe(client, url, retry_schedule=[0, 10, 10, 10, 10])
    rec.failures[A], rec.status = 2, 503
    register_and_award(authority, client, A)
    register_and_award(authority, client, B)
    drain(runtime, rounds=6, advance=15)
    assert len(rec.received) == 2
    with runtime.db.reader() as session:
        made = session.execute(
            select(DeliveryAttempt.status_code, DeliveryAttempt.latency_ms)
            .join(Delivery, Delivery.id == DeliveryAttempt.delivery_id)
            .where(Delivery.subscription_id == sub["id"])
        ).all()
    health = client.get("/v1/deliveries/health").json()["subscriptions"]
    (mine,) = [h for h in health if h["subscription_id"] == sub["id"]]
    assert mine["attempts_24h"] == len(made) == 4  # two 503s, then A and B delivered
    assert mine["succeeded_24h"] == 2
    latency = sum(float(ms) for _, ms in made) / len(made)
    assert mine["mean_latency_ms_24h"] == pytest.approx(latency, abs=0.1)
    assert mine["last_error"].startswith("http_503")
    assert isinstance(runtime.clock, FixedClock)
    runtime.clock.advance(hours=26)  # out of the window
    later = client.get("/v1/deliveries/health").json()["subscriptions"]
    (mine,) = [h for h in later if h["subscription_id"] == sub["id"]]
    assert (mine["attempts_24h"], mine["last_error"]) == (0, None)


def test_410_disables_and_reenabling_catches_up_in_order(
    client: TestClient, authority: Publisher, insurer: Publisher, runtime: Runtime, receiver: Any
) -> None:
    rec, url = receiver
    sub = subscribe(client, url)
    rec.failures[A], rec.status = 1, 410
    register_and_award(authority, client, A)
    drain(runtime, rounds=2)
    listed = client.get("/v1/subscriptions").json()["items"][0]
    assert listed["status"] == "disabled"
    assert (
        publish(
            client, authority.message("grade.revoked", make_revocation(), subject=A)
        ).status_code
        == 201
    )
    drain(runtime, rounds=2)
    assert rec.received == []  # disabled endpoints keep queueing but receive nothing
    assert (
        client.patch(f"/v1/subscriptions/{sub['id']}", json={"status": "active"}).status_code == 200
    )
    drain(runtime, rounds=3)
    assert [e["type"] for e in rec.events()] == ["grade.awarded", "grade.revoked"]


def test_dead_letter_and_replay_keep_the_webhook_id(
    client: TestClient, authority: Publisher, insurer: Publisher, runtime: Runtime, receiver: Any
) -> None:
    rec, url = receiver
    sub = subscribe(client, url, retry_schedule=[0, 1])
    rec.failures[A] = 2
    register_and_award(authority, client, A)
    drain(runtime, rounds=4, advance=5)
    dead = client.get(f"/v1/subscriptions/{sub['id']}/dead-letters").json()["items"]
    assert len(dead) == 1
    assert dead[0]["attempts"] == 2
    replayed = client.post(
        f"/v1/subscriptions/{sub['id']}/replay", json={"from_index": dead[0]["log_index"]}
    ).json()
    assert replayed == {"replayed": 1}
    drain(runtime, rounds=2)
    assert len(rec.received) == 1
    assert rec.received[0][0]["webhook-id"] == f"msg_{dead[0]['message_id']}.{sub['id']}"


def test_pull_feed_with_cursor_and_acknowledgement(
    client: TestClient, authority: Publisher, insurer: Publisher, runtime: Runtime
) -> None:
    sub = subscribe(client, None, view="notice")
    for n in range(5):
        register_and_award(authority, client, complete_uscc(f"91350300MA{n:06d}"))
    page = client.get(f"/v1/subscriptions/{sub['id']}/feed?limit=3").json()
    assert len(page["items"]) == 3
    assert page["has_more"] is True
    assert "jws" not in page["items"][0]  # notice view: no content, no publisher JWS
    assert set(page["items"][0]["data"]) == {"type", "subject", "issuer", "issued_at"}
    rest = client.get(f"/v1/subscriptions/{sub['id']}/feed?after={page['next']}").json()
    assert len(rest["items"]) == 2
    assert rest["has_more"] is False
    sequences = [i["sequence"] for i in page["items"] + rest["items"]]
    assert sequences == sorted(sequences, key=int) == sorted(sequences)  # sorts as text too
    assert all(len(s) == 20 for s in sequences)
    client.post(f"/v1/subscriptions/{sub['id']}/ack", json={"index": page["next"]})
    assert len(client.get(f"/v1/subscriptions/{sub['id']}/feed").json()["items"]) == 2


def test_refused_messages_queue_nothing(
    client: TestClient, authority: Publisher, insurer: Publisher, runtime: Runtime
) -> None:
    subscribe(client, None)
    register_and_award(authority, client, A)
    refused = authority.message("grade.awarded", make_award(), subject=A)  # already active
    assert publish(client, refused).status_code == 422
    with runtime.db.reader() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest",
        "http://10.0.0.8/hook",
        "http://localhost:9/hook",
        "ftp://x/",
    ],
)
def test_unsafe_endpoints_are_refused(client: TestClient, insurer: Publisher, url: str) -> None:
    body = {"agency_id": "fj-picc", "url": url, "types": ["grade.revoked"]}
    response = client.post("/v1/subscriptions", json=body)
    assert response.status_code == 400
    assert response.json()["code"] == "unsafe_endpoint"


def test_an_endpoint_whose_name_does_not_resolve_in_time_is_refused_for_now(
    client: TestClient,
    insurer: Publisher,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    released = threading.Event()
    real = socket.getaddrinfo

    def hanging(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "slow.example":
            released.wait(30)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    monkeypatch.setattr(subscriptions, "LOOKUP_SECONDS", 0.2)
    body = {"agency_id": "fj-picc", "url": "https://slow.example/hook", "types": ["grade.revoked"]}
    try:
        response = client.post("/v1/subscriptions", json=body)
    finally:
        released.set()
    assert response.status_code == 503
    assert response.json()["code"] == "endpoint_lookup_timeout"
    assert "slow.example did not resolve within 0.2 s" in response.json()["detail"]
    with runtime.db.reader() as session:
        assert session.scalar(select(func.count()).select_from(Subscription)) == 0


def test_ten_hour_outage_then_everything_arrives_in_order(
    client: TestClient, authority: Publisher, insurer: Publisher, runtime: Runtime, receiver: Any
) -> None:
    """Default ladder (0 s, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, …): nothing is dead-lettered."""
    rec, url = receiver
    subscribe(client, url)
    codes = [complete_uscc(f"91350600MA{n:06d}") for n in range(3)]
    for code in codes:
        rec.failures[code] = 10**6  # down for everyone until we say otherwise
        register_and_award(authority, client, code)
        revoke = authority.message("grade.revoked", make_revocation(), subject=code)
        assert publish(client, revoke).status_code == 201
    clock = runtime.clock
    assert isinstance(clock, FixedClock)
    outage_ends = clock.now() + dt.timedelta(hours=10)
    with make_client(runtime) as http:
        while clock.now() < outage_ends:
            run_once(runtime, http)
            clock.advance(minutes=10)
        assert rec.received == []
        rec.failures.clear()
        for _ in range(24 * 6):  # another day at most, in 10-minute steps
            run_once(runtime, http)
            clock.advance(minutes=10)
    for code in codes:
        mine = [e["type"] for e in rec.events() if e["subject"] == code]
        assert mine == ["grade.awarded", "grade.revoked"]
    with runtime.db.reader() as session:
        states = set(session.scalars(select(Delivery.status)))
    assert states == {"delivered"}


@pytest.mark.parametrize("tamper", [False, True])
def test_consumer_receipts_are_verified_and_kept(
    client: TestClient,
    authority: Publisher,
    insurer: Publisher,
    runtime: Runtime,
    receiver: Any,
    tamper: bool,
) -> None:
    rec, url = receiver
    rec.signer, rec.tamper = insurer, tamper
    subscribe(client, url)
    register_and_award(authority, client, A)
    drain(runtime, rounds=2)
    message_id = rec.events()[0]["id"]
    receipts = client.get(f"/v1/messages/{message_id}/consumer-receipts").json()["receipts"]
    if tamper:
        assert receipts == []  # delivered, but a receipt naming another leaf is not proof
    else:
        assert [(r["agency_id"], r["kid"]) for r in receipts] == [("fj-picc", insurer.key.kid)]


def test_secret_rotation_sends_both_signatures_during_the_overlap(
    client: TestClient, authority: Publisher, insurer: Publisher, runtime: Runtime, receiver: Any
) -> None:
    rec, url = receiver
    sub = subscribe(client, url, signing=["v1"])
    old_secret = sub["hmac_secret"]
    rotated = client.post(f"/v1/subscriptions/{sub['id']}/rotate-secret", json={"overlap_hours": 1})
    new_secret = rotated.json()["hmac_secret"]
    assert new_secret != old_secret
    register_and_award(authority, client, A)
    drain(runtime, rounds=2)
    headers, body = rec.received[0]
    assert len(headers["webhook-signature"].split()) == 2
    Webhook(old_secret).verify(body, headers)  # receivers not yet switched still verify
    Webhook(new_secret).verify(body, headers)
    assert isinstance(runtime.clock, FixedClock)
    runtime.clock.advance(hours=2)
    assert (
        publish(
            client, authority.message("grade.revoked", make_revocation(), subject=A)
        ).status_code
        == 201
    )
    drain(runtime, rounds=2)
    headers, body = rec.received[1]
    assert len(headers["webhook-signature"].split()) == 1
    Webhook(new_secret).verify(body, headers)


def test_rate_limit_is_a_token_bucket_shared_through_the_database(
    client: TestClient, authority: Publisher, insurer: Publisher, runtime: Runtime, receiver: Any
) -> None:
    rec, url = receiver
    subscribe(client, url, rate_limit=2)
    for n in range(8):
        register_and_award(authority, client, complete_uscc(f"91350900MA{n:06d}"))
    drain(runtime, rounds=3)  # the clock stands still: one second's burst only
    assert len(rec.received) == 2
    drain(runtime, rounds=1, advance=1)  # one more second: two more tokens
    assert len(rec.received) == 4
    drain(runtime, rounds=3)
    assert len(rec.received) == 4


def test_subseq_counts_each_subscriptions_deliveries_without_gaps(
    client: TestClient, authority: Publisher, insurer: Publisher, runtime: Runtime, receiver: Any
) -> None:
    rec, url = receiver
    sub = subscribe(client, url, types=["grade.revoked"])
    everything = subscribe(client, None)
    for code in (A, B):
        register_and_award(authority, client, code)
        assert (
            publish(
                client, authority.message("grade.revoked", make_revocation(), subject=code)
            ).status_code
            == 201
        )
    drain(runtime, rounds=3)
    assert sorted(e["subseq"] for e in rec.events()) == [1, 2]
    logged = sorted(int(e["sequence"]) for e in rec.events())
    assert logged[1] - logged[0] > 1  # the log index skips what this subscription filtered out
    items = client.get(f"/v1/subscriptions/{everything['id']}/feed").json()["items"]
    assert [i["subseq"] for i in items] == [1, 2, 3, 4]
    assert sub["id"] != everything["id"]


def test_replay_by_time_window(
    client: TestClient, authority: Publisher, insurer: Publisher, runtime: Runtime, receiver: Any
) -> None:
    rec, url = receiver
    sub = subscribe(client, url)
    clock = runtime.clock
    assert isinstance(clock, FixedClock)
    register_and_award(authority, client, A)
    clock.advance(hours=1)
    register_and_award(authority, client, B)
    drain(runtime, rounds=2)
    assert len(rec.received) == 2
    since = (clock.now() - dt.timedelta(minutes=30)).isoformat()
    replayed = client.post(f"/v1/subscriptions/{sub['id']}/replay", json={"since": since})
    assert replayed.json() == {"replayed": 1}
    drain(runtime, rounds=2)
    assert [e["subject"] for e in rec.events()] == [A, B, B]
    assert rec.received[2][0]["webhook-id"] == rec.received[1][0]["webhook-id"]


def test_webhook_key_rotation_signs_with_both_keys_during_the_overlap(
    authority: Publisher, runtime: Runtime, settings: Any, receiver: Any
) -> None:
    from gateway_factories import operator_token

    from gateway.app import create_app
    from gateway.signing import load_gateway_signer, rotate_webhook_key

    rec, url = receiver
    register_publisher(
        runtime, "fj-picc", ["measure.applied"], roles=["insurer"], subscribe=MESSAGE_TYPES
    )
    old = runtime.signer.webhook_key.public_key.raw_public_bytes()
    clock = runtime.clock
    assert isinstance(clock, FixedClock)
    rotate_webhook_key(settings, dt.timedelta(hours=1), clock.now())
    runtime.signer = load_gateway_signer(settings)  # what a restart does
    new = runtime.signer.webhook_key.public_key.raw_public_bytes()
    assert new != old
    with TestClient(create_app(settings, clock=clock)) as client:
        client.headers["authorization"] = f"Bearer {operator_token(runtime)}"
        sub = subscribe(client, url)
        assert len(sub["v1a_public_keys"]) == 2
        register_and_award(authority, client, A)
        drain(runtime, rounds=2)
        clock.advance(hours=2)
        assert (
            publish(
                client, authority.message("grade.revoked", make_revocation(), subject=A)
            ).status_code
            == 201
        )
        drain(runtime, rounds=2)

    def v1a(headers: dict[str, str]) -> list[bytes]:
        return [
            base64.b64decode(p.split(",", 1)[1])
            for p in headers["webhook-signature"].split()
            if p.startswith("v1a,")
        ]

    (h1, b1), (h2, _b2) = rec.received
    signed = f"{h1['webhook-id']}.{h1['webhook-timestamp']}.".encode() + b1
    first = v1a(h1)
    assert len(first) == 2
    Ed25519PublicKey.from_public_bytes(new).verify(first[0], signed)
    Ed25519PublicKey.from_public_bytes(old).verify(first[1], signed)
    assert len(v1a(h2)) == 1  # the overlap is over: the new key alone


def test_over_long_subscription_fields_are_refused_in_the_service_too(
    runtime: Runtime, insurer: Publisher
) -> None:
    """The CLI calls the service directly: its checks, not only the HTTP model's, keep an
    over-long value from failing on PostgreSQL's column."""
    from gateway.delivery.subscriptions import create_subscription
    from gateway.errors import BadRequest

    for extra, code in (
        ({"url": "https://receiver.example/" + "x" * 500}, "invalid_url"),
        ({"url": None, "industry_section": "CC"}, "invalid_filter"),
        ({"url": None, "grade_level": "x" * 17}, "invalid_filter"),
    ):
        with runtime.db.transaction() as session, pytest.raises(BadRequest) as caught:
            create_subscription(
                session,
                agency_id="fj-picc",
                types=["grade.revoked"],
                now=runtime.clock.now(),
                allowed_hosts=["receiver.example"],
                **extra,  # type: ignore[arg-type]
            )
        assert caught.value.code == code
