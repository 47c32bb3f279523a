"""What the access review found, each a test: client assertions from the future or with
numbers beyond range, audiences taken from a request header, snapshots open to any
subscriber, and admin input that could not be stored (protocol.md §6)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from gateway_factories import AGENCY_USCC, Publisher, register_publisher
from sqlalchemy import select

from gateway.access.tokens import ASSERTION_TYPE
from gateway.models import AccessRecord
from gateway.registry.scopes import grant_scopes
from gateway.runtime import Runtime
from keys.jws import sign_compact

AUDIENCE = "http://testserver/v1/oauth/token"


@pytest.fixture
def bank(runtime: Runtime) -> Publisher:
    agency = register_publisher(runtime, "fj-cib", [], roles=["bank"])
    with runtime.db.transaction() as session:
        grant_scopes(session, runtime.signer, "fj-cib", ["query"], runtime.clock.now())
    return agency


def login(
    client: TestClient,
    bank: Publisher,
    runtime: Runtime,
    headers: dict[str, str] | None = None,
    **claims: Any,
) -> Any:
    """POST /v1/oauth/token with an assertion signed by the bank's key (claims overridden;
    None leaves a claim out)."""
    now = int(runtime.clock.now().timestamp())
    body = {
        "iss": "fj-cib",
        "sub": "fj-cib",
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 60,
        "jti": str(uuid.uuid4()),
    } | claims
    present = {name: value for name, value in body.items() if value is not None}
    assertion = sign_compact(json.dumps(present).encode(), bank.key, typ="JWT")
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    client.headers.pop("authorization", None)
    return client.post("/v1/oauth/token", data=form, headers=headers)


def token_refusals(runtime: Runtime) -> list[str]:
    with runtime.db.reader() as session:
        return list(
            session.scalars(
                select(AccessRecord.result)
                .where(AccessRecord.action == "token")
                .order_by(AccessRecord.id)
            )
        )


def test_assertions_not_yet_valid_or_issued_in_the_future_are_refused(
    client: TestClient, bank: Publisher, runtime: Runtime
) -> None:
    """RFC 7523 §3: not before `nbf`, nor issued (`iat`) later than now, a minute's skew
    allowed either way."""
    now = int(runtime.clock.now().timestamp())
    cases = [
        ({"nbf": now + 240, "exp": now + 299}, "assertion_not_yet_valid"),
        ({"iat": now + 10**6}, "assertion_not_yet_valid"),
        ({"nbf": "soon"}, "malformed_assertion"),
        ({"iat": float("nan")}, "malformed_assertion"),
    ]
    for claims, code in cases:
        refused = login(client, bank, runtime, **claims)
        assert (refused.status_code, refused.json()["code"]) == (401, code), claims
    # identical refusals (same claimed agency and code) are one record with a count
    assert token_refusals(runtime) == ["assertion_not_yet_valid", "malformed_assertion"]
    client.app.state.runtime.refusals.flush(runtime.db)  # type: ignore[attr-defined]
    with runtime.db.reader() as session:
        assert list(
            session.scalars(select(AccessRecord.count).where(AccessRecord.action == "token"))
        ) == [2, 2]
    within_skew = login(client, bank, runtime, nbf=now + 30, iat=now + 30)
    assert within_skew.status_code == 200, within_skew.text
    no_iat = login(client, bank, runtime, iat=None)
    assert no_iat.status_code == 200, no_iat.text


@pytest.mark.parametrize("exp", [1e20, -1e20, float("inf"), float("nan")])
def test_an_exp_beyond_any_date_is_a_malformed_assertion_not_a_500(
    client: TestClient, bank: Publisher, runtime: Runtime, exp: float
) -> None:
    refused = login(client, bank, runtime, exp=exp)
    assert (refused.status_code, refused.json()["code"]) == (401, "malformed_assertion")
    assert token_refusals(runtime) == ["malformed_assertion"]


def test_the_audience_never_comes_from_the_host_header(
    client: TestClient, bank: Publisher, runtime: Runtime
) -> None:
    """Without GATEWAY_PUBLIC_URL the token endpoint is named by the address the server
    listens on (the test client's `testserver`), whatever `Host` the request sends: an
    assertion made for another relying party stays refused there."""
    elsewhere = "http://rp.other.example/v1/oauth/token"
    forged_host = {"host": "rp.other.example"}
    replayed = login(client, bank, runtime, aud=elsewhere, headers=forged_host)
    assert (replayed.status_code, replayed.json()["code"]) == (401, "wrong_audience")
    ours = login(client, bank, runtime, aud=AUDIENCE, headers=forged_host)
    assert ours.status_code == 200, ours.text


def test_a_configured_public_url_is_the_only_audience(
    settings: Any, clock: Any, bank: Publisher, runtime: Runtime
) -> None:
    from gateway.app import create_app

    public = settings.model_copy(update={"public_url": "https://gateway.example/"})
    with TestClient(create_app(public, clock=clock)) as public_client:
        local = login(public_client, bank, runtime, aud=AUDIENCE)
        assert (local.status_code, local.json()["code"]) == (401, "wrong_audience")
        named = login(public_client, bank, runtime, aud="https://gateway.example/v1/oauth/token")
        assert named.status_code == 200, named.text


@pytest.mark.parametrize(
    ("server", "audience"),
    [
        (("127.0.0.1", 8000), "http://127.0.0.1:8000/v1/oauth/token"),
        (("127.0.0.1", "8000"), "http://127.0.0.1:8000/v1/oauth/token"),  # Granian's text port
        (("10.0.0.7", "80"), "http://10.0.0.7/v1/oauth/token"),
        (("::1", 8000), "http://[::1]:8000/v1/oauth/token"),
        (("0.0.0.0", "8000"), None),  # Granian reports the wildcard it is bound to
        (("::", "8000"), None),
        (None, None),  # a Unix socket
    ],
)
def test_the_audience_names_the_servers_address_never_a_wildcard(
    runtime: Runtime, server: tuple[str, Any] | None, audience: str | None
) -> None:
    """Without GATEWAY_PUBLIC_URL: the address the server reports, whichever server it is
    (uvicorn gives the connection's address and integer ports; Granian its bound address and
    ports as text); a wildcard names no endpoint a client could put in `aud`."""
    from starlette.requests import Request

    from gateway.access.routes import token_audience

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [], "server": server}
    assert token_audience(Request(scope), runtime) == audience


def test_snapshots_are_for_the_market_regulator_and_each_download_is_recorded(
    client: TestClient, runtime: Runtime, authority: Publisher
) -> None:
    from contract_factories import make_registration
    from gateway_factories import allow_subscribe, bearer, publish

    from connectors import CONNECTORS

    assert publish(client, authority.message("enterprise.registered", make_registration()))
    assert client.post("/v1/connectors/market_regulator/snapshots").status_code == 201
    register_publisher(runtime, "fj-ins", [], roles=["insurer"])
    register_publisher(runtime, "fj-scjg", [], roles=["market_regulator"])
    url = "/v1/connectors/market_regulator/snapshots"
    # issue 20 finding 7: without the connector's subscribe rights, no snapshot either
    regulator = bearer(runtime, "fj-scjg", "subscribe")
    bare = client.get(url, headers=regulator)
    assert (bare.status_code, bare.json()["code"]) == (403, "not_permitted")
    allow_subscribe(runtime, "fj-scjg", sorted(CONNECTORS["market_regulator"].types))
    insurer = bearer(runtime, "fj-ins", "subscribe")
    listing = client.get(url, headers=insurer)
    assert (listing.status_code, listing.json()["code"]) == (403, "view_not_permitted")
    name = client.get(url, headers=regulator).json()["snapshots"][0]["data"]
    stolen = client.get(f"{url}/{name}", headers=insurer)
    assert (stolen.status_code, stolen.json()["code"]) == (403, "view_not_permitted")
    assert client.get(f"{url}/{name}", headers=regulator).status_code == 200
    assert client.get(f"{url}/{name}").status_code == 200  # an operator
    with runtime.db.reader() as session:
        rows = session.scalars(
            select(AccessRecord).where(AccessRecord.action == "snapshot").order_by(AccessRecord.id)
        )
        seen = [(r.agency_id, r.purpose, r.result) for r in rows]
    assert seen == [
        ("fj-scjg", "snapshot list", "not_permitted"),
        ("fj-ins", "snapshot list", "view_not_permitted"),
        ("fj-ins", f"snapshot {name}", "view_not_permitted"),
        ("fj-scjg", f"snapshot {name}", "ok"),
        ("ops", f"snapshot {name}", "ok"),
    ]


@pytest.mark.parametrize(
    "body", ['{"per_second": NaN, "burst": 5}', '{"per_second": Infinity, "burst": 5}']
)
def test_a_rate_limit_must_be_a_finite_number(
    client: TestClient, bank: Publisher, body: str
) -> None:
    """Infinity was stored as no limit at all (and read back as null), NaN was a 500."""
    refused = client.put(
        "/v1/agencies/fj-cib/rate-limit",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert (refused.status_code, refused.json()["code"]) == (400, "invalid_rate_limit")
    assert client.get("/v1/agencies/fj-cib/rights").json()["rate_limit"] is None


def test_the_cli_refuses_a_view_that_names_no_field(
    tmp_path: Any, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--query standing=` was granted as the whole contract; the API refuses an empty view."""
    from typer.testing import CliRunner

    from gateway.cli import app

    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GATEWAY_DATABASE_URL", database_url)
    runner = CliRunner()
    assert runner.invoke(app, ["init"]).exit_code == 0
    added = runner.invoke(
        app,
        ["agency", "add", "fj-cib", "--name", "CIB", "--uscc", AGENCY_USCC, "--role", "bank"],
    )
    assert added.exit_code == 0, added.output
    for spec in ("standing=", "standing= ,"):
        refused = runner.invoke(app, ["agency", "grant", "fj-cib", "--query", spec])
        assert refused.exit_code == 1, refused.output
        assert "names no field" in refused.output
    rights = runner.invoke(app, ["agency", "rights", "fj-cib", "--json"])
    assert json.loads(rights.output)["query"] == {}
    granted = runner.invoke(app, ["agency", "grant", "fj-cib", "--query", "standing=grade.level"])
    assert granted.exit_code == 0, granted.output


def test_forwarded_headers_never_change_the_audience(
    settings: Any, clock: Any, bank: Publisher, runtime: Runtime
) -> None:
    """Issue 20 finding 10: uvicorn trusts X-Forwarded-Proto from 127.0.0.1 by default, and an
    assertion for https://… (or ws://…) was accepted. The audience is the listening socket's,
    plain http, whatever a request claims; `gateway serve` trusts forwarded headers only from
    GATEWAY_FORWARDED_ALLOW_IPS."""
    import httpx
    from loopback import serving

    from gateway.app import create_app

    with serving(create_app(settings, clock=clock)) as base:
        host = base.removeprefix("http://")
        now = int(runtime.clock.now().timestamp())

        def login_over(aud: str, proto: str) -> httpx.Response:
            claims = {"iss": "fj-cib", "sub": "fj-cib", "aud": aud, "iat": now}
            claims |= {"exp": now + 60, "jti": str(uuid.uuid4())}
            assertion = sign_compact(json.dumps(claims).encode(), bank.key, typ="JWT")
            form = {
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion,
            }
            return httpx.post(
                f"{base}/v1/oauth/token", data=form, headers={"x-forwarded-proto": proto}
            )

        for scheme in ("https", "ws"):
            forged = login_over(f"{scheme}://{host}/v1/oauth/token", scheme)
            assert (forged.status_code, forged.json()["code"]) == (401, "wrong_audience")
        assert login_over(f"http://{host}/v1/oauth/token", "https").status_code == 200


def test_gateway_serve_trusts_forwarded_headers_only_from_the_proxies_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    import uvicorn
    from typer.testing import CliRunner

    from gateway.cli import app

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: seen.update(kwargs))
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
    assert CliRunner().invoke(app, ["serve", "--port", "8765"]).exit_code == 0
    assert (seen["proxy_headers"], seen["forwarded_allow_ips"]) == (False, None)
    monkeypatch.setenv("GATEWAY_FORWARDED_ALLOW_IPS", "10.0.0.5")
    assert CliRunner().invoke(app, ["serve", "--port", "8765"]).exit_code == 0
    assert (seen["proxy_headers"], seen["forwarded_allow_ips"]) == (True, "10.0.0.5")


def test_gateway_serve_runs_httptools_on_uvloop(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """Issue 24 §1: the C parser and libuv loop, named so that a missing extra fails at start
    rather than falling back to h11 and asyncio unseen; and both importable here."""
    import httptools  # noqa: F401
    import uvicorn
    import uvloop  # noqa: F401
    from typer.testing import CliRunner

    from gateway.cli import app

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: seen.update(kwargs))
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
    assert CliRunner().invoke(app, ["serve", "--port", "8765"]).exit_code == 0
    assert (seen["http"], seen["loop"]) == ("httptools", "uvloop")
