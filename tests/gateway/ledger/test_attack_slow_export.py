"""Issue 20, finding 1: clients that ask for a large download and never read it must not starve
the API of database connections. A real uvicorn server on loopback, a ledger larger than the
socket buffers, raw sockets that request and then read nothing.

The server's socket buffers are fixed small (Linux grows a send buffer to 4 MiB by itself, 25,000
enterprises of CSV): then 5,000 enterprises exceed them, as a large ledger exceeds real ones."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from gateway_factories import allow_query, bearer, gateway_settings, register_publisher
from readiness import READY_SECONDS

from bench.populate import code_of, populate
from gateway.app import create_app
from gateway.runtime import Runtime
from gateway.settings import DatabaseSettings, Settings, StreamSettings

ENTERPRISES = 5000  # about 830 kB of CSV: far more than a stalled socket takes in here
SEND_BUFFER = 16 * 1024  # the server's (Linux doubles it), inherited by accepted sockets
CLIENTS = 21  # one more than the 20 connections an API process had (10 + 10 in overflow)
EXPORT = "/v1/ledgers/basic/export.csv"
PROMPT = 2.0  # seconds: a probe answered within this never waited on an exhausted pool


def attack_settings(data_dir: Path, url: str, **streams: float) -> Settings:
    """Pools far smaller than the clients: 2 + 2 API connections waited for 3 s at most, 1
    for exports (waited for up to 30 s: 21 exports take turns reading their first batch
    through it, which on a busy machine took longer than 3 s and answered the tenth 503)."""
    settings = gateway_settings(data_dir, url)
    return settings.model_copy(
        update={
            "database": DatabaseSettings(pool_size=2, pool_timeout_seconds=3),
            "streams": StreamSettings(
                **{"max_open": CLIENTS, "pool_size": 1, "pool_timeout_seconds": 30, **streams}
            ),
        }
    )


@pytest.fixture
def ledger(database_url: str) -> str:
    populate(database_url, ENTERPRISES)
    return database_url


def request_and_read_nothing(base: str, path: str, token: str) -> socket.socket:
    """A client that sends the request, takes the status line and then nothing more (its
    receive buffer kept small, as a slow client's window is)."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(60)
    sock.connect((host, int(port)))
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    )
    return sock


def status_of(sock: socket.socket) -> bytes:
    return sock.recv(12)  # "HTTP/1.1 200"


def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@contextlib.contextmanager
def serving_small_buffers(app: FastAPI) -> Iterator[str]:
    """uvicorn in a thread on a loopback socket whose send buffer is SEND_BUFFER."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: server.started, seconds=READY_SECONDS), "server did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        listener.close()


@contextlib.contextmanager
def gateway(settings: Settings) -> Iterator[tuple[str, Runtime, Runtime]]:
    """The server's base URL, its runtime (its pools) and a runtime to set up with."""
    setup = Runtime.open(settings)
    try:
        app = create_app(settings)
        with serving_small_buffers(app) as base:
            yield base, app.state.runtime, setup
    finally:
        setup.close()


def probe(client: httpx.Client, path: str, headers: dict[str, str]) -> tuple[int, float]:
    began = time.perf_counter()
    status = client.get(path, headers=headers).status_code
    return status, time.perf_counter() - began


def test_clients_that_never_read_an_export_leave_the_api_its_connections(
    ledger: str, tmp_path: Path
) -> None:
    settings = attack_settings(tmp_path / "data", ledger, stall_seconds=60)
    with gateway(settings) as (base, server, setup):
        register_publisher(setup, "fj-cib", [], roles=["bank"])
        allow_query(setup, "fj-cib", "standing")
        reader = bearer(setup, "ops", "ledger.read")["Authorization"].removeprefix("Bearer ")
        probes = {
            "/readyz": {},
            "/v1/ledgers/basic?limit=50": bearer(setup, "ops", "ledger.read"),
            f"/v1/enterprises/{code_of(7)}?purpose=loan": bearer(setup, "fj-cib", "query"),
        }
        sockets = [request_and_read_nothing(base, EXPORT, reader) for _ in range(CLIENTS)]
        try:
            assert [status_of(s) for s in sockets] == [b"HTTP/1.1 200"] * CLIENTS
            # every stream is stuck on a full socket, none could finish
            time.sleep(0.5)
            assert server.streams.open == CLIENTS
            with httpx.Client(base_url=base, timeout=10) as client:
                for path, headers in probes.items():
                    status, took = probe(client, path, headers)
                    assert (path, status) == (path, 200)
                    assert took < PROMPT, f"{path} took {took:.1f} s"
                # no connection is held for a stuck client, of either pool (an export's
                # connection only while it reads a batch, before it blocks on its socket)
                assert server.db.api_connections_in_use() == 0
                assert wait_for(lambda: server.db.export_connections_in_use() == 0)
                # one export more than the process serves at once is refused, not queued
                refused = client.get(EXPORT, headers=probes["/v1/ledgers/basic?limit=50"])
                assert refused.status_code == 503
                assert refused.headers["content-type"] == "application/problem+json"
                assert refused.json()["code"] == "too_many_streams"
                assert int(refused.headers["retry-after"]) > 0
        finally:
            for sock in sockets:
                sock.close()
        # the clients gone, their streams end at once and everything is back
        assert wait_for(lambda: server.streams.open == 0, seconds=2), server.streams.open
        assert server.db.api_connections_in_use() == 0
        assert server.db.export_connections_in_use() == 0
        with httpx.Client(base_url=base, timeout=10) as client:
            answer = client.get(EXPORT, headers=probes["/v1/ledgers/basic?limit=50"])
        assert answer.status_code == 200
        assert answer.text.count("\n") == ENTERPRISES + 1  # the header and every row


@pytest.mark.parametrize("limit", ["stall_seconds", "deadline_seconds"])
def test_a_stream_whose_client_stops_reading_ends_by_itself(
    ledger: str, tmp_path: Path, limit: str
) -> None:
    """Neither a client that stops reading nor one that holds its connection open for ever
    keeps a stream (and its slot) past the stall time or the deadline; what it had is an
    incomplete chunked body, never a CSV that looks whole."""
    limits = {"stall_seconds": 60.0, "deadline_seconds": 60.0} | {limit: 0.5}
    settings = attack_settings(tmp_path / "data", ledger, **limits)
    with gateway(settings) as (base, server, setup):
        reader = bearer(setup, "ops", "ledger.read")["Authorization"].removeprefix("Bearer ")
        sock = request_and_read_nothing(base, EXPORT, reader)
        try:
            assert status_of(sock) == b"HTTP/1.1 200"
            assert wait_for(lambda: server.streams.open == 1)
            assert wait_for(lambda: server.streams.open == 0, seconds=3)
            assert server.db.export_connections_in_use() == 0
            received = bytearray()
            while chunk := sock.recv(1 << 16):
                received += chunk
        finally:
            sock.close()
        assert not received.endswith(b"0\r\n\r\n"), "the stream looked complete"
        assert received.count(b"\n") < ENTERPRISES


def test_a_batch_that_finds_no_connection_cuts_the_stream_short_and_frees_it(
    ledger: str, tmp_path: Path
) -> None:
    """Past the first chunk a refusal cannot be a problem any more: the stream ends as an
    incomplete body, and its slot and generator are given back like any other's."""
    settings = attack_settings(tmp_path / "data", ledger, pool_timeout_seconds=0.3)
    with gateway(settings) as (base, server, setup):
        reader = bearer(setup, "ops", "ledger.read")["Authorization"].removeprefix("Bearer ")
        sock = request_and_read_nothing(base, EXPORT, reader)
        try:
            assert status_of(sock) == b"HTTP/1.1 200"
            assert wait_for(lambda: server.db.export_connections_in_use() == 0)
            with server.db.export_reader() as session:
                session.connection()  # the exports' only connection, taken from here
                received = bytearray()
                while chunk := sock.recv(1 << 16):
                    received += chunk
        finally:
            sock.close()
        assert not received.endswith(b"0\r\n\r\n"), "the stream looked complete"
        assert wait_for(lambda: server.streams.open == 0)
        assert server.db.export_connections_in_use() == 0


def test_a_snapshot_download_is_a_bounded_stream_too(ledger: str, tmp_path: Path) -> None:
    """The market regulator's snapshot files: no database connection while they stream, one
    slot each, ended when their client stops reading."""
    settings = attack_settings(tmp_path / "data", ledger, stall_seconds=0.5)
    with gateway(settings) as (base, server, setup):
        admin = bearer(setup, "ops", "admin subscribe")
        with httpx.Client(base_url=base, timeout=30) as client:
            made = client.post("/v1/connectors/market_regulator/snapshots", headers=admin)
            assert made.status_code == 201, made.text
        path = f"/v1/connectors/market_regulator/snapshots/{made.json()['log_size']:012d}.ndjson"
        token = admin["Authorization"].removeprefix("Bearer ")
        sockets = [request_and_read_nothing(base, path, token) for _ in range(3)]
        try:
            assert [status_of(s) for s in sockets] == [b"HTTP/1.1 200"] * 3
            assert server.streams.open == 3
            assert server.db.api_connections_in_use() == 0
            assert wait_for(lambda: server.streams.open == 0, seconds=3)
        finally:
            for sock in sockets:
                sock.close()
