"""The delivery worker through a database outage: it backs off and goes on, a round whose
result could not be recorded is delivered again once its lease has passed, a message
published after the outage is delivered, and /readyz names a worker thread that stopped.

The outage is real: on PostgreSQL every connection is cut by a TCP proxy that then refuses
new ones; on SQLite the database file is moved away (the gateway refuses to write to a file
no longer at its path, gateway.db) and then back."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from contract_factories import make_award, make_registration
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient
from gateway_factories import Publisher, operator_token, publish, register_publisher
from loopback import free_port, serving
from sqlalchemy import make_url, select
from sqlalchemy.exc import OperationalError

from contracts.uscc import complete_uscc
from gateway import app as app_module
from gateway.app import create_app
from gateway.clock import FixedClock
from gateway.delivery import worker
from gateway.delivery.worker import RoundFailures, run_until
from gateway.models import Delivery
from gateway.runtime import Runtime
from gateway.settings import Settings

TYPES = ["enterprise.registered", "grade.awarded"]
LEASE = 2.0


class Proxy:
    """A TCP proxy in front of PostgreSQL that can be cut (every connection closed, new ones
    refused) and restored on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._acceptor: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        self._stop.clear()
        listener = socket.create_server(("127.0.0.1", self.port))  # SO_REUSEADDR on POSIX
        listener.settimeout(0.05)
        self._acceptor = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._acceptor.start()

    def stop(self) -> None:
        """Cut: no connection is accepted once this returns, and none survives it. The
        acceptor ends first: a connection it was accepting as the cut began had been added
        after the sockets were taken, and lived on through the outage (a pooled connection
        that kept working, so the worker's failed rounds alternated with good ones)."""
        self._stop.set()
        if self._acceptor is not None:
            self._acceptor.join(5)
        with self._lock:
            sockets, self._sockets = self._sockets, []
            threads, self._threads = self._threads, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in threads:
            thread.join(5)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        with listener:
            while not self._stop.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                if self._stop.is_set():  # accepted as the cut began: refused like the rest
                    client.close()
                    break
                client.settimeout(None)
                upstream = socket.create_connection(self.target)
                with self._lock:
                    self._sockets += [client, upstream]
                self._spawn(_pump, client, upstream)
                self._spawn(_pump, upstream, client)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_RDWR)


@dataclass
class Outage:
    """Takes the gateway's database away (`begin`) and gives it back (`end`)."""

    begin: Callable[[], None]
    end: Callable[[], None]


@pytest.fixture
def outage(settings: Settings) -> Iterator[tuple[Settings, Outage]]:
    """Settings for a gateway with its in-process worker, and a way to cut its database."""
    delivery = settings.delivery.model_copy(
        update={
            "in_process_worker": True,
            "lease_seconds": LEASE,
            "timeout_seconds": LEASE / 4,
            "idle_sleep_seconds": 0.02,
        }
    )
    url = settings.effective_database_url
    if url.startswith("sqlite"):
        path = Path(make_url(url).database or "")
        away = path.with_name(path.name + ".away")
        yield (
            settings.model_copy(update={"delivery": delivery}),
            Outage(lambda: os.replace(path, away), lambda: os.replace(away, path)),
        )
        return
    target = make_url(url)
    proxy = Proxy((target.host or "127.0.0.1", target.port or 5432))
    proxy.start()
    proxied = target.set(port=proxy.port).render_as_string(hide_password=False)
    try:
        yield (
            settings.model_copy(update={"database_url": proxied, "delivery": delivery}),
            Outage(proxy.stop, proxy.start),
        )
    finally:
        proxy.stop()


@dataclass
class Receiver:
    """Records the types of the events it receives; the first one starts the outage
    before it is answered, so that its result cannot be recorded."""

    on_first: Callable[[], None] | None
    received: list[str] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            self.received.append(json.loads(await request.body())["type"])
            if self.on_first is not None:
                begin, self.on_first = self.on_first, None
                begin()
            return Response(status_code=204)

        return app


def _until(condition: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _publish(client: TestClient, token: bytes) -> None:
    """Publish, retrying the 503 a connection the outage broke may still give once."""
    for _ in range(5):
        response = publish(client, token)
        if response.status_code != 503:
            break
    assert response.status_code == 201, response.text


def test_the_worker_outlives_a_database_outage_and_delivers_what_it_missed(
    outage: tuple[Settings, Outage],
    runtime: Runtime,
    clock: FixedClock,
    authority: Publisher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings, cut = outage
    register_publisher(runtime, "fj-picc", ["measure.applied"], roles=["insurer"], subscribe=TYPES)
    receiver = Receiver(on_first=cut.begin)
    code = complete_uscc("91350100MA000011")
    caplog.set_level(logging.INFO, "gateway.delivery")
    with serving(receiver.app()) as base, TestClient(create_app(settings, clock=clock)) as client:
        client.headers["authorization"] = f"Bearer {operator_token(runtime)}"
        thread, rounds = client.app.state.delivery_worker  # type: ignore[attr-defined]
        wanted = {"agency_id": "fj-picc", "url": f"{base}/hook", "types": TYPES}
        assert client.post("/v1/subscriptions", json=wanted).status_code == 201
        _publish(
            client, authority.message("enterprise.registered", make_registration(), subject=code)
        )

        # delivered, and the database gone before the result is recorded: rounds fail
        _until(lambda: rounds.streak >= 3, "three failed rounds")
        cut.end()
        clock.advance(seconds=LEASE + 1)  # the unrecorded delivery's lease has passed
        _until(lambda: receiver.received.count("enterprise.registered") == 2, "a redelivery")
        _publish(client, authority.message("grade.awarded", make_award(), subject=code))
        _until(lambda: "grade.awarded" in receiver.received, "the award's delivery")

        assert thread.is_alive()
        assert receiver.received == ["enterprise.registered"] * 2 + ["grade.awarded"]
        _until(lambda: rounds.streak == 0, "a round that succeeds")
        assert rounds.total["database"] >= 3
        assert rounds.total["unexpected"] == 0
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["delivery_worker"] == {"status": "ok"}
        metrics = client.get("/metrics").text
        total = rounds.total["database"]
        assert (
            f'gateway_delivery_worker_failed_rounds_total{{kind="database"}} {total}.0' in metrics
        )
    with runtime.db.reader() as session:
        statuses = list(session.scalars(select(Delivery.status).order_by(Delivery.log_index)))
    assert statuses == ["delivered", "delivered"]
    # one line for the streak and one for the recovery, not one per failed round
    lines = [r.getMessage() for r in caplog.records if r.name == "gateway.delivery"]
    assert len([line for line in lines if "the database failed a round" in line]) == 1, lines
    assert len([line for line in lines if "succeed again" in line]) == 1, lines


def test_an_unexpected_failure_is_logged_once_with_its_traceback_and_the_worker_goes_on(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = worker.claim
    calls: list[int] = []

    def failing_thrice(*args: Any) -> Any:
        calls.append(1)
        if len(calls) <= 3:
            raise RuntimeError("a bug")
        return real(*args)

    monkeypatch.setattr(worker, "claim", failing_thrice)
    rounds = RoundFailures(first=0.01, most=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=run_until, args=(runtime, stop, rounds))
    thread.start()
    try:
        _until(lambda: len(calls) >= 6, "rounds after the failures", seconds=10)
        assert thread.is_alive()
    finally:
        stop.set()
        thread.join(10)
    assert (rounds.total, rounds.streak) == ({"database": 0, "unexpected": 3}, 0)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert isinstance(errors[0].exc_info[1], RuntimeError)


def test_the_backoff_doubles_to_its_cap_and_starts_again_after_a_success(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "gateway.delivery")
    rounds = RoundFailures(first=0.5, most=30)
    down = OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))
    delays = [rounds.failed(down) for _ in range(12)]
    for n, delay in enumerate(delays):  # jittered by up to 20 % either way, then capped
        expected = min(0.5 * 2**n, 30)
        assert 0.8 * expected <= delay <= min(1.2 * expected, 30), (n, delay)
    assert max(delays) <= 30
    assert delays[-1] >= 24  # 0.5 * 2**11 capped at 30, jitter at most 20 % down
    rounds.failed(RuntimeError("a bug"))  # another kind of failure is logged too
    rounds.succeeded()
    assert rounds.streak == 0
    assert 0.4 <= rounds.failed(down) <= 0.6
    assert rounds.total == {"database": 13, "unexpected": 1}
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 3, logged  # the first database failure, the bug, the next streak
    assert "connection refused" in logged[0]
    assert "SELECT 1" not in logged[0]


def test_readyz_names_a_delivery_worker_that_stopped(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "run_until", lambda *_: None)  # returns at once
    settings.delivery.in_process_worker = True
    with TestClient(create_app(settings)) as client:
        thread, _ = client.app.state.delivery_worker  # type: ignore[attr-defined]
        thread.join(10)
        ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["failing"] == ["delivery_worker"]
    assert ready.json()["checks"]["delivery_worker"] == {
        "status": "failing",
        "stopped": ["delivery-worker"],
    }
