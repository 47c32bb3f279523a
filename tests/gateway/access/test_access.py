"""OAuth client credentials with private_key_jwt, and scoped bearer tokens (protocol.md §6).

Each attack of the access issue that concerns tokens is a test here, refused with a stable code."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from gateway_factories import Publisher, operator_token, register_publisher
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jwt as jwcrypto_jwt
from sqlalchemy import select

from gateway.access.assertion import make_client_assertion
from gateway.access.tokens import ASSERTION_TYPE
from gateway.models import AccessRecord
from gateway.registry.scopes import grant_scopes
from gateway.runtime import Runtime
from keys.base64url import b64url_encode
from keys.jws import sign_compact
from keys.suites import get_suite

AUDIENCE = "http://testserver/v1/oauth/token"


@pytest.fixture
def bank(runtime: Runtime) -> Publisher:
    agency = register_publisher(
        runtime, "fj-cib", ["measure.applied"], roles=["bank"], subscribe=["grade.revoked"]
    )
    with runtime.db.transaction() as session:
        grant_scopes(session, runtime.signer, "fj-cib", ["subscribe", "query"], runtime.clock.now())
    return agency


def ask(client: TestClient, assertion: str, scope: str | None = None) -> Any:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    if scope:
        form["scope"] = scope
    client.headers.pop("authorization", None)
    return client.post("/v1/oauth/token", data=form)


def claims(runtime: Runtime, **overrides: Any) -> dict[str, Any]:
    now = int(runtime.clock.now().timestamp())
    base = {
        "iss": "fj-cib",
        "sub": "fj-cib",
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 60,
        "jti": str(uuid.uuid4()),
    }
    return base | overrides


def signed(bank: Publisher, body: dict[str, Any]) -> str:
    return sign_compact(json.dumps(body).encode(), bank.key, typ="JWT")


def test_token_is_issued_and_verifies_with_jwcrypto(
    client: TestClient, bank: Publisher, runtime: Runtime
) -> None:
    now = runtime.clock.now()
    response = ask(client, make_client_assertion(bank.key, "fj-cib", AUDIENCE, now), "subscribe")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "subscribe"
    keyset = jwcrypto_jwk.JWKSet.from_json(json.dumps(client.get("/.well-known/jwks.json").json()))
    token = jwcrypto_jwt.JWT(
        jwt=body["access_token"],
        key=keyset,
        algs=["EdDSA"],
        check_claims=False,  # the test clock is in the past; exp is checked by the gateway
        expected_type="JWS",
    )
    parsed = json.loads(token.claims)
    assert parsed["sub"] == "fj-cib"
    assert parsed["scope"] == "subscribe"


def _alg_none(bank: Publisher, runtime: Runtime) -> str:
    head = b64url_encode(json.dumps({"alg": "none", "kid": bank.key.kid}).encode())
    return f"{head}.{b64url_encode(json.dumps(claims(runtime)).encode())}."


def _hs256(bank: Publisher, runtime: Runtime) -> str:
    head = b64url_encode(json.dumps({"alg": "HS256", "kid": bank.key.kid}).encode())
    body = b64url_encode(json.dumps(claims(runtime)).encode())
    secret = json.dumps(bank.key.public_key.jwk()).encode()
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url_encode(mac)}"


def _other_key(bank: Publisher, runtime: Runtime) -> str:
    stranger = get_suite("ed25519").generate()
    token = signed(bank, claims(runtime))
    head, body, _ = token.split(".")
    return f"{head}.{body}.{b64url_encode(stranger.sign(f'{head}.{body}'.encode()))}"


ATTACKS = {
    "expired assertion": (
        lambda b, r: signed(b, claims(r, exp=claims(r)["iat"] - 1)),
        401,
        "assertion_expired",
    ),
    "exp more than 5 minutes ahead": (
        lambda b, r: signed(b, claims(r, exp=claims(r)["iat"] + 3600)),
        401,
        "assertion_too_long",
    ),
    "wrong audience": (
        lambda b, r: signed(b, claims(r, aud="https://elsewhere.example/token")),
        401,
        "wrong_audience",
    ),
    "iss is another agency": (
        lambda b, r: signed(b, claims(r, iss="fj-picc", sub="fj-picc")),
        401,
        "issuer_mismatch",
    ),
    "alg none": (_alg_none, 401, "algorithm_not_allowed"),
    "HS256 keyed with the public key": (_hs256, 401, "algorithm_not_allowed"),
    "signed by another key": (_other_key, 401, "signature_invalid"),
    "unknown kid": (
        lambda b, r: sign_compact(
            json.dumps(claims(r)).encode(), get_suite("ed25519").generate(), typ="JWT"
        ),
        401,
        "unknown_key",
    ),
    "not a JWT": (lambda b, r: "hello", 401, "malformed_assertion"),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_bad_assertions_are_refused(
    client: TestClient, bank: Publisher, runtime: Runtime, attack: str
) -> None:
    make, status, code = ATTACKS[attack]
    response = ask(client, make(bank, runtime))
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert response.json()["error"] == "invalid_client"
    assert_oauth_error(response)
    with runtime.db.reader() as session:  # recorded, with whom it claimed to be
        record = session.scalars(select(AccessRecord).where(AccessRecord.action == "token")).one()
    assert record.result == code
    assert record.agency_id is None
    if attack != "not a JWT":
        assert str(record.purpose).startswith("claimed iss ")


def test_replayed_assertion_is_refused(
    client: TestClient, bank: Publisher, runtime: Runtime
) -> None:
    assertion = make_client_assertion(bank.key, "fj-cib", AUDIENCE, runtime.clock.now())
    assert ask(client, assertion).status_code == 200
    again = ask(client, assertion)
    assert again.status_code == 401
    assert again.json()["code"] == "assertion_replayed"


def test_scope_not_granted_is_refused(
    client: TestClient, bank: Publisher, runtime: Runtime
) -> None:
    assertion = make_client_assertion(bank.key, "fj-cib", AUDIENCE, runtime.clock.now())
    response = ask(client, assertion, "admin")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    assert_oauth_error(response)


def assert_oauth_error(response: Any) -> None:
    """RFC 6749 §5.2: application/json (not problem+json, which strict OAuth clients do not
    parse), `error` and `error_description`, never cached."""
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["error"] in {"invalid_client", "invalid_scope", "unsupported_grant_type"}
    assert body["error_description"] == body["detail"]


def test_unsupported_grant_type_is_an_oauth_error(client: TestClient) -> None:
    response = client.post("/v1/oauth/token", data={"grant_type": "password"})
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"
    assert_oauth_error(response)


def test_a_token_answer_is_never_cached(
    client: TestClient, bank: Publisher, runtime: Runtime
) -> None:
    response = ask(client, make_client_assertion(bank.key, "fj-cib", AUDIENCE, runtime.clock.now()))
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert set(response.json()) == {"access_token", "token_type", "expires_in", "scope"}


def test_protected_endpoints_need_a_valid_token_with_the_scope(
    client: TestClient, bank: Publisher, runtime: Runtime
) -> None:
    operator = client.headers["authorization"]
    sub = client.post(
        "/v1/subscriptions", json={"agency_id": "fj-cib", "url": None, "types": ["grade.revoked"]}
    ).json()
    other = register_publisher(
        runtime, "fj-picc", ["measure.applied"], roles=["insurer"], subscribe=["grade.revoked"]
    )
    assert other
    theirs = client.post(
        "/v1/subscriptions", json={"agency_id": "fj-picc", "url": None, "types": ["grade.revoked"]}
    ).json()
    feed = f"/v1/subscriptions/{sub['id']}/feed"

    client.headers.pop("authorization")
    assert client.get(feed).json()["code"] == "missing_token"

    def with_token(token: str) -> dict[str, str]:
        return {"authorization": f"Bearer {token}"}

    bank_token = operator_token(runtime, "subscribe", "fj-cib")
    assert client.get(feed, headers=with_token(bank_token)).status_code == 200
    # agency A reading agency B's feed
    stolen = client.get(f"/v1/subscriptions/{theirs['id']}/feed", headers=with_token(bank_token))
    assert stolen.status_code == 403
    assert stolen.json()["code"] == "not_your_subscription"
    with runtime.db.reader() as session:
        feed_reads = [
            (r.agency_id, r.result)
            for r in session.scalars(select(AccessRecord).where(AccessRecord.action == "feed"))
        ]
    assert feed_reads == [("fj-cib", "ok"), ("fj-cib", "not_your_subscription")]
    # missing scope
    query_only = operator_token(runtime, "query", "fj-cib")
    response = client.get(feed, headers=with_token(query_only))
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"
    # an agency lists its own subscriptions only (issue 23 §4: self-service)
    own = client.get("/v1/subscriptions", headers=with_token(bank_token)).json()["items"]
    assert {s["agency_id"] for s in own} == {"fj-cib"}
    # expired token
    runtime.clock.advance(days=41)  # type: ignore[attr-defined]
    expired = client.get(feed, headers=with_token(bank_token))
    assert expired.status_code == 401
    assert expired.json()["code"] == "invalid_token"
    # a token signed by some other key
    forged = sign_compact(
        json.dumps({"sub": "fj-cib", "aud": "gateway", "scope": "admin", "exp": 2**40}).encode(),
        get_suite("ed25519").generate(),
        typ="at+jwt",
    )
    assert client.get(feed, headers=with_token(forged)).json()["code"] == "invalid_token"
    assert operator.startswith("Bearer ")


@pytest.mark.parametrize(
    ("path", "scope"),
    [
        ("/v1/ledgers/basic", "ledger.read"),
        ("/v1/ledgers/basic/export.csv", "ledger.read"),
        ("/v1/agencies", "admin"),
        ("/v1/log/entries?start=0&end=1", "ledger.read"),
        ("/v1/subscriptions", "admin"),
    ],
)
def test_non_public_reads_need_a_token_with_their_scope(
    client: TestClient, runtime: Runtime, path: str, scope: str
) -> None:
    client.headers.pop("authorization")
    assert client.get(path).status_code == 401
    wrong = "query" if scope != "query" else "subscribe"
    denied = client.get(
        path, headers={"authorization": f"Bearer {operator_token(runtime, wrong, 'x')}"}
    )
    assert denied.status_code == 403
    allowed = client.get(
        path, headers={"authorization": f"Bearer {operator_token(runtime, scope, 'x')}"}
    )
    assert allowed.status_code == 200, allowed.text


@pytest.mark.parametrize(
    "path",
    [
        "/.well-known/jwks.json",
        "/v1/log/checkpoint",
        "/v1/log/vkey",
        "/healthz",
        "/v1/measures?region=350203",
    ],
)
def test_public_endpoints_need_no_token(client: TestClient, path: str) -> None:
    client.headers.pop("authorization")
    assert client.get(path).status_code == 200


def test_publishing_needs_the_signers_own_token(
    client: TestClient, authority: Publisher, bank: Publisher, runtime: Runtime
) -> None:
    """A publish token speaks for one agency: no token, a token without `publish`, or another
    agency's token (even an admin's) is refused, and nothing is stored."""
    from gateway_factories import bearer, snapshot

    token = authority.message("enterprise.registered")
    jose = {"Content-Type": "application/jose"}
    before = snapshot(runtime)
    client.headers.pop("authorization", None)
    cases = [
        ({}, 401, "missing_token"),
        (bearer(runtime, authority.agency_id, "query"), 403, "insufficient_scope"),
        (bearer(runtime, "fj-cib", "publish"), 403, "key_not_caller"),
        (bearer(runtime, "ops", "admin"), 403, "key_not_caller"),
    ]
    for auth, status, code in cases:
        response = client.post("/v1/messages", content=token, headers={**jose, **auth})
        assert (response.status_code, response.json()["code"]) == (status, code), auth
        assert response.headers["content-type"].startswith("application/problem+json")
    assert snapshot(runtime) == before
    batch = client.post(  # per item: the bank's message in the authority's batch is refused
        "/v1/messages/batch",
        json={"messages": [bank.message("measure.applied").decode(), token.decode()]},
        headers=bearer(runtime, authority.agency_id),
    )
    results = batch.json()["results"]
    assert results[0]["problem"]["code"] == "key_not_caller"
    assert results[1]["status"] == 201
    assert snapshot(runtime)["log_size"] == before["log_size"] + 1
