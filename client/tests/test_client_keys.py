"""Keys and JWS against RFC 8037's Ed25519 vectors, and the agency's PEM files as `gateway key
generate` and openssl write them (PKCS#8, optionally encrypted)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from credit_gateway_client import VerificationError, load_agency_key
from credit_gateway_client.jose import (
    b64url_decode,
    jwk_thumbprint,
    public_key_from_jwk,
    verify_compact,
)

# RFC 8037 Appendix A.1 (the key), A.3 (its thumbprint) and A.4 (a JWS by it).
RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_JWK = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
RFC8037_JWS = (
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PG"
    "cvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)


def test_the_rfc_8037_thumbprint_and_signature() -> None:
    assert jwk_thumbprint(RFC8037_JWK) == RFC8037_THUMBPRINT
    key = public_key_from_jwk(RFC8037_JWK)
    assert key.kid == RFC8037_THUMBPRINT
    assert verify_compact(RFC8037_JWS, key).payload == b"Example of Ed25519 signing"
    with pytest.raises(VerificationError) as caught:
        verify_compact(RFC8037_JWS[:-3] + "AAg", key)
    assert caught.value.code == "signature_invalid"


def write_pem(path: Path, private: object, passphrase: bytes | None = None) -> Path:
    encryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    path.write_bytes(
        private.private_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
    )
    return path


def test_the_rfc_8037_key_from_a_pem_file_has_that_kid(tmp_path: Path) -> None:
    private = ed25519.Ed25519PrivateKey.from_private_bytes(b64url_decode(RFC8037_D))
    key = load_agency_key(write_pem(tmp_path / "fj-yjt.pem", private))
    assert key.kid == RFC8037_THUMBPRINT
    assert key.alg == "EdDSA"


def test_an_encrypted_p256_key_file(tmp_path: Path) -> None:
    path = write_pem(tmp_path / "k.pem", ec.generate_private_key(ec.SECP256R1()), b"s3cret")
    key = load_agency_key(path, b"s3cret")
    assert key.alg == "ES256"
    assert verify_compact(key.sign_compact(b"{}", typ="JWT"), key.public).payload == b"{}"
    with pytest.raises(ValueError, match="cannot read"):
        load_agency_key(path, b"wrong")


@pytest.mark.parametrize(
    "private",
    [
        pytest.param(lambda: ec.generate_private_key(ec.SECP384R1()), id="p-384"),
        pytest.param(lambda: rsa.generate_private_key(65537, 2048), id="rsa"),
    ],
)
def test_other_keys_are_refused(tmp_path: Path, private) -> None:
    with pytest.raises(ValueError, match="Ed25519 and P-256"):
        load_agency_key(write_pem(tmp_path / "k.pem", private()))


def test_an_ed25519_key_never_verifies_an_es256_header() -> None:
    key = public_key_from_jwk(RFC8037_JWK)
    _, payload, signature = RFC8037_JWS.split(".")
    es256_head = "eyJhbGciOiJFUzI1NiJ9"  # {"alg":"ES256"}
    with pytest.raises(VerificationError) as caught:
        verify_compact(f"{es256_head}.{payload}.{signature}", key)
    assert caught.value.code == "algorithm_not_allowed"
