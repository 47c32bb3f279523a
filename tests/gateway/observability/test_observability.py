"""Request ids, JSON log lines and readiness: what an operator's log collector and load balancer
rely on."""

from __future__ import annotations

import io
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from contract_factories import make_award, make_registration
from fastapi import BackgroundTasks, FastAPI
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient
from gateway_factories import Publisher, operator_token, publish, register_publisher
from loopback import serving
from starlette.concurrency import run_in_threadpool

from contracts.uscc import complete_uscc
from gateway.app import create_app
from gateway.clock import FixedClock
from gateway.delivery.worker import make_client, run_once
from gateway.logs import JsonFormatter, configure_logging, log_event
from gateway.runtime import Runtime
from gateway.settings import Settings

TYPES = ["enterprise.registered", "grade.awarded", "grade.revoked"]  # subscribe rights
GENERATED_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """`configure_logging` changes the process's root logger: put it back after the test."""
    loggers = [logging.getLogger(name) for name in ("", "uvicorn", "uvicorn.error")]
    saved = [(lg, list(lg.handlers), lg.level, lg.propagate) for lg in loggers]
    yield
    for logger, handlers, level, propagate in saved:
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def test_the_serve_factory_writes_json_lines_carrying_the_echoed_request_id(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
) -> None:
    # What `gateway serve` runs: uvicorn calls the factory without arguments.
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("GATEWAY_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("GATEWAY_DELIVERY__IN_PROCESS_WORKER", "false")
    with TestClient(create_app()) as client:
        capsys.readouterr()
        response = client.get("/.well-known/jwks.json")
        probe = client.get("/healthz")
    assert response.status_code == 200
    assert probe.status_code == 200
    request_id = response.headers["x-request-id"]
    assert GENERATED_ID.fullmatch(request_id)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    access = [line for line in lines if line["logger"] == "gateway.access"]
    assert len(access) == 1, lines  # a successful probe is logged at DEBUG, below INFO
    (line,) = access
    assert isinstance(line.pop("duration_ms"), float)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", line.pop("time"))
    assert line == {
        "level": "INFO",
        "logger": "gateway.access",
        "message": "http.request",
        "event": "http.request",
        "request_id": request_id,
        "method": "GET",
        "path": "/.well-known/jwks.json",
        "status": 200,
    }


@pytest.mark.parametrize(
    ("sent", "echoed"),
    [
        ("req-2026.11_01", "req-2026.11_01"),
        ("x" * 128, "x" * 128),
        ("x" * 129, None),
        ("two words", None),
        ("a;b=c", None),
        ("", None),
    ],
)
def test_a_sane_request_id_is_echoed_and_any_other_replaced(
    client: TestClient, caplog: pytest.LogCaptureFixture, sent: str, echoed: str | None
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    response = client.get("/v1/log/vkey", headers={"X-Request-ID": sent})
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    if echoed is None:
        assert GENERATED_ID.fullmatch(request_id)
    else:
        assert request_id == echoed
    (record,) = [r for r in caplog.records if r.name == "gateway.access"]
    assert json.loads(JsonFormatter().format(record))["request_id"] == request_id


def _app_with_probes(settings: Settings, clock: FixedClock) -> FastAPI:
    """The gateway app plus routes that log from a worker thread, a background task and
    a streamed body."""
    app = create_app(settings, clock=clock)

    @app.get("/probe/sync")
    def in_threadpool() -> dict[str, str]:  # FastAPI runs sync endpoints in its threadpool
        log_event("probe.sync", where="endpoint")
        return {}

    @app.get("/probe/offloaded")
    async def offloaded() -> dict[str, str]:
        await run_in_threadpool(log_event, "probe.offloaded", where="run_in_threadpool")
        return {}

    @app.get("/probe/background")
    async def background(tasks: BackgroundTasks) -> dict[str, str]:
        tasks.add_task(log_event, "probe.background", where="background task")
        return {}

    @app.get("/probe/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> Any:
            for n in range(3):
                log_event("probe.chunk", n=n)
                yield f"chunk {n}\n"

        return StreamingResponse(chunks(), media_type="text/plain")

    return app


def test_log_events_carry_the_request_id_in_threads_background_tasks_and_streams(
    settings: Settings, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway")
    with TestClient(_app_with_probes(settings, clock)) as client:
        ids = {
            path: client.get(f"/probe/{path}", headers={"X-Request-ID": f"rid-{path}"})
            for path in ("sync", "offloaded", "background", "stream")
        }
    assert ids["stream"].text == "chunk 0\nchunk 1\nchunk 2\n"
    assert {path: r.headers["x-request-id"] for path, r in ids.items()} == {
        path: f"rid-{path}" for path in ids
    }
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records]
    logged = {(line["event"], line["request_id"]) for line in lines}
    assert {
        ("probe.sync", "rid-sync"),
        ("probe.offloaded", "rid-offloaded"),
        ("probe.background", "rid-background"),
        ("probe.chunk", "rid-stream"),
    } <= logged
    sync = next(line for line in lines if line["event"] == "probe.sync")
    assert sync["where"] == "endpoint"
    assert sync["logger"] == "gateway.events"
    # One access line per request, each after its body (and background task) went out.
    access = [line for line in lines if line["logger"] == "gateway.access"]
    assert [line["request_id"] for line in access] == [f"rid-{path}" for path in ids]


def test_log_event_fields_may_use_any_name_and_outside_a_request_have_no_id(
    restore_logging: None,
) -> None:
    stream = io.StringIO()
    configure_logging("json", stream=stream)
    log_event("agency.added", name="福建省应急管理厅", args=[1], level="x", request_id="forged")
    logging.getLogger("gateway.other").warning("plain %s", "record", extra={"port": 8000})
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["name"] == "福建省应急管理厅"
    assert first["args"] == [1]
    assert first["level"] == "INFO"
    assert first["request_id"] is None
    assert second == second | {"message": "plain record", "port": 8000, "request_id": None}

    stream = io.StringIO()
    configure_logging("text", stream=stream)
    log_event("message.accepted", message_id="m-1", index=7)
    assert (
        stream.getvalue()
        .rstrip()
        .endswith("INFO gateway.events message.accepted message_id=m-1 index=7")
    )


def test_batched_lines_wait_for_their_batch_but_warnings_and_shutdown_write_at_once(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    handler = configure_logging("json", batch_seconds=60)
    capsys.readouterr()
    log_event("message.accepted", index=1)
    log_event("message.accepted", index=2)
    assert capsys.readouterr().err == ""  # waiting for the batch
    logging.getLogger("gateway.other").warning("disk nearly full")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line.get("index") for line in lines] == [1, 2, None]  # in order, warning last
    assert lines[2]["message"] == "disk nearly full"

    log_event("message.accepted", index=3)
    handler.flush()  # what logging.shutdown does at exit
    assert json.loads(capsys.readouterr().err)["index"] == 3

    for index in range(512):  # a full batch goes out without waiting
        log_event("message.accepted", index=index)
    assert len(capsys.readouterr().err.splitlines()) == 512


def test_a_batch_is_written_within_its_interval(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    configure_logging("json", batch_seconds=0.05)
    capsys.readouterr()
    log_event("message.accepted", index=1)
    deadline = time.monotonic() + 10
    written = ""
    while not written and time.monotonic() < deadline:
        time.sleep(0.01)
        written = capsys.readouterr().err
    assert json.loads(written)["index"] == 1


def test_one_flusher_thread_writes_every_batch_and_stops_with_its_handler(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    def flushers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "log-flusher"]

    before = set(flushers())
    handler = configure_logging("json", batch_seconds=0.02)
    capsys.readouterr()
    written: list[str] = []
    for index in range(3):  # three batches, one after the other
        log_event("message.accepted", index=index)
        deadline = time.monotonic() + 10
        while len(written) <= index and time.monotonic() < deadline:
            time.sleep(0.005)
            written += capsys.readouterr().err.splitlines()
    assert [json.loads(line)["index"] for line in written] == [0, 1, 2]
    started = [t for t in flushers() if t not in before]
    assert len(started) == 1
    handler.close()
    started[0].join(5)
    assert not started[0].is_alive()


def test_a_replaced_handler_writes_what_it_held(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    configure_logging("json", batch_seconds=60)
    capsys.readouterr()
    log_event("message.accepted", index=1)
    configure_logging("json")
    assert json.loads(capsys.readouterr().err)["index"] == 1


def _award(client: TestClient, authority: Publisher, code: str) -> None:
    for token in (
        authority.message("enterprise.registered", make_registration(), subject=code),
        authority.message("grade.awarded", make_award(), subject=code),
    ):
        assert publish(client, token).status_code == 201


def _ready(client: TestClient) -> tuple[int, dict[str, Any]]:
    response = client.get("/readyz")
    return response.status_code, response.json()


def test_readyz_fails_while_the_outbox_is_late_and_recovers_once_delivered(
    settings: Settings, clock: FixedClock, runtime: Runtime, authority: Publisher
) -> None:
    settings.observability.max_outbox_lag_seconds = 600
    register_publisher(runtime, "fj-picc", ["measure.applied"], roles=["insurer"], subscribe=TYPES)
    receiver = FastAPI()
    receiver.post("/hook", status_code=204)(lambda: None)
    with serving(receiver) as base, TestClient(create_app(settings, clock=clock)) as client:
        client.headers["authorization"] = f"Bearer {operator_token(runtime)}"
        wanted = {"agency_id": "fj-picc", "url": f"{base}/hook", "types": ["grade.awarded"]}
        created = client.post("/v1/subscriptions", json=wanted)
        assert created.status_code == 201, created.text
        subscription = created.json()["id"]
        _award(client, authority, complete_uscc("91350100MA000011"))

        clock.advance(seconds=600)  # due for exactly the threshold: still ready
        status, body = _ready(client)
        assert status == 200
        assert body["failing"] == []
        assert body["checks"]["outbox"] == {
            "status": "ok",
            "lag_seconds": 600,
            "max_lag_seconds": 600,
        }

        clock.advance(seconds=1)
        status, body = _ready(client)
        assert (status, body["status"], body["failing"]) == (503, "unavailable", ["outbox"])
        assert body["checks"]["outbox"]["status"] == "failing"
        assert body["checks"]["outbox"]["lag_seconds"] == 601
        assert body["checks"]["database"] == {"status": "ok"}
        assert body["checks"]["signing_key"]["status"] == "ok"

        # Paused, the subscription is nobody's to deliver: its backlog is not the gateway's lag.
        for state, readiness in (("paused", 200), ("active", 503)):
            patched = client.patch(f"/v1/subscriptions/{subscription}", json={"status": state})
            assert patched.status_code == 200, patched.text
            assert _ready(client)[0] == readiness

        with make_client(runtime) as http:
            assert run_once(runtime, http) == 1
        status, body = _ready(client)
        assert (status, body["status"], body["checks"]["outbox"]["lag_seconds"]) == (200, "ok", 0)


def test_readyz_ignores_a_delivery_held_behind_an_earlier_one_for_the_same_enterprise(
    settings: Settings, clock: FixedClock, runtime: Runtime, authority: Publisher
) -> None:
    # The claim only takes the head of each (subscription, enterprise) queue: a later message
    # about the same enterprise waits for the head's retries and is not late meanwhile.
    register_publisher(runtime, "fj-picc", ["measure.applied"], roles=["insurer"], subscribe=TYPES)
    receiver = FastAPI()
    receiver.post("/hook", status_code=503)(lambda: None)
    with serving(receiver) as base, TestClient(create_app(settings, clock=clock)) as client:
        client.headers["authorization"] = f"Bearer {operator_token(runtime)}"
        wanted = {
            "agency_id": "fj-picc",
            "url": f"{base}/hook",
            "types": ["enterprise.registered", "grade.awarded"],
            "retry_schedule": [0, 3600],  # the retry comes 2,880-4,320 s later (jitter)
        }
        assert client.post("/v1/subscriptions", json=wanted).status_code == 201
        _award(client, authority, complete_uscc("91350100MA000011"))
        with make_client(runtime) as http:
            assert run_once(runtime, http) == 1  # the registration fails: retry in an hour
        clock.advance(seconds=1800)  # the award has been due for 1,800 s, behind its head
        status, body = _ready(client)
        assert (status, body["checks"]["outbox"]["lag_seconds"]) == (200, 0), body
        clock.advance(seconds=3500)  # now the head itself is more than 900 s overdue
        assert _ready(client)[0] == 503


def test_readyz_fails_when_a_group_thread_has_stopped(client: TestClient) -> None:
    status, body = _ready(client)
    assert (status, body["checks"]["group_threads"]) == (200, {"status": "ok"})
    client.app.state.publisher.close()  # type: ignore[attr-defined]
    status, body = _ready(client)
    assert (status, body["failing"]) == (503, ["group_threads"])
    assert body["checks"]["group_threads"] == {"status": "failing", "stopped": ["publishing"]}


@pytest.mark.parametrize("opentelemetry", [False, True])
def test_fastapi_looks_for_an_opentelemetry_provider_only_when_asked(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, opentelemetry: bool
) -> None:
    """FastAPI's native telemetry asks for the global tracer provider on every request; the
    gateway turns it off unless `observability.opentelemetry` is set."""
    from opentelemetry import trace

    asked: list[int] = []
    real = trace.get_tracer_provider

    def counting() -> Any:
        asked.append(1)
        return real()

    monkeypatch.setattr(trace, "get_tracer_provider", counting)
    settings.observability.opentelemetry = opentelemetry
    with TestClient(create_app(settings)) as client:
        asked.clear()
        assert client.get("/healthz").status_code == 200
    assert bool(asked) is opentelemetry
