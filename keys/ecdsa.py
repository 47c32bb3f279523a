"""The `es256` suite: ECDSA on P-256 with SHA-256, JOSE alg `ES256` (RFC 7518 §3.4)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from keys.base64url import b64url_encode
from keys.keypair import InvalidKeyError, SigningKey, VerifyingKey, jwk_bytes, require_jwk_shape
from keys.pkcs8 import pem_encryption

__all__ = ["ES256SigningKey", "ES256VerifyingKey", "generate", "public_key_from_jwk"]

SUITE = "es256"
ALG = "ES256"
_COORDINATE_SIZE = 32


class ES256VerifyingKey(VerifyingKey):
    suite: ClassVar[str] = SUITE
    alg: ClassVar[str] = ALG

    def __init__(self, key: ec.EllipticCurvePublicKey) -> None:
        if not isinstance(key.curve, ec.SECP256R1):
            raise InvalidKeyError(f"ES256 needs a P-256 key, got {key.curve.name}")
        self._key = key
        self._point = key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    def verify(self, data: bytes, signature: bytes) -> bool:
        # RFC 7518 §3.4: the JWS signature is r || s, each a 32-byte big-endian integer.
        if len(signature) != 2 * _COORDINATE_SIZE:
            return False
        r = int.from_bytes(signature[:_COORDINATE_SIZE], "big")
        s = int.from_bytes(signature[_COORDINATE_SIZE:], "big")
        try:
            self._key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True

    def raw_public_bytes(self) -> bytes:
        return self._point

    def _jwk_members(self) -> dict[str, str]:
        # RFC 7518 §6.2.1: x and y are the full-length (32-byte) big-endian coordinates.
        x, y = self._point[1 : 1 + _COORDINATE_SIZE], self._point[1 + _COORDINATE_SIZE :]
        return {"kty": "EC", "crv": "P-256", "x": b64url_encode(x), "y": b64url_encode(y)}


class ES256SigningKey(SigningKey):
    suite: ClassVar[str] = SUITE
    alg: ClassVar[str] = ALG

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._key = key
        self._public = ES256VerifyingKey(key.public_key())

    @property
    def public_key(self) -> ES256VerifyingKey:
        return self._public

    def sign(self, data: bytes) -> bytes:
        # cryptography returns DER (RFC 3279 Ecdsa-Sig-Value); JWS wants fixed-width r || s.
        r, s = decode_dss_signature(self._key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(_COORDINATE_SIZE, "big") + s.to_bytes(_COORDINATE_SIZE, "big")

    def to_pem(self, passphrase: bytes | None = None) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            pem_encryption(passphrase),
        )


def generate() -> ES256SigningKey:
    return ES256SigningKey(ec.generate_private_key(ec.SECP256R1()))


def public_key_from_jwk(jwk: Mapping[str, object]) -> ES256VerifyingKey:
    require_jwk_shape(jwk, kty="EC", crv="P-256", alg=ALG)
    x = int.from_bytes(jwk_bytes(jwk, "x", _COORDINATE_SIZE), "big")
    y = int.from_bytes(jwk_bytes(jwk, "y", _COORDINATE_SIZE), "big")
    try:
        # Refuses points off the curve, which would otherwise invite invalid-curve attacks.
        key = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    except ValueError as exc:
        raise InvalidKeyError(f"JWK is not a valid P-256 point: {exc}") from None
    return ES256VerifyingKey(key)
