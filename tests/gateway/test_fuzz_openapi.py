"""Schemathesis over the gateway's own OpenAPI document (issue 7 §5).

Every operation, on SQLite and on PostgreSQL: no input gives a 5xx, every response conforms
to its documented status code, media type and schema, and every 4xx is an RFC 9457 problem
(`application/problem+json`) with a stable `code`. Once as an operator against a seeded
gateway (agencies with keys, rights and scopes, a subscription, published messages; most
cases name those resources so the fuzz reaches past the 404s), once as callers without the
right token (none, a forged one, a consumer's).

The requests go through a Starlette TestClient (the app's lifespan and database are the
test's fixtures) by a small requests adapter, so `case.call` and `case.validate_response` are
schemathesis's own. (Not `schemathesis.pytest.from_fixture`: it fails under pytest 9.2; nor
`from_asgi`: its transport starts a lifespan of its own that lives until the process exits.)

`POST /v1/messages` (application/jose) and the token endpoint (a form) are fuzzed too:
whatever they get, a 4xx problem, never a 500. The end of the file replays what the fuzz
found, on both databases.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
import schemathesis
import urllib3
from conftest import register_authority
from contract_factories import USCC
from fastapi.testclient import TestClient
from gateway_factories import (
    allow_query,
    bearer,
    operator_token,
    publish,
    register_publisher,
)
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from requests.adapters import HTTPAdapter
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.app import create_app
from gateway.clock import FixedClock
from gateway.db import libpq_url
from gateway.runtime import Runtime
from gateway.settings import Settings

BASE_URL = "http://testserver"
# Examples per operation and pass (the operator's on both databases, the tokenless one on
# SQLite, ~55 operations): 12 keep the file near a minute of CI's two cores, a fifth of the
# suite at 25; every operation still gets its positive and negative cases, and each fix the
# fuzz found is replayed below. GATEWAY_FUZZ_EXAMPLES=500 for a deeper run by hand.
MAX_EXAMPLES = int(os.environ.get("GATEWAY_FUZZ_EXAMPLES", "12"))
FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # the same cases on every run: a CI failure reproduces locally
)
CONFIG = schemathesis.Config.from_dict(
    # positive and negative cases; the stateful phase needs OpenAPI links the gateway does not
    # declare
    {"generation": {"mode": "all"}, "phases": {"stateful": {"enabled": False}}}
)


def _openapi() -> dict[str, Any]:
    """The document the gateway serves at /openapi.json (made from the routes alone: no
    database is opened until the lifespan starts)."""
    with tempfile.TemporaryDirectory() as data_dir:
        app = create_app(Settings(data_dir=Path(data_dir), database_url="sqlite://"))
        return app.openapi()


schema = schemathesis.openapi.from_dict(_openapi(), config=CONFIG)
# `POST /v1/messages` takes the compact JWS as application/jose: text on the wire.
schemathesis.serializer.alias("application/jose", "text/plain")


def problem_media_type(path: str, status: int) -> str:
    if path.split("?")[0] == "/v1/oauth/token" and status in (400, 401, 413, 429):
        return "application/json"  # RFC 6749 §5.2, for OAuth clients
    return "application/problem+json"


@schemathesis.check
def problem_details(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """Every 4xx is `application/problem+json` with the RFC 9457 members and a `code`; the
    token endpoint's own refusals are RFC 6749 §5.2 `application/json` with the same members
    and `error`, `error_description` beside them."""
    if not 400 <= response.status_code < 500:
        return
    media_type = response.headers.get("content-type", [""])[0].split(";")[0].strip()
    expected = problem_media_type(case.path, response.status_code)
    assert media_type == expected, f"a {response.status_code} as {media_type}"
    body = response.json()
    if expected == "application/json":
        assert isinstance(body.get("error"), str), body
        assert body.get("error_description") == body.get("detail"), body
    assert isinstance(body, dict), body
    assert isinstance(body.get("code"), str), body
    assert body.get("code"), body
    assert body.get("status") == response.status_code, body
    assert isinstance(body.get("title"), str), body
    assert isinstance(body.get("detail"), str), body


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    problem_details,
]


class _TestClientAdapter(HTTPAdapter):
    """A requests transport handing each prepared request to a Starlette TestClient, whose
    lifespan, event loop and database the app runs on."""

    def __init__(self, client: TestClient) -> None:
        super().__init__()
        self.client = client

    def send(self, request: requests.PreparedRequest, *_: Any, **__: Any) -> requests.Response:
        body = request.body.encode() if isinstance(request.body, str) else request.body
        answer = self.client.request(
            str(request.method), str(request.url), content=body, headers=dict(request.headers)
        )
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(answer.content),
            headers=answer.headers.multi_items(),
            status=answer.status_code,
            reason=answer.reason_phrase,
            version=11,
            preload_content=False,
        )
        response = self.build_response(request, raw)
        response._content = answer.content  # as the app sent it (no second decoding)
        return response


@dataclass
class Gateway:
    client: TestClient
    session: requests.Session
    runtime: Runtime
    # parameter or body member name -> seeded values a case may name instead of its own
    known: dict[str, list[Any]] = field(default_factory=dict)
    # operation path -> seeded bodies
    bodies: dict[str, list[Any]] = field(default_factory=dict)


@contextmanager
def _serving(settings: Settings, clock: FixedClock, runtime: Runtime) -> Iterator[Gateway]:
    with TestClient(create_app(settings, clock=clock)) as client:
        session = requests.Session()
        session.mount("http://", _TestClientAdapter(client))
        yield Gateway(client, session, runtime)


@pytest.fixture
def gateway(settings: Settings, clock: FixedClock, runtime: Runtime) -> Iterator[Gateway]:
    with _serving(settings, clock, runtime) as served:
        yield served


def _seed(gateway: Gateway) -> None:
    """Agencies with keys, rights and scopes, a subscription, a few published messages."""
    runtime, client = gateway.runtime, gateway.client
    admin = {"authorization": f"Bearer {operator_token(runtime)}"}
    authority = register_authority(runtime)
    register_publisher(runtime, "ops", [], roles=["operator"])
    for contract in ("standing", "grade_history"):
        allow_query(runtime, "ops", contract)
    register_publisher(
        runtime,
        "fj-picc",
        ["measure.applied"],
        roles=["insurer"],
        subscribe=["grade.awarded", "grade.revoked", "listing.added"],
    )
    created = client.post(
        "/v1/subscriptions",
        json={
            "agency_id": "fj-picc",
            "types": ["grade.awarded", "listing.added"],
            "signing": ["v1a", "v1"],
        },
        headers=admin,
    )
    assert created.status_code == 201, created.text
    subscription_id = created.json()["id"]
    signed, ids = [], []
    for message_type in ("enterprise.registered", "grade.awarded", "accident.reported"):
        token = authority.message(message_type)
        answer = publish(client, token)
        assert answer.status_code == 201, answer.text
        signed.append(token.decode())
        ids.append(answer.json()["message_id"])
    entries = client.get("/v1/log/entries?start=0&end=1000", headers=admin).json()["entries"]
    ids.append(next(e["message_id"] for e in entries if e["kind"] != "message"))
    head, payload, signature = signed[1].split(".")
    tampered = f"{head}.{payload}.{signature[::-1]}"
    gateway.known = {
        "message_id": ids,
        "code": [USCC, USCC.lower()],
        "codes": [[USCC], [USCC, "91350900587527783X", USCC]],
        "agency_id": ["fj-yjt", "fj-picc", "ops"],
        "subscription_id": [subscription_id],
        "ledger": ["basic", "required", "achieved"],
        "region": ["350900", "3509"],
        "contract": ["standing", "grade_history", "grade.awarded"],
        "scope": ["query", "subscribe", "ledger.read"],
        "types": [["grade.awarded"], ["listing.added", "grade.revoked"]],
        "name": ["grade.awarded", "standing"],
        "purpose": ["loan application"],
        "status": ["paused", "active", "达标"],
        "tree_size": [1, len(entries) - 1, len(entries)],
        "index": [0, len(entries) - 1],
        "start": [0, len(entries) - 2],
        "end": [len(entries), 1],
        "first": [1, len(entries) - 1],
        "second": [len(entries)],
    }
    gateway.bodies = {
        "/v1/messages": [signed[0], tampered, signed[2]],
        "/v1/messages/batch": [{"messages": signed}, {"messages": [tampered, "x.y.z"]}],
    }


@dataclass
class Seeded:
    """A seeded gateway as it stood once seeded: its data directory (the gateway's keys), its
    database's rows and what the cases may name. Seeding took a second or more a test (a
    hundred tests); a copy is put back in milliseconds."""

    data_dir: Path
    known: dict[str, list[Any]]
    bodies: dict[str, list[Any]]
    sqlite_file: Path | None = None
    pg_rows: dict[str, bytes] = field(default_factory=dict)
    pg_sequences: list[tuple[str, int, bool]] = field(default_factory=list)

    @classmethod
    def keep(cls, gateway: Gateway, settings: Settings, directory: Path) -> Seeded:
        shutil.copytree(settings.data_dir, directory / "data")
        kept = cls(directory / "data", gateway.known, gateway.bodies)
        url = settings.effective_database_url
        if url.startswith("sqlite"):
            kept.sqlite_file = directory / "seeded.db"
            with (
                sqlite3.connect(url.removeprefix("sqlite:///")) as source,
                sqlite3.connect(kept.sqlite_file) as copy,
            ):
                source.backup(copy)  # consistent, the write-ahead log's pages included
            return kept
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            tables = conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
            for (table,) in tables:
                with conn.cursor().copy(f'COPY "{table}" TO STDOUT') as copy:
                    rows = b"".join(bytes(chunk) for chunk in copy)
                if rows:
                    kept.pg_rows[table] = rows
            kept.pg_sequences = conn.execute(
                "SELECT format('%I.%I', schemaname, sequencename), last_value, true"
                " FROM pg_sequences WHERE schemaname = 'public' AND last_value IS NOT NULL"
            ).fetchall()
        return kept

    def put_back(self, settings: Settings) -> None:
        """Into a test's empty database and fresh data directory."""
        shutil.rmtree(settings.data_dir)
        shutil.copytree(self.data_dir, settings.data_dir)
        url = settings.effective_database_url
        if self.sqlite_file is not None:
            shutil.copyfile(self.sqlite_file, url.removeprefix("sqlite:///"))
            return
        with psycopg.connect(libpq_url(url), autocommit=True) as conn, conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")
            for table, rows in self.pg_rows.items():
                conn.execute(f'DELETE FROM "{table}"')  # alembic_version, log_head
                with conn.cursor().copy(f'COPY "{table}" FROM STDIN') as copy:
                    copy.write(rows)
            for sequence, value, called in self.pg_sequences:
                conn.execute("SELECT setval(%s, %s, %s)", (sequence, value, called))


@pytest.fixture(scope="session")
def seeds() -> dict[str, Seeded]:
    return {}


@pytest.fixture
def seeded(
    settings: Settings,
    clock: FixedClock,
    database_url: str,
    seeds: dict[str, Seeded],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    """A gateway with agencies, keys, rights, scopes, a subscription and a few published
    messages (seeded once in each test process and database, put back for every test)."""
    kind = database_url.partition(":")[0].partition("+")[0]
    if kind not in seeds:
        runtime = Runtime.open(settings, clock)
        try:
            with _serving(settings, clock, runtime) as first:
                _seed(first)
        finally:
            runtime.close()
        seeds[kind] = Seeded.keep(first, settings, tmp_path_factory.mktemp(f"seeded-{kind}"))
    seeds[kind].put_back(settings)
    runtime = Runtime.open(settings, clock)
    try:
        with _serving(settings, clock, runtime) as served:
            served.known, served.bodies = seeds[kind].known, seeds[kind].bodies
            yield served
    finally:
        runtime.close()


def _use_known(case: schemathesis.Case, gateway: Gateway, pick: int) -> None:
    """With `pick` > 0, name seeded resources in the path and the query (also where the case
    left an optional parameter out) and in the body's members; POST seeded bodies."""
    if pick == 0:
        return
    for declared, values in (
        (case.operation.path_parameters, case.path_parameters),
        (case.operation.query, case.query),
    ):
        for parameter in declared:
            known = gateway.known.get(parameter.name)
            if known and isinstance(values, dict):
                values[parameter.name] = known[pick % len(known)]
    if isinstance(case.body, dict):
        for name in case.body:
            known = gateway.known.get(name)
            if known:
                case.body[name] = known[pick % len(known)]
    bodies = gateway.bodies.get(case.operation.path)
    if bodies and case.operation.method.upper() == "POST":
        case.body = bodies[pick % len(bodies)]


@pytest.mark.slow
@schema.parametrize()
@schema.given(pick=st.integers(0, 3))
@FUZZ_SETTINGS
def test_fuzz_as_operator(case: schemathesis.Case, pick: int, seeded: Gateway) -> None:
    """An operator (scope admin, query rights) on a seeded gateway; publishing as the agency
    whose key signed the seeded messages."""
    _use_known(case, seeded, pick)
    if case.operation.path.startswith("/v1/messages") and case.operation.method == "post":
        headers = bearer(seeded.runtime, "fj-yjt", "publish")
    else:
        headers = {"Authorization": f"Bearer {operator_token(seeded.runtime)}"}
    response = case.call(base_url=BASE_URL, session=seeded.session, headers=headers)
    case.validate_response(response, checks=CHECKS)


CALLERS = ("none", "forged", "consumer")
# README "Access": public without a token (plus the token endpoint itself, the connector
# catalog, the contract registry and the AsyncAPI document); the measure catalog and the
# contract registry are public under their prefixes.
PUBLIC = {
    "/.well-known/jwks.json",
    "/v1/log/checkpoint",
    "/v1/log/vkey",
    "/v1/log/proofs/inclusion",
    "/v1/log/proofs/consistency",
    "/v1/log/witnesses",
    "/healthz",
    "/readyz",
    "/metrics",
    "/v1/oauth/token",
    "/v1/connectors",
    "/asyncapi.json",
}
PUBLIC_PREFIXES = ("/v1/measures", "/v1/contracts")


def _public(path: str) -> bool:
    return path in PUBLIC or any(
        path == prefix or path.startswith(prefix + "/") for prefix in PUBLIC_PREFIXES
    )


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@schema.parametrize()
@schema.given(caller=st.sampled_from(CALLERS))
@FUZZ_SETTINGS
def test_fuzz_without_the_right_token(
    case: schemathesis.Case, caller: str, gateway: Gateway
) -> None:
    """No token, a token the gateway did not sign, a consumer's token without admin: the public
    endpoints answer, the others refuse with a problem (never a 5xx, never a 2xx without a
    valid token). On SQLite only: the refusals come before any database-specific work, and the
    operator's pass above runs every operation on both databases (a quarter of the suite's
    time went to fuzzing)."""
    headers: dict[str, str] = {}
    if caller == "forged":
        token = operator_token(gateway.runtime)
        head, payload, signature = token.split(".")
        headers["Authorization"] = f"Bearer {head}.{payload}.{signature[::-1]}"
    elif caller == "consumer":
        headers = bearer(gateway.runtime, "fj-picc", "subscribe ledger.read")
    response = case.call(base_url=BASE_URL, session=gateway.session, headers=headers)
    case.validate_response(response, checks=CHECKS)
    if caller != "consumer" and not _public(case.operation.path):
        assert response.status_code >= 400, f"{case.operation.label} answered without a token"


# --- The OpenAPI document describes the problems the gateway sends -----------------------


def test_every_operation_documents_its_problems() -> None:
    document = _openapi()
    assert "HTTPValidationError" not in str(document), "FastAPI's 422 is never sent"
    problem = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "code", "detail"} <= set(problem["required"])
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            content = operation["responses"]["4XX"]["content"]
            ref = content["application/problem+json"]["schema"]["$ref"]
            assert ref == "#/components/schemas/Problem", f"{method.upper()} {path}"
    batch = document["paths"]["/v1/messages/batch"]["post"]["requestBody"]
    assert batch["content"]["application/json"]["schema"]["required"] == ["messages"]
    resend = document["paths"]["/v1/messages"]["post"]["responses"]["200"]["content"]
    assert resend["application/json"]["schema"]["$ref"].endswith("/ReceiptOut")


# --- What the fuzz found: each a 500 (on PostgreSQL, or on both databases) before ----------

BIG = 2**63  # one past the largest 64-bit integer
NUL_KID_JWS = "eyJhbGciOiJFZERTQSIsImtpZCI6Ilx1MDAwMCJ9.e30.AAAA"  # header {"alg", "kid": "\u0000"}


def _regressions(subscription_id: str) -> list[tuple[str, str, Any, int, str]]:
    sub = f"/v1/subscriptions/{subscription_id}"
    return [
        # text with U+0000 anywhere a query reads it (PostgreSQL: DataError)
        ("GET", "/v1/messages/%00", None, 400, "invalid_text"),
        ("GET", "/v1/agencies/%00/rights", None, 400, "invalid_text"),
        ("GET", f"/v1/enterprises/{USCC}?purpose=%00", None, 400, "invalid_text"),
        ("GET", "/v1/ledgers/basic?after=%00", None, 400, "invalid_text"),
        ("POST", "/v1/subscriptions", {"agency_id": "\x00", "types": []}, 400, "invalid_text"),
        ("PATCH", sub, {"status": "paused", "reason": "\x00"}, 400, "invalid_text"),
        # integers beyond 64 bits (SQLite: OverflowError; PostgreSQL: bigint out of range)
        ("POST", f"{sub}/replay", {"from_index": BIG}, 400, "number_out_of_range"),
        ("POST", f"{sub}/ack", {"index": BIG}, 400, "number_out_of_range"),
        ("GET", f"{sub}/feed?after={BIG}", None, 400, "number_out_of_range"),
        ("GET", f"/v1/log/entries?start={BIG}&end={BIG + 1}", None, 400, "number_out_of_range"),
        (
            "GET",
            f"/v1/enterprises/{USCC}/access-records?before={BIG}&purpose=audit",
            None,
            400,
            "number_out_of_range",
        ),
        # a burst beyond the 32-bit column (PostgreSQL: integer out of range)
        (
            "PUT",
            "/v1/agencies/ops/rate-limit",
            {"per_second": 1, "burst": 2**31},
            400,
            "invalid_rate_limit",
        ),
        # text longer than its column (PostgreSQL: value too long)
        (
            "POST",
            "/v1/subscriptions",
            {
                "agency_id": "fj-picc",
                "types": ["grade.awarded"],
                "url": "http://127.0.0.1/" + "a" * 500,
            },
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/subscriptions",
            {"agency_id": "fj-picc", "types": ["grade.awarded"], "industry_section": "CD"},
            400,
            "invalid_request",
        ),
        ("PATCH", sub, {"status": "paused", "reason": "a" * 301}, 400, "invalid_request"),
        # times without an offset, or out of range once in UTC (ValueError, OverflowError)
        ("POST", f"{sub}/replay", {"since": "2026-01-01T00:00:00"}, 400, "invalid_request"),
        ("POST", f"{sub}/replay", {"since": "0001-01-01T00:00:00+14:00"}, 400, "invalid_request"),
        # a date whose 12 months before do not exist (OverflowError)
        ("GET", f"/v1/enterprises/{USCC}/measures?on=0001-01-01", None, 400, "invalid_date"),
        # a client assertion naming a kid with U+0000
        (
            "POST",
            "/v1/oauth/token",
            "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion="
            + NUL_KID_JWS,
            401,
            "unknown_key",
        ),
        # Starlette's and FastAPI's own refusals, once {"detail": ...}
        ("GET", "/v1/nowhere", None, 404, "not_found"),
        ("DELETE", "/v1/messages/batch", None, 405, "method_not_allowed"),
        ("POST", f"{sub}/ack", b"\xff", 400, "invalid_request"),
    ]


def test_what_the_fuzz_found_is_a_problem_on_both_databases(seeded: Gateway) -> None:
    admin = {"Authorization": f"Bearer {operator_token(seeded.runtime)}"}
    for method, url, body, status, code in _regressions(seeded.known["subscription_id"][0]):
        headers = dict(admin)
        if isinstance(body, str):
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            content = body.encode()
        elif isinstance(body, bytes):
            headers["Content-Type"] = "application/json"
            content = body
        else:
            headers["Content-Type"] = "application/json"
            content = json.dumps(body).encode() if body is not None else None
        response = seeded.client.request(method, url, content=content, headers=headers)
        label = f"{method} {url[:80]}"
        assert response.status_code == status, f"{label}: {response.text}"
        assert response.headers["content-type"] == problem_media_type(url, status), label
        assert response.json()["code"] == code, f"{label}: {response.text}"
        if status == 405:
            assert response.headers["allow"] == "POST"
