"""The happy path of protocol.md §1-2: publish, receipt, idempotent resend, stored bytes."""

from __future__ import annotations

import json

from contract_factories import USCC, make_award, make_registration
from fastapi.testclient import TestClient
from gateway_factories import Publisher, bearer, publish, snapshot

from gateway.runtime import Runtime
from keys import jws
from keys.jwks import key_from_jwks


def test_publish_returns_signed_receipt_and_stores_exact_bytes(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    token = authority.message("enterprise.registered", make_registration())
    response = publish(client, token)
    assert response.status_code == 201, response.text
    body = response.json()

    jwks = client.get("/.well-known/jwks.json").json()
    parsed = jws.parse_compact(body["receipt"])
    assert parsed.header["typ"] == "gateway-receipt+jws"
    jws.verify_compact(parsed, key_from_jwks(jwks, str(parsed.header["kid"])))
    claims = json.loads(parsed.payload)
    assert claims["message_id"] == body["message_id"]
    assert claims["index"] == body["index"]
    assert claims["leaf_hash"] == body["leaf_hash"]
    assert claims["accepted_at"].startswith("2026-11-01T08:00:00")

    issuer = bearer(runtime, "fj-yjt", "ledger.read")  # its own message: whole (finding 8)
    stored = client.get(f"/v1/messages/{body['message_id']}", headers=issuer).json()
    assert stored["jws"].encode() == token
    assert stored["index"] == body["index"]
    assert snapshot(runtime)["enterprises"] == [(USCC, "none", None, "新增")]


def test_identical_resend_gets_same_receipt_and_changes_nothing(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    publish(client, authority.message("enterprise.registered", make_registration()))
    token = authority.message("grade.awarded", make_award())
    first = publish(client, token)
    assert first.status_code == 201, first.text
    before = snapshot(runtime)
    again = publish(client, token)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert snapshot(runtime) == before
    assert before["enterprises"] == [(USCC, "active", "2", "达标")]
