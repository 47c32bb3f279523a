"""The append-only Merkle log in the database: entries, the node table and the head lock.

Each append stores the leaf and every perfect subtree it completes (amortised two node rows
per entry), so roots and RFC 6962 proofs need O(log n) nodes and never rescan the leaves.
A process keeps the upper levels of the committed tree in memory (`NodeCache`, as many as
its budget holds: the whole tree of 10^6 entries by default), so a proof reads from the
table only the nodes below them, in one statement, or none.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    BigInteger,
    LargeBinary,
    SmallInteger,
    bindparam,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from gateway.bulk import BulkInsert, Writes
from gateway.db import Database, broken_connection, shared_state
from gateway.models import LogHead, TreeNode, table_of
from keys import merkle

# The nodes of the right edge (an append's), by their (level, idx) keys, in one statement of
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


# The perfect subtrees a tree is made of: what the next append reads.
right_edge = merkle.right_edge


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
# PostgreSQL: the new size, sent with the new nodes (and the caller's other writes) in one
# statement (gateway.bulk.Writes).
_SET_HEAD_POSTGRESQL = "UPDATE log_head SET size = %b WHERE id = 1"


def lock_head(session: Session) -> int:
    """The log's size, its head row locked until commit: appends are serialised, indexes
    gapless (on SQLite, BEGIN IMMEDIATE already holds the write lock)."""
    size: int = session.connection().execute(_LOCK_HEAD).scalar_one()
    return size


def tree_size(session: Session) -> int:
    return session.execute(select(LogHead.size).where(LogHead.id == 1)).scalar_one()


# --- proofs and roots from a cache of committed nodes ----------------------------------------
#
# A node of `tree_nodes` never changes once committed, so a process keeps the upper levels of
# the tree in memory (`NodeCache`) and a proof reads from the database only the few nodes
# below them, in one statement on the driver's connection.

# The session has appended (an `Appender` ran in it): what it reads of the head or the nodes
# may be its own writes, which a rollback takes back and a later append replaces with other
# hashes. Such a session never adds to the cache.
_APPENDING = "tlog.appending"
log = logging.getLogger("gateway.transparency")
INT64_MAX = 2**63 - 1


class NodeCache:
    """The hashes of `tree_nodes` from the top of the tree down to `floor`, for one database
    (all of a `Database`'s engines, gateway.db.shared_state), shared by its threads: a proof
    reads from the database only its nodes below the floor.

    Only committed nodes enter it: `fill` reads the head's size in a session that has not
    appended (so a committed size: on SQLite its snapshot's, on PostgreSQL the last commit's)
    and then nodes inside that size, which were committed with it or before and never change.
    Nodes an `Appender` writes never enter it, nor nodes read by a session that appended. A
    database restored to an earlier backup, or its nodes changed by hand, needs the gateway's
    processes restarted (as any copy of the file does, gateway.db): the cache would go on
    answering with the nodes it had.

    Memory: at most `budget` bytes of hashes (32 bytes each, in one bytearray a level), the
    floor rising as the log grows so that the levels kept fit (a tree of n leaves has about
    n / 2**level nodes at each level, 2n in all: the whole tree of 10^6 entries is 61 MiB),
    and the slack a bytearray keeps to grow (up to an eighth); while it fills, one step's rows
    besides (`step` nodes, about 150 bytes each as rows).
    A fill reads at most `step` nodes, so the first proofs after a start each pay a bounded
    share of the warming (at 10^6 entries and the whole tree, 122 of them, about 10 ms each
    on SQLite and 15 on PostgreSQL here); a new checkpoint's root may be one of them, in its
    write transaction, which on SQLite holds the writer's lock that much longer."""

    def __init__(self, budget: int, step: int = 1 << 14) -> None:
        self.budget = budget // merkle.HASH_SIZE  # in hashes
        self.step = step
        self.floor = 0
        self.complete = 0  # every level at the floor and above holds its nodes up to this size
        self._target = 0  # the committed size the levels are being filled up to
        self._levels = [bytearray() for _ in range(64)]  # by level, node idx at byte idx * 32
        self._lock = threading.Lock()

    def hashes(self, keys: list[tuple[int, int]]) -> tuple[list[bytes | None], int]:
        """The cached hashes of `keys` (None where not cached) and how many are missing."""
        levels = self._levels
        found: list[bytes | None] = []
        missing = 0
        for level, idx in keys:
            nodes = levels[level]
            at = idx << 5
            if at < len(nodes):
                found.append(bytes(nodes[at : at + 32]))
            else:
                found.append(None)
                missing += 1
        return found, missing

    def nodes(self) -> int:
        """Hashes held (for the bound's tests and for RESULTS)."""
        return sum(len(level) for level in self._levels) // merkle.HASH_SIZE

    def fill(self, session: Session) -> None:
        """One step of bringing the cache up to the log's size as `session` sees it (committed:
        see the class). A thread that finds another filling goes on without waiting."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            self._fill(session.connection())
        finally:
            self._lock.release()

    def _fill(self, connection: Connection) -> None:
        size: int = _fetch(connection, _HEAD, ())[0][0]
        if size > self._target:
            self._target = size
            floor = self.floor
            while sum(size >> level for level in range(floor, 64)) > self.budget:
                floor += 1
            for level in range(self.floor, floor):
                self._levels[level] = bytearray()  # a reader holding it still reads it
            self.floor = floor
        target, work = self._target, self.step
        for level in range(target.bit_length() - 1, self.floor - 1, -1):
            nodes = self._levels[level]
            have, want = len(nodes) >> 5, target >> level
            if have >= want:
                continue
            count = min(want - have, work)
            statement = _LEVEL_RANGE[_dialect(connection)]
            rows = _fetch(connection, statement, (level, have, have + count))
            if len(rows) != count:
                return  # a node is missing: left to the proof that needs it to say so
            nodes += b"".join(digest for (digest,) in rows)
            work -= count
            if not work:
                return
        self.complete = target


_caches_lock = threading.Lock()


def node_cache(session: Session) -> NodeCache:
    """The cache of the session's database: one per `Database` (tests open many in a process,
    and the same PostgreSQL database name again after emptying it; a new `Database` each
    time), its budget as the Database was given (DatabaseSettings.log_node_cache_mib)."""
    bind = session.get_bind()
    state = shared_state(bind if isinstance(bind, Engine) else bind.engine)
    cache: NodeCache | None = state.get("tlog.nodes")
    if cache is None:
        with _caches_lock:
            cache = state.get("tlog.nodes")
            if cache is None:
                cache = state["tlog.nodes"] = NodeCache(state.get("log_node_cache_bytes", 0))
    return cache


def warm(db: Database, stop: threading.Event) -> int:
    """Fill `db`'s node cache up to the log's committed size at the call, a step at a time,
    each in a reader session of its own, until it is complete or `stop` is set; returns the
    steps taken.

    An API process runs it on a thread at its start (gateway.app), so the first proofs after
    a restart do not each pay a step of the filling. bench/scale.py at 10^6 entries on
    PostgreSQL, right after the start, gave 516 proofs/s from a cold cache against 732/s at
    10^4 (70 %). Unpaced, the warming took the publishes running beside it to 63 %. Paced as
    here, it gave proofs 84 % and publishes 83 % (bench/RESULTS.md). Proofs asked meanwhile
    read what is missing from the table, as they would without a cache. A step that adds
    nothing (another thread is filling, or a node is not stored) is retried after a pause, up
    to `_IDLE_STEPS` times in a row."""
    steps = idle = 0
    try:
        with db.reader() as session:
            # the log at the start; later entries are filled as proofs ask for them
            cache, size = node_cache(session), tree_size(session)
        while cache.complete < size and not stop.is_set() and idle < _IDLE_STEPS:
            began = time.monotonic()
            with db.reader() as session:
                before = (cache.nodes(), cache.complete)
                cache.fill(session)
            steps += 1
            if (cache.nodes(), cache.complete) == before:
                idle += 1
                stop.wait(0.05)
            else:  # paced: a pause as long as the step, so requests keep most of the process
                idle = 0
                stop.wait(_PACE * (time.monotonic() - began))
    except Exception as exc:  # the database away at the start: proofs fill the cache later
        log.warning("log_node_cache_warming_stopped", extra={"error": type(exc).__name__})
    return steps


_IDLE_STEPS = 100  # 5 s of steps that add nothing: the warming gives up, proofs still fill it
_PACE = 1.0  # pause after a step, in multiples of the step's time: half a core at most


def _dialect(connection: Connection) -> str:
    return "postgresql" if connection.dialect.name == "postgresql" else "sqlite"


_HEAD = "SELECT size FROM log_head WHERE id = 1"
_LEVEL_RANGE = {
    "sqlite": "SELECT hash FROM tree_nodes WHERE level = ? AND idx >= ? AND idx < ? ORDER BY idx",
    "postgresql": "SELECT hash FROM tree_nodes WHERE level = %s AND idx >= %s AND idx < %s"
    " ORDER BY idx",
}
_NODES_POSTGRESQL_RAW = (
    "SELECT n.level, n.idx, n.hash"
    " FROM unnest(CAST(%s AS smallint[]), CAST(%s AS bigint[])) AS k(level, idx)"
    " JOIN tree_nodes AS n ON n.level = k.level AND n.idx = k.idx"
)


def _nodes_statement(connection: Connection, keys: list[tuple[int, int]]) -> tuple[str, Any]:
    """One statement for the nodes `keys`. On SQLite a UNION ALL of primary-key lookups, one
    text per number of keys (the driver keeps them prepared): 21.5 µs for 15 keys at random
    against 26.5 µs with json_each's one text (10^6 entries)."""
    if connection.dialect.name == "postgresql":
        return _NODES_POSTGRESQL_RAW, ([lv for lv, _ in keys], [idx for _, idx in keys])
    statement = _SQLITE_NODES.get(len(keys))
    if statement is None:
        statement = " UNION ALL ".join(
            ["SELECT level, idx, hash FROM tree_nodes WHERE level = ? AND idx = ?"] * len(keys)
        )
        _SQLITE_NODES[len(keys)] = statement
    return statement, [v for key in keys for v in key]


_SQLITE_NODES: dict[int, str] = {}


def _fetch(connection: Connection, statement: str, parameters: Any) -> list[Any]:
    """Rows of `statement` run on the DBAPI connection under `connection`, in its
    transaction: SQLAlchemy's execution cost about 30 µs a statement (SQLite, 10^6 entries),
    more than the read of a proof's nodes (bench/RESULTS.md). Only the log's own integers are
    sent (the engine's parameter check is for request values); a driver error is raised as
    SQLAlchemy's, the connection invalidated when it is gone, as an ordinary statement's
    would be (the dialect's test and gateway.db's)."""
    raw = connection.connection
    try:
        cursor = raw.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(statement, parameters)
            rows: list[Any] = cursor.fetchall()
            return rows
        finally:
            cursor.close()
    except connection.dialect.loaded_dbapi.Error as error:
        dialect = connection.dialect
        gone = dialect.is_disconnect(error, raw.dbapi_connection, None) or broken_connection(error)
        if gone:
            connection.invalidate(error)
        raise DBAPIError.instance(
            statement,
            parameters,
            error,
            dialect.loaded_dbapi.Error,
            connection_invalidated=gone,
            dialect=dialect,
        ) from error


def _read(session: Session, size: int, keys: list[tuple[int, int]]) -> list[bytes]:
    """The hashes of `keys` (nodes inside a tree of `size` leaves), in order: from the cache,
    the cache first brought up to the committed size when `size` is beyond it (and the
    session has not appended), the rest in one statement."""
    if not 0 < size <= INT64_MAX:
        raise ValueError(f"no tree of size {size}")
    cache = node_cache(session)
    if size > cache.complete and not session.info.get(_APPENDING):
        cache.fill(session)
    found, missing = cache.hashes(keys)
    if not missing:
        return found  # type: ignore[return-value]
    wanted = [key for key, digest in zip(keys, found, strict=True) if digest is None]
    rows = _fetch(session.connection(), *_nodes_statement(session.connection(), wanted))
    got = {(level, idx): digest for level, idx, digest in rows}
    out: list[bytes] = []
    for key, digest in zip(keys, found, strict=True):
        if digest is None:
            digest = got.get(key)
            if digest is None:
                raise LookupError(f"tree node level={key[0]} index={key[1]} is not stored")
            digest = bytes(digest)
        out.append(digest)
    return out


def root_hash(session: Session, size: int) -> bytes:
    if size == 0:
        return merkle.EMPTY_ROOT
    keys = merkle.right_edge(size)
    return merkle.fold_nodes(_read(session, size, keys), 0, len(keys))[0]


def inclusion_proof(session: Session, index: int, size: int) -> list[bytes]:
    return leaf_and_inclusion_proof(session, index, size)[1]


def leaf_and_inclusion_proof(session: Session, index: int, size: int) -> tuple[bytes, list[bytes]]:
    """The leaf hash at `index` (its level-0 node) and its inclusion proof, read together:
    the node table, not the entries' much larger rows (a random read there was what grew most
    from 10^4 to 10^6 entries)."""
    keys, at, count = merkle.inclusion_nodes(index, size)
    hashes = _read(session, size, [(0, index), *keys])
    return hashes[0], merkle.fold_nodes(hashes[1:], at, count)


def consistency_proof(session: Session, old: int, new: int) -> list[bytes]:
    keys, at, count = merkle.consistency_nodes(old, new)
    if not keys:
        return []
    return merkle.fold_nodes(_read(session, new, keys), at, count)


class Appender:
    """Assigns consecutive indexes within one transaction; `finish()` before commit."""

    def __init__(self, session: Session) -> None:
        self.session = session
        session.info[_APPENDING] = True  # before anything is written (see NodeCache)
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

    def finish(self, writes: Writes | None = None) -> None:
        """Store the new nodes and size: with `writes` among the caller's other writes (sent
        by the caller, before commit), else at once."""
        if self.size == self._size_before:
            self.nodes.flush()
            return
        own = writes is None
        if writes is None:
            writes = Writes(self.session.connection())
        writes.add(_INSERT_NODES, self.nodes.take_pending())
        if writes.combined:
            writes.add_statement(_SET_HEAD_POSTGRESQL, (self.size,))
        else:
            self.session.connection().execute(_SET_HEAD, {"size": self.size})
        if own:
            writes.send()
        self._size_before = self.size
