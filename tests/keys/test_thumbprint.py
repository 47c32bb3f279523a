"""keys.thumbprint against the RFC 7638 and RFC 8037 vectors, and keys.base64url's strictness."""

from __future__ import annotations

import pytest

from keys.base64url import b64url_decode, b64url_encode
from keys.thumbprint import jwk_thumbprint

# RFC 7638 §3.1
RFC7638_RSA = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
        "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_F"
        "DW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4"
        "vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
# RFC 8037 Appendix A.2 / A.3
RFC8037_PUBLIC = {
    "kty": "OKP",
    "crv": "Ed25519",
    "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
}


def test_rfc7638_rsa_example() -> None:
    assert jwk_thumbprint(RFC7638_RSA) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_rfc8037_ed25519_example() -> None:
    assert jwk_thumbprint(RFC8037_PUBLIC) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_optional_and_private_members_do_not_change_the_thumbprint() -> None:
    decorated = {
        **RFC8037_PUBLIC,
        "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
        "kid": "x",
        "use": "sig",
    }
    assert jwk_thumbprint(decorated) == jwk_thumbprint(RFC8037_PUBLIC)


def test_changing_a_required_member_changes_the_thumbprint() -> None:
    other = {**RFC8037_PUBLIC, "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURA"}
    assert jwk_thumbprint(other) != jwk_thumbprint(RFC8037_PUBLIC)


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "OKP", "crv": "Ed25519"},
        {"kty": "EC", "crv": "P-256", "x": "AA"},
        {"kty": "XYZ", "x": "AA"},
        {"crv": "Ed25519", "x": "AA"},
        {"kty": "OKP", "crv": "Ed25519", "x": 5},
    ],
)
def test_unusable_jwk_is_refused(jwk: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"kty|member"):
        jwk_thumbprint(jwk)


def test_b64url_round_trip_without_padding() -> None:
    for size in range(8):
        data = bytes(range(250, 250 - size, -1))
        encoded = b64url_encode(data)
        assert "=" not in encoded
        assert b64url_decode(encoded) == data
        assert b64url_decode(encoded.encode()) == data
    assert b64url_encode(b"\xfb\xff") == "-_8"


@pytest.mark.parametrize(
    "text",
    [
        "QQ==",  # padding
        "QQ=",
        "Q Q",  # whitespace
        "QQ\n",
        "+/8",  # standard alphabet, not URL-safe
        "QUJDR",  # length 1 mod 4 is impossible
        "QR",  # non-zero trailing bits: "QQ" is the canonical spelling of b"A"
        "é",
    ],
)
def test_b64url_decode_is_strict(text: str) -> None:
    with pytest.raises(ValueError, match="base64url"):
        b64url_decode(text)
