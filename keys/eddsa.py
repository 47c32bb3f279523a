"""The `ed25519` suite: EdDSA over Ed25519 (RFC 8032), JOSE alg `EdDSA` (RFC 8037), the default."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from keys.base64url import b64url_encode
from keys.keypair import SigningKey, VerifyingKey, jwk_bytes, require_jwk_shape
from keys.pkcs8 import pem_encryption

__all__ = ["Ed25519SigningKey", "Ed25519VerifyingKey", "generate", "public_key_from_jwk"]

SUITE = "ed25519"
ALG = "EdDSA"


class Ed25519VerifyingKey(VerifyingKey):
    suite: ClassVar[str] = SUITE
    alg: ClassVar[str] = ALG

    def __init__(self, key: Ed25519PublicKey) -> None:
        self._key = key
        self._raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def verify(self, data: bytes, signature: bytes) -> bool:
        try:
            self._key.verify(signature, data)
        except InvalidSignature:
            return False
        return True

    def raw_public_bytes(self) -> bytes:
        return self._raw

    def _jwk_members(self) -> dict[str, str]:
        # RFC 8037 §2: OKP key, x = the raw public key.
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(self._raw)}


class Ed25519SigningKey(SigningKey):
    suite: ClassVar[str] = SUITE
    alg: ClassVar[str] = ALG

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self._public = Ed25519VerifyingKey(key.public_key())

    @property
    def public_key(self) -> Ed25519VerifyingKey:
        return self._public

    def sign(self, data: bytes) -> bytes:
        # RFC 8032 signatures are deterministic: the same key and data give the same 64 bytes.
        return self._key.sign(data)

    def to_pem(self, passphrase: bytes | None = None) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            pem_encryption(passphrase),
        )


def generate() -> Ed25519SigningKey:
    return Ed25519SigningKey(Ed25519PrivateKey.generate())


def public_key_from_jwk(jwk: Mapping[str, object]) -> Ed25519VerifyingKey:
    require_jwk_shape(jwk, kty="OKP", crv="Ed25519", alg=ALG)
    return Ed25519VerifyingKey(Ed25519PublicKey.from_public_bytes(jwk_bytes(jwk, "x", 32)))
