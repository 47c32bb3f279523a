"""Agencies with real keys, signed messages and a snapshot of what the database holds.

(Named gateway_factories: test helper modules are imported by bare name, see contract_factories.)
"""

from __future__ import annotations

import atexit
import datetime as dt
import functools
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from contract_factories import USCC, VALID_DATA
from sqlalchemy import func, select

from contracts.registry import SERVED_MAJORS, latest_major
from gateway import models
from gateway.db import libpq_url
from gateway.registry import service
from gateway.runtime import Runtime
from gateway.settings import DeliverySettings, Settings
from gateway.signing import ensure_gateway_keys
from keys.jws import JWSError, parse_compact, sign_compact
from keys.suites import SigningKey, get_suite

KEY_VALID_FROM = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
AGENCY_USCC = "11350000MB0000019N"  # an organ (11) of Fujian (350000); passes GB 32100 and GB 11714


@dataclass
class Publisher:
    """An agency that signs messages with its own registered key."""

    agency_id: str
    key: SigningKey
    runtime: Runtime
    typ: str = "gateway-message+jws"
    sent: list[str] = field(default_factory=list)

    def envelope(
        self, message_type: str, data: dict[str, Any] | None = None, **overrides: Any
    ) -> dict[str, Any]:
        issued = self.runtime.clock.now() - dt.timedelta(minutes=1)
        envelope: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "type": message_type,
            "contract": latest_major(message_type) if message_type in SERVED_MAJORS else 1,
            "issuer": self.agency_id,
            "issued_at": issued.isoformat(timespec="seconds"),
            "subject": USCC,
            "data": data if data is not None else VALID_DATA[message_type](),
        }
        envelope.update(overrides)
        return envelope

    def sign_envelope(self, envelope: dict[str, Any], **header: Any) -> bytes:
        payload = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
        typ = header.pop("typ", self.typ)
        return sign_compact(payload, self.key, typ=typ, extra_header=header or None).encode()

    def message(
        self, message_type: str, data: dict[str, Any] | None = None, **overrides: Any
    ) -> bytes:
        """A signed compact JWS of a valid message (override any envelope field)."""
        return self.sign_envelope(self.envelope(message_type, data, **overrides))


def register_publisher(
    runtime: Runtime,
    agency_id: str,
    types: Iterable[str],
    *,
    roles: Iterable[str] = ("grading_authority",),
    suite: str = "ed25519",
    valid_from: dt.datetime = KEY_VALID_FROM,
    valid_to: dt.datetime | None = None,
    subscribe: Iterable[str] = (),
    key: SigningKey | None = None,
) -> Publisher:
    """An agency with a fresh key (or `key`), publish rights to `types` and subscribe rights
    (whole data) to `subscribe`."""
    key = key or get_suite(suite).generate()
    now = runtime.clock.now()
    with runtime.db.transaction() as session:
        if session.get(models.Agency, agency_id) is None:
            service.add_agency(
                session,
                runtime.signer,
                agency_id=agency_id,
                name=f"agency {agency_id}",
                uscc=AGENCY_USCC,
                roles=roles,
                now=now,
            )
        service.grant_publish(session, runtime.signer, agency_id, types, now)
        service.add_key(
            session,
            runtime.signer,
            agency_id=agency_id,
            jwk=key.public_key.jwk(),
            suite=suite,
            now=now,
            valid_from=valid_from,
            valid_to=valid_to,
        )
    allow_subscribe(runtime, agency_id, subscribe)
    return Publisher(agency_id, key, runtime)


@functools.cache
def _settings_prototype() -> Settings:
    """What every test gateway's settings share, read once per process (building `Settings`
    reads the environment and validates every group: 3 ms against 0.3 for a deep copy)."""
    return Settings(
        data_dir=Path("unset"),
        database_url="sqlite://",
        log_origin="test.gateway.example/log",
        delivery=DeliverySettings(in_process_worker=False),
        rate_limit_per_second=1e6,
        rate_limit_burst=1_000_000,
    )


@functools.cache
def _process_keys() -> Path:
    """The gateway keys every test gateway of this process starts with (copied: generating
    and syncing three key files per test cost 5 ms), so a database prepared once per
    process (conftest's `prepared`) holds entries its tests' gateways verify as their own."""
    home = Path(tempfile.mkdtemp(prefix="gw-test-keys-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    cfg = _settings_prototype().model_copy(update={"data_dir": home}, deep=True)
    ensure_gateway_keys(cfg)
    return cfg.key_dir


def gateway_settings(
    data_dir: Path, database_url: str, allowed_hosts: Iterable[str] = ()
) -> Settings:
    """A test gateway's settings with the process's gateway keys: no in-process worker, and
    rate limits out of the way (tests fire requests far faster than agencies would;
    test_rate_limits sets its own)."""
    proto = _settings_prototype()
    delivery = proto.delivery.model_copy(update={"allowed_hosts": list(allowed_hosts)}, deep=True)
    cfg = proto.model_copy(
        update={"data_dir": data_dir, "database_url": database_url, "delivery": delivery},
        deep=True,
    )
    if not cfg.key_dir.exists():
        shutil.copytree(_process_keys(), cfg.key_dir)
    ensure_gateway_keys(cfg)  # a key a test removed is made again, as before
    return cfg


STATE_TABLES = (
    models.LogEntry,
    models.TreeNode,
    models.Enterprise,
    models.LedgerChange,
    models.Accident,
    models.Rectification,
    models.Listing,
    models.MeasureApplied,
)


def snapshot(runtime: Runtime) -> dict[str, Any]:
    """Row counts of every state table plus the log size: equal snapshots, nothing changed."""
    with runtime.db.reader() as session:
        counts: dict[str, Any] = {
            table.__tablename__: session.scalar(select(func.count()).select_from(table))
            for table in STATE_TABLES
        }
        counts["log_size"] = session.scalar(select(models.LogHead.size))
        counts["enterprises"] = [
            (e.uscc, e.grade_status, e.grade_level, e.ledger_status)
            for e in session.scalars(select(models.Enterprise).order_by(models.Enterprise.uscc))
        ]
    return counts


def operator_token(runtime: Runtime, scopes: str = "admin", agency: str = "ops") -> str:
    """An access token as the token endpoint would issue it (tests of the endpoint itself
    go through private_key_jwt; the other tests need a caller, not the ceremony)."""
    now = runtime.clock.now()
    claims = {
        "iss": "gateway",
        "sub": agency,
        "client_id": agency,
        "aud": "gateway",
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + 40 * 86400,  # tests move the clock by days
        "jti": uuid.uuid4().hex,
        "scope": scopes,
    }
    return runtime.signer.sign(claims, "at+jwt")


def bearer(runtime: Runtime, agency: str, scopes: str = "publish") -> dict[str, str]:
    return {"Authorization": f"Bearer {operator_token(runtime, scopes, agency)}"}


def signer_headers(client: Any, token: bytes | str) -> dict[str, str]:
    """A publish token of the agency whose registered key signed `token` (the client's own
    operator token when the JWS names no registered key: those requests fail before the
    caller matters)."""
    runtime: Runtime = client.app.state.runtime
    try:
        kid = parse_compact(token).header.get("kid")
    except JWSError:
        return {}
    with runtime.db.reader() as session:
        key = session.get(models.AgencyKey, kid) if isinstance(kid, str) else None
        return bearer(runtime, key.agency_id) if key is not None else {}


def publish(client: Any, token: bytes) -> Any:
    """POST one JWS with a publish token of its signer's agency."""
    headers = {"Content-Type": "application/jose", **signer_headers(client, token)}
    return client.post("/v1/messages", content=token, headers=headers)


def publish_many(client: Any, tokens: Iterable[bytes | str]) -> Any:
    """POST /v1/messages/batch with a publish token of the first item's signer."""
    messages = [t.decode() if isinstance(t, bytes) else t for t in tokens]
    headers = signer_headers(client, messages[0]) if messages else {}
    return client.post("/v1/messages/batch", json={"messages": messages}, headers=headers)


def allow_subscribe(
    runtime: Runtime, agency_id: str, types: Iterable[str], fields: list[str] | None = None
) -> None:
    """Grant `agency_id` subscribe rights to `types` (the whole data unless `fields`)."""
    from gateway.registry import rights

    with runtime.db.transaction() as session:
        for message_type in types:
            rights.grant(
                session,
                runtime.signer,
                agency_id=agency_id,
                action="subscribe",
                contract=message_type,
                fields=fields,
                now=runtime.clock.now(),
            )


def allow_query(
    runtime: Runtime, agency_id: str, contract: str = "standing", fields: list[str] | None = None
) -> None:
    from gateway.registry import rights

    with runtime.db.transaction() as session:
        rights.grant(
            session,
            runtime.signer,
            agency_id=agency_id,
            action="query",
            contract=contract,
            fields=fields,
            now=runtime.clock.now(),
        )


def wait_for_a_lock_waiter(url: str, what: str, timeout: float = 20) -> None:
    """Until a session of the PostgreSQL database at `url` waits for a lock (`what`, in the
    failure's words, never did)."""
    database = url.rpartition("/")[2]
    deadline = time.monotonic() + timeout
    with psycopg.connect(libpq_url(url), autocommit=True) as c:
        while time.monotonic() < deadline:
            waiting = c.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
                " AND wait_event_type = 'Lock'",
                (database,),
            ).fetchone()
            if waiting and waiting[0]:
                return
            time.sleep(0.02)
    raise AssertionError(f"{what} never waited for the log head")
