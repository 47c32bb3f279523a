"""Strict unpadded base64url (RFC 7515 §2 / RFC 4648 §5), the encoding of every JOSE field."""

from __future__ import annotations

import base64
import re

__all__ = ["b64url_decode", "b64url_encode", "b64url_encode_bytes"]

_ALPHABET = re.compile(rb"[A-Za-z0-9_-]*")


def b64url_encode(data: bytes) -> str:
    return b64url_encode_bytes(data).decode("ascii")


def b64url_encode_bytes(data: bytes) -> bytes:
    """`b64url_encode` as ASCII bytes, for assembling a JWS without decoding and re-encoding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def b64url_decode(text: str | bytes) -> bytes:
    """Decode canonical unpadded base64url; raise ValueError on anything else.

    Padding, whitespace and characters outside the URL-safe alphabet are refused (RFC 7515 §2).
    Non-zero trailing bits are refused too (RFC 4648 §3.5): otherwise several strings decode to
    the same bytes, and a relayed token could be altered without touching its signature.
    """
    if isinstance(text, str):
        if not text.isascii():
            raise ValueError("base64url text must be ASCII")
        raw = text.encode("ascii")
    else:
        raw = bytes(text)
    if _ALPHABET.fullmatch(raw) is None:
        raise ValueError("base64url text has characters outside the URL-safe alphabet")
    if len(raw) % 4 == 1:
        raise ValueError("base64url text has an impossible length")
    decoded = base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    if base64.urlsafe_b64encode(decoded).rstrip(b"=") != raw:
        raise ValueError("base64url text is not canonical (non-zero trailing bits)")
    return decoded
