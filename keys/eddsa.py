"""The `ed25519` suite: EdDSA over Ed25519 (RFC 8032), JOSE alg `EdDSA` (RFC 8037), the default.

Signing and verification go through libsodium (PyNaCl): on the CPUs this gateway was measured on
it verifies in about half the time of OpenSSL through `cryptography` (bench/profile_publish.py
prints both), and verification is a fixed cost of every published message. libsodium is also the
stricter verifier: it refuses non-canonical signatures and small-order keys, which no honestly
generated key or signature is. Key files (PKCS#8 PEM) stay with `cryptography`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nacl.bindings import crypto_sign, crypto_sign_open, crypto_sign_seed_keypair
from nacl.exceptions import BadSignatureError

from keys.base64url import b64url_encode
from keys.keypair import SigningKey, VerifyingKey, jwk_bytes, require_jwk_shape
from keys.pkcs8 import pem_encryption

__all__ = [
    "Ed25519SigningKey",
    "Ed25519VerifyingKey",
    "fully_specified",
    "generate",
    "public_key_from_jwk",
]

SUITE = "ed25519"
ALG = "EdDSA"
# RFC 9864 (2025): the fully-specified name of the same algorithm, which current JOSE libraries
# prefer (joserfc warns that `EdDSA` is deprecated). Same key, same signature bytes, same kid.
FULLY_SPECIFIED_ALG = "Ed25519"


class Ed25519VerifyingKey(VerifyingKey):
    suite: ClassVar[str] = SUITE
    alg: ClassVar[str] = ALG

    def __init__(self, key: Ed25519PublicKey) -> None:
        self._key = key
        self._raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def verify(self, data: bytes, signature: bytes) -> bool:
        if len(signature) != 64:
            return False
        try:
            crypto_sign_open(signature + data, self._raw)
        except BadSignatureError:
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
        seed = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        # libsodium's secret key is seed || public key.
        self._secret = crypto_sign_seed_keypair(seed)[1]

    @property
    def public_key(self) -> Ed25519VerifyingKey:
        return self._public

    def sign(self, data: bytes) -> bytes:
        # RFC 8032 signatures are deterministic: the same key and data give the same 64 bytes.
        return crypto_sign(data, self._secret)[:64]

    def to_pem(self, passphrase: bytes | None = None) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            pem_encryption(passphrase),
        )


class Ed25519FullySpecifiedVerifyingKey(Ed25519VerifyingKey):
    """The same public key, naming its algorithm `Ed25519` in JWS headers and its JWK."""

    alg: ClassVar[str] = FULLY_SPECIFIED_ALG


class Ed25519FullySpecifiedSigningKey(Ed25519SigningKey):
    """The same private key, signing with `alg: Ed25519` (RFC 9864) instead of `EdDSA`."""

    alg: ClassVar[str] = FULLY_SPECIFIED_ALG

    def __init__(self, key: Ed25519PrivateKey) -> None:
        super().__init__(key)
        self._public = Ed25519FullySpecifiedVerifyingKey(key.public_key())


def fully_specified(key: Ed25519SigningKey) -> Ed25519SigningKey:
    """`key` signing under the RFC 9864 name `Ed25519`; signatures and kid are unchanged."""
    return Ed25519FullySpecifiedSigningKey(key._key)


def generate() -> Ed25519SigningKey:
    return Ed25519SigningKey(Ed25519PrivateKey.generate())


def public_key_from_jwk(jwk: Mapping[str, object]) -> Ed25519VerifyingKey:
    """The key of an OKP/Ed25519 JWK; its `alg`, when present, may be `EdDSA` or `Ed25519`."""
    named = jwk.get("alg", ALG)
    alg = FULLY_SPECIFIED_ALG if named == FULLY_SPECIFIED_ALG else ALG
    require_jwk_shape(jwk, kty="OKP", crv="Ed25519", alg=alg)
    public = Ed25519PublicKey.from_public_bytes(jwk_bytes(jwk, "x", 32))
    if alg == FULLY_SPECIFIED_ALG:
        return Ed25519FullySpecifiedVerifyingKey(public)
    return Ed25519VerifyingKey(public)
