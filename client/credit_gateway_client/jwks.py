"""The gateway's public keys (`GET /.well-known/jwks.json`), cached by `kid` and fetched again
when a statement names a `kid` not yet seen (the gateway rotated its receipt key)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from credit_gateway_client.errors import VerificationError
from credit_gateway_client.jose import PublicKey, public_key_from_jwk

__all__ = ["JwksCache", "keys_by_kid"]


def keys_by_kid(jwks: Mapping[str, Any]) -> dict[str, PublicKey]:
    """Every usable key of a JWK set under its RFC 7638 thumbprint. A set's own `kid` member is
    only a label: one that is not the key's thumbprint is refused, so that a set cannot
    present one key under another's kid."""
    entries = jwks.get("keys")
    if not isinstance(entries, list):
        raise VerificationError("invalid_jwks", "a JWK set has a 'keys' array (RFC 7517 §5.1)")
    found: dict[str, PublicKey] = {}
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        try:
            key = public_key_from_jwk(entry)
        except VerificationError:
            continue  # a suite this client does not verify (SM2): other keys still serve
        if entry.get("kid", key.kid) != key.kid:
            raise VerificationError(
                "invalid_jwks", f"JWK labelled {entry.get('kid')} has thumbprint {key.kid}"
            )
        found[key.kid] = key
    return found


class JwksCache:
    """Keys by kid from `fetch` (the JWKS as JSON). An unknown kid fetches the set again, at
    most once per `min_refresh_seconds`, so a flood of forged kids cannot make every
    verification a request to the gateway."""

    def __init__(
        self,
        fetch: Callable[[], Mapping[str, Any]],
        *,
        min_refresh_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._min_refresh = min_refresh_seconds
        self._clock = clock
        self._keys: dict[str, PublicKey] = {}
        self._fetched_at: float | None = None

    def key(self, kid: str) -> PublicKey:
        """The gateway key `kid`; VerificationError `unknown_key` if the gateway has none."""
        found = self._keys.get(kid)
        if found is None and self._may_refresh():
            self.refresh()
            found = self._keys.get(kid)
        if found is None:
            raise VerificationError("unknown_key", f"the gateway's JWKS has no key {kid!r}")
        return found

    def refresh(self) -> None:
        self._fetched_at = self._clock()
        self._keys = keys_by_kid(self._fetch())

    def _may_refresh(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at >= self._min_refresh
