"""A real gateway for the attacks: `gateway serve` in a process of its own on a loopback port,
over a SQLite file, its registry made beforehand through the same database and keys, its log
(text format) in a file. Clients may speak from any loopback address (127.0.0.0/8), so that
one attack's spent refusal budget is not another's.

(Named live_gateway: test helper modules are imported by bare name.)
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from readiness import wait_until_ready
from sqlalchemy import func, select

from contracts.registry import latest_major
from gateway import models
from gateway.access.assertion import ASSERTION_TYPE, make_client_assertion
from gateway.clock import SystemClock
from gateway.migrate import upgrade
from gateway.registry import rights, service
from gateway.registry.scopes import grant_scopes
from gateway.runtime import Runtime
from gateway.settings import DeliverySettings, Settings
from gateway.signing import ensure_gateway_keys
from keys.jws import parse_compact, sign_compact
from keys.suites import SigningKey, get_suite

ORIGIN = "attacks.gateway.test/log"
AGENCY_USCC = "11350000MB0000019N"
KEY_VALID_FROM = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
_ADDRESSES = itertools.count(2)  # 127.0.0.2, 127.0.0.3, …: a fresh client address each


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fresh_address() -> str:
    n = next(_ADDRESSES)
    return f"127.0.{n // 250}.{n % 250 + 2}"


@dataclass
class Agency:
    agency_id: str
    key: SigningKey

    def sign(self, envelope: dict[str, Any], typ: str = "gateway-message+jws") -> bytes:
        payload = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
        return sign_compact(payload, self.key, typ=typ).encode()

    def message(self, message_type: str, data: dict[str, Any], subject: str) -> bytes:
        envelope = {
            "id": str(uuid.uuid4()),
            "type": message_type,
            "contract": latest_major(message_type),
            "issuer": self.agency_id,
            "issued_at": (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat(
                timespec="seconds"
            ),
            "subject": subject,
            "data": data,
        }
        return self.sign(envelope)


@dataclass
class LiveGateway:
    url: str
    settings: Settings
    runtime: Runtime  # the test's own: same database and keys, another process
    log: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    agencies: dict[str, Agency] = field(default_factory=dict)

    # --- the registry, as an operator makes it ----------------------------------------------

    def agency(
        self,
        agency_id: str,
        *,
        roles: Iterable[str] = ("bank",),
        publish: Iterable[str] = (),
        scopes: Iterable[str] = (),
        subscribe: Iterable[str] = (),
    ) -> Agency:
        key = get_suite("ed25519").generate()
        now = self.runtime.clock.now()
        signer = self.runtime.signer
        with self.runtime.db.transaction() as session:
            service.add_agency(
                session,
                signer,
                agency_id=agency_id,
                name=f"agency {agency_id}",
                uscc=AGENCY_USCC,
                roles=list(roles),
                now=now,
            )
            service.add_key(
                session,
                signer,
                agency_id=agency_id,
                jwk=key.public_key.jwk(),
                suite="ed25519",
                now=now,
                valid_from=KEY_VALID_FROM,
            )
            service.grant_publish(session, signer, agency_id, list(publish), now)
            if scopes:
                grant_scopes(session, signer, agency_id, list(scopes), now)
            for message_type in subscribe:
                rights.grant(
                    session,
                    signer,
                    agency_id=agency_id,
                    action="subscribe",
                    contract=message_type,
                    fields=None,
                    now=now,
                )
        self.agencies[agency_id] = Agency(agency_id, key)
        return self.agencies[agency_id]

    def token(self, agency_id: str, scopes: str) -> str:
        """An access token as the token endpoint issues one (signed with the same key)."""
        now = int(time.time())
        claims = {
            "iss": "gateway",
            "sub": agency_id,
            "client_id": agency_id,
            "aud": "gateway",
            "iat": now,
            "exp": now + 600,
            "jti": uuid.uuid4().hex,
            "scope": scopes,
        }
        return self.runtime.signer.sign(claims, "at+jwt")

    def bearer(self, agency_id: str, scopes: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token(agency_id, scopes)}"}

    @property
    def token_url(self) -> str:
        return f"{self.url}/v1/oauth/token"

    def login_form(self, agency: Agency, **claims: Any) -> dict[str, str]:
        """A client assertion for `agency` (claims overridden or dropped with None)."""
        assertion = make_client_assertion(
            agency.key, agency.agency_id, self.token_url, dt.datetime.now(dt.UTC)
        )
        if claims:
            body = json.loads(parse_compact(assertion).payload) | claims
            body = {k: v for k, v in body.items() if v is not None}
            assertion = sign_compact(json.dumps(body).encode(), agency.key, typ="JWT")
        return {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        }

    # --- clients and what the server holds ----------------------------------------------------

    @contextmanager
    def client(self, address: str = "127.0.0.1", **headers: str) -> Iterator[httpx.Client]:
        """An HTTP client speaking from `address` (any 127.0.0.0/8 address)."""
        transport = httpx.HTTPTransport(local_address=address)
        with httpx.Client(
            base_url=self.url, transport=transport, headers=headers, timeout=30
        ) as client:
            yield client

    def count(self, model: type[models.Base], *where: Any) -> int:
        with self.runtime.db.reader() as session:
            return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    def log_size(self) -> int:
        with self.runtime.db.reader() as session:
            return int(session.scalar(select(models.LogHead.size)) or 0)

    def publish(self, token: bytes, caller: str | None = None) -> httpx.Response:
        agency = caller or json.loads(parse_compact(token).payload)["issuer"]
        with self.client() as http:
            return http.post(
                "/v1/messages",
                content=token,
                headers={"content-type": "application/jose", **self.bearer(agency, "publish")},
            )

    def server_log(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()

    def start_another(self, port: int | None = None) -> str:
        """Another API process on the same database, keys and public URL (the first's: the
        token audience); its base URL."""
        port = port or free_port()
        self.processes.append(_spawn(self.settings, port, self.log, self._env))
        _wait_until_listening(port, self.processes[-1], self.log)
        return f"http://127.0.0.1:{port}"

    _env: dict[str, str] = field(default_factory=dict)


def _environment(settings: Settings, extra: dict[str, str]) -> dict[str, str]:
    return {
        "GATEWAY_DATA_DIR": str(settings.data_dir),
        "GATEWAY_DATABASE_URL": settings.effective_database_url,
        "GATEWAY_LOG_ORIGIN": ORIGIN,
        "GATEWAY_OBSERVABILITY__LOG_FORMAT": "text",
        "GATEWAY_OBSERVABILITY__LOG_BATCH_SECONDS": "0",
        "GATEWAY_DELIVERY__IDLE_SLEEP_SECONDS": "0.05",
        "GATEWAY_CONNECTORS__SNAPSHOT_INTERVAL_SECONDS": "0",
        **extra,
    }


def _spawn(
    settings: Settings, port: int, log: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)],
            env=os.environ | _environment(settings, env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _wait_until_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    wait_until_ready(process, port, "the gateway", output=log)


@contextmanager
def running(directory: Path, **env: str) -> Iterator[LiveGateway]:
    """A migrated SQLite database and keys in `directory`, and `gateway serve` on them with
    the GATEWAY_* variables `env` (names without the prefix, e.g. DELIVERY__ALLOWED_HOSTS)."""
    extra = {f"GATEWAY_{name}": value for name, value in env.items()}
    allowed = json.loads(extra.get("GATEWAY_DELIVERY__ALLOWED_HOSTS", "[]"))
    settings = Settings(
        data_dir=directory / "gateway",
        log_origin=ORIGIN,
        delivery=DeliverySettings(allowed_hosts=allowed),
    )
    upgrade(settings.effective_database_url)
    ensure_gateway_keys(settings)
    runtime = Runtime.open(settings, SystemClock())
    log = directory / "gateway.log"
    port = free_port()
    extra.setdefault("GATEWAY_PUBLIC_URL", f"http://127.0.0.1:{port}")
    live = LiveGateway("", settings, runtime, log, _env=extra)
    try:
        live.url = live.start_another(port)
        yield live
    finally:
        for process in live.processes:
            if process.poll() is None:
                process.terminate()
        for process in live.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        runtime.close()
