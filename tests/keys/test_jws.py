"""keys.jws: the RFC 8037 golden vector, our own tokens, and every malformed or hostile token
class mapped to its error."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keys.eddsa import Ed25519SigningKey
from keys.jws import (
    AlgorithmNotAllowedError,
    JWSError,
    MalformedJWSError,
    SignatureInvalidError,
    b64url_decode,
    b64url_encode,
    parse_compact,
    sign_compact,
    verify_compact,
)
from keys.suites import SigningKey, get_suite

# RFC 8037 Appendix A.1 (key) and A.4 (JWS over "Example of Ed25519 signing").
RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_JWS = (
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)


def rfc8037_key() -> Ed25519SigningKey:
    return Ed25519SigningKey(Ed25519PrivateKey.from_private_bytes(b64url_decode(RFC8037_D)))


def make_token(
    *,
    header: dict[str, object] | str,
    payload: bytes = b'{"id":"x"}',
    key: SigningKey | None = None,
) -> str:
    """A compact JWS with exactly this header text, signed by `key` (or an empty signature)."""
    header_text = header if isinstance(header, str) else json.dumps(header)
    signing_input = f"{b64url_encode(header_text.encode())}.{b64url_encode(payload)}"
    signature = key.sign(signing_input.encode()) if key else b""
    return f"{signing_input}.{b64url_encode(signature)}"


def test_rfc8037_vector_verifies() -> None:
    key = rfc8037_key()
    assert key.public_key.jwk()["x"] == RFC8037_X
    assert key.kid == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"  # RFC 8037 A.3
    parsed = parse_compact(RFC8037_JWS)
    assert parsed.header == {"alg": "EdDSA"}
    assert parsed.payload == b"Example of Ed25519 signing"
    verify_compact(parsed, key.public_key)


def test_our_signer_reproduces_rfc8037_byte_for_byte() -> None:
    signing_input, _, signature = RFC8037_JWS.rpartition(".")
    ours = rfc8037_key().sign(signing_input.encode("ascii"))
    assert f"{signing_input}.{b64url_encode(ours)}" == RFC8037_JWS
    assert b64url_encode(ours) == signature


@pytest.mark.parametrize("suite", ["ed25519", "es256", "sm2-sm3"])
def test_sign_compact_round_trip(suite: str) -> None:
    key = get_suite(suite).generate()
    token = sign_compact(
        b'{"id":"1"}', key, typ="gateway-message+jws", extra_header={"cty": "json"}
    )
    header_segment = token.split(".")[0]
    assert (
        b64url_decode(header_segment)
        == (
            f'{{"alg":"{key.alg}","kid":"{key.kid}","typ":"gateway-message+jws","cty":"json"}}'
        ).encode()
    )
    parsed = parse_compact(token)
    assert parsed.raw == token.encode()
    assert parsed.signing_input == token.rpartition(".")[0].encode()
    assert parsed.payload == b'{"id":"1"}'
    verify_compact(parsed, key.public_key)
    assert parse_compact(token.encode()) == parsed


def test_sign_compact_without_typ() -> None:
    key = rfc8037_key()
    parsed = parse_compact(sign_compact(b"", key))
    assert parsed.header == {"alg": "EdDSA", "kid": key.kid}
    assert parsed.payload == b""
    verify_compact(parsed, key.public_key)


@pytest.mark.parametrize("name", ["alg", "kid", "typ", "crit", "b64"])
def test_extra_header_cannot_override_reserved_members(name: str) -> None:
    with pytest.raises(ValueError, match="extra_header"):
        sign_compact(b"{}", rfc8037_key(), extra_header={name: "x"})


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_refused(alg: str) -> None:
    parsed = parse_compact(make_token(header={"alg": alg}))
    with pytest.raises(AlgorithmNotAllowedError, match="never accepted"):
        verify_compact(parsed, rfc8037_key().public_key)


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_keyed_with_the_public_key_is_refused(alg: str) -> None:
    # The classic confusion attack: a MAC whose secret is the verifier's public key.
    public = rfc8037_key().public_key
    header = b64url_encode(json.dumps({"alg": alg}).encode())
    signing_input = f"{header}.{b64url_encode(b'{}')}"
    digest = getattr(hashlib, "sha" + alg[2:])
    mac = hmac.new(public.raw_public_bytes(), signing_input.encode(), digest).digest()
    parsed = parse_compact(f"{signing_input}.{b64url_encode(mac)}")
    with pytest.raises(AlgorithmNotAllowedError):
        verify_compact(parsed, public)


def test_header_alg_must_match_the_key_suite() -> None:
    es256 = get_suite("es256").generate()
    token = make_token(header={"alg": "ES256"}, key=es256)
    verify_compact(parse_compact(token), es256.public_key)
    with pytest.raises(AlgorithmNotAllowedError, match="does not match"):
        verify_compact(parse_compact(token), rfc8037_key().public_key)
    # and the other way: an Ed25519-signed token presented to an ES256 key
    eddsa_token = make_token(header={"alg": "EdDSA"}, key=rfc8037_key())
    with pytest.raises(AlgorithmNotAllowedError):
        verify_compact(parse_compact(eddsa_token), es256.public_key)


def test_tampered_payload_is_refused() -> None:
    header, _, signature = RFC8037_JWS.split(".")
    forged = f"{header}.{b64url_encode(b'Example of Ed25519 signinG')}.{signature}"
    with pytest.raises(SignatureInvalidError):
        verify_compact(parse_compact(forged), rfc8037_key().public_key)


def test_tampered_signature_is_refused() -> None:
    signing_input, _, signature = RFC8037_JWS.rpartition(".")
    raw = bytearray(b64url_decode(signature))
    raw[10] ^= 0x40
    forged = f"{signing_input}.{b64url_encode(bytes(raw))}"
    with pytest.raises(SignatureInvalidError):
        verify_compact(parse_compact(forged), rfc8037_key().public_key)


def test_wrong_key_is_refused() -> None:
    other = get_suite("ed25519").generate().public_key
    with pytest.raises(SignatureInvalidError):
        verify_compact(parse_compact(RFC8037_JWS), other)


@pytest.mark.parametrize("segment", [0, 1, 2])
def test_padding_in_a_segment_is_refused(segment: int) -> None:
    parts = RFC8037_JWS.split(".")
    parts[segment] += "=" * (-len(parts[segment]) % 4 or 2)
    with pytest.raises(MalformedJWSError):
        parse_compact(".".join(parts))


@pytest.mark.parametrize(
    "token",
    [
        RFC8037_JWS.rpartition(".")[0],  # 2 segments
        RFC8037_JWS + ".e30",  # 4 segments
        "eyJhbGciOiJFZERTQSJ9..e30.e30.e30",  # 5 segments
        "",
        RFC8037_JWS.replace("-", "+"),  # standard base64 alphabet
        RFC8037_JWS + "\n",
        RFC8037_JWS.replace("e", "é", 1),  # non-ASCII text
    ],
)
def test_malformed_structure_is_refused(token: str) -> None:
    with pytest.raises(MalformedJWSError):
        parse_compact(token)


def test_non_ascii_bytes_are_refused() -> None:
    with pytest.raises(MalformedJWSError):
        parse_compact(RFC8037_JWS.encode() + b"\xff")


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("not json", "JSON"),
        ('["alg","EdDSA"]', "object"),
        ("{}", "alg"),
        ('{"alg":1}', "alg"),
        ('{"alg":"EdDSA","kid":7}', "kid"),
        ('{"alg":"EdDSA","crit":["exp"],"exp":1}', "crit"),
        ('{"alg":"EdDSA","b64":false,"crit":["b64"]}', "crit"),
        ('{"alg":"EdDSA","b64":false}', "b64"),
        ('{"alg":"EdDSA","alg":"none"}', "duplicate"),
        ('{"alg":"EdDSA","x":{"a":1,"a":2}}', "duplicate"),
        ('{"alg":"EdDSA","n":NaN}', "NaN"),
    ],
)
def test_bad_header_is_refused(header: str, message: str) -> None:
    with pytest.raises(MalformedJWSError, match=message):
        parse_compact(make_token(header=header))


def test_non_utf8_header_is_refused() -> None:
    header_segment = b64url_encode(b'{"alg":"\xff"}')
    with pytest.raises(MalformedJWSError, match="base64url JSON"):
        parse_compact(f"{header_segment}.e30.")


def test_error_codes_are_stable() -> None:
    assert MalformedJWSError.code == "malformed_jws"
    assert AlgorithmNotAllowedError.code == "algorithm_not_allowed"
    assert SignatureInvalidError.code == "signature_invalid"
    for error in (MalformedJWSError, AlgorithmNotAllowedError, SignatureInvalidError):
        assert issubclass(error, JWSError)
