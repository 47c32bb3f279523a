"""Bounds found missing by the first hardening pass (issue 20): the witness read a whole body
before its 64 KB check, the gateway read a witness's whole answer, and an agency's request
rate took any finite number (1e308)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from contract_factories import make_registration
from fastapi.testclient import TestClient
from gateway_factories import Publisher, publish

from gateway.runtime import Runtime
from gateway.settings import Settings, WitnessConfig, WitnessSettings
from gateway.transparency import witnessing
from gateway.transparency.checkpoints import latest_checkpoint
from gateway.witness.app import MAX_BODY_BYTES, create_witness_app
from gateway.witness.service import Witness

CHUNK = 16 * 1024


def call_witness(app: Any, headers: list[tuple[bytes, bytes]], chunks: int) -> tuple[int, int]:
    """POST /add-checkpoint through the ASGI app with a body of `chunks` chunks of 16 KB;
    (the status answered, how many chunks the app took)."""
    taken = 0
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal taken
        if taken >= chunks:
            return {"type": "http.disconnect"}
        taken += 1
        return {"type": "http.request", "body": b"x" * CHUNK, "more_body": taken < chunks}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/add-checkpoint",
        "raw_path": b"/add-checkpoint",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8100),
    }
    asyncio.run(app(scope, receive, send))
    return status, taken


@pytest.fixture
def witness_app(tmp_path: Path) -> Any:
    return create_witness_app(Witness.open(tmp_path / "w", "witness.example/w1"))


def test_the_witness_refuses_a_declared_large_body_without_reading_it(witness_app: Any) -> None:
    length = str(100 * 1024 * 1024).encode()
    status, taken = call_witness(witness_app, [(b"content-length", length)], chunks=6400)
    assert (status, taken) == (413, 0)


def test_the_witness_stops_reading_a_chunked_body_at_its_bound(witness_app: Any) -> None:
    """A chunked body was read whole (here 100 MB) before its size was judged."""
    status, taken = call_witness(witness_app, [(b"transfer-encoding", b"chunked")], chunks=6400)
    assert status == 413
    assert taken * CHUNK <= MAX_BODY_BYTES + CHUNK


def test_a_body_within_the_bound_still_reaches_the_witness(witness_app: Any) -> None:
    with TestClient(witness_app) as client:
        answer = client.post("/add-checkpoint", content=b"old 0\n\nnot a note\n")
    assert answer.status_code == 400  # the witness's own refusal, not the size's


class EndlessAnswer(httpx.SyncByteStream):
    """A witness answer that never ends; counts what the gateway took of it."""

    def __init__(self) -> None:
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        while self.sent < 500 * 1024 * 1024:  # a bound for the test, far above any reading
            self.sent += 65536
            yield b"\xe2\x80\x94 w " + b"A" * 65532


@pytest.mark.parametrize("status", [200, 409, 500])
def test_a_witness_answer_is_read_up_to_its_bound_only(
    runtime: Runtime,
    settings: Settings,
    authority: Publisher,
    client: TestClient,
    status: int,
) -> None:
    """An endless answer from a witness was read whole into memory (every status)."""
    publish(client, authority.message("enterprise.registered", make_registration()))
    witness = Witness.open(settings.data_dir / "w", "witness.example/w1")
    config = WitnessConfig(name=witness.name, url="http://127.0.0.1:9/", vkey=witness.vkey)
    runtime.settings = settings.model_copy(
        update={"witnesses": WitnessSettings(endpoints=[config], quorum=1)}
    )
    answer = EndlessAnswer()
    content_type = "text/x.tlog.size" if status == 409 else "text/plain"
    transport = httpx.MockTransport(
        lambda request: httpx.Response(
            status, headers={"content-type": content_type}, stream=answer
        )
    )
    with httpx.Client(transport=transport) as http:
        attempt = witnessing.ask_witness(runtime, http, config, latest_checkpoint(runtime))
    assert not attempt.ok
    assert answer.sent <= witnessing.ANSWER_BYTES + 65536
    assert len(attempt.detail) <= 300


@pytest.mark.parametrize("per_second", ["1e308", "10000.5", "0.0001", '"NaN"', "-1", '"Infinity"'])
def test_an_agency_rate_is_bounded_like_a_subscriptions(
    client: TestClient, authority: Publisher, per_second: str
) -> None:
    """1e308 requests a second was stored: a limit no bucket arithmetic can use."""
    refused = client.put(
        "/v1/agencies/fj-yjt/rate-limit",
        content=f'{{"per_second": {per_second}, "burst": 5}}',
        headers={"content-type": "application/json"},
    )
    assert (refused.status_code, refused.json()["code"]) == (400, "invalid_rate_limit")
    assert refused.json()["detail"]
    assert client.get("/v1/agencies/fj-yjt/rights").json()["rate_limit"] is None


@pytest.mark.parametrize("per_second", [1 / 3600, 10_000])
def test_the_rate_bounds_themselves_are_accepted(
    client: TestClient, authority: Publisher, per_second: float
) -> None:
    body = {"per_second": per_second, "burst": 5}
    assert client.put("/v1/agencies/fj-yjt/rate-limit", json=body).status_code == 200
