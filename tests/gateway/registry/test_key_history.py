"""Registry changes are gateway-signed entries of the same log (issue 3 §7): which key was
valid when can be proven later from the log alone."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from gateway_factories import Publisher

from gateway.registry import service
from gateway.runtime import Runtime
from keys import jws
from keys.jwks import key_from_jwks


def test_agency_key_and_revocation_are_signed_log_entries(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    with runtime.db.transaction() as session:
        service.revoke_key(
            session, runtime.signer, kid=authority.key.kid, reason="lost", now=runtime.clock.now()
        )
    size = int(client.get("/v1/log/checkpoint").text.split("\n")[1])
    entries = client.get(f"/v1/log/entries?start=0&end={size}").json()["entries"]
    jwks = client.get("/.well-known/jwks.json").json()
    seen = []
    for entry in entries:
        assert entry["kind"] == "gateway"
        parsed = jws.parse_compact(entry["jws"])
        assert parsed.header["typ"] == "gateway-entry+jws"
        jws.verify_compact(parsed, key_from_jwks(jwks, str(parsed.header["kid"])))
        claims = json.loads(parsed.payload)
        seen.append((claims["type"], claims["data"].get("kid")))
    assert seen[0][0] == "gateway.catalog.published"  # the shipped catalog, at first start
    assert [t for t, _ in seen[1:]] == [
        "gateway.agency.registered",
        "gateway.rights.granted",
        "gateway.key.added",
        "gateway.key.revoked",
    ]
    assert seen[3][1] == seen[4][1] == authority.key.kid
