"""The key interfaces every signature suite implements, and the error for unusable key material.

Import them from `keys.suites`; this module exists so suite implementations avoid an import cycle.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from functools import cached_property
from typing import ClassVar

from keys.base64url import b64url_decode
from keys.thumbprint import jwk_thumbprint

__all__ = ["InvalidKeyError", "SigningKey", "VerifyingKey", "jwk_bytes", "require_jwk_shape"]


class InvalidKeyError(ValueError):
    """Key material that is malformed, of the wrong type or curve, or cannot be decrypted."""


class VerifyingKey(ABC):
    """A public key of one suite; `kid` is its RFC 7638 thumbprint."""

    suite: ClassVar[str]
    alg: ClassVar[str]

    @abstractmethod
    def verify(self, data: bytes, signature: bytes) -> bool:
        """True iff `signature` (JWS encoding) is valid over `data`; never raises on bad input."""

    @abstractmethod
    def raw_public_bytes(self) -> bytes:
        """Ed25519: the 32-byte key; EC: the SEC1 uncompressed point (0x04 || x || y)."""

    @abstractmethod
    def _jwk_members(self) -> dict[str, str]:
        """The RFC 7638 required members (kty, crv, x, y) of the public JWK."""

    @cached_property
    def kid(self) -> str:
        return jwk_thumbprint(self._jwk_members())

    def jwk(self) -> dict[str, str]:
        """The public JWK with kid, alg and use (RFC 7517 §4); never private material."""
        return {**self._jwk_members(), "kid": self.kid, "alg": self.alg, "use": "sig"}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VerifyingKey):
            return NotImplemented
        return (self.suite, self.raw_public_bytes()) == (other.suite, other.raw_public_bytes())

    def __hash__(self) -> int:
        return hash((self.suite, self.raw_public_bytes()))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} suite={self.suite} kid={self.kid}>"


class SigningKey(ABC):
    """A private key of one suite; its `kid` is the thumbprint of its public half."""

    suite: ClassVar[str]
    alg: ClassVar[str]

    @property
    @abstractmethod
    def public_key(self) -> VerifyingKey: ...

    @property
    def kid(self) -> str:
        return self.public_key.kid

    @abstractmethod
    def sign(self, data: bytes) -> bytes:
        """The JWS signature over `data` (RFC 7515 §5.1 step 5 encoding, e.g. ECDSA r || s)."""

    @abstractmethod
    def to_pem(self, passphrase: bytes | None = None) -> bytes:
        """PKCS#8 PEM (RFC 5208 / RFC 5958), PBES2-encrypted when a passphrase is given."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} suite={self.suite} kid={self.kid}>"


def require_jwk_shape(jwk: Mapping[str, object], *, kty: str, crv: str, alg: str) -> None:
    """Refuse a JWK that is not a public signing key of exactly this kty, crv and alg."""
    if jwk.get("kty") != kty or jwk.get("crv") != crv:
        raise InvalidKeyError(
            f"expected a {kty}/{crv} JWK, got kty={jwk.get('kty')!r} crv={jwk.get('crv')!r}"
        )
    if "d" in jwk:
        # A public-key slot must never be handed a private key: it would end up in a JWKS.
        raise InvalidKeyError("JWK carries private key material ('d')")
    # RFC 7517 §4.2 / §4.4: when present, use and alg must agree with what the key is used for.
    if "use" in jwk and jwk["use"] != "sig":
        raise InvalidKeyError(f"JWK use {jwk['use']!r} is not 'sig'")
    if "alg" in jwk and jwk["alg"] != alg:
        raise InvalidKeyError(f"JWK alg {jwk['alg']!r} does not match {alg!r}")


def jwk_bytes(jwk: Mapping[str, object], name: str, size: int) -> bytes:
    """Decode the base64url member `name` and insist on exactly `size` bytes (RFC 7518 §6.2.1.2)."""
    value = jwk.get(name)
    if not isinstance(value, str):
        raise InvalidKeyError(f"JWK member {name!r} is missing or not a string")
    try:
        decoded = b64url_decode(value)
    except ValueError as exc:
        raise InvalidKeyError(f"JWK member {name!r}: {exc}") from None
    if len(decoded) != size:
        raise InvalidKeyError(f"JWK member {name!r} must be {size} bytes, got {len(decoded)}")
    return decoded
