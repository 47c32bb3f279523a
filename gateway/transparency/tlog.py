"""The append-only Merkle log in the database: entries, the node table and the head lock.

Each append stores the leaf and every perfect subtree it completes (amortised two node rows
per entry), so roots and RFC 6962 proofs read O(log n) rows and never rescan the leaves.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from sqlalchemy import (
    BigInteger,
    LargeBinary,
    SmallInteger,
    bindparam,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from gateway.bulk import BulkInsert
from gateway.models import LogHead, TreeNode, table_of
from keys import merkle

# The nodes of a proof or of the right edge, by their (level, idx) keys, in one statement of
# one fixed shape: the keys travel as one parameter and are joined to the primary key. The
# ORM statement this replaced (an OR of `level = ? AND idx IN (…)` per level) varied in shape
# with every proof, and building it was most of a proof: 3,156 -> 124 µs per inclusion proof
# at 10^4 entries, 4,300 -> 238 µs at 10^6 (SQLite, bench/log.py). Both plans probe the primary
# key once per key (a row-value IN made SQLite scan the whole table).
_NODES_SQLITE = text(
    "SELECT n.level, n.idx, n.hash FROM json_each(:keys) AS k JOIN tree_nodes AS n"
    " ON n.level = json_extract(k.value, '$[0]') AND n.idx = json_extract(k.value, '$[1]')"
).columns(level=SmallInteger, idx=BigInteger, hash=LargeBinary)
_NODES_POSTGRESQL = text(
    "SELECT n.level, n.idx, n.hash"
    " FROM unnest(CAST(:levels AS smallint[]), CAST(:idxs AS bigint[])) AS k(level, idx)"
    " JOIN tree_nodes AS n ON n.level = k.level AND n.idx = k.idx"
).columns(level=SmallInteger, idx=BigInteger, hash=LargeBinary)


class DbSubtrees:
    """`keys.merkle.SubtreeSource` over the `tree_nodes` table, cached for one transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._cache: dict[tuple[int, int], bytes] = {}
        self._pending: list[dict[str, object]] = []

    def subtree(self, level: int, index: int) -> bytes:
        key = (level, index)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        found = self.session.get(TreeNode, key)
        if found is None:
            raise LookupError(f"tree node level={level} index={index} is not stored")
        self._cache[key] = found.hash
        return found.hash

    def prefetch(self, keys: list[tuple[int, int]]) -> None:
        """Load many nodes in one query (a proof's nodes, the right edge before appends)."""
        wanted = [k for k in keys if k not in self._cache]
        if not wanted:
            return
        connection = self.session.connection()
        dialect = connection.dialect.name
        if dialect == "sqlite":
            rows = connection.execute(_NODES_SQLITE, {"keys": json.dumps(wanted)})
        elif dialect == "postgresql":
            levels = [level for level, _ in wanted]  # lists: psycopg sends tuples as records
            idxs = [idx for _, idx in wanted]
            rows = connection.execute(_NODES_POSTGRESQL, {"levels": levels, "idxs": idxs})
        else:
            raise RuntimeError(f"the gateway runs on SQLite or PostgreSQL, not {dialect}")
        for level, idx, digest in rows:
            self._cache[(level, idx)] = digest

    def append(self, size_before: int, leaf_hash: bytes) -> None:
        for level, idx, digest in merkle.append_nodes(size_before, leaf_hash, self):
            self._cache[(level, idx)] = digest
            self._pending.append({"level": level, "idx": idx, "hash": digest})

    def remember(self, nodes: Iterable[tuple[int, int, bytes]]) -> None:
        """Nodes read along with another statement (stored ones: they never change)."""
        for level, idx, digest in nodes:
            self._cache[(level, idx)] = digest

    def take_pending(self) -> list[dict[str, object]]:
        """The nodes appended since the last flush, for the caller to store."""
        pending, self._pending = self._pending, []
        return pending

    def flush(self) -> None:
        pending = self.take_pending()
        if pending:
            _INSERT_NODES(self.session.connection(), pending)


def right_edge(size: int) -> list[tuple[int, int]]:
    """The perfect subtrees that make up a tree of `size` leaves (what the next append reads)."""
    keys: list[tuple[int, int]] = []
    start = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size & (1 << level):
            keys.append((level, start >> level))
            start += 1 << level
    return keys


_INSERT_NODES = BulkInsert(table_of(TreeNode))
_LOCK_HEAD = select(LogHead.size).where(LogHead.id == 1).with_for_update()
_SET_HEAD = update(table_of(LogHead)).where(LogHead.id == 1).values(size=bindparam("size"))
# PostgreSQL: the head locked and the right edge read in one round trip. The edge's keys are
# worked out from the size in SQL as `right_edge` does (level l holds a subtree when bit l of
# the size is set; its index is (size >> l) - 1). A publisher that waited for the lock has the
# row its predecessor committed, but READ COMMITTED rechecks only that row, against the nodes
# its statement first found (the new ones are not among them; those of the old edge may be
# kept or dropped, and all of them with the row when none fits the new size): whatever nodes
# come back are stored ones, which never change, the Appender reads those still missing in a
# second statement, and the size again if no row came back (the lock is held by then).
# The keys are a subquery of their own, joined to the primary key: with the key's expression
# inside one join PostgreSQL may hash the whole node table instead of probing it.
_LOCK_HEAD_WITH_EDGE = text(
    "SELECT h.size, t.level, t.idx, t.hash FROM log_head AS h LEFT JOIN LATERAL"
    " (SELECT l AS level, (h.size >> l) - 1 AS idx FROM generate_series(0, 62) AS l"
    " WHERE (h.size >> l) & 1 = 1) AS k ON true"
    " LEFT JOIN tree_nodes AS t ON t.level = k.level AND t.idx = k.idx"
    " WHERE h.id = 1 FOR UPDATE OF h"
).columns(size=BigInteger, level=SmallInteger, idx=BigInteger, hash=LargeBinary)
# PostgreSQL: an append's new nodes and the new size in one statement (arrays in binary, as
# gateway.bulk sends them).
_SET_HEAD_WITH_NODES = (
    "WITH nodes AS (INSERT INTO tree_nodes (level, idx, hash)"
    " SELECT * FROM unnest(CAST(%b AS SMALLINT[]), CAST(%b AS BIGINT[]), CAST(%b AS BYTEA[])))"
    " UPDATE log_head SET size = %b WHERE id = 1"
)


def lock_head(session: Session) -> int:
    """The log's size, its head row locked until commit: appends are serialised, indexes
    gapless (on SQLite, BEGIN IMMEDIATE already holds the write lock)."""
    size: int = session.connection().execute(_LOCK_HEAD).scalar_one()
    return size


def tree_size(session: Session) -> int:
    return session.execute(select(LogHead.size).where(LogHead.id == 1)).scalar_one()


class _Recorder:
    """A SubtreeSource that only notes which nodes are read (the reads never depend on hashes)."""

    def __init__(self) -> None:
        self.keys: list[tuple[int, int]] = []

    def subtree(self, level: int, index: int) -> bytes:
        self.keys.append((level, index))
        return bytes(32)


def _prefetched(session: Session, plan: Callable[[merkle.SubtreeSource], object]) -> DbSubtrees:
    recorder = _Recorder()
    plan(recorder)
    nodes = DbSubtrees(session)
    nodes.prefetch(recorder.keys)  # one query for the O(log n) nodes instead of one each
    return nodes


def root_hash(session: Session, size: int) -> bytes:
    return merkle.root_hash(size, _prefetched(session, lambda s: merkle.root_hash(size, s)))


def inclusion_proof(session: Session, index: int, size: int) -> list[bytes]:
    return leaf_and_inclusion_proof(session, index, size)[1]


def leaf_and_inclusion_proof(session: Session, index: int, size: int) -> tuple[bytes, list[bytes]]:
    """The leaf hash at `index` (its level-0 node) and its inclusion proof, read in one query:
    the node table, not the entries' much larger rows (a random read there was what grew most
    from 10^4 to 10^6 entries)."""

    def plan(source: merkle.SubtreeSource) -> None:
        source.subtree(0, index)
        merkle.inclusion_proof(index, size, source)

    nodes = _prefetched(session, plan)
    return nodes.subtree(0, index), merkle.inclusion_proof(index, size, nodes)


def consistency_proof(session: Session, old: int, new: int) -> list[bytes]:
    nodes = _prefetched(session, lambda s: merkle.consistency_proof(old, new, s))
    return merkle.consistency_proof(old, new, nodes)


class Appender:
    """Assigns consecutive indexes within one transaction; `finish()` before commit."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.nodes = DbSubtrees(session)
        connection = session.connection()
        self._postgresql = connection.dialect.name == "postgresql"
        rows = connection.execute(_LOCK_HEAD_WITH_EDGE).all() if self._postgresql else []
        self.nodes.remember((r.level, r.idx, r.hash) for r in rows if r.level is not None)
        self.size = rows[0].size if rows else lock_head(session)
        self._size_before = self.size
        self.nodes.prefetch(right_edge(self.size))  # on PostgreSQL, none but after a wait

    def append(self, leaf: bytes) -> tuple[int, bytes]:
        """Append `leaf` (the exact JWS bytes); returns (index, leaf hash)."""
        digest = merkle.leaf_hash(leaf)
        index = self.size
        self.nodes.append(index, digest)
        self.size += 1
        return index, digest

    def finish(self) -> None:
        if self.size == self._size_before:
            self.nodes.flush()
            return
        connection = self.session.connection()
        pending = self.nodes.take_pending()
        if self._postgresql:
            connection.exec_driver_sql(
                _SET_HEAD_WITH_NODES,
                (
                    [row["level"] for row in pending],
                    [row["idx"] for row in pending],
                    [row["hash"] for row in pending],
                    self.size,
                ),
            )
        else:
            _INSERT_NODES(connection, pending)
            connection.execute(_SET_HEAD, {"size": self.size})
        self._size_before = self.size
