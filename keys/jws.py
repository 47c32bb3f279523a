"""Compact JWS (RFC 7515 §7.1): strict parsing, signing, and verification against a known key.

JWSError                     code
├── MalformedJWSError        malformed_jws
├── AlgorithmNotAllowedError algorithm_not_allowed
└── SignatureInvalidError    signature_invalid
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from keys.base64url import b64url_decode, b64url_encode, b64url_encode_bytes
from keys.keypair import SigningKey, VerifyingKey

__all__ = [
    "AlgorithmNotAllowedError",
    "JWSError",
    "MalformedJWSError",
    "ParsedJWS",
    "SignatureInvalidError",
    "b64url_decode",
    "b64url_encode",
    "header_segment",
    "parse_compact",
    "sign_compact",
    "sign_with_header",
    "verify_compact",
]

# Header members sign_compact sets itself, or whose meaning this module refuses to support.
_RESERVED_BY_SIGNER = frozenset({"alg", "kid", "typ", "crit", "b64"})


class JWSError(Exception):
    code: ClassVar[str] = "jws_error"


class MalformedJWSError(JWSError):
    code: ClassVar[str] = "malformed_jws"


class AlgorithmNotAllowedError(JWSError):
    code: ClassVar[str] = "algorithm_not_allowed"


class SignatureInvalidError(JWSError):
    code: ClassVar[str] = "signature_invalid"


@dataclass(frozen=True)
class ParsedJWS:
    """A syntactically valid compact JWS whose signature has NOT been checked yet."""

    header: dict[str, object]
    payload: bytes
    signing_input: bytes  # ASCII(BASE64URL(header) || "." || BASE64URL(payload)), RFC 7515 §5.2
    signature: bytes
    raw: bytes  # the token exactly as received, e.g. for a Merkle leaf


def _unique_object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # RFC 7515 §5.2 step 4 lets a parser reject duplicate member names; we must, or two
    # parsers could read two different algs out of one header.
    result: dict[str, object] = {}
    for name, value in pairs:
        if name in result:
            raise MalformedJWSError(f"duplicate header member {name!r}")
        result[name] = value
    return result


def _refuse_constant(name: str) -> object:
    raise MalformedJWSError(f"header contains the non-JSON constant {name}")


# One decoder for every header (json.loads with hooks builds a new one per call).
_HEADER_DECODER = json.JSONDecoder(
    object_pairs_hook=_unique_object, parse_constant=_refuse_constant
)


def _parse_header(segment: bytes) -> dict[str, object]:
    try:
        text = b64url_decode(segment).decode("utf-8")
        if text.startswith("\ufeff"):  # as json.loads refuses it
            raise ValueError("Unexpected UTF-8 BOM")
        header = _HEADER_DECODER.decode(text)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError too
        raise MalformedJWSError(f"protected header is not base64url JSON: {exc}") from None
    if not isinstance(header, dict):
        raise MalformedJWSError("protected header is not a JSON object")
    if not isinstance(header.get("alg"), str):
        raise MalformedJWSError("protected header lacks a string 'alg'")
    if "kid" in header and not isinstance(header["kid"], str):
        raise MalformedJWSError("header 'kid' is not a string")
    if "crit" in header:
        # RFC 7515 §4.1.11: a recipient must reject extensions it does not understand; we
        # understand none.
        raise MalformedJWSError("header 'crit' names extensions this gateway does not support")
    if header.get("b64", True) is not True:
        raise MalformedJWSError("unencoded payloads (RFC 7797 'b64') are not supported")
    return header


def parse_compact(token: bytes | str) -> ParsedJWS:
    """Split and decode a compact JWS; MalformedJWSError on anything non-canonical.

    The payload is returned as raw bytes; the caller parses it. No key is consulted here.
    """
    if isinstance(token, str):
        if not token.isascii():
            raise MalformedJWSError("a compact JWS is ASCII")
        raw = token.encode("ascii")
    else:
        raw = bytes(token)
    segments = raw.split(b".")
    if len(segments) != 3:
        raise MalformedJWSError(f"a compact JWS has 3 segments, got {len(segments)}")
    header_segment, payload_segment, signature_segment = segments
    header = _parse_header(header_segment)
    try:
        payload = b64url_decode(payload_segment)
        signature = b64url_decode(signature_segment)
    except ValueError as exc:
        raise MalformedJWSError(f"payload or signature is not base64url: {exc}") from None
    return ParsedJWS(
        header=header,
        payload=payload,
        signing_input=header_segment + b"." + payload_segment,
        signature=signature,
        raw=raw,
    )


# RFC 9864 (2025) names the fully-specified "Ed25519" for what RFC 8037 called "EdDSA" over
# Ed25519; libraries are moving to it, so a verifier accepts both for an Ed25519 key, whichever
# name the key itself carries.
ALG_ALIASES = {"Ed25519": "EdDSA"}


def _same_algorithm(header_alg: str, key_alg: str) -> bool:
    return ALG_ALIASES.get(header_alg, header_alg) == ALG_ALIASES.get(key_alg, key_alg)


def verify_compact(parsed: ParsedJWS, key: VerifyingKey) -> None:
    """Check `parsed` against `key`, the key the caller's registry chose (normally by kid).

    The key's suite decides the algorithm (RFC 8725 §3.1): the header alg must equal key.alg.
    """
    alg = parsed.header.get("alg")
    if not isinstance(alg, str):  # only a hand-built ParsedJWS can get here
        raise MalformedJWSError("protected header lacks a string 'alg'")
    # RFC 8725 §3.2 / §2.1: `none` and HMAC (public key used as a MAC secret) are never valid.
    if alg.lower() == "none" or alg.upper().startswith("HS"):
        raise AlgorithmNotAllowedError(f"JWS alg {alg!r} is never accepted")
    if not _same_algorithm(alg, key.alg):
        raise AlgorithmNotAllowedError(f"JWS alg {alg!r} does not match the key's {key.alg!r}")
    if not key.verify(parsed.signing_input, parsed.signature):
        raise SignatureInvalidError("the JWS signature does not verify")


def sign_compact(
    payload: bytes,
    key: SigningKey,
    *,
    typ: str | None = None,
    extra_header: Mapping[str, object] | None = None,
) -> str:
    """A compact JWS with protected header {alg, kid[, typ], **extra_header} (compact JSON)."""
    return sign_with_header(header_segment(key, typ=typ, extra_header=extra_header), payload, key)


def header_segment(
    key: SigningKey, *, typ: str | None = None, extra_header: Mapping[str, object] | None = None
) -> bytes:
    """The base64url protected header {alg, kid[, typ], **extra_header} that `sign_compact`
    puts first; a signer of many payloads under one header computes it once."""
    header: dict[str, object] = {"alg": key.alg, "kid": key.kid}
    if typ is not None:
        header["typ"] = typ
    for name, value in (extra_header or {}).items():
        if name in _RESERVED_BY_SIGNER:
            raise ValueError(f"header member {name!r} cannot be set through extra_header")
        header[name] = value
    header_json = json.dumps(header, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return b64url_encode(header_json.encode("utf-8")).encode("ascii")


def sign_with_header(segment: bytes, payload: bytes, key: SigningKey) -> str:
    """The compact JWS of `payload` under the protected header `segment` (`header_segment`
    of the same key)."""
    signing_input = segment + b"." + b64url_encode_bytes(payload)
    return (signing_input + b"." + b64url_encode_bytes(key.sign(signing_input))).decode("ascii")
