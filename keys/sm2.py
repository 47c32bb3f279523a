"""The `sm2-sm3` suite: SM2 signatures with SM3 (GB/T 32918.2), via the `gmssl_pyx` wheel.

Only `keys.suites` imports this module, and only once gmssl_pyx (the `sm2` extra) is installed.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import ClassVar

from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from keys.base64url import b64url_encode
from keys.keypair import InvalidKeyError, SigningKey, VerifyingKey, jwk_bytes, require_jwk_shape
from keys.pkcs8 import dump_sm2_pem, load_sm2_pem

__all__ = [
    "SM2SigningKey",
    "SM2VerifyingKey",
    "generate",
    "load_pem",
    "public_key_from_jwk",
]

# Through importlib because gmssl_pyx ships no py.typed marker; every result is re-typed below.
# Never the pure-Python `gmssl` package: its signing nonce comes from a non-cryptographic RNG.
_gmssl = importlib.import_module("gmssl_pyx")

SUITE = "sm2-sm3"
ALG = "SM2-SM3"  # a private JWS alg name; JOSE registers none for SM2
# The signer ID enters Z = SM3(ENTL || ID || curve || public key) (GB/T 32918.2 §5.5). We use the
# default ID of GB/T 35276-2017, "1234567812345678", as every library does unless told otherwise.
SIGNER_ID = b"1234567812345678"
_ORDER = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123  # GB/T 32918.5
_SIZE = 32
_PAIR_CHECK = b"gateway SM2 key pair check"


class SM2VerifyingKey(VerifyingKey):
    suite: ClassVar[str] = SUITE
    alg: ClassVar[str] = ALG

    def __init__(self, point: bytes) -> None:
        """`point` is x || y (64 bytes) or 0x04 || x || y; it must lie on the SM2 curve."""
        if len(point) not in (64, 65):
            raise InvalidKeyError("SM2 public keys are stored uncompressed")
        try:
            self._xy = bytes(_gmssl.normalize_sm2_public_key(point))
        except _gmssl.InvalidValueError:
            raise InvalidKeyError("not a point on the SM2 curve") from None

    def verify(self, data: bytes, signature: bytes) -> bool:
        # Same r || s layout as ES256 (RFC 7518 §3.4); gmssl_pyx wants DER.
        if len(signature) != 2 * _SIZE:
            return False
        r = int.from_bytes(signature[:_SIZE], "big")
        s = int.from_bytes(signature[_SIZE:], "big")
        if not (0 < r < _ORDER and 0 < s < _ORDER):  # GB/T 32918.2 §7.1 B1, B2
            return False
        try:
            return bool(
                _gmssl.sm2_verify(self._xy, data, encode_dss_signature(r, s), signer_id=SIGNER_ID)
            )
        except _gmssl.GmsslInnerError:
            return False

    def raw_public_bytes(self) -> bytes:
        return b"\x04" + self._xy

    def _jwk_members(self) -> dict[str, str]:
        # Shaped like an RFC 7518 §6.2.1 EC key; "SM2" is a private crv name.
        x, y = b64url_encode(self._xy[:_SIZE]), b64url_encode(self._xy[_SIZE:])
        return {"kty": "EC", "crv": "SM2", "x": x, "y": y}


class SM2SigningKey(SigningKey):
    suite: ClassVar[str] = SUITE
    alg: ClassVar[str] = ALG

    def __init__(self, private: bytes, public: SM2VerifyingKey) -> None:
        """Refuses a scalar outside [1, n-2] (GB/T 32918.1 §6.1) or that `public` does not match.

        gmssl_pyx cannot derive the public point, so the pair is proven by a test signature.
        """
        if len(private) != _SIZE or not 1 <= int.from_bytes(private, "big") <= _ORDER - 2:
            raise InvalidKeyError("SM2 private scalar out of range")
        self._private = private
        self._public = public
        self._xy = public.raw_public_bytes()[1:]
        if not public.verify(_PAIR_CHECK, self.sign(_PAIR_CHECK)):
            raise InvalidKeyError("SM2 private key does not match its stored public key")

    @property
    def public_key(self) -> SM2VerifyingKey:
        return self._public

    def sign(self, data: bytes) -> bytes:
        der = bytes(_gmssl.sm2_sign(self._private, self._xy, data, signer_id=SIGNER_ID))
        r, s = decode_dss_signature(der)
        return r.to_bytes(_SIZE, "big") + s.to_bytes(_SIZE, "big")

    def to_pem(self, passphrase: bytes | None = None) -> bytes:
        return dump_sm2_pem(self._private, self._xy, passphrase)


def generate() -> SM2SigningKey:
    public, private = _gmssl.sm2_key_generate()
    return SM2SigningKey(bytes(private), SM2VerifyingKey(bytes(public)))


def load_pem(pem: bytes, passphrase: bytes | None = None) -> SM2SigningKey:
    private, public = load_sm2_pem(pem, passphrase)
    return SM2SigningKey(private, SM2VerifyingKey(public))


def public_key_from_jwk(jwk: Mapping[str, object]) -> SM2VerifyingKey:
    require_jwk_shape(jwk, kty="EC", crv="SM2", alg=ALG)
    return SM2VerifyingKey(jwk_bytes(jwk, "x", _SIZE) + jwk_bytes(jwk, "y", _SIZE))
