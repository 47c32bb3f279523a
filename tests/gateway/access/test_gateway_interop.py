"""Interoperability: messages signed by independent JOSE libraries are accepted, and our
receipts verify with them against our JWKS (protocol.md §1-2)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from contract_factories import USCC, make_registration
from fastapi.testclient import TestClient
from gateway_factories import (
    Publisher,
    allow_query,
    operator_token,
    publish,
    register_publisher,
)
from joserfc import jws as joserfc_jws
from joserfc.jwk import KeySet, OKPKey
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jws as jwcrypto_jws

from gateway.access.assertion import make_client_assertion
from gateway.app import create_app
from gateway.clock import FixedClock
from gateway.registry import service
from gateway.registry.scopes import grant_scopes
from gateway.runtime import Runtime
from gateway.settings import Settings
from keys.jws import parse_compact


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


def _joserfc_ed25519(envelope: dict[str, Any], alg: str) -> tuple[dict[str, str], str]:
    key = OKPKey.generate_key("Ed25519")
    header = {"alg": alg, "kid": key.thumbprint(), "typ": "gateway-message+jws"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # joserfc warns that `EdDSA` is deprecated (RFC 9864)
        token = joserfc_jws.serialize_compact(
            header, json.dumps(envelope).encode(), key, algorithms=[alg]
        )
    return key.as_dict(private=False), token


def _jwcrypto_ed25519(envelope: dict[str, Any], alg: str) -> tuple[dict[str, str], str]:
    key = jwcrypto_jwk.JWK.generate(kty="OKP", crv="Ed25519")
    header = {"alg": alg, "kid": key.thumbprint(), "typ": "gateway-message+jws"}
    token = jwcrypto_jws.JWS(json.dumps(envelope).encode())
    token.allowed_algs = [alg]
    token.add_signature(key, alg=alg, protected=json.dumps(header))
    return json.loads(key.export_public()), token.serialize(compact=True)


@pytest.mark.parametrize("alg", ["EdDSA", "Ed25519"])
@pytest.mark.parametrize(
    "library", [_joserfc_ed25519, _jwcrypto_ed25519], ids=["joserfc", "jwcrypto"]
)
def test_message_signed_with_ed25519_by_either_library_and_either_name_is_accepted(
    client: TestClient,
    authority: Publisher,
    runtime: Runtime,
    library: Callable[[dict[str, Any], str], tuple[dict[str, str], str]],
    alg: str,
) -> None:
    """RFC 8037's `EdDSA` and RFC 9864's fully-specified `Ed25519` name one algorithm."""
    envelope = authority.envelope(
        "enterprise.registered", make_registration(), issuer="their-agency"
    )
    public, token = library(envelope, alg)
    _register_their_key(runtime, "their-agency", public, "ed25519")
    assert parse_compact(token).header["alg"] == alg
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


def test_with_jose_alg_ed25519_receipts_attestations_and_tokens_verify_in_joserfc_unwarned(
    settings: Settings, clock: FixedClock, runtime: Runtime, authority: Publisher
) -> None:
    """GATEWAY_KEYS__JOSE_ALG=Ed25519 (RFC 9864): the same key signs under the fully-specified
    name, which joserfc verifies with no deprecation warning. joserfc 1.8 lists neither name
    among its default algorithms, so a verifier still names it: algorithms=["Ed25519"]."""
    named = settings.model_copy(
        update={"keys": settings.keys.model_copy(update={"jose_alg": "Ed25519"})}
    )
    bank = register_publisher(runtime, "fj-cib", ["measure.applied"], roles=["bank"])
    allow_query(runtime, "fj-cib", "standing")
    with runtime.db.transaction() as session:
        grant_scopes(session, runtime.signer, "fj-cib", ["query"], runtime.clock.now())
    with TestClient(create_app(named, clock=clock)) as client:
        old_token = operator_token(runtime)  # signed as `EdDSA` before the switch: still good
        client.headers["authorization"] = f"Bearer {old_token}"
        body = publish(client, authority.message("enterprise.registered", make_registration()))
        assert body.status_code == 201, body.text
        jwks = client.get("/.well-known/jwks.json").json()
        assert [k["alg"] for k in jwks["keys"]] == ["Ed25519"]
        theirs = KeySet.import_key_set(jwks)

        client.headers.pop("authorization")
        assertion = make_client_assertion(
            bank.key, "fj-cib", "http://testserver/v1/oauth/token", clock.now()
        )
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
            "scope": "query",
        }
        token = client.post("/v1/oauth/token", data=form).json()["access_token"]
        answer = client.get(
            f"/v1/enterprises/{USCC}?purpose=loan",
            headers={"authorization": f"Bearer {token}"},  # a token of the new name: accepted
        )
        assert answer.status_code == 200, answer.text

    signed = {"receipt": body.json()["receipt"], "token": token}
    signed["attestation"] = answer.json()["attestation"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "EdDSA is deprecated via RFC 9864"
        for what, compact in signed.items():
            assert parse_compact(compact).header["alg"] == "Ed25519", what
            joserfc_jws.deserialize_compact(compact, theirs, algorithms=["Ed25519"])
    verified = jwcrypto_jws.JWS()
    verified.deserialize(signed["receipt"])
    verified.verify(jwcrypto_jwk.JWKSet.from_json(json.dumps(jwks)), alg="Ed25519")
