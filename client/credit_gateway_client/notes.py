"""C2SP signed notes, checkpoints, verifier keys and tlog-proof files: the parsers and the
log-signature check of the gateway's keys/note.py, copied (the client is installed alone).

Parsers are strict and raise NoteError; `verify_note` returns, never raises.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = [
    "Checkpoint",
    "NoteError",
    "TlogProof",
    "VerifierKey",
    "parse_checkpoint",
    "parse_tlog_proof",
    "parse_vkey",
    "verify_note",
]

ED25519 = 0x01  # c2sp.org/signed-note signature types
COSIGNATURE_V1 = 0x04
TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"
MAX_SIGNATURES = 100
_DASH = "\u2014 "  # em dash + space opens every signature line
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


class NoteError(ValueError):
    """Text that breaks the C2SP grammar of a note, checkpoint, verifier key or tlog-proof."""


def _b64decode(text: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NoteError(f"not base64: {text!r}") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise NoteError(f"not canonical base64: {text!r}")
    return raw


def _decimal(text: str) -> int:
    if not _DECIMAL.fullmatch(text) or int(text) >= 2**64:
        raise NoteError(f"not a decimal without leading zeroes: {text!r}")
    return int(text)


def _check_body(body: str) -> None:
    if not body.endswith("\n") or any(ord(c) < 0x20 and c != "\n" for c in body):
        raise NoteError("note text must end with a newline and hold no control characters")


def key_id(name: str, public_key_raw: bytes, key_type: int = ED25519) -> bytes:
    """signed-note key ID: SHA-256(name || 0x0A || type || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([key_type]) + public_key_raw).digest()[:4]


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes


def parse_checkpoint(body: str) -> Checkpoint:
    """A tlog-checkpoint note body (origin, size, base64 root, extension lines)."""
    _check_body(body)
    lines = body[:-1].split("\n")
    if len(lines) < 3 or not all(lines):
        raise NoteError("checkpoint needs at least three lines, none of them empty")
    root = _b64decode(lines[2])
    if len(root) != 32:
        raise NoteError("checkpoint root hash is not 32 bytes")
    return Checkpoint(lines[0], _decimal(lines[1]), root)


@dataclass(frozen=True)
class _Signature:
    name: str
    key_id: bytes
    sig_bytes: bytes


def _split_note(text: str) -> tuple[str, list[_Signature]]:
    """(body, signatures) of a signed note, split at its last empty line; unverified."""
    _check_body(text)
    cut = text.rfind("\n\n")
    if cut < 0 or cut + 2 == len(text):
        raise NoteError("note has no signature lines")
    lines = text[cut + 2 : -1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError("note has too many signatures")
    signatures = []
    for line in lines:
        parts = line.removeprefix(_DASH).split(" ")
        if not line.startswith(_DASH) or len(parts) != 2:
            raise NoteError(f"malformed signature line: {line!r}")
        raw = _b64decode(parts[1])
        if len(raw) <= 4:
            raise NoteError("a signature is a 4-byte key ID and a signature")
        signatures.append(_Signature(parts[0], raw[:4], raw[4:]))
    return text[: cut + 1], signatures


def note_body(text: str) -> str:
    return _split_note(text)[0]


def verify_note(text: str, name: str, public_key_raw: bytes) -> bool:
    """True iff a signature line matches this name and Ed25519 key ID, and every such line
    verifies (lines of other keys, such as witness cosignatures, are ignored)."""
    try:
        body, signatures = _split_note(text)
        public_key = Ed25519PublicKey.from_public_bytes(public_key_raw)
    except ValueError:  # NoteError too
        return False
    expected = key_id(name, public_key_raw, ED25519)
    mine = [s for s in signatures if s.name == name and s.key_id == expected]
    try:
        for signature in mine:
            public_key.verify(signature.sig_bytes, body.encode())
    except InvalidSignature:
        return False
    return bool(mine)


@dataclass(frozen=True)
class VerifierKey:
    name: str
    key_id: bytes
    key_type: int
    public_key: bytes


def parse_vkey(text: str) -> VerifierKey:
    """`<name>+<hex key ID>+<base64(type || key)>`; the key ID must match name and key."""
    parts = text.strip().split("+", 2)
    if len(parts) != 3 or not re.fullmatch(r"[0-9a-f]{8}", parts[1]) or not parts[0]:
        raise NoteError(f"malformed verifier key: {text!r}")
    name, raw = parts[0], _b64decode(parts[2])
    if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
        raise NoteError("verifier key is not a 32-byte Ed25519 key of type 0x01 or 0x04")
    if key_id(name, raw[1:], raw[0]).hex() != parts[1]:
        raise NoteError("verifier key ID does not match its name and key")
    return VerifierKey(name, bytes.fromhex(parts[1]), raw[0], raw[1:])


@dataclass(frozen=True)
class TlogProof:
    index: int
    proof: tuple[bytes, ...]
    checkpoint_note: str


def parse_tlog_proof(text: str) -> TlogProof:
    """A c2sp.org/tlog-proof@v1 file; its checkpoint note well-formed (not yet verified)."""
    cut = text.find("\n\n")
    if cut < 0:
        raise NoteError("tlog-proof has no blank line before its checkpoint")
    lines, checkpoint_note = text[:cut].split("\n"), text[cut + 2 :]
    if lines[0] != TLOG_PROOF_HEADER:
        raise NoteError("tlog-proof does not start with c2sp.org/tlog-proof@v1")
    position = 2 if len(lines) > 1 and lines[1].startswith("extra ") else 1
    if len(lines) <= position or not lines[position].startswith("index "):
        raise NoteError("tlog-proof has no index line")
    index = _decimal(lines[position].removeprefix("index "))
    hashes = tuple(_b64decode(line) for line in lines[position + 1 :])
    if any(len(h) != 32 for h in hashes):
        raise NoteError("tlog-proof hash is not 32 bytes")
    parse_checkpoint(note_body(checkpoint_note))
    return TlogProof(index, hashes, checkpoint_note)
