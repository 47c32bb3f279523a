"""A real gateway for the examples' test: `gateway serve` on a loopback port over a SQLite
database in a temporary directory, its registry made as an operator would with the CLI: an
authority that publishes, an insurer with a premium subscription, a bank that queries.

(Named example_gateway: test helper modules are imported by bare name.)
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from readiness import wait_until_ready

from gateway.clock import SystemClock
from gateway.delivery.subscriptions import create_subscription
from gateway.delivery.webhooks import public_key_text
from gateway.migrate import upgrade
from gateway.registry import rights, service
from gateway.registry.scopes import grant_scopes
from gateway.runtime import Runtime
from gateway.settings import DeliverySettings, Settings
from gateway.signing import ensure_gateway_keys
from keys.store import write_key_file
from keys.suites import get_suite

ORIGIN = "examples.gateway.test/log"
AGENCY_USCC = "11350000MB0000019N"
PREMIUM_TYPES = ["grade.awarded", "grade.revoked", "accident.reported"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_listening(
    port: int, process: subprocess.Popen[str], what: str, output: Path | None = None
) -> None:
    wait_until_ready(process, port, what, output=output, health=None)


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@dataclass
class Running:
    url: str
    keys: dict[str, Path]  # agency id → its PEM file
    subscription: str
    whpk: str
    admin: dict[str, str]  # an operator's bearer header
    receiver_port: int


def register(runtime: Runtime, directory: Path, agency: str, roles: list[str]) -> Path:
    """An agency with a fresh Ed25519 key written to `directory`/<agency>.pem."""
    key = get_suite("ed25519").generate()
    path = directory / f"{agency}.pem"
    write_key_file(path, key)
    now = runtime.clock.now()
    with runtime.db.transaction() as session:
        service.add_agency(
            session,
            runtime.signer,
            agency_id=agency,
            name=f"agency {agency}",
            uscc=AGENCY_USCC,
            roles=roles,
            now=now,
        )
        service.add_key(
            session,
            runtime.signer,
            agency_id=agency,
            jwk=key.public_key.jwk(),
            suite="ed25519",
            now=now,
            valid_from=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        )
    return path


def grant(runtime: Runtime) -> None:
    """Rights and scopes, each a log entry: deny by default (protocol.md §6)."""
    now, signer = runtime.clock.now(), runtime.signer
    wanted = [("fj-picc", "subscribe", t) for t in PREMIUM_TYPES] + [
        ("fj-ccb", "query", "standing")
    ]
    with runtime.db.transaction() as session:
        service.grant_publish(
            session, signer, "fj-yjt", ["enterprise.registered", "grade.awarded"], now
        )
        grant_scopes(session, signer, "fj-yjt", ["publish", "ledger.read"], now)
        grant_scopes(session, signer, "fj-picc", ["subscribe"], now)
        grant_scopes(session, signer, "fj-ccb", ["query"], now)
        for agency, action, contract in wanted:
            rights.grant(
                session,
                signer,
                agency_id=agency,
                action=action,
                contract=contract,
                fields=None,
                now=now,
            )


def subscribe(runtime: Runtime, receiver_port: int) -> str:
    """The insurer's push subscription, view insurance_premium, to the receiver's port; a
    short retry ladder, should a delivery beat the receiver's start."""
    with runtime.db.transaction() as session:
        return create_subscription(
            session,
            agency_id="fj-picc",
            url=f"http://127.0.0.1:{receiver_port}/webhooks",
            types=PREMIUM_TYPES,
            now=runtime.clock.now(),
            allowed_hosts=["127.0.0.1"],
            view="insurance_premium",
            retry_schedule=[0, 0.5, 1, 2, 4],
        ).id


def operator_header(runtime: Runtime) -> dict[str, str]:
    """An operator's access token as the token endpoint issues one (the operator's own
    login is not what this test is about)."""
    now = int(time.time())
    claims = {
        "iss": "gateway",
        "sub": "ops",
        "client_id": "ops",
        "aud": "gateway",
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
        "scope": "admin",
    }
    return {"authorization": f"Bearer {runtime.signer.sign(claims, 'at+jwt')}"}


def prepare(settings: Settings, receiver_port: int) -> Running:
    """A migrated database, the gateway's keys and the registry."""
    upgrade(settings.effective_database_url)
    ensure_gateway_keys(settings)
    runtime = Runtime.open(settings, SystemClock())
    try:
        keys_dir = settings.data_dir / "agency-keys"
        keys_dir.mkdir()
        keys = {
            "fj-yjt": register(runtime, keys_dir, "fj-yjt", ["grading_authority"]),
            "fj-picc": register(runtime, keys_dir, "fj-picc", ["insurer"]),
            "fj-ccb": register(runtime, keys_dir, "fj-ccb", ["bank"]),
        }
        grant(runtime)
        subscription = subscribe(runtime, receiver_port)
        whpk = public_key_text(runtime.signer.webhook_key)
        return Running("", keys, subscription, whpk, operator_header(runtime), receiver_port)
    finally:
        runtime.close()


@contextmanager
def serving(directory: Path) -> Iterator[Running]:
    """`gateway serve` on a loopback port (its in-process worker delivers), on SQLite in
    `directory`; its log in `directory`/gateway.log."""
    settings = Settings(
        data_dir=directory / "gateway",
        log_origin=ORIGIN,
        delivery=DeliverySettings(allowed_hosts=["127.0.0.1"]),
    )
    running = prepare(settings, free_port())
    port = free_port()
    env = os.environ | {
        "GATEWAY_DATA_DIR": str(settings.data_dir),
        "GATEWAY_DATABASE_URL": settings.effective_database_url,
        "GATEWAY_LOG_ORIGIN": ORIGIN,
        "GATEWAY_DELIVERY__ALLOWED_HOSTS": '["127.0.0.1"]',
        "GATEWAY_DELIVERY__IDLE_SLEEP_SECONDS": "0.05",
        "GATEWAY_OBSERVABILITY__LOG_LEVEL": "WARNING",
    }
    with (directory / "gateway.log").open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        wait_until_listening(port, server, "the gateway", directory / "gateway.log")
        running.url = f"http://127.0.0.1:{port}"
        yield running
    finally:
        stop(server)
