"""`gateway audit`: recompute the Merkle tree from the stored entries and compare.

Streams the entries in index order, keeping only the tree's right edge in memory, and checks
each entry's bytes against its leaf hash, the columns derived from them (id, type, issuer,
subject, issue time: they route deliveries and are served) against the JWS, each stored receipt
against the gateway's key and the entry, every stored tree node against the recomputed one, the
log head against the entries, every stored checkpoint's root and signature and the witnesses'
cosignatures on them (a cosignature whose checkpoint is gone is checked against the checkpoint
of the recomputed root: deleting the checkpoints does not hide a rewrite from the witnesses'
signatures) — and checkpoints held outside the database (`--checkpoint FILE`: one an
agency kept, or a witness's), which catch a log rewritten together with its nodes, its stored
checkpoints deleted, or its last entries cut (issue 20 finding 14). The first problem names
the first bad index.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.models import Checkpoint, Cosignature, LogEntry, TreeNode
from gateway.transparency.tlog import tree_size
from keys import merkle, note
from keys.jws import JWSError, parse_compact, verify_compact
from keys.suites import VerifyingKey

CHUNK = 5000


@dataclass
class AuditReport:
    size: int
    entries_checked: int = 0
    checkpoints_checked: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_index(self) -> int | None:
        return min(index for index, _ in self.problems) if self.problems else None


class _RightEdge:
    """Only the perfect subtrees a future append can still read."""

    def __init__(self) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}

    def subtree(self, level: int, index: int) -> bytes:
        return self.nodes[level, index]

    def append(self, size_before: int, leaf: bytes) -> list[tuple[int, int, bytes]]:
        made = merkle.append_nodes(size_before, leaf, self)
        for level, index, digest in made:
            self.nodes[level, index] = digest
            if level:  # its two children can never be read again
                self.nodes.pop((level - 1, 2 * index), None)
                self.nodes.pop((level - 1, 2 * index + 1), None)
        return made

    def root(self, size: int) -> bytes:
        return merkle.root_hash(size, self)


def _stored_nodes(session: Session, start: int, end: int) -> dict[tuple[int, int], bytes]:
    """Stored nodes completed by leaves [start, end): those whose last leaf is in the range."""
    found: dict[tuple[int, int], bytes] = {}
    for level in range(max(1, end).bit_length()):
        span = 1 << level
        low, high = -(-(start + 1) // span) - 1, end // span - 1
        if high < low:
            continue
        rows = session.execute(
            select(TreeNode.idx, TreeNode.hash).where(
                TreeNode.level == level, TreeNode.idx >= low, TreeNode.idx <= high
            )
        )
        for idx, digest in rows:
            found[level, idx] = digest
    return found


@dataclass(frozen=True)
class Outside:
    """A checkpoint held outside the database, and where it came from (for the report)."""

    note: str
    origin: str


@dataclass(frozen=True)
class WitnessKey:
    name: str
    public_raw: bytes


def _derived_problem(row: Any, payload: Mapping[str, Any], origin: str) -> str | None:
    """The entry's columns against its JWS payload (a message's envelope or a gateway entry)."""
    expected = {
        "message_id": str(payload.get("id", "")).lower(),
        "type": payload.get("type"),
        "issuer": payload.get("issuer"),
        "subject": payload.get("subject") if row.kind == "message" else row.subject,
    }
    for name, value in expected.items():
        if getattr(row, name) != value:
            return f"column {name} {getattr(row, name)!r} is not the JWS's {value!r}"
    issued = payload.get("issued_at")
    if isinstance(issued, str) and dt.datetime.fromisoformat(issued) != row.issued_at:
        return f"column issued_at {row.issued_at.isoformat()} is not the JWS's {issued}"
    return None


def _receipt_problem(row: Any, receipt_key: VerifyingKey, origin: str) -> str | None:
    """A message's stored receipt: signed by the gateway's receipt key, over this entry."""
    try:
        parsed = parse_compact(row.receipt)
        verify_compact(parsed, receipt_key)
        claims = json.loads(parsed.payload)
    except (JWSError, ValueError) as exc:
        return f"the stored receipt does not verify ({exc})"
    wanted = {
        "message_id": row.message_id,
        "index": row.idx,
        "leaf_hash": row.leaf_hash.hex(),
        "type": row.type,
        "issuer": row.issuer,
        "subject": row.subject,
        "log": origin,
    }
    for name, value in wanted.items():
        if claims.get(name) != value:
            return f"the stored receipt says {name} {claims.get(name)!r}, the entry {value!r}"
    return None


def audit_log(
    session: Session,
    *,
    log_vkey: str,
    progress: Callable[[int], None] = lambda _n: None,
    receipt_key: VerifyingKey | None = None,
    origin: str = "",
    outside: Sequence[Outside] = (),
    witnesses: Sequence[WitnessKey] = (),
) -> AuditReport:
    size = tree_size(session)
    report = AuditReport(size=size)
    key = note.parse_vkey(log_vkey)
    checkpoints = {c.size: c for c in session.scalars(select(Checkpoint))}
    held = _outside_checkpoints(outside, key, report)
    cosigned = _cosignatures(session, witnesses)
    edge = _RightEdge()
    expected = 0
    bad = report.problems.append

    def check_checkpoint(at: int) -> None:
        checkpoint = checkpoints.get(at)
        if checkpoint is None:
            check_cosigned(at)
            return
        report.checkpoints_checked += 1
        if not note.verify_note(checkpoint.note, key.name, key.public_key):
            bad((at - 1, f"checkpoint at size {at} is not signed by the log key"))
        elif (
            edge.root(at) != checkpoint.root
            or checkpoint.root.hex()
            != note.parse_checkpoint(note.parse_note(checkpoint.note).body).root.hex()
        ):
            bad((at - 1, f"checkpoint at size {at} does not match the recomputed root"))
        else:
            body = note.parse_note(checkpoint.note).body
            for witness, line in cosigned.get(at, ()):
                if note.verify_cosignature(body, line, witness.name, witness.public_raw) is None:
                    bad((at - 1, f"witness {witness.name}'s cosignature at size {at} is forged"))

    def check_cosigned(at: int) -> None:
        """Cosignatures kept without their checkpoint (deleted, or never stored): each must
        sign the checkpoint of the recomputed root, the body the log key would have signed."""
        lines = cosigned.get(at, ())
        if not lines:
            return
        body = note.format_checkpoint(key.name, at, edge.root(at))
        for witness, line in lines:
            report.checkpoints_checked += 1
            if note.verify_cosignature(body, line, witness.name, witness.public_raw) is None:
                bad(
                    (
                        at - 1,
                        f"witness {witness.name}'s cosignature at size {at} does not sign the "
                        "recomputed root (the log was rewritten, or the cosignature forged)",
                    )
                )

    def check_held(at: int) -> None:
        for checkpoint in held.get(at, ()):
            report.checkpoints_checked += 1
            if edge.root(at) != checkpoint.root:
                bad((at - 1, f"{checkpoint.origin}: the log's root at size {at} is not its root"))

    for start in range(0, size, CHUNK):
        end = min(size, start + CHUNK)
        stored = _stored_nodes(session, start, end)
        rows = session.execute(
            select(
                LogEntry.idx,
                LogEntry.jws,
                LogEntry.leaf_hash,
                LogEntry.kind,
                LogEntry.message_id,
                LogEntry.type,
                LogEntry.issuer,
                LogEntry.subject,
                LogEntry.issued_at,
                LogEntry.receipt,
            )
            .where(LogEntry.idx >= start, LogEntry.idx < end)
            .order_by(LogEntry.idx)
        )
        for row in rows:
            idx, token, leaf_hash = row.idx, row.jws, row.leaf_hash
            if idx != expected:
                bad((expected, f"entries {expected}..{idx - 1} are missing (deleted)"))
                return report
            computed = merkle.leaf_hash(token)
            if computed != leaf_hash:
                bad((idx, "the entry's bytes do not match its stored leaf hash (modified)"))
            else:
                found = _entry_problem(row, receipt_key, origin)
                if found is not None:
                    bad((idx, found))
            for level, position, digest in edge.append(idx, computed):
                if stored.get((level, position)) != digest:
                    bad((idx, f"tree node ({level}, {position}) differs from the recomputed one"))
                    break
            expected += 1
            report.entries_checked += 1
            check_checkpoint(expected)
            check_held(expected)
            if report.problems:
                return report
        progress(end - start)
        if expected != end:
            bad((expected, f"entries {expected}..{end - 1} are missing (deleted)"))
            return report
    beyond = session.scalar(select(func.count()).where(LogEntry.idx >= size))
    if beyond:
        bad((size, f"{beyond} entries lie beyond the log head size {size} (inserted)"))
    longer = [c for sizes in held.values() for c in sizes if c.size > size]
    if longer:
        first = min(longer, key=lambda c: c.size)
        bad((size, f"{first.origin} has size {first.size}, the log only {size} (truncated)"))
    return report


@dataclass(frozen=True)
class _Held:
    size: int
    root: bytes
    origin: str


def _outside_checkpoints(
    outside: Sequence[Outside], key: note.VerifierKey, report: AuditReport
) -> dict[int, list[_Held]]:
    held: dict[int, list[_Held]] = {}
    for item in outside:
        try:
            parsed = note.parse_checkpoint(note.parse_note(item.note).body)
        except note.NoteError as exc:
            report.problems.append((0, f"{item.origin}: not a checkpoint ({exc})"))
            continue
        if not note.verify_note(item.note, key.name, key.public_key):
            report.problems.append((0, f"{item.origin}: not signed by the log key"))
            continue
        held.setdefault(parsed.size, []).append(_Held(parsed.size, parsed.root, item.origin))
    return held


def _cosignatures(
    session: Session, witnesses: Sequence[WitnessKey]
) -> dict[int, list[tuple[WitnessKey, str]]]:
    by_name = {w.name: w for w in witnesses}
    found: dict[int, list[tuple[WitnessKey, str]]] = {}
    for size, name, line in session.execute(
        select(Cosignature.size, Cosignature.witness, Cosignature.line)
    ):
        if name in by_name:
            found.setdefault(size, []).append((by_name[name], line))
    return found


def _entry_problem(row: Any, receipt_key: VerifyingKey | None, origin: str) -> str | None:
    try:
        payload = json.loads(parse_compact(row.jws).payload)
    except (JWSError, ValueError) as exc:
        return f"the entry is not a JWS of a JSON object ({exc})"
    if not isinstance(payload, dict):
        return "the entry's payload is not a JSON object"
    derived = _derived_problem(row, payload, origin)
    if derived is not None:
        return derived
    if row.kind == "message" and receipt_key is not None:
        return _receipt_problem(row, receipt_key, origin)
    return None
