"""Crash test: the API process is SIGKILLed three times, and the two delivery workers twice
each, while clients publish.

Afterwards every message that got a receipt is in the log with that receipt, the audit is
clean (no gap, no duplicate, every node right), the ledgers agree with the log, and the
subscription receives every message in per-enterprise order."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from contract_factories import make_award, make_registration
from fastapi.testclient import TestClient
from gateway_factories import Publisher, bearer, register_publisher
from loopback import free_port, serving
from readiness import wait_until_ready
from sqlalchemy import func, select
from test_worker_processes import OrderedReceiver

from contracts.uscc import complete_uscc
from gateway.clock import SystemClock
from gateway.delivery.worker import make_client, run_once
from gateway.models import Delivery, Enterprise, LogEntry
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.transparency.audit import audit_log
from gateway.transparency.service import log_vkey

CLIENTS, PER_CLIENT = 4, 12


class Server:
    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        self.env = os.environ | {
            "GATEWAY_DATA_DIR": str(settings.data_dir),
            "GATEWAY_DATABASE_URL": settings.effective_database_url,
            "GATEWAY_LOG_ORIGIN": settings.log_origin,
            "GATEWAY_DELIVERY__IN_PROCESS_WORKER": "false",
            "GATEWAY_RATE_LIMIT_PER_SECOND": "1000000",
            "GATEWAY_RATE_LIMIT_BURST": "1000000",
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.output = settings.data_dir / f"server-{self.port}.log"

    def start(self) -> None:
        with self.output.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--factory",
                    "gateway.app:create_app",
                    "--port",
                    str(self.port),
                    "--log-level",
                    "warning",
                ],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_until_ready(self.process, self.port, "the gateway", output=self.output)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Worker:
    """A `gateway worker` process; a killed one's claims come back after its short lease."""

    def __init__(self, server: Server) -> None:
        self.env = server.env | {
            "GATEWAY_DELIVERY__ALLOWED_HOSTS": '["127.0.0.1"]',
            "GATEWAY_DELIVERY__LEASE_SECONDS": "2",
            "GATEWAY_DELIVERY__IDLE_SLEEP_SECONDS": "0.05",
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "worker"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


@pytest.fixture
def receiver() -> Iterator[tuple[OrderedReceiver, str]]:
    rec = OrderedReceiver()
    with serving(rec.app()) as base:
        yield rec, base + "/hook"


def test_kill_the_api_while_publishing(
    client: TestClient,
    authority: Publisher,
    runtime: Runtime,
    settings: Settings,
    receiver: tuple[OrderedReceiver, str],
) -> None:
    rec, hook = receiver
    types = ["enterprise.registered", "grade.awarded"]
    register_publisher(
        runtime, "fj-scjg", ["measure.applied"], roles=["market_regulator"], subscribe=types
    )
    assert (
        client.post(
            "/v1/subscriptions", json={"agency_id": "fj-scjg", "url": hook, "types": types}
        ).status_code
        == 201
    )
    server = Server(settings)
    server.start()
    receipts: dict[bytes, str] = {}
    lock = threading.Lock()
    auth = bearer(runtime, authority.agency_id)

    def publish_until_receipted(http: httpx.Client, token: bytes) -> None:
        while True:  # resend the same bytes until answered: 201 first, 200 if it was committed
            try:
                response = http.post(
                    f"{server.url}/v1/messages",
                    content=token,
                    headers={"content-type": "application/jose", **auth},
                    timeout=5,
                )
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            if response.status_code in (200, 201):
                with lock:
                    receipts[token] = response.json()["receipt"]
                return
            if response.status_code == 503:
                time.sleep(0.05)
                continue
            raise AssertionError(response.text)

    def client_thread(number: int) -> None:
        with httpx.Client() as http:
            for n in range(PER_CLIENT):
                code = complete_uscc(f"9135010{number}MA{n:06d}")
                publish_until_receipted(
                    http,
                    authority.message("enterprise.registered", make_registration(), subject=code),
                )
                publish_until_receipted(
                    http, authority.message("grade.awarded", make_award(), subject=code)
                )

    workers = [Worker(server), Worker(server)]
    for worker in workers:
        worker.start()
    threads = [threading.Thread(target=client_thread, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        for round_ in range(3):
            time.sleep(0.8)
            server.kill()
            if round_ < 2:  # the workers die mid-round too, and come back
                workers[round_ % 2].kill()
                workers[round_ % 2].start()
                workers[(round_ + 1) % 2].kill()
                workers[(round_ + 1) % 2].start()
            server.start()
        for thread in threads:
            thread.join(120)
        time.sleep(2.5)  # the killed workers' leases run out; the live ones deliver
    finally:
        for worker in workers:
            worker.stop()
        if server.process and server.process.poll() is None:
            server.process.terminate()
            server.process.wait(10)
    assert len(receipts) == CLIENTS * PER_CLIENT * 2

    with runtime.db.reader() as session:
        stored = dict(
            session.execute(
                select(LogEntry.jws, LogEntry.receipt).where(LogEntry.kind == "message")
            ).all()
        )
        report = audit_log(session, log_vkey=log_vkey(settings.log_origin, runtime.signer.log_key))
        enterprises = session.scalar(select(func.count()).select_from(Enterprise))
        graded = session.scalar(
            select(func.count()).select_from(Enterprise).where(Enterprise.grade_status == "active")
        )
    for token, receipt in receipts.items():
        assert stored[token] == receipt, "a receipted message is missing or has another receipt"
    assert len(stored) == len(receipts), "a message without a receipt was stored twice or more"
    assert report.ok, report.problems
    assert enterprises == graded == CLIENTS * PER_CLIENT  # the ledgers agree with the log

    runtime.clock = SystemClock()  # the server queued them on the real clock
    with make_client(runtime) as http:
        for _ in range(100):
            if not run_once(runtime, http):
                break
    with runtime.db.reader() as session:
        assert set(session.scalars(select(Delivery.status))) == {"delivered"}
    first: dict[str, list[int]] = {}
    seen: set[str] = set()
    for subject, sequence, webhook_id in rec.arrivals:
        if webhook_id not in seen:
            seen.add(webhook_id)
            first.setdefault(subject, []).append(sequence)
    assert len(seen) == len(receipts)
    assert all(seqs == sorted(seqs) for seqs in first.values())
