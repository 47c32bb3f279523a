"""Issue 20, finding 9: a token minted before `gateway key revoke` kept working until its
expiry. Revoking a key now refuses every token obtained with it (`401 token_revoked`) within
about a second, in every API process (the registry's revocation time, read again at most
every `REFRESH_SECONDS`), and leaves the tokens of the agency's other keys alone."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from gateway_factories import Publisher, operator_token, register_publisher
from sqlalchemy import select

from gateway.access import revocations
from gateway.access.assertion import ASSERTION_TYPE, make_client_assertion
from gateway.models import AccessRecord
from gateway.registry import service
from gateway.registry.scopes import grant_scopes
from gateway.runtime import Runtime
from keys.suites import SigningKey, get_suite

AUDIENCE = "http://testserver/v1/oauth/token"
FEED = "/v1/subscriptions/00000000-0000-0000-0000-000000000000/feed"  # 404 once admitted


@pytest.fixture(autouse=True)
def quick_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(revocations, "REFRESH_SECONDS", 0.05)


@pytest.fixture
def bank(runtime: Runtime) -> Publisher:
    agency = register_publisher(runtime, "fj-cib", ["measure.applied"], roles=["bank"])
    with runtime.db.transaction() as session:
        grant_scopes(session, runtime.signer, "fj-cib", ["subscribe"], runtime.clock.now())
    return agency


def second_key(runtime: Runtime) -> SigningKey:
    key = get_suite("ed25519").generate()
    with runtime.db.transaction() as session:
        service.add_key(
            session,
            runtime.signer,
            agency_id="fj-cib",
            jwk=key.public_key.jwk(),
            suite="ed25519",
            valid_from=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
            now=runtime.clock.now(),
        )
    return key


def log_in(client: TestClient, runtime: Runtime, key: SigningKey) -> str:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": make_client_assertion(key, "fj-cib", AUDIENCE, runtime.clock.now()),
    }
    response = client.post("/v1/oauth/token", data=form, headers={"authorization": ""})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def call(client: TestClient, token: str) -> Any:
    return client.get(FEED, headers={"authorization": f"Bearer {token}"})


def revoke(runtime: Runtime, kid: str) -> None:
    with runtime.db.transaction() as session:
        service.revoke_key(session, runtime.signer, kid=kid, reason="lost", now=runtime.clock.now())


def refused_within(client: TestClient, token: str, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        response = call(client, token)
        if response.status_code == 401 or time.monotonic() > deadline:
            return response
        time.sleep(0.02)


def test_a_token_obtained_with_a_revoked_key_is_refused_at_once(
    client: TestClient, bank: Publisher, runtime: Runtime
) -> None:
    token = log_in(client, runtime, bank.key)
    assert call(client, token).status_code == 404  # admitted: no such subscription
    revoke(runtime, bank.key.kid)
    response = refused_within(client, token, 2)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["code"], problem["error"]) == ("token_revoked", "invalid_token")
    with runtime.db.reader() as session:
        refusal = session.scalars(select(AccessRecord).order_by(AccessRecord.id.desc())).first()
    assert refusal is not None
    assert (refusal.agency_id, refusal.result) == ("fj-cib", "token_revoked")


def test_the_agencys_other_keys_keep_their_tokens(
    client: TestClient, bank: Publisher, runtime: Runtime
) -> None:
    other = second_key(runtime)
    revoked, kept = log_in(client, runtime, bank.key), log_in(client, runtime, other)
    revoke(runtime, bank.key.kid)
    assert refused_within(client, revoked, 2).status_code == 401
    assert call(client, kept).status_code == 404
    assert call(client, log_in(client, runtime, other)).status_code == 404


def test_a_token_without_its_key_is_refused_once_a_key_of_its_agency_is_revoked_after_it(
    client: TestClient, bank: Publisher, runtime: Runtime
) -> None:
    """Tokens minted before they named their key: the agency's latest revocation decides."""
    before = operator_token(runtime, "subscribe", "fj-cib")
    runtime.clock.advance(seconds=5)  # type: ignore[attr-defined]
    revoke(runtime, bank.key.kid)
    after = operator_token(runtime, "subscribe", "fj-cib")
    assert refused_within(client, before, 2).json()["code"] == "token_revoked"
    assert call(client, after).status_code == 404


def test_a_revocation_by_another_process_holds_within_the_refresh(
    client: TestClient, bank: Publisher, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`gateway key revoke` runs in a process of its own: each API process reads the
    registry again at most every REFRESH_SECONDS, never on the request's own time."""
    monkeypatch.setattr(revocations, "REFRESH_SECONDS", 0.5)
    token = log_in(client, runtime, bank.key)
    assert call(client, token).status_code == 404
    revoke(runtime, bank.key.kid)  # through the test's own runtime: another connection pool
    began = time.monotonic()
    response = refused_within(client, token, 3)
    assert response.status_code == 401
    assert time.monotonic() - began < 2
