"""JWK Sets (RFC 7517 §5): publishing public keys and picking one out by kid."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import ClassVar

from keys.keypair import InvalidKeyError, VerifyingKey
from keys.suites import public_key_from_jwk

__all__ = ["UnknownKeyError", "build_jwks", "key_from_jwks"]


class UnknownKeyError(LookupError):
    """No key with the requested kid in the set."""

    code: ClassVar[str] = "unknown_key"


def build_jwks(keys: Iterable[VerifyingKey]) -> dict[str, list[dict[str, str]]]:
    """{"keys": [public JWK, ...]} in the given order; ValueError on a repeated kid."""
    entries: list[dict[str, str]] = []
    seen: set[str] = set()
    for key in keys:
        if key.kid in seen:
            # RFC 7517 §4.5: keys in a set should have distinct kids, or lookups are ambiguous.
            raise ValueError(f"key {key.kid} appears twice in the JWK set")
        seen.add(key.kid)
        entries.append(key.jwk())
    return {"keys": entries}


def key_from_jwks(jwks: Mapping[str, object], kid: str) -> VerifyingKey:
    """The key of the set whose kid is `kid`, checked to be that key's RFC 7638 thumbprint.

    A set's "kid" member is only a label; recomputing the thumbprint stops a set from
    presenting one key under another key's kid.
    """
    entries = jwks.get("keys")
    if not isinstance(entries, list):
        raise InvalidKeyError("a JWK set has a 'keys' array (RFC 7517 §5.1)")
    for entry in entries:
        if not isinstance(entry, Mapping) or entry.get("kid") != kid:
            continue
        key = public_key_from_jwk(entry)
        if key.kid != kid:
            raise InvalidKeyError(f"JWK labelled {kid} has thumbprint {key.kid}")
        return key
    raise UnknownKeyError(f"no key {kid} in the JWK set")
