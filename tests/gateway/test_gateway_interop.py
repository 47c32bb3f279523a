"""Interoperability: messages signed by independent JOSE libraries are accepted, and our
receipts verify with them against our JWKS (protocol.md §1-2)."""

from __future__ import annotations

import json

import pytest
from contract_factories import make_registration
from fastapi.testclient import TestClient
from gateway_factories import Publisher, publish, register_publisher
from joserfc import jws as joserfc_jws
from joserfc.jwk import KeySet, OKPKey
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jws as jwcrypto_jws

from gateway.registry import service
from gateway.runtime import Runtime


def _register_their_key(
    runtime: Runtime, agency_id: str, public_jwk: dict[str, str], suite: str
) -> None:
    with runtime.db.transaction() as session:
        service.add_agency(
            session,
            runtime.signer,
            agency_id=agency_id,
            name=agency_id,
            uscc="11350000MB0000019N",
            roles=["grading_authority"],
            now=runtime.clock.now(),
        )
        service.grant_publish(
            session, runtime.signer, agency_id, ["enterprise.registered"], runtime.clock.now()
        )
        service.add_key(
            session,
            runtime.signer,
            agency_id=agency_id,
            jwk=public_jwk,
            suite=suite,
            now=runtime.clock.now(),
            valid_from=runtime.clock.now().replace(year=2020),
        )


def test_message_signed_with_jwcrypto_es256_is_accepted(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    key = jwcrypto_jwk.JWK.generate(kty="EC", crv="P-256")
    public = json.loads(key.export_public())
    _register_their_key(runtime, "jwcrypto-agency", public, "es256")
    envelope = authority.envelope(
        "enterprise.registered", make_registration(), issuer="jwcrypto-agency"
    )
    token = jwcrypto_jws.JWS(json.dumps(envelope).encode())
    token.add_signature(
        key,
        alg="ES256",
        protected=json.dumps(
            {"alg": "ES256", "kid": key.thumbprint(), "typ": "gateway-message+jws"}
        ),
    )
    response = publish(client, token.serialize(compact=True).encode())
    assert response.status_code == 201, response.text


def test_message_signed_with_joserfc_ed25519_is_accepted(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    key = OKPKey.generate_key("Ed25519")
    public = key.as_dict(private=False)
    _register_their_key(runtime, "joserfc-agency", public, "ed25519")
    envelope = authority.envelope(
        "enterprise.registered", make_registration(), issuer="joserfc-agency"
    )
    # RFC 9864's fully-specified name: joserfc signs with it without a deprecation warning.
    header = {"alg": "Ed25519", "kid": key.thumbprint(), "typ": "gateway-message+jws"}
    token = joserfc_jws.serialize_compact(
        header, json.dumps(envelope).encode(), key, algorithms=["Ed25519"]
    )
    response = publish(client, token.encode())
    assert response.status_code == 201, response.text


def test_receipt_verifies_with_jwcrypto_and_joserfc(
    client: TestClient, authority: Publisher
) -> None:
    body = publish(client, authority.message("enterprise.registered", make_registration())).json()
    jwks = client.get("/.well-known/jwks.json").json()

    keyset = jwcrypto_jwk.JWKSet.from_json(json.dumps(jwks))
    verified = jwcrypto_jws.JWS()
    verified.deserialize(body["receipt"])
    verified.verify(keyset, alg="EdDSA")
    assert json.loads(verified.payload)["leaf_hash"] == body["leaf_hash"]

    theirs = KeySet.import_key_set(jwks)
    with pytest.warns(Warning, match="RFC 9864"):
        result = joserfc_jws.deserialize_compact(body["receipt"], theirs, algorithms=["EdDSA"])
    assert json.loads(result.payload)["index"] == body["index"]


def test_es256_agency_through_our_own_key_file(client: TestClient, runtime: Runtime) -> None:
    bank = register_publisher(runtime, "es-agency", ["enterprise.registered"], suite="es256")
    response = publish(client, bank.message("enterprise.registered", make_registration()))
    assert response.status_code == 201, response.text


def test_sm2_agency_is_verified_through_gmssl(client: TestClient, runtime: Runtime) -> None:
    national = register_publisher(runtime, "sm2-agency", ["enterprise.registered"], suite="sm2-sm3")
    response = publish(client, national.message("enterprise.registered", make_registration()))
    assert response.status_code == 201, response.text
