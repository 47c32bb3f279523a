"""Signed checkpoints (C2SP tlog-checkpoint), RFC 6962 proofs, entry ranges, evidence bundles.

A checkpoint is signed on demand for the current size and stored; a size already signed is
always answered with its stored note, so there are never two roots for one size (and the
latest checkpoint is never behind the newest committed entry).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from gateway.errors import BadRequest, NotFound
from gateway.models import Checkpoint, LogEntry
from gateway.transparency.tlog import (
    consistency_proof,
    inclusion_proof,
    leaf_and_inclusion_proof,
    root_hash,
    tree_size,
)
from gateway.transparency.views import Reader
from keys import note
from keys.suites import SigningKey

MAX_ENTRIES = 1000


def sign_checkpoint(origin: str, size: int, root: bytes, log_key: SigningKey) -> str:
    """A C2SP signed note over the checkpoint body, key name = origin, Ed25519 (type 0x01)."""
    body = note.format_checkpoint(origin, size, root)
    key_id = note.key_id(origin, log_key.public_key.raw_public_bytes())
    signature = note.NoteSignature(origin, key_id, log_key.sign(body.encode()))
    return note.Note(body, (signature,)).text


def log_vkey(origin: str, log_key: SigningKey) -> str:
    """The verifier key line (C2SP signed-note) agencies use to check checkpoints."""
    return note.vkey(origin, log_key.public_key.raw_public_bytes())


def stored_checkpoint(session: Session, size: int) -> Checkpoint | None:
    return session.get(Checkpoint, size)


def checkpoint_for(
    session: Session, origin: str, log_key: SigningKey, now: dt.datetime, size: int | None = None
) -> Checkpoint:
    """The checkpoint for `size` (default: the current size), signing and storing it if new."""
    size = tree_size(session) if size is None else size
    found = session.get(Checkpoint, size)
    if found is not None:
        return found
    root = root_hash(session, size)
    row = {
        "size": size,
        "root": root,
        "note": sign_checkpoint(origin, size, root, log_key),
        "created_at": now,
    }
    dialect_insert = (
        pg_insert if session.bind and session.bind.dialect.name == "postgresql" else sqlite_insert
    )
    session.execute(dialect_insert(Checkpoint).values(row).on_conflict_do_nothing())
    stored = session.get(Checkpoint, size, populate_existing=True)
    assert stored is not None
    return stored


def _check_size(session: Session, size: int) -> int:
    current = tree_size(session)
    if not 0 < size <= current:
        raise BadRequest("invalid_size", f"tree size must be between 1 and {current}, got {size}")
    return current


def index_of(session: Session, message_id: str) -> int:
    idx = session.scalar(select(LogEntry.idx).where(LogEntry.message_id == message_id.lower()))
    if idx is None:
        raise NotFound("not_found", f"no message {message_id} is in the log")
    return idx


def inclusion(session: Session, index: int, size: int) -> dict[str, Any]:
    _check_size(session, size)
    if not 0 <= index < size:
        raise BadRequest("invalid_index", f"index must be below the tree size {size}")
    leaf, proof = leaf_and_inclusion_proof(session, index, size)
    return {
        "index": index,
        "tree_size": size,
        "leaf_hash": leaf.hex(),
        "inclusion_path": [h.hex() for h in proof],
    }


def consistency(session: Session, old: int, new: int) -> dict[str, Any]:
    _check_size(session, new)
    if not 0 < old <= new:
        raise BadRequest("invalid_size", f"need 0 < first <= second, got {old} and {new}")
    proof = consistency_proof(session, old, new)
    return {"first": old, "second": new, "consistency": [h.hex() for h in proof]}


def entries(session: Session, start: int, end: int, reader: Reader) -> list[dict[str, Any]]:
    """The leaves `[start, end)` as `reader` may see them: each one's index, kind, id and leaf
    hash; the JWS of those it reads whole (gateway.transparency.views)."""
    if not 0 <= start < end or end - start > MAX_ENTRIES:
        raise BadRequest(
            "invalid_range", f"need 0 <= start < end and at most {MAX_ENTRIES} entries"
        )
    rows = session.scalars(
        select(LogEntry).where(LogEntry.idx >= start, LogEntry.idx < end).order_by(LogEntry.idx)
    )
    shown = []
    for e in rows:
        item: dict[str, Any] = {
            "index": e.idx,
            "kind": e.kind,
            "message_id": e.message_id,
            "leaf_hash": e.leaf_hash.hex(),
        }
        if reader.reads_whole(e):
            item |= {"type": e.type, "jws": e.jws.decode(), "view": "raw"}
        else:
            item |= reader.facts(e)
        shown.append(item)
    return shown


def bundle(
    session: Session, message_id: str, checkpoint: Checkpoint, checkpoint_note: str, reader: Reader
) -> dict[str, Any]:
    """JWS + receipt + c2sp.org/tlog-proof against `checkpoint` (which must contain it);
    `checkpoint_note` is its note as served, cosignatures included. For a reader that may not
    read the message whole: its id, index and leaf hash with the proof, and what its
    subscribe view shows (the receipt included), never the JWS."""
    entry = session.scalar(
        select(LogEntry).where(
            LogEntry.message_id == message_id.lower(), LogEntry.kind == "message"
        )
    )
    if entry is None:
        raise NotFound("not_found", f"no message {message_id} is in the log")
    if entry.idx >= checkpoint.size:
        raise NotFound("not_yet_checkpointed", "the message is newer than the checkpoint")
    proof = inclusion_proof(session, entry.idx, checkpoint.size)
    assert hashlib.sha256(b"\x00" + entry.jws).digest() == entry.leaf_hash
    tlog_proof = note.format_tlog_proof(entry.idx, proof, checkpoint_note)
    if reader.reads_whole(entry):
        return {"jws": entry.jws.decode(), "receipt": entry.receipt, "tlog_proof": tlog_proof}
    facts = reader.facts(entry)
    return {
        "message_id": entry.message_id,
        "index": entry.idx,
        "leaf_hash": entry.leaf_hash.hex(),
        "tlog_proof": tlog_proof,
        **facts,
    }
