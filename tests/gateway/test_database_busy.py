"""A pool with no connection free in time (sqlalchemy.exc.TimeoutError) is 503 database_busy,
problem+json with Retry-After, on every path: not a plain-text 500, and nothing half-stored."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from contract_factories import USCC, make_registration
from fastapi.testclient import TestClient
from gateway_factories import (
    Publisher,
    allow_query,
    bearer,
    gateway_settings,
    publish,
    register_publisher,
    signer_headers,
    snapshot,
)

from contracts.uscc import complete_uscc
from gateway.db import Database
from gateway.runtime import Runtime
from gateway.settings import DatabaseSettings, Settings, StreamSettings

WAIT = 0.3  # seconds a request waits for a connection here
OTHER = complete_uscc("91350200MA000000")


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """One connection (and one in overflow) for the API, one for exports, both waited for
    WAIT seconds."""
    return gateway_settings(tmp_path / "data", database_url).model_copy(
        update={
            "database": DatabaseSettings(pool_size=1, pool_timeout_seconds=WAIT),
            "streams": StreamSettings(pool_size=1, pool_timeout_seconds=WAIT),
        }
    )


@contextmanager
def api_connections_taken(db: Database) -> Iterator[None]:
    """Every connection of the API's pools checked out (1 + 1 in overflow each)."""
    with ExitStack() as stack:
        for _ in range(2):
            stack.enter_context(db.reader()).connection()
            if db.is_sqlite:  # writes have a pool of their own there
                stack.enter_context(db.engine.connect())
        assert db.api_connections_in_use() == (4 if db.is_sqlite else 2)
        yield


def assert_database_busy(response: object) -> None:
    assert response.status_code == 503, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    assert response.json()["code"] == "database_busy"  # type: ignore[attr-defined]
    assert int(response.headers["retry-after"]) >= 1  # type: ignore[attr-defined]


def test_reads_wait_for_a_connection_and_then_answer_503(client: TestClient) -> None:
    db: Database = client.app.state.runtime.db  # type: ignore[attr-defined]
    with api_connections_taken(db):
        assert_database_busy(client.get("/v1/ledgers/basic"))
        assert_database_busy(client.get(f"/v1/enterprises/{USCC}/ledger-history"))
    assert client.get("/v1/ledgers/basic").status_code == 200


def test_a_standing_query_answers_503_and_then_again(
    client: TestClient, runtime: Runtime, authority: Publisher
) -> None:
    register_publisher(runtime, "fj-cib", [], roles=["bank"])
    allow_query(runtime, "fj-cib", "standing")
    assert publish(client, authority.message("enterprise.registered", make_registration()))
    headers = bearer(runtime, "fj-cib", "query")
    db: Database = client.app.state.runtime.db  # type: ignore[attr-defined]
    with api_connections_taken(db):
        assert_database_busy(client.get(f"/v1/enterprises/{USCC}?purpose=loan", headers=headers))
    assert client.get(f"/v1/enterprises/{USCC}?purpose=loan", headers=headers).status_code == 200


def test_a_publish_that_finds_no_connection_is_503_and_stores_nothing(
    client: TestClient, runtime: Runtime, authority: Publisher
) -> None:
    """It was split and retried half by half, each half waiting the pool's timeout again, and
    a single message ended as 500 internal_error."""
    first = authority.message("enterprise.registered", make_registration())
    assert publish(client, first).status_code == 201  # keys and rate limits now in memory
    message = authority.message("enterprise.registered", make_registration(), subject=OTHER)
    headers = {"Content-Type": "application/jose", **signer_headers(client, message)}
    before = snapshot(runtime)
    db: Database = client.app.state.runtime.db  # type: ignore[attr-defined]
    with api_connections_taken(db):
        assert_database_busy(client.post("/v1/messages", content=message, headers=headers))
    assert snapshot(runtime) == before
    assert publish(client, message).status_code == 201  # the client's retry is taken


def test_an_export_that_finds_its_pool_busy_is_503_and_gives_its_slot_back(
    client: TestClient,
) -> None:
    runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    with runtime.db.export_reader() as session:
        session.connection()
        assert_database_busy(client.get("/v1/ledgers/basic/export.csv"))
        # the API's own pool is not the exports': pages still answer
        assert client.get("/v1/ledgers/basic").status_code == 200
    assert runtime.streams.open == 0
    assert client.get("/v1/ledgers/basic/export.csv").status_code == 200
    assert runtime.streams.open == 0
    assert runtime.db.export_connections_in_use() == 0
