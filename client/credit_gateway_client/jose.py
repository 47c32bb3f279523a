"""Keys and compact JWS (RFC 7515 §7.1): the agency's signing key, public keys from JWKs, and
strict verification where the key, never the header, decides the algorithm (RFC 8725 §3.1).

Suites: Ed25519 (`EdDSA`, RFC 8037; `Ed25519` of RFC 9864 accepted when verifying) and ES256.
The gateway's SM2-SM3 suite is not supported here (it needs a library outside the three this
package depends on).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm
from jwt.exceptions import InvalidKeyError

from credit_gateway_client.errors import VerificationError

__all__ = [
    "AgencyKey",
    "Compact",
    "PublicKey",
    "b64url_decode",
    "b64url_encode",
    "jwk_thumbprint",
    "load_agency_key",
    "parse_compact",
    "public_key_from_jwk",
    "verify_compact",
]

_OKP = OKPAlgorithm()
_ES256 = ECAlgorithm(ECAlgorithm.SHA256)
# Which header algs each kind of key verifies: RFC 8037's EdDSA and RFC 9864's Ed25519 name
# the same signature over Ed25519.
_ALGS = {"Ed25519": frozenset({"EdDSA", "Ed25519"}), "P-256": frozenset({"ES256"})}
# RFC 7638 §3.2: the required members of each key type, in lexicographic order.
_THUMBPRINT_MEMBERS = {"OKP": ("crv", "kty", "x"), "EC": ("crv", "kty", "x", "y")}


def b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str | bytes) -> bytes:
    """Unpadded base64url (RFC 7515 §2); ValueError on anything else."""
    data = text.encode("ascii") if isinstance(text, str) else text
    if b"=" in data or b"+" in data or b"/" in data:
        raise ValueError("not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not base64url: {exc}") from None


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint: the `kid` of every key the gateway knows."""
    members = _THUMBPRINT_MEMBERS.get(str(jwk.get("kty")))
    if members is None or not all(isinstance(jwk.get(m), str) for m in members):
        raise ValueError(f"cannot take the thumbprint of this JWK (kty {jwk.get('kty')!r})")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return b64url_encode(hashlib.sha256(canonical.encode("utf-8")).digest())


@dataclass(frozen=True)
class PublicKey:
    """A verifying key with its thumbprint and the header algs it accepts."""

    kid: str
    jwk: dict[str, str]
    algs: frozenset[str]
    key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey = field(repr=False)

    def verify(self, alg: str, signing_input: bytes, signature: bytes) -> bool:
        if alg not in self.algs:
            return False
        if isinstance(self.key, ed25519.Ed25519PublicKey):
            return _OKP.verify(signing_input, self.key, signature)
        return _ES256.verify(signing_input, self.key, signature)


def public_key_from_jwk(jwk: Mapping[str, Any]) -> PublicKey:
    """An Ed25519 or P-256 public JWK as a PublicKey; VerificationError otherwise."""
    crv = jwk.get("crv")
    if crv not in _ALGS or jwk.get("kty") != ("OKP" if crv == "Ed25519" else "EC"):
        raise VerificationError("unsupported_key", f"no Ed25519 or P-256 key: {dict(jwk)!r}")
    try:
        text = json.dumps(dict(jwk))
        key = _OKP.from_jwk(text) if crv == "Ed25519" else _ES256.from_jwk(text)
    except (InvalidKeyError, ValueError) as exc:
        raise VerificationError("unsupported_key", f"not a usable public JWK: {exc}") from exc
    if not isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
        raise VerificationError("unsupported_key", "a public JWK was expected, not a private one")
    public = {m: str(jwk[m]) for m in _THUMBPRINT_MEMBERS[str(jwk["kty"])]}
    return PublicKey(jwk_thumbprint(public), public, _ALGS[str(crv)], key)


@dataclass(frozen=True)
class AgencyKey:
    """The agency's private key: it signs messages, client assertions and consumer receipts.
    `kid` is the RFC 7638 thumbprint the gateway registered it under."""

    private_key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey = field(repr=False)
    public: PublicKey

    @classmethod
    def from_private_key(
        cls, private_key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
    ) -> AgencyKey:
        """An Ed25519 or P-256 private key (cryptography's), with its public JWK and kid."""
        if isinstance(private_key, ed25519.Ed25519PrivateKey):
            jwk = json.loads(_OKP.to_jwk(private_key.public_key()))
        elif isinstance(private_key, ec.EllipticCurvePrivateKey) and private_key.curve.name == (
            "secp256r1"
        ):
            jwk = json.loads(_ES256.to_jwk(private_key.public_key()))
        else:
            raise ValueError("only Ed25519 and P-256 keys are supported")
        return cls(private_key, public_key_from_jwk(jwk))

    @property
    def kid(self) -> str:
        return self.public.kid

    @property
    def alg(self) -> str:
        return "EdDSA" if isinstance(self.private_key, ed25519.Ed25519PrivateKey) else "ES256"

    def sign_compact(self, payload: bytes, *, typ: str | None) -> str:
        """A compact JWS of `payload`, protected header {alg, kid[, typ]} as compact JSON."""
        header: dict[str, str] = {"alg": self.alg, "kid": self.kid}
        if typ is not None:
            header["typ"] = typ
        head = b64url_encode(json.dumps(header, separators=(",", ":")).encode())
        signing_input = f"{head}.{b64url_encode(payload)}".encode("ascii")
        if isinstance(self.private_key, ed25519.Ed25519PrivateKey):
            signature = _OKP.sign(signing_input, self.private_key)
        else:  # ES256: the raw r || s of RFC 7518 §3.4, as pyjwt writes it
            signature = _ES256.sign(signing_input, self.private_key)
        return f"{signing_input.decode()}.{b64url_encode(signature)}"


def load_agency_key(path: str | Path, passphrase: bytes | None = None) -> AgencyKey:
    """The PKCS#8 PEM file `gateway key generate` (or `openssl genpkey`) wrote."""
    try:
        private = serialization.load_pem_private_key(Path(path).read_bytes(), passphrase)
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"cannot read a private key from {path}: {exc}") from exc
    if not isinstance(private, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path}: only Ed25519 and P-256 keys are supported")
    try:
        return AgencyKey.from_private_key(private)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


@dataclass(frozen=True)
class Compact:
    """A compact JWS split and decoded; `payload` is raw bytes, not yet trusted."""

    header: dict[str, Any]
    payload: bytes
    signing_input: bytes
    signature: bytes

    def claims(self) -> dict[str, Any]:
        try:
            claims = json.loads(self.payload)
        except ValueError as exc:
            raise VerificationError("malformed_jws", f"the payload is not JSON: {exc}") from exc
        if not isinstance(claims, dict):
            raise VerificationError("malformed_jws", "the payload is not a JSON object")
        return claims


def parse_compact(token: str) -> Compact:
    """Split a compact JWS; VerificationError `malformed_jws` for anything non-canonical, a
    `crit` header (no extension is understood) or an unencoded payload (RFC 7797)."""
    parts = token.strip().split(".")
    if len(parts) != 3 or not token.isascii():
        raise VerificationError("malformed_jws", "a compact JWS is three base64url segments")
    try:
        header = json.loads(b64url_decode(parts[0]))
        payload, signature = b64url_decode(parts[1]), b64url_decode(parts[2])
    except ValueError as exc:
        raise VerificationError("malformed_jws", f"not a compact JWS: {exc}") from exc
    if not isinstance(header, dict) or not isinstance(header.get("alg"), str):
        raise VerificationError("malformed_jws", "the protected header lacks a string alg")
    if "crit" in header or header.get("b64", True) is not True:
        raise VerificationError("malformed_jws", "crit and b64 headers are not supported")
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    return Compact(header, payload, signing_input, signature)


def verify_compact(token: str, key: PublicKey, *, typ: str | None = None) -> Compact:
    """The parsed JWS once its signature verifies under `key` (whose suite decides the alg:
    `none` and HMAC never pass) and its `typ` is `typ` (RFC 8725 §3.11), when given."""
    parsed = parse_compact(token)
    alg = str(parsed.header["alg"])
    if alg not in key.algs:
        raise VerificationError("algorithm_not_allowed", f"alg {alg!r} is not the key's suite")
    if not key.verify(alg, parsed.signing_input, parsed.signature):
        raise VerificationError("signature_invalid", f"the signature by {key.kid} does not verify")
    if typ is not None and str(parsed.header.get("typ", "")).lower() != typ:
        raise VerificationError("wrong_typ", f"typ {parsed.header.get('typ')!r}, not {typ!r}")
    return parsed
