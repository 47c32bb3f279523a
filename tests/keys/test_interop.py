"""Agencies verify our tokens with off-the-shelf libraries (protocol.md): our EdDSA and ES256
JWS and JWKS against joserfc and jwcrypto, in both directions."""

from __future__ import annotations

import json

import pytest
from joserfc import jws as joserfc_jws
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OKPKey
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jws as jwcrypto_jws

from keys.jwks import build_jwks, key_from_jwks
from keys.jws import parse_compact, sign_compact, verify_compact
from keys.suites import get_suite, public_key_from_jwk

PAYLOAD = b'{"id":"0f8fad5b-d9cb-469f-a165-70867728950e","type":"grade.revoked"}'
# joserfc warns on every EdDSA use: RFC 9864 (2025) deprecates "EdDSA" in favour of the
# fully-specified "Ed25519". protocol.md §1 publishes "EdDSA", so the tests expect the warning.


@pytest.mark.parametrize("suite", ["ed25519", "es256"])
def test_joserfc_verifies_our_jws(suite: str) -> None:
    key = get_suite(suite).generate()
    token = sign_compact(PAYLOAD, key, typ="gateway-message+jws")
    if key.alg == "EdDSA":
        their_key = OKPKey.import_key(key.public_key.jwk())
        with pytest.warns(SecurityWarning, match="RFC 9864"):
            result = joserfc_jws.deserialize_compact(token, their_key, algorithms=["EdDSA"])
    else:
        their_key = ECKey.import_key(key.public_key.jwk())
        result = joserfc_jws.deserialize_compact(token, their_key, algorithms=["ES256"])
    assert result.payload == PAYLOAD
    assert result.protected["kid"] == key.kid == their_key.thumbprint()


@pytest.mark.parametrize("suite", ["ed25519", "es256"])
def test_jwcrypto_verifies_our_jws(suite: str) -> None:
    key = get_suite(suite).generate()
    token = sign_compact(PAYLOAD, key)
    their_key = jwcrypto_jwk.JWK(**key.public_key.jwk())
    received = jwcrypto_jws.JWS()
    received.deserialize(token)
    received.verify(their_key, alg=key.alg)
    assert received.payload == PAYLOAD
    assert their_key.thumbprint() == key.kid


def test_we_verify_joserfc_eddsa() -> None:
    their_key = OKPKey.generate_key("Ed25519")
    with pytest.warns(SecurityWarning, match="RFC 9864"):
        token = joserfc_jws.serialize_compact(
            {"alg": "EdDSA"}, PAYLOAD, their_key, algorithms=["EdDSA"]
        )
    ours = public_key_from_jwk(their_key.as_dict(private=False))
    parsed = parse_compact(token)
    verify_compact(parsed, ours)
    assert parsed.payload == PAYLOAD


def test_we_verify_joserfc_es256() -> None:
    their_key = ECKey.generate_key("P-256")
    token = joserfc_jws.serialize_compact({"alg": "ES256"}, PAYLOAD, their_key)
    ours = public_key_from_jwk(their_key.as_dict(private=False))
    assert ours.kid == their_key.thumbprint()
    verify_compact(parse_compact(token), ours)


@pytest.mark.parametrize(
    ("params", "alg"),
    [({"kty": "OKP", "crv": "Ed25519"}, "EdDSA"), ({"kty": "EC", "crv": "P-256"}, "ES256")],
)
def test_we_verify_jwcrypto(params: dict[str, str], alg: str) -> None:
    their_key = jwcrypto_jwk.JWK.generate(**params)
    signed = jwcrypto_jws.JWS(PAYLOAD)
    signed.add_signature(their_key, alg=alg, protected=json.dumps({"alg": alg}))
    token = signed.serialize(compact=True)
    ours = public_key_from_jwk(their_key.export_public(as_dict=True))
    assert ours.kid == their_key.thumbprint()
    parsed = parse_compact(token)
    verify_compact(parsed, ours)
    assert parsed.payload == PAYLOAD


def test_our_jwks_loads_in_jwcrypto_with_matching_thumbprints() -> None:
    keys = [get_suite(name).generate().public_key for name in ("ed25519", "es256", "es256")]
    document = json.dumps(build_jwks(keys))
    their_set = jwcrypto_jwk.JWKSet.from_json(document)
    for key in keys:
        their_key = their_set.get_key(key.kid)
        assert their_key is not None
        assert their_key.thumbprint() == key.kid
        assert their_key.export_public(as_dict=True)["x"] == key.jwk()["x"]
        assert key_from_jwks(json.loads(document), key.kid) == key


def test_our_eddsa_jws_verifies_with_a_key_from_our_jwks_in_jwcrypto() -> None:
    key = get_suite("ed25519").generate()
    token = sign_compact(PAYLOAD, key)
    their_set = jwcrypto_jwk.JWKSet.from_json(json.dumps(build_jwks([key.public_key])))
    received = jwcrypto_jws.JWS()
    received.deserialize(token, key=their_set)  # jwcrypto picks the key by the header kid
    assert received.payload == PAYLOAD
