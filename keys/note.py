"""C2SP signed notes, tlog-checkpoint bodies, Ed25519 tlog-cosignatures and tlog-proof files.

Pure text plus Ed25519: parsers are strict and raise NoteError; verifiers return, never raise.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "COSIGNATURE_V1",
    "ED25519",
    "MAX_SIGNATURES",
    "TLOG_PROOF_HEADER",
    "Checkpoint",
    "Note",
    "NoteError",
    "NoteSignature",
    "TlogProof",
    "VerifierKey",
    "add_signature",
    "cosign",
    "cosign_with",
    "format_checkpoint",
    "format_tlog_proof",
    "key_id",
    "parse_checkpoint",
    "parse_note",
    "parse_tlog_proof",
    "parse_vkey",
    "sign_note",
    "verify_cosignature",
    "verify_note",
    "vkey",
]

# Signature type bytes from c2sp.org/signed-note "Signature types".
ED25519 = 0x01
COSIGNATURE_V1 = 0x04
TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"
# signed-note: verifiers MUST accept at least 16 signatures; sumdb/note caps notes at 100.
MAX_SIGNATURES = 100
_DASH = "\u2014 "  # em dash + space opens every signature line (signed-note "Format")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")  # ASCII decimal, no leading zeroes
_MAX_UINT64 = 2**64 - 1
_MAX_TIMESTAMP = 2**63 - 1  # tlog-cosignature: the timestamp MUST NOT exceed 2^63 - 1
_ED25519_KEY_SIZE = 32
_COSIGNATURE_SIZE = 8 + 64  # timestamped_signature: u64 timestamp || Ed25519 signature


class NoteError(ValueError):
    """Text that breaks the C2SP grammar of a note, checkpoint, verifier key or tlog-proof."""


def _b64decode(text: str) -> bytes:
    # Only canonical RFC 4648 §4 base64 is accepted, so re-serialising a parsed note is exact.
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NoteError(f"not base64: {text!r}") from exc
    if _b64encode(raw) != text:
        raise NoteError(f"not canonical base64: {text!r}")
    return raw


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _decimal(text: str) -> int:
    if not _DECIMAL.fullmatch(text) or int(text) > _MAX_UINT64:
        raise NoteError(f"not a decimal without leading zeroes: {text!r}")
    return int(text)


def _check_name(name: str) -> None:
    # signed-note "Format": key names are non-empty, without Unicode spaces or "+".
    if not name or "+" in name or any(c.isspace() or ord(c) < 0x20 for c in name):
        raise NoteError(f"invalid key name: {name!r}")


def _check_body(body: str) -> None:
    # signed-note "Format": text ends in a newline; no ASCII control characters but newline.
    if not body.endswith("\n") or any(ord(c) < 0x20 and c != "\n" for c in body):
        raise NoteError("note text must end with a newline and hold no control characters")


def key_id(name: str, public_key_raw: bytes, key_type: int = ED25519) -> bytes:
    """signed-note key ID: SHA-256(name || 0x0A || type || public key)[:4]."""
    material = name.encode() + b"\n" + bytes([key_type]) + public_key_raw
    return hashlib.sha256(material).digest()[:4]


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    @property
    def body(self) -> str:
        return format_checkpoint(self.origin, self.size, self.root, self.extensions)


def format_checkpoint(origin: str, size: int, root: bytes, extensions: Sequence[str] = ()) -> str:
    """The tlog-checkpoint note text: origin, size, base64 root, extension lines; ends in "\\n"."""
    lines = [origin, str(size), _b64encode(root), *extensions]
    if not 0 <= size <= _MAX_UINT64 or len(root) != 32 or any(not x or "\n" in x for x in lines):
        raise NoteError("checkpoint needs non-empty one-line origin and extensions, a uint64 size")
    body = "\n".join(lines) + "\n"
    _check_body(body)
    return body


def parse_checkpoint(body: str) -> Checkpoint:
    """Strict tlog-checkpoint "Note text" parse of a note body (no signature lines)."""
    _check_body(body)
    lines = body[:-1].split("\n")
    if len(lines) < 3 or not all(lines):
        raise NoteError("checkpoint needs at least three lines, none of them empty")
    root = _b64decode(lines[2])
    if len(root) != 32:
        raise NoteError("checkpoint root hash is not 32 bytes")
    return Checkpoint(lines[0], _decimal(lines[1]), root, tuple(lines[3:]))


@dataclass(frozen=True)
class NoteSignature:
    """One signature line; `sig_bytes` follows the 4-byte key ID in the base64 blob."""

    name: str
    key_id: bytes
    sig_bytes: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        if len(self.key_id) != 4 or not self.sig_bytes:
            raise NoteError("a signature is a 4-byte key ID and a non-empty signature")

    @property
    def line(self) -> str:
        return f"{_DASH}{self.name} {_b64encode(self.key_id + self.sig_bytes)}\n"


@dataclass(frozen=True)
class Note:
    body: str
    signatures: tuple[NoteSignature, ...]

    @property
    def text(self) -> str:
        return self.body + "\n" + "".join(s.line for s in self.signatures)


def _parse_signature_line(line: str) -> NoteSignature:
    line = line.removesuffix("\n")
    parts = line.removeprefix(_DASH).split(" ")
    if not line.startswith(_DASH) or len(parts) != 2:
        raise NoteError(f"malformed signature line: {line!r}")
    raw = _b64decode(parts[1])
    return NoteSignature(parts[0], raw[:4], raw[4:])


def parse_note(text: str) -> Note:
    """Split a signed note at its last empty line (signed-note "Format"); signatures unverified."""
    _check_body(text)
    cut = text.rfind("\n\n")
    if cut < 0 or cut + 2 == len(text):
        raise NoteError("note has no signature lines")
    lines = text[cut + 2 : -1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError("note has too many signatures")
    return Note(text[: cut + 1], tuple(_parse_signature_line(x) for x in lines))


def sign_note(body: str, name: str, private_key: Ed25519PrivateKey) -> str:
    """A new note: the body, a blank line and one Ed25519 (type 0x01) signature line."""
    _check_body(body)
    public_raw = private_key.public_key().public_bytes_raw()
    signature = private_key.sign(body.encode())
    return Note(body, (NoteSignature(name, key_id(name, public_raw), signature),)).text


def add_signature(note: str, line: str) -> str:
    """Append a signature line (e.g. a witness cosignature), replacing one with the same key.

    Keeping one line per (name, key ID) matches golang.org/x/mod/sumdb/note's Sign.
    """
    parsed = parse_note(note)
    new = _parse_signature_line(line)
    kept = [s for s in parsed.signatures if (s.name, s.key_id) != (new.name, new.key_id)]
    if len(kept) >= MAX_SIGNATURES:
        raise NoteError("note has too many signatures")
    return Note(parsed.body, (*kept, new)).text


def _public_key(public_raw: bytes) -> Ed25519PublicKey | None:
    if not isinstance(public_raw, bytes) or len(public_raw) != _ED25519_KEY_SIZE:
        return None
    try:
        return Ed25519PublicKey.from_public_bytes(public_raw)
    except ValueError:
        return None


def verify_note(text: str, name: str, public_key_raw: bytes) -> bool:
    """True iff a signature line matches this name and Ed25519 key ID, and every such line verifies.

    Lines from other keys are ignored, as signed-note "Signatures" requires; a failing line from
    this key rejects the note (the spec's SHOULD).
    """
    public_key = _public_key(public_key_raw)
    if public_key is None or not isinstance(text, str) or not isinstance(name, str):
        return False
    try:
        note = parse_note(text)
    except NoteError:
        return False
    expected = key_id(name, public_key_raw, ED25519)
    mine = [s for s in note.signatures if s.name == name and s.key_id == expected]
    try:
        for signature in mine:
            public_key.verify(signature.sig_bytes, note.body.encode())
    except InvalidSignature:
        return False
    return bool(mine)


@dataclass(frozen=True)
class VerifierKey:
    name: str
    key_id: bytes
    key_type: int
    public_key: bytes


def vkey(name: str, public_raw: bytes, key_type: int = ED25519) -> str:
    """Verifier key string "<name>+<hex key ID>+<base64(type || public key)>" (sumdb/note)."""
    _check_name(name)
    if key_type not in (ED25519, COSIGNATURE_V1) or len(public_raw) != _ED25519_KEY_SIZE:
        raise NoteError("only 32-byte Ed25519 keys of type 0x01 or 0x04 are supported")
    encoded = _b64encode(bytes([key_type]) + public_raw)
    return f"{name}+{key_id(name, public_raw, key_type).hex()}+{encoded}"


def parse_vkey(text: str) -> VerifierKey:
    """Strict inverse of `vkey`; the key ID must match the one recomputed from name and key."""
    parts = text.split("+", 2)
    if len(parts) != 3 or not re.fullmatch(r"[0-9a-f]{8}", parts[1]):
        raise NoteError(f"malformed verifier key: {text!r}")
    name, raw = parts[0], _b64decode(parts[2])
    _check_name(name)
    if len(raw) != 1 + _ED25519_KEY_SIZE or raw[0] not in (ED25519, COSIGNATURE_V1):
        raise NoteError("verifier key is not a 32-byte Ed25519 key of type 0x01 or 0x04")
    if key_id(name, raw[1:], raw[0]).hex() != parts[1]:
        raise NoteError("verifier key ID does not match its name and key")
    return VerifierKey(name, bytes.fromhex(parts[1]), raw[0], raw[1:])


def _cosigned_message(checkpoint_body: str, timestamp: int) -> bytes:
    # tlog-cosignature "Ed25519 signed message": header line, time line, then the note body.
    return f"cosignature/v1\ntime {timestamp}\n{checkpoint_body}".encode()


def cosign(checkpoint_body: str, name: str, private_key: Ed25519PrivateKey, timestamp: int) -> str:
    """A tlog-cosignature/v1 signature line (key type 0x04) over a checkpoint note body."""
    public_raw = private_key.public_key().public_bytes_raw()
    return cosign_with(checkpoint_body, name, public_raw, private_key.sign, timestamp)


def cosign_with(
    checkpoint_body: str,
    name: str,
    public_raw: bytes,
    sign: Callable[[bytes], bytes],
    timestamp: int,
) -> str:
    """`cosign` for a key held elsewhere: `sign` is its Ed25519 signing function."""
    parse_checkpoint(checkpoint_body)
    if not 0 <= timestamp <= _MAX_TIMESTAMP:
        raise NoteError("cosignature timestamp must be in [0, 2^63 - 1]")
    blob = timestamp.to_bytes(8, "big") + sign(_cosigned_message(checkpoint_body, timestamp))
    return NoteSignature(name, key_id(name, public_raw, COSIGNATURE_V1), blob).line


def verify_cosignature(
    checkpoint_body: str, signature: str | NoteSignature, name: str, public_raw: bytes
) -> int | None:
    """The cosignature's POSIX timestamp if it is this cosigner's and valid, else None."""
    public_key = _public_key(public_raw)
    if public_key is None or not isinstance(checkpoint_body, str) or not isinstance(name, str):
        return None
    try:
        sig = _parse_signature_line(signature) if isinstance(signature, str) else signature
        parse_checkpoint(checkpoint_body)
    except NoteError:
        return None
    expected = key_id(name, public_raw, COSIGNATURE_V1)
    if sig.name != name or sig.key_id != expected or len(sig.sig_bytes) != _COSIGNATURE_SIZE:
        return None
    timestamp = int.from_bytes(sig.sig_bytes[:8], "big")
    if timestamp > _MAX_TIMESTAMP:
        return None
    try:
        public_key.verify(sig.sig_bytes[8:], _cosigned_message(checkpoint_body, timestamp))
    except InvalidSignature:
        return None
    return timestamp


@dataclass(frozen=True)
class TlogProof:
    index: int
    proof: tuple[bytes, ...]
    checkpoint_note: str
    extra: bytes | None = None  # unauthenticated (tlog-proof "Format"); never trust it implicitly


def format_tlog_proof(
    index: int, proof: Sequence[bytes], checkpoint_note: str, extra: bytes | None = None
) -> str:
    """c2sp.org/tlog-proof@v1 text; the optional "extra" line precedes "index", as the spec says."""
    parse_checkpoint(parse_note(checkpoint_note).body)
    if not 0 <= index <= _MAX_UINT64 or any(len(h) != 32 for h in proof):
        raise NoteError("tlog-proof needs a uint64 index and 32-byte hashes")
    head = [TLOG_PROOF_HEADER]
    if extra is not None:
        head.append(f"extra {_b64encode(extra)}")
    head.append(f"index {index}")
    head.extend(_b64encode(h) for h in proof)
    return "\n".join(head) + "\n\n" + checkpoint_note


def parse_tlog_proof(text: str) -> TlogProof:
    """Strict parse; the embedded note must be a well-formed signed checkpoint (unverified)."""
    cut = text.find("\n\n")
    if cut < 0:
        raise NoteError("tlog-proof has no blank line before its checkpoint")
    lines, checkpoint_note = text[:cut].split("\n"), text[cut + 2 :]
    if lines[0] != TLOG_PROOF_HEADER:
        raise NoteError("tlog-proof does not start with c2sp.org/tlog-proof@v1")
    extra: bytes | None = None
    position = 1
    if len(lines) > 1 and lines[1].startswith("extra "):
        extra, position = _b64decode(lines[1].removeprefix("extra ")), 2
    if len(lines) <= position or not lines[position].startswith("index "):
        raise NoteError("tlog-proof has no index line")
    index = _decimal(lines[position].removeprefix("index "))
    hashes = tuple(_b64decode(line) for line in lines[position + 1 :])
    if any(len(h) != 32 for h in hashes):
        raise NoteError("tlog-proof hash is not 32 bytes")
    parse_checkpoint(parse_note(checkpoint_note).body)
    return TlogProof(index, hashes, checkpoint_note, extra)
