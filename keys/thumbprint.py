"""JWK thumbprints (RFC 7638): the `kid` of every key the gateway knows."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from keys.base64url import b64url_encode

__all__ = ["jwk_thumbprint"]

# RFC 7638 §3.2: only the required members of each key type take part.
# EC and RSA from RFC 7638 §3.2; OKP from RFC 8037 §2; oct from RFC 7518 §6.4.
_REQUIRED_MEMBERS: Mapping[str, tuple[str, ...]] = {
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
    "RSA": ("e", "kty", "n"),
    "oct": ("k", "kty"),
}


def jwk_thumbprint(jwk: Mapping[str, object]) -> str:
    """SHA-256 JWK thumbprint, base64url without padding; ValueError for an unusable JWK.

    Optional members (kid, alg, use, private parts) never change the result.
    """
    kty = jwk.get("kty")
    if not isinstance(kty, str) or kty not in _REQUIRED_MEMBERS:
        raise ValueError(f"cannot take the thumbprint of a JWK with kty {kty!r}")
    members: dict[str, str] = {}
    for name in _REQUIRED_MEMBERS[kty]:
        value = jwk.get(name)
        if not isinstance(value, str):
            raise ValueError(f"JWK member {name!r} is missing or not a string")
        members[name] = value
    # RFC 7638 §3.3: lexicographic member order, no whitespace, UTF-8. The tuples above are
    # already sorted; sort_keys keeps that true if one is ever edited.
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return b64url_encode(hashlib.sha256(canonical.encode("utf-8")).digest())
