"""`gateway audit`: recompute the Merkle tree from the stored entries and compare.

Streams the entries in index order, keeping only the tree's right edge in memory, and checks
each entry's bytes against its leaf hash, every stored tree node against the recomputed one,
the log head against the entries, and every stored checkpoint's root and signature. The first
problem names the first bad index: a modified, deleted, inserted or reordered entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.models import Checkpoint, LogEntry, TreeNode
from gateway.transparency.tlog import tree_size
from keys import merkle, note

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


def audit_log(
    session: Session,
    *,
    log_vkey: str,
    progress: Callable[[int], None] = lambda _n: None,
) -> AuditReport:
    size = tree_size(session)
    report = AuditReport(size=size)
    key = note.parse_vkey(log_vkey)
    checkpoints = {c.size: c for c in session.scalars(select(Checkpoint))}
    edge = _RightEdge()
    expected = 0
    bad = report.problems.append

    def check_checkpoint(at: int) -> None:
        checkpoint = checkpoints.get(at)
        if checkpoint is None:
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

    for start in range(0, size, CHUNK):
        end = min(size, start + CHUNK)
        stored = _stored_nodes(session, start, end)
        rows = session.execute(
            select(LogEntry.idx, LogEntry.jws, LogEntry.leaf_hash)
            .where(LogEntry.idx >= start, LogEntry.idx < end)
            .order_by(LogEntry.idx)
        )
        for idx, token, leaf_hash in rows:
            if idx != expected:
                bad((expected, f"entries {expected}..{idx - 1} are missing (deleted)"))
                return report
            computed = merkle.leaf_hash(token)
            if computed != leaf_hash:
                bad((idx, "the entry's bytes do not match its stored leaf hash (modified)"))
            for level, position, digest in edge.append(idx, computed):
                if stored.get((level, position)) != digest:
                    bad((idx, f"tree node ({level}, {position}) differs from the recomputed one"))
                    break
            expected += 1
            report.entries_checked += 1
            check_checkpoint(expected)
            if report.problems:
                return report
        progress(end - start)
        if expected != end:
            bad((expected, f"entries {expected}..{end - 1} are missing (deleted)"))
            return report
    beyond = session.scalar(select(func.count()).where(LogEntry.idx >= size))
    if beyond:
        bad((size, f"{beyond} entries lie beyond the log head size {size} (inserted)"))
    return report
