"""Issue 20, finding 1, replayed small against a real server on loopback (uvicorn in a thread,
small socket buffers): clients that ask for the ledger's CSV export and read nothing hold no
database connection the API needs, one more than the process serves at once is `503
too_many_streams`, and their streams end when they go. The large version, 21 clients against
a 20-connection pool: tests/gateway/ledger/test_attack_slow_export.py, whose helpers this reuses."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest
from gateway_factories import bearer, gateway_settings
from test_attack_slow_export import (
    EXPORT,
    gateway,
    request_and_read_nothing,
    status_of,
    wait_for,
)

from bench.populate import populate
from gateway.migrate import upgrade
from gateway.runtime import Runtime
from gateway.settings import DatabaseSettings, Settings, StreamSettings

ENTERPRISES = 2000  # about 330 kB of CSV: more than a stalled loopback socket takes in here
HELD = 3  # streams the server serves at once


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Runtime, Runtime]]:
    directory = tmp_path_factory.mktemp("availability-attacks")
    url = f"sqlite:///{directory / 'gateway.db'}"
    upgrade(url)
    populate(url, ENTERPRISES)
    settings: Settings = gateway_settings(directory / "data", url).model_copy(
        update={
            "database": DatabaseSettings(pool_size=2, pool_timeout_seconds=3),
            "streams": StreamSettings(max_open=HELD, pool_size=1, stall_seconds=60),
        }
    )
    with gateway(settings) as running:
        yield running


def test_clients_that_never_read_an_export_hold_no_connection_and_no_more_than_their_slots(
    server: tuple[str, Runtime, Runtime],
) -> None:
    base, runtime, setup = server
    reader = bearer(setup, "ops", "ledger.read")
    token = reader["Authorization"].removeprefix("Bearer ")
    sockets: list[socket.socket] = []
    try:
        sockets = [request_and_read_nothing(base, EXPORT, token) for _ in range(HELD)]
        assert [status_of(s) for s in sockets] == [b"HTTP/1.1 200"] * HELD
        assert wait_for(lambda: runtime.streams.open == HELD)
        with httpx.Client(base_url=base, timeout=10) as client:
            assert client.get("/readyz").status_code == 200
            assert client.get("/v1/ledgers/basic?limit=5", headers=reader).status_code == 200
            assert runtime.db.api_connections_in_use() == 0
            assert wait_for(lambda: runtime.db.export_connections_in_use() == 0)
            refused = client.get(EXPORT, headers=reader)
        assert (refused.status_code, refused.json()["code"]) == (503, "too_many_streams")
        assert refused.headers["content-type"] == "application/problem+json"
        assert int(refused.headers["retry-after"]) > 0
    finally:
        for sock in sockets:
            sock.close()
    assert wait_for(lambda: runtime.streams.open == 0, seconds=5), runtime.streams.open
    with httpx.Client(base_url=base, timeout=30) as client:
        whole = client.get(EXPORT, headers=reader)
    assert whole.status_code == 200
    assert whole.text.count("\n") == ENTERPRISES + 1


def test_no_token_no_export(server: tuple[str, Runtime, Runtime]) -> None:
    base, runtime, _ = server
    with httpx.Client(base_url=base, timeout=10) as client:
        answer = client.get(EXPORT, headers={"authorization": "Bearer x.y.z"})
    assert (answer.status_code, answer.json()["code"]) == (401, "invalid_token")
    assert runtime.streams.open == 0
