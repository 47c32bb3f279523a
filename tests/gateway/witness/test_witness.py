"""The C2SP tlog-witness: status codes of the spec, and the gateway collecting cosignatures."""

from __future__ import annotations

import base64
import threading
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from contract_factories import make_registration
from fastapi.testclient import TestClient
from gateway_factories import Publisher, publish
from loopback import free_port, serving

from contracts.uscc import complete_uscc
from gateway.app import create_app
from gateway.clock import FixedClock
from gateway.runtime import Runtime
from gateway.settings import Settings, WitnessConfig, WitnessSettings
from gateway.transparency.service import log_vkey, sign_checkpoint
from gateway.transparency.witnessing import ROUND, collect_cosignatures
from gateway.witness.app import create_witness_app
from gateway.witness.service import Witness
from keys import merkle, note
from keys.suites import get_suite

ORIGIN = "log.example/test"


class FakeLog:
    """An in-memory log with its own key, to drive the witness directly."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.key = get_suite("ed25519").generate()
        self.tree = merkle.MemorySubtrees([merkle.leaf_hash(x) for x in leaves])

    def checkpoint(self, size: int | None = None) -> str:
        size = self.tree.size if size is None else size
        return sign_checkpoint(ORIGIN, size, merkle.root_hash(size, self.tree), self.key)

    def body(self, old: int, size: int | None = None) -> str:
        size = self.tree.size if size is None else size
        proof = merkle.consistency_proof(old, size, self.tree) if 0 < old < size else []
        lines = [f"old {old}"] + [base64.b64encode(h).decode() for h in proof]
        return "\n".join(lines) + "\n\n" + self.checkpoint(size)


@pytest.fixture
def witness(tmp_path: Path) -> Witness:
    return Witness.open(tmp_path / "witness", "witness.fj-picc.example/w1")


@pytest.fixture
def log(witness: Witness) -> FakeLog:
    fake = FakeLog([f"entry {n}".encode() for n in range(5)])
    witness.state.trust(ORIGIN, log_vkey(ORIGIN, fake.key))
    return fake


def post(client: TestClient, body: str) -> httpx.Response:
    return client.post("/add-checkpoint", content=body.encode())


def test_cosigns_a_consistent_checkpoint(witness: Witness, log: FakeLog) -> None:
    client = TestClient(create_witness_app(witness))
    first = post(client, log.body(0))
    assert first.status_code == 200, first.text
    body = note.parse_note(log.checkpoint()).body
    key = note.parse_vkey(witness.vkey)
    assert note.verify_cosignature(body, first.text.strip(), key.name, key.public_key)
    for n in range(5, 9):
        log.tree.append(merkle.leaf_hash(f"entry {n}".encode()))
    grown = post(client, log.body(5))
    assert grown.status_code == 200, grown.text
    assert witness.state.logs()[0].size == 9


def test_stale_old_size_is_409_with_the_witness_size(witness: Witness, log: FakeLog) -> None:
    client = TestClient(create_witness_app(witness))
    assert post(client, log.body(0)).status_code == 200
    stale = post(client, log.body(0))
    assert stale.status_code == 409
    assert stale.headers["content-type"].startswith("text/x.tlog.size")
    assert stale.text == "5\n"


def test_forked_checkpoint_is_422_and_not_recorded(witness: Witness, log: FakeLog) -> None:
    client = TestClient(create_witness_app(witness))
    assert post(client, log.body(0)).status_code == 200
    fork = FakeLog([f"entry {n}".encode() for n in range(4)] + [b"rewritten", b"x", b"y"])
    fork.key = log.key  # the same log key signs a history that rewrote entry 4
    answer = post(client, fork.body(5))
    assert answer.status_code == 422, answer.text
    assert witness.state.logs()[0].size == 5


def test_same_size_other_root_is_409(witness: Witness, log: FakeLog) -> None:
    client = TestClient(create_witness_app(witness))
    assert post(client, log.body(0)).status_code == 200
    fork = FakeLog([f"entry {n}".encode() for n in range(4)] + [b"rewritten"])
    fork.key = log.key
    assert post(client, fork.body(5)).status_code == 409


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ("unknown origin", 404),
        ("signed by another key", 403),
        ("old larger than size", 400),
        ("malformed", 400),
    ],
)
def test_refusals_follow_the_spec(witness: Witness, log: FakeLog, change: str, status: int) -> None:
    client = TestClient(create_witness_app(witness))
    if change == "unknown origin":
        other = sign_checkpoint("other.example/log", 5, log.tree.root(), log.key)
        body = "old 0\n\n" + other
    elif change == "signed by another key":
        body = "old 0\n\n" + sign_checkpoint(
            ORIGIN, 5, log.tree.root(), get_suite("ed25519").generate()
        )
    elif change == "old larger than size":
        body = "old 9\n\n" + log.checkpoint()
    else:
        body = "hello"
    assert post(client, body).status_code == status


def test_gateway_collects_cosignatures_and_survives_a_witness_outage(
    tmp_path: Path, runtime: Runtime, authority: Publisher, settings: Settings
) -> None:
    witness = Witness.open(tmp_path / "w1", "witness.fj-picc.example/w1")
    witness.state.trust(settings.log_origin, log_vkey(settings.log_origin, runtime.signer.log_key))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    configured = settings.model_copy(
        update={
            "witnesses": WitnessSettings(
                endpoints=[WitnessConfig(name=witness.name, url=url, vkey=witness.vkey)],
                quorum=1,
                interval_seconds=3600,  # rounds are driven by the test
            )
        }
    )
    runtime.settings = configured
    clock = runtime.clock
    assert isinstance(clock, FixedClock)
    key = note.parse_vkey(witness.vkey)
    with TestClient(create_app(configured, clock=clock)) as client, httpx.Client(timeout=3) as http:
        publish(client, authority.message("enterprise.registered", make_registration()))
        with serving(create_witness_app(witness), port):
            (attempt,) = collect_cosignatures(runtime, http)
            assert attempt.ok, attempt.detail
        served = client.get("/v1/log/checkpoint").text
        body = note.parse_note(served).body
        cosigned_size = note.parse_checkpoint(body).size
        lines = [s.line for s in note.parse_note(served).signatures if s.name == witness.name]
        assert note.verify_cosignature(body, lines[0], key.name, key.public_key)

        # The witness is down: publishing goes on, the checkpoint carries no new cosignature.
        more = authority.message(
            "enterprise.registered", make_registration(), subject=complete_uscc("91350500MA000001")
        )
        assert publish(client, more).status_code == 201
        (attempt,) = collect_cosignatures(runtime, http)
        assert not attempt.ok
        assert "unreachable" in attempt.detail
        report = client.get("/v1/log/witnesses").json()
        assert report["latest_meets_quorum"] is False
        assert report["witnesses"][0]["behind_by"] == 1
        assert report["witnesses"][0]["last_error"].startswith("unreachable")
        latest = client.get("/v1/log/checkpoint").text
        assert witness.name not in latest
        quorate = client.get("/v1/log/checkpoint?cosigned=true").text
        assert note.parse_checkpoint(note.parse_note(quorate).body).size == cosigned_size

        # It comes back: the next round catches it up with a consistency proof.
        with serving(create_witness_app(witness), port):
            (attempt,) = collect_cosignatures(runtime, http)
            assert attempt.ok, attempt.detail
        assert witness.name in client.get("/v1/log/checkpoint").text
        assert client.get("/v1/log/witnesses").json()["latest_meets_quorum"] is True


def _configured(
    runtime: Runtime, settings: Settings, witnesses: list[Witness], ports: list[int]
) -> Settings:
    """The runtime's settings, its witnesses at the loopback `ports`, each trusting its log."""
    for witness in witnesses:
        witness.state.trust(
            settings.log_origin, log_vkey(settings.log_origin, runtime.signer.log_key)
        )
    runtime.settings = settings.model_copy(
        update={
            "witnesses": WitnessSettings(
                endpoints=[
                    WitnessConfig(name=w.name, url=f"http://127.0.0.1:{port}", vkey=w.vkey)
                    for w, port in zip(witnesses, ports, strict=True)
                ],
                quorum=len(witnesses),
                interval_seconds=3600,  # rounds are driven by the test
            )
        }
    )
    return runtime.settings


def test_a_slow_witness_holds_back_no_other_witness(
    tmp_path: Path, runtime: Runtime, authority: Publisher, settings: Settings
) -> None:
    """The first witness configured answers only once the second has been asked: asked one
    after the other, the first would wait out the client's timeout and the second come after
    it; asked at once, both cosign the round's checkpoint."""
    first = Witness.open(tmp_path / "w1", "witness.fj-picc.example/w1")
    second = Witness.open(tmp_path / "w2", "witness.fj-cib.example/w2")
    ports = [free_port(), free_port()]
    configured = _configured(runtime, settings, [first, second], ports)
    second_asked = threading.Event()

    def waiting_for_the_second(app: Any) -> Any:
        async def wrapped(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                await anyio.to_thread.run_sync(second_asked.wait, 10)
            await app(scope, receive, send)

        return wrapped

    def telling(app: Any) -> Any:
        async def wrapped(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                second_asked.set()
            await app(scope, receive, send)

        return wrapped

    with TestClient(create_app(configured, clock=runtime.clock)) as client:
        assert publish(client, authority.message("enterprise.registered")).status_code == 201
    with (
        serving(waiting_for_the_second(create_witness_app(first)), ports[0]),
        serving(telling(create_witness_app(second)), ports[1]),
        httpx.Client(timeout=3) as http,
    ):
        attempts = collect_cosignatures(runtime, http)
    assert [(a.witness, a.ok) for a in attempts] == [(first.name, True), (second.name, True)], [
        a.detail for a in attempts
    ]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_one_process_at_a_time_asks_the_witnesses(
    tmp_path: Path, runtime: Runtime, authority: Publisher, settings: Settings
) -> None:
    """Several API processes on one PostgreSQL database each run the rounds: while one is in
    its round, another's round asks no witness (it would ask each a second time for the same
    checkpoint); once the first has ended, the next round asks again."""
    witness = Witness.open(tmp_path / "w1", "witness.fj-picc.example/w1")
    port = free_port()
    configured = _configured(runtime, settings, [witness], [port])
    asked: list[str] = []

    def counting(app: Any) -> Any:
        async def wrapped(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                asked.append(scope["path"])
            await app(scope, receive, send)

        return wrapped

    other = Runtime.open(configured, runtime.clock)  # another process's pool, its own session
    try:
        with TestClient(
            create_app(settings, clock=runtime.clock)
        ) as client:  # no rounds of its own
            assert publish(client, authority.message("enterprise.registered")).status_code == 201
        with (
            serving(counting(create_witness_app(witness)), port),
            httpx.Client(timeout=3) as http,
        ):
            with other.db.leader(ROUND) as leading:
                assert leading
                assert collect_cosignatures(runtime, http) == []
            assert asked == []
            (attempt,) = collect_cosignatures(runtime, http)
            assert attempt.ok, attempt.detail
            assert asked == ["/add-checkpoint"]
    finally:
        other.close()
