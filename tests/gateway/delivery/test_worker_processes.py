"""Several `gateway worker` processes on one database, one of them SIGKILLed mid-run:
each message reaches the subscription at least once, never twice at the same time, and
messages about one enterprise arrive in log order."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from contract_factories import make_award, make_registration, make_revocation
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient
from gateway_factories import Publisher, publish_many, register_publisher
from loopback import serving
from sqlalchemy import func, select

from contracts.uscc import complete_uscc
from gateway.models import Delivery
from gateway.runtime import Runtime
from gateway.settings import Settings

ENTERPRISES = 15


@dataclass
class OrderedReceiver:
    arrivals: list[tuple[str, int, str]] = field(default_factory=list)  # subject, seq, id
    in_flight: set[str] = field(default_factory=set)
    overlaps: list[str] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            webhook_id = request.headers["webhook-id"]
            if webhook_id in self.in_flight:
                self.overlaps.append(webhook_id)
            self.in_flight.add(webhook_id)
            try:
                event = json.loads(await request.body())
                await asyncio.sleep(0.02)  # widen the window for races
                self.arrivals.append((event["subject"], int(event["sequence"]), webhook_id))
            finally:
                self.in_flight.discard(webhook_id)
            return Response(status_code=204)

        return app


@pytest.fixture
def receiver() -> Iterator[tuple[OrderedReceiver, str]]:
    rec = OrderedReceiver()
    with serving(rec.app()) as base:
        yield rec, base + "/hook"


def _worker(settings: Settings) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "GATEWAY_DATA_DIR": str(settings.data_dir),
        "GATEWAY_DATABASE_URL": settings.effective_database_url,
        "GATEWAY_LOG_ORIGIN": settings.log_origin,
        "GATEWAY_DELIVERY__ALLOWED_HOSTS": '["127.0.0.1"]',
        "GATEWAY_DELIVERY__LEASE_SECONDS": "3",
        "GATEWAY_DELIVERY__IDLE_SLEEP_SECONDS": "0.05",
        "GATEWAY_DELIVERY__CLAIM_BATCH": "8",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _pending(runtime: Runtime) -> int:
    with runtime.db.reader() as session:
        return (
            session.scalar(
                select(func.count()).select_from(Delivery).where(Delivery.status != "delivered")
            )
            or 0
        )


def test_workers_share_the_queue_survive_a_kill_and_keep_order(
    client: TestClient,
    authority: Publisher,
    runtime: Runtime,
    settings: Settings,
    receiver: tuple[OrderedReceiver, str],
) -> None:
    rec, url = receiver
    types = ["enterprise.registered", "grade.awarded", "grade.revoked"]
    register_publisher(
        runtime, "fj-scjg", ["measure.applied"], roles=["market_regulator"], subscribe=types
    )
    body = {"agency_id": "fj-scjg", "url": url, "types": types}
    assert client.post("/v1/subscriptions", json=body).status_code == 201
    tokens = []
    for n in range(ENTERPRISES):
        code = complete_uscc(f"91350700MA{n:06d}")
        tokens += [
            authority.message("enterprise.registered", make_registration(), subject=code),
            authority.message("grade.awarded", make_award(), subject=code),
            authority.message("grade.revoked", make_revocation(), subject=code),
        ]
    batch = publish_many(client, tokens)
    assert batch.json()["accepted"] == len(tokens)

    workers = [_worker(settings) for _ in range(3)]
    try:
        deadline = time.monotonic() + 60
        while len(rec.arrivals) < len(tokens) // 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        workers[0].send_signal(signal.SIGKILL)  # mid-run: it may hold leases and open POSTs
        workers[0].wait(10)
        workers.append(_worker(settings))
        while _pending(runtime) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _pending(runtime) == 0, "not everything was delivered"
    finally:
        for process in workers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in workers:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
    assert rec.overlaps == [], "one message was delivered twice at the same time"
    first_seen: dict[str, list[int]] = {}
    seen: set[str] = set()
    for subject, sequence, webhook_id in rec.arrivals:
        if webhook_id not in seen:
            seen.add(webhook_id)
            first_seen.setdefault(subject, []).append(sequence)
    assert len(seen) == len(tokens)
    for subject, sequences in first_seen.items():
        assert sequences == sorted(sequences), f"{subject} out of order: {sequences}"
    with runtime.db.reader() as session:
        dead = session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.status == "dead")
        )
    assert dead == 0
