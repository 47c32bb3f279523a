"""The log's node cache (tlog.NodeCache): proofs and roots read through it are the ones read
from the table alone, it never holds a node a rolled-back append wrote, and it keeps to its
budget; on SQLite and on PostgreSQL (the `settings` fixture is both)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from gateway.db import Database
from gateway.models import TreeNode
from gateway.settings import Settings
from gateway.transparency.tlog import (
    Appender,
    consistency_proof,
    inclusion_proof,
    leaf_and_inclusion_proof,
    node_cache,
    root_hash,
    tree_size,
    warm,
)
from keys import merkle


class _RolledBack(Exception):
    pass


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings.effective_database_url, pool_size=2)
    try:
        yield database
    finally:
        database.dispose()


def _append(db: Database, leaves: list[bytes], rng: random.Random) -> None:
    """In transactions of random size, as publishes would make them."""
    done = 0
    while done < len(leaves):
        step = rng.randint(1, 40)
        with db.transaction() as session:
            appender = Appender(session)
            for leaf in leaves[done : done + step]:
                appender.append(leaf)
            appender.finish()
        done += step


def _reference(db: Database) -> merkle.MemorySubtrees:
    """The committed tree, from its stored leaf hashes."""
    with db.reader() as session:
        stored = session.scalars(
            select(TreeNode.hash).where(TreeNode.level == 0).order_by(TreeNode.idx)
        )
        return merkle.MemorySubtrees(list(stored))


def _check_sizes(db: Database, reference: merkle.MemorySubtrees, sizes: list[int]) -> None:
    """Roots and proofs equal the reference tree's and verify, at each of `sizes`."""
    rng = random.Random(sum(sizes))
    with db.reader() as session:
        for size in sizes:
            root = merkle.root_hash(size, reference)
            assert root_hash(session, size) == root
            for index in {0, size - 1, rng.randrange(size)}:
                leaf, proof = leaf_and_inclusion_proof(session, index, size)
                assert leaf == reference.subtree(0, index)
                assert proof == merkle.inclusion_proof(index, size, reference)
                assert merkle.verify_inclusion(leaf, index, size, proof, root)
            for old in {1, size, rng.randint(1, size)}:
                proof = consistency_proof(session, old, size)
                assert proof == merkle.consistency_proof(old, size, reference)
                old_root = merkle.root_hash(old, reference)
                assert merkle.verify_consistency(old, size, old_root, root, proof)


def _cached_match(db: Database, reference: merkle.MemorySubtrees) -> int:
    """Every node the cache holds is the reference tree's; returns how many it holds."""
    with db.reader() as session:
        cache = node_cache(session)
    size = reference.size
    keys = [(lv, i) for lv in range(size.bit_length()) for i in range(size >> lv)]
    found, _ = cache.hashes(keys)
    held = [(key, digest) for key, digest in zip(keys, found, strict=True) if digest is not None]
    assert all(digest == reference.subtree(*key) for key, digest in held)
    assert len(held) == cache.nodes()
    return len(held)


@pytest.mark.parametrize(("budget_mib", "step"), [(64.0, 1 << 14), (0.0, 1 << 14), (64.0, 5)])
def test_proofs_through_the_cache_equal_the_tables_and_verify(
    settings: Settings, budget_mib: float, step: int
) -> None:
    """The whole tree cached, nothing cached (every node from the table, as before the
    cache), and a cache filled a few nodes a proof (step 5): the same roots and proofs,
    at random sizes as the log grows."""
    rng = random.Random(6962)
    db = Database(settings.effective_database_url, pool_size=2, log_node_cache_mib=budget_mib)
    try:
        with db.reader() as session:
            node_cache(session).step = step
            start = tree_size(session)
        for round_ in range(3):
            _append(db, [f"leaf {round_} {n}".encode() for n in range(150)], rng)
            reference = _reference(db)
            size = reference.size
            assert size == start + 150 * (round_ + 1)
            _check_sizes(db, reference, sorted({size, *(rng.randint(1, size) for _ in range(25))}))
            held = _cached_match(db, reference)
            assert held == 0 if budget_mib == 0 else held > 0
        if step > 5:
            assert held == (0 if budget_mib == 0 else 2 * size - size.bit_count())
    finally:
        db.dispose()


def test_a_rolled_back_append_never_enters_the_cache(db: Database) -> None:
    """Nodes an append wrote in a transaction that then rolled back are replaced by the next
    append's (other leaves, other hashes at the same keys): neither the session that wrote
    them nor a reader beside it may have cached them."""
    rng = random.Random(9162)
    _append(db, [f"kept {n}".encode() for n in range(100)], rng)
    committed = _reference(db).size

    def append_then_roll_back() -> None:
        with db.transaction() as session:
            appender = Appender(session)
            for n in range(60):
                appender.append(f"rolled back {n}".encode())
            appender.finish()
            size = committed + 60
            # the writing session reads its own nodes, to the new size, caching none of them
            assert root_hash(session, size) == root_hash(session, size)
            inclusion_proof(session, committed + 3, size)
            consistency_proof(session, committed, size)
            # a reader beside it sees (and may cache) the committed tree only
            _check_sizes(db, _reference(db), [committed, committed // 2 + 1])
            with db.reader() as reader:
                assert node_cache(reader).complete <= committed
            raise _RolledBack

    with pytest.raises(_RolledBack):
        append_then_roll_back()
    _append(db, [f"committed instead {n}".encode() for n in range(60)], rng)
    reference = _reference(db)
    assert reference.size == committed + 60
    _check_sizes(db, reference, list(range(committed - 3, reference.size + 1)))
    assert _cached_match(db, reference) == 2 * reference.size - reference.size.bit_count()


def test_the_cache_keeps_to_its_budget(settings: Settings) -> None:
    """A budget of fewer hashes than the tree has: the top levels are kept whole down to the
    floor, the bound is never passed as the log grows, and what is below comes from the
    table (the proofs still the reference's)."""
    budget = 100  # hashes
    db = Database(
        settings.effective_database_url,
        pool_size=2,
        log_node_cache_mib=budget * merkle.HASH_SIZE / 2**20,
    )
    rng = random.Random(7)
    try:
        floors = []
        for round_ in range(4):
            _append(db, [f"leaf {round_} {n}".encode() for n in range(100)], rng)
            reference = _reference(db)
            _check_sizes(db, reference, [reference.size, rng.randint(1, reference.size)])
            held = _cached_match(db, reference)
            assert 0 < held <= budget
            with db.reader() as session:
                cache = node_cache(session)
            floors.append(cache.floor)
            size = reference.size
            assert held == sum(size >> lv for lv in range(cache.floor, size.bit_length()))
        assert floors == sorted(floors)
        assert floors[-1] > 0
    finally:
        db.dispose()


def test_a_session_that_appended_never_fills_the_cache(db: Database) -> None:
    """Even a root asked in the session that appends, before it commits, leaves the cache as
    it was: what that session sees of the head is not committed yet."""
    _append(db, [f"leaf {n}".encode() for n in range(20)], random.Random(1))
    with db.transaction() as session:
        appender = Appender(session)
        appender.append(b"one more")
        appender.finish()
        root_hash(session, appender.size)
        assert node_cache(session).nodes() == 0
        assert node_cache(session).complete == 0


def test_a_driver_error_in_a_node_read_is_sqlalchemys(db: Database) -> None:
    """The nodes are read on the driver's connection; its errors still reach the API as
    SQLAlchemy's (an OperationalError is a 503 there), not as the driver's own."""
    from sqlalchemy.exc import DBAPIError

    from gateway.transparency.tlog import _fetch

    with pytest.raises(DBAPIError), db.reader() as session:
        _fetch(session.connection(), "SELECT hash FROM no_such_table", ())


def test_threads_proving_while_the_cache_fills_get_the_reference_proofs(
    settings: Settings,
) -> None:
    """Four threads ask proofs while the cache fills a few nodes at a time (one thread fills,
    the others read around it) and while the log grows: every proof is the reference's."""
    from concurrent.futures import ThreadPoolExecutor

    rng = random.Random(3)
    db = Database(settings.effective_database_url, pool_size=4)
    try:
        with db.reader() as session:
            node_cache(session).step = 3
        _append(db, [f"first {n}".encode() for n in range(200)], rng)
        first = _reference(db)

        def prove(seed: int) -> None:
            _check_sizes(db, first, [first.size - seed, first.size // (seed + 1)])

        with ThreadPoolExecutor(4) as pool:
            results = [pool.submit(prove, seed) for seed in range(16)]
            _append(db, [f"then {n}".encode() for n in range(100)], rng)
            for result in results:
                result.result(timeout=60)
        reference = _reference(db)
        _check_sizes(db, reference, [reference.size])
        _cached_match(db, reference)
    finally:
        db.dispose()


def test_warming_fills_the_cache_to_the_log_at_its_start_and_stops_when_asked(
    settings: Settings,
) -> None:
    """An API process warms the cache at its start (gateway.app): afterwards it holds every
    node of the tree as it was, each the reference's, so a proof reads nothing from the table;
    a stop set before it begins ends it before any step."""
    rng = random.Random(11)
    db = Database(settings.effective_database_url, pool_size=2)
    try:
        _append(db, [f"leaf {n}".encode() for n in range(300)], rng)
        with db.reader() as session:
            node_cache(session).step = 7  # many steps, as a large log needs
        stopped = threading.Event()
        stopped.set()
        assert warm(db, stopped) == 0
        steps = warm(db, threading.Event())
        reference = _reference(db)
        size = reference.size
        assert steps >= (2 * size - size.bit_count()) // 7
        assert _cached_match(db, reference) == 2 * size - size.bit_count()
        with db.reader() as session:
            assert node_cache(session).complete == size
        _check_sizes(db, reference, [size, rng.randint(1, size)])
    finally:
        db.dispose()


def test_the_api_warms_the_cache_at_its_start(settings: Settings) -> None:
    """The lifespan's warming thread: by the time the app has started and been asked for its
    health, the cache holds the log as it was (gateway.app)."""
    from fastapi.testclient import TestClient

    from gateway.app import create_app

    rng = random.Random(12)
    db = Database(settings.effective_database_url, pool_size=2)
    try:
        _append(db, [f"leaf {n}".encode() for n in range(120)], rng)
        size = _reference(db).size
    finally:
        db.dispose()
    with TestClient(create_app(settings)) as client:
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        assert client.get("/healthz").status_code == 200
        with runtime.db.reader() as session:
            cache = node_cache(session)
        deadline = time.monotonic() + 10
        while cache.complete < size and time.monotonic() < deadline:
            time.sleep(0.02)
        assert cache.complete >= size
        assert cache.nodes() >= 2 * size - size.bit_count()


def test_warming_that_meets_a_database_failure_stops_and_says_so(
    db: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The warming runs on a thread of its own: a database gone at the start (connections
    killed, a restart) ends it with a warning, never an exception on the thread; proofs go
    on filling the cache as they are asked."""
    from sqlalchemy.exc import OperationalError

    from gateway.transparency import tlog

    _append(db, [f"leaf {n}".encode() for n in range(50)], random.Random(13))

    def gone(session: object) -> int:
        raise OperationalError("SELECT size", {}, ConnectionResetError("terminated"))

    monkeypatch.setattr(tlog, "tree_size", gone)
    caplog.set_level("WARNING", "gateway.transparency")
    assert warm(db, threading.Event()) == 0
    assert [r.getMessage() for r in caplog.records] == ["log_node_cache_warming_stopped"]
    monkeypatch.undo()
    reference = _reference(db)
    _check_sizes(db, reference, [reference.size])
