"""tlog-witness `add-checkpoint`: verify, check consistency, persist, cosign.

Status codes are the spec's: 404 unknown origin, 403 no valid log signature, 400 malformed
or old > new, 409 stale old size (body: our size, `text/x.tlog.size`) or same size with
another root, 422 a consistency proof that does not verify (a fork), which includes a size-0
checkpoint whose root is not the empty tree's (RFC 9162 §2.1.1: that tree has one root).
"""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.witness.state import WitnessState
from keys import merkle, note
from keys.store import generate_key_file, read_key_file
from keys.suites import SigningKey

KEY_FILE = "witness-key.pem"
STATE_FILE = "witness.db"
MAX_PROOF_LINES = 63


def check_name(name: str) -> None:
    """Raise NoteError unless `name` can name a witness key: its vkey and every cosignature
    line carry it (C2SP signed-note: non-empty, no spaces, no `+`)."""
    note.vkey(name, bytes(32), note.COSIGNATURE_V1)  # checks the name; the key is a stand-in


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


class Witness:
    def __init__(self, name: str, key: SigningKey, state: WitnessState) -> None:
        self.name = name
        self.key = key
        self.state = state

    @classmethod
    def open(cls, data_dir: Path, name: str) -> Witness:
        data_dir.mkdir(parents=True, exist_ok=True)
        key_path = data_dir / KEY_FILE
        if not key_path.exists():
            generate_key_file(key_path, "ed25519")
        return cls(name, read_key_file(key_path), WitnessState(data_dir / STATE_FILE))

    @property
    def vkey(self) -> str:
        return note.vkey(self.name, self.key.public_key.raw_public_bytes(), note.COSIGNATURE_V1)

    def add_checkpoint(self, body: str, now: int | None = None) -> Answer:
        now = int(time.time()) if now is None else now
        try:
            old, proof, checkpoint_note = _parse_request(body)
            signed = note.parse_note(checkpoint_note)
            checkpoint = note.parse_checkpoint(signed.body)
        except (note.NoteError, ValueError) as exc:
            return Answer(400, f"malformed add-checkpoint request: {exc}\n")
        with self.state.exclusive() as db:
            log = self.state.get(db, checkpoint.origin)
            if log is None:
                return Answer(404, f"unknown log origin {checkpoint.origin}\n")
            key = note.parse_vkey(log.vkey)
            if not note.verify_note(checkpoint_note, key.name, key.public_key):
                return Answer(403, "no signature from a trusted log key verifies\n")
            if old > checkpoint.size:
                return Answer(400, f"old size {old} is larger than the checkpoint size\n")
            if old != log.size:
                return Answer(409, f"{log.size}\n", "text/x.tlog.size")
            refusal = _consistency_refusal(log.size, log.root, checkpoint, proof)
            if refusal is not None:
                status, reason = refusal
                self.state.record_refusal(db, checkpoint.origin, now, status, reason, body)
                return Answer(status, reason + "\n")
            self.state.advance(db, checkpoint.origin, checkpoint.size, checkpoint.root, now)
        line = note.cosign_with(
            signed.body, self.name, self.key.public_key.raw_public_bytes(), self.key.sign, now
        )
        return Answer(200, line + "\n")


def _parse_request(body: str) -> tuple[int, list[bytes], str]:
    head, sep, checkpoint_note = body.partition("\n\n")
    if not sep:
        raise ValueError("no empty line before the checkpoint")
    lines = head.split("\n")
    if not lines[0].startswith("old "):
        raise ValueError("the first line must be 'old <size>'")
    size_text = lines[0].removeprefix("old ")
    if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise ValueError("old size must be a decimal without leading zeroes")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise ValueError(f"more than {MAX_PROOF_LINES} consistency proof lines")
    try:
        proof = [base64.b64decode(line, validate=True) for line in lines[1:]]
    except binascii.Error as exc:
        raise ValueError("a proof line is not base64") from exc
    if any(len(h) != 32 for h in proof):
        raise ValueError("a proof hash is not 32 bytes")
    return int(size_text), proof, checkpoint_note


def _consistency_refusal(
    size: int, root: bytes | None, checkpoint: note.Checkpoint, proof: list[bytes]
) -> tuple[int, str] | None:
    if size == 0:
        if proof:
            return 422, "the proof must be empty when old size is 0"
        if checkpoint.size == 0 and checkpoint.root != merkle.EMPTY_ROOT:
            return 422, "a checkpoint of size 0 must have the empty tree's root hash"
        return None  # any tree extends the empty one
    assert root is not None
    if size == checkpoint.size:
        if root != checkpoint.root:
            return 409, "same size, different root hash: the log has forked"
        return None
    if not merkle.verify_consistency(size, checkpoint.size, root, checkpoint.root, proof):
        return 422, f"the consistency proof from size {size} does not verify"
    return None
