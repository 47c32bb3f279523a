"""keys.suites: every suite signs and verifies, exports and re-imports its JWK and PEM, and
refuses keys of other suites."""

from __future__ import annotations

from types import MappingProxyType

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from keys import suites
from keys.base64url import b64url_decode, b64url_encode
from keys.ecdsa import ES256SigningKey
from keys.suites import (
    SUITES,
    InvalidKeyError,
    SigningKey,
    UnknownSuiteError,
    get_suite,
    load_signing_key_pem,
    public_key_from_jwk,
    suite_for_alg,
)
from keys.thumbprint import jwk_thumbprint

ALL = ["ed25519", "es256", "sm2-sm3"]
EXPECTED = {
    # suite: (alg, kty, crv, raw public key length)
    "ed25519": ("EdDSA", "OKP", "Ed25519", 32),
    "es256": ("ES256", "EC", "P-256", 65),
    "sm2-sm3": ("SM2-SM3", "EC", "SM2", 65),
}


def make_key(*, suite: str = "ed25519") -> SigningKey:
    return get_suite(suite).generate()


def test_all_suites_are_available() -> None:
    assert sorted(SUITES) == sorted(ALL)


@pytest.mark.parametrize("name", ALL)
def test_sign_verify_round_trip(name: str) -> None:
    key = make_key(suite=name)
    signature = key.sign(b"grade.revoked")
    assert len(signature) == 64
    assert key.public_key.verify(b"grade.revoked", signature)
    assert not key.public_key.verify(b"grade.revokeD", signature)
    flipped = bytes([signature[0] ^ 1]) + signature[1:]
    assert not key.public_key.verify(b"grade.revoked", flipped)
    assert not make_key(suite=name).public_key.verify(b"grade.revoked", signature)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("signature", [b"", b"\x00" * 63, b"\x00" * 64, b"\xff" * 64, b"\x01" * 65])
def test_verify_returns_false_on_garbage(name: str, signature: bytes) -> None:
    assert make_key(suite=name).public_key.verify(b"data", signature) is False


@pytest.mark.parametrize("name", ALL)
def test_key_attributes_and_jwk(name: str) -> None:
    alg, kty, crv, raw_size = EXPECTED[name]
    key = make_key(suite=name)
    public = key.public_key
    assert (key.suite, key.alg, public.suite, public.alg) == (name, alg, name, alg)
    assert len(public.raw_public_bytes()) == raw_size
    jwk = public.jwk()
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == (kty, crv, alg, "sig")
    assert "d" not in jwk
    assert jwk["kid"] == key.kid == public.kid == jwk_thumbprint(jwk)
    if kty == "EC":
        assert public.raw_public_bytes() == b"\x04" + b64url_decode(jwk["x"]) + b64url_decode(
            jwk["y"]
        )
    else:
        assert public.raw_public_bytes() == b64url_decode(jwk["x"])
    again = public_key_from_jwk(jwk)
    assert again == public
    assert again.kid == public.kid
    assert get_suite(name).public_key_from_jwk(jwk) == public


def test_es256_signature_is_raw_r_s_not_der() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    signature = ES256SigningKey(private).sign(b"x")
    # RFC 7518 §3.4: r and s as 32-byte big-endian integers; re-encoded as DER they verify.
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    der = encode_dss_signature(r, s)
    private.public_key().verify(der, b"x", ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("other", ALL)
def test_suite_refuses_jwk_of_another_suite(name: str, other: str) -> None:
    if name == other:
        return
    jwk = make_key(suite=other).public_key.jwk()
    with pytest.raises(InvalidKeyError, match="expected"):
        get_suite(name).public_key_from_jwk(jwk)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"d": "AAAA"}, "private"),
        ({"alg": "HS256"}, "alg"),
        ({"use": "enc"}, "use"),
        ({"x": "AAAA"}, "bytes"),
        ({"x": "not base64!"}, "base64url"),
        ({"x": None}, "missing"),
    ],
)
def test_malformed_jwk_is_refused(name: str, change: dict[str, object], message: str) -> None:
    jwk: dict[str, object] = {**make_key(suite=name).public_key.jwk(), **change}
    with pytest.raises(InvalidKeyError, match=message):
        public_key_from_jwk(jwk)


@pytest.mark.parametrize("name", ["es256", "sm2-sm3"])
def test_point_off_the_curve_is_refused(name: str) -> None:
    jwk = make_key(suite=name).public_key.jwk()
    y = bytearray(b64url_decode(jwk["y"]))
    y[-1] ^= 1
    jwk["y"] = b64url_encode(bytes(y))
    with pytest.raises(InvalidKeyError, match=r"curve|point"):
        public_key_from_jwk(jwk)


def test_unknown_jwk_type_is_refused() -> None:
    with pytest.raises(InvalidKeyError, match="unsupported JWK"):
        public_key_from_jwk({"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"})


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("passphrase", [None, b"correct horse"])
def test_pem_round_trip(name: str, passphrase: bytes | None) -> None:
    key = make_key(suite=name)
    pem = key.to_pem(passphrase)
    label = b"ENCRYPTED PRIVATE KEY" if passphrase else b"PRIVATE KEY"
    assert pem.startswith(b"-----BEGIN " + label + b"-----\n")
    loaded = load_signing_key_pem(pem, passphrase)
    assert (loaded.suite, loaded.kid) == (name, key.kid)
    assert key.public_key.verify(b"m", loaded.sign(b"m"))


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("attempt", range(8))  # a wrong passphrase fails two ways (1 in 256)
def test_pem_passphrase_mistakes(name: str, attempt: int) -> None:
    key = make_key(suite=name)
    encrypted = key.to_pem(b"right")
    with pytest.raises(InvalidKeyError, match=r"passphrase|password"):
        load_signing_key_pem(encrypted, b"wrong")
    with pytest.raises(InvalidKeyError, match="no passphrase"):
        load_signing_key_pem(encrypted)
    with pytest.raises(InvalidKeyError, match="not encrypted"):
        load_signing_key_pem(key.to_pem(), b"right")
    with pytest.raises(ValueError, match="empty passphrase"):
        key.to_pem(b"")


@pytest.mark.parametrize(
    "private",
    [
        ec.generate_private_key(ec.SECP384R1()),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    ],
)
def test_pem_of_unsupported_key_type_is_refused(private: object) -> None:
    assert isinstance(private, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(InvalidKeyError, match="no signature suite"):
        load_signing_key_pem(pem)


def test_garbage_pem_is_refused() -> None:
    with pytest.raises(InvalidKeyError):
        load_signing_key_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")


def test_ed25519_pem_written_by_cryptography_loads() -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key = load_signing_key_pem(pem)
    assert key.suite == "ed25519"
    assert key.public_key.raw_public_bytes() == private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def test_registry_lookups() -> None:
    assert get_suite("es256").alg == "ES256"
    assert suite_for_alg("EdDSA").name == "ed25519"
    assert suite_for_alg("SM2-SM3").name == "sm2-sm3"
    for alg in ("none", "HS256", "RS256", "eddsa"):
        with pytest.raises(UnknownSuiteError):
            suite_for_alg(alg)
    with pytest.raises(UnknownSuiteError, match="unknown signature suite"):
        get_suite("rsa")


def test_missing_sm2_backend_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    without_sm2 = MappingProxyType({k: v for k, v in SUITES.items() if k != "sm2-sm3"})
    monkeypatch.setattr(suites, "SUITES", without_sm2)
    with pytest.raises(UnknownSuiteError, match="`sm2` extra"):
        get_suite("sm2-sm3")
    with pytest.raises(UnknownSuiteError, match="`sm2` extra"):
        suite_for_alg("SM2-SM3")


# RFC 8032 §7.1, TEST 1 (empty message) and TEST 2 (one byte): secret key, public key, message,
# signature. The suite signs through libsodium and verifies through it; OpenSSL (through
# cryptography) checks the same bytes independently.
RFC8032 = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
]


@pytest.mark.parametrize(("secret", "public", "message", "signature"), RFC8032)
def test_ed25519_signs_and_verifies_the_rfc_8032_vectors(
    secret: str, public: str, message: str, signature: str
) -> None:
    private = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(secret))
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key = load_signing_key_pem(pem)
    data, expected = bytes.fromhex(message), bytes.fromhex(signature)
    assert key.public_key.raw_public_bytes() == bytes.fromhex(public)
    assert key.sign(data) == expected
    assert key.public_key.verify(data, expected)
    private.public_key().verify(key.sign(data), data)  # OpenSSL agrees (raises if not)
    forged = bytearray(expected)
    forged[0] ^= 1
    assert not key.public_key.verify(data, bytes(forged))
    assert not key.public_key.verify(data + b"x", expected)
    assert not key.public_key.verify(data, expected[:63])


def test_ed25519_refuses_a_signature_with_s_not_below_the_group_order() -> None:
    # s + L verifies under a lax implementation (the malleability RFC 8032 §5.1.7 closes).
    key = make_key()
    data = b"message"
    good = key.sign(data)
    order = 2**252 + 27742317777372353535851937790883648493
    s = int.from_bytes(good[32:], "little") + order
    malleated = good[:32] + s.to_bytes(32, "little")
    assert not key.public_key.verify(data, malleated)
