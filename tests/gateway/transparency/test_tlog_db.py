"""The database-backed tree (node table) gives the same roots and proofs as keys.merkle."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import pytest
from gateway_factories import wait_for_a_lock_waiter
from sqlalchemy import select

from gateway.models import TreeNode
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.transparency.tlog import (
    Appender,
    consistency_proof,
    inclusion_proof,
    root_hash,
    tree_size,
)
from keys import merkle


def test_node_table_matches_the_reference_tree_to_100_leaves(runtime: Runtime) -> None:
    leaves = [f"leaf {n}".encode() for n in range(100)]
    reference = merkle.MemorySubtrees([merkle.leaf_hash(x) for x in leaves])
    rng = random.Random(6962)
    with runtime.db.reader() as session:
        assert tree_size(session) == 0  # no registry entries: the fixture registered no agency
    done = 0
    while done < len(leaves):  # transactions of random size, as publishes would make them
        step = rng.randint(1, 9)
        with runtime.db.transaction() as session:
            appender = Appender(session)
            for leaf in leaves[done : done + step]:
                appender.append(leaf)
            appender.finish()
        done = min(len(leaves), done + step)
    with runtime.db.reader() as session:
        for size in range(1, 101):
            root = merkle.root_hash(size, reference)
            assert root_hash(session, size) == root
            for index in {0, size // 2, size - 1}:
                proof = inclusion_proof(session, index, size)
                assert proof == merkle.inclusion_proof(index, size, reference)
                assert merkle.verify_inclusion(
                    reference.subtree(0, index), index, size, proof, root
                )
            for old in {1, size // 2 or 1, size - 1 or 1, size}:
                proof = consistency_proof(session, old, size)
                assert proof == merkle.consistency_proof(old, size, reference)
                old_root = merkle.root_hash(old, reference)
                assert merkle.verify_consistency(old, size, old_root, root, proof)


@pytest.mark.parametrize(
    ("before", "held", "waiting"),
    [(0, 1, 2), (0, 3, 1), (1, 1, 3), (5, 3, 2), (6, 1, 1), (7, 1, 4), (8, 8, 1)],
)
def test_an_append_that_waited_for_the_head_builds_on_its_predecessor(
    pg_settings: Settings, before: int, held: int, waiting: int
) -> None:
    """PostgreSQL: the head is locked and the right edge read in one statement; an append that
    waited for the lock gets the size its predecessor committed but the edge as it first
    looked (old nodes, some of which the new size no longer uses): the tree must still be
    the reference tree, gapless, whatever the two sizes."""
    runtime = Runtime.open(pg_settings)
    leaves = [f"leaf {n}".encode() for n in range(before + held + waiting)]

    def append(chunk: list[bytes]) -> list[int]:
        with runtime.db.transaction() as session:
            appender = Appender(session)
            indexes = [appender.append(leaf)[0] for leaf in chunk]
            appender.finish()
        return indexes

    try:
        with runtime.db.reader() as session:
            start = tree_size(session)  # the registry's own entries, if any
        if before:
            append(leaves[:before])
        with ThreadPoolExecutor(1) as pool:
            with runtime.db.transaction() as session:
                appender = Appender(session)
                for leaf in leaves[before : before + held]:
                    appender.append(leaf)
                racing = pool.submit(append, leaves[before + held :])
                wait_for_a_lock_waiter(pg_settings.effective_database_url, "the second append")
                appender.finish()
            got = racing.result(timeout=30)
        size = start + len(leaves)
        assert got == list(range(start + before + held, size))
        with runtime.db.reader() as session:
            assert tree_size(session) == size
            stored = list(
                session.scalars(
                    select(TreeNode.hash).where(TreeNode.level == 0).order_by(TreeNode.idx)
                )
            )
            reference = merkle.MemorySubtrees(list(stored))
            assert stored[start:] == [merkle.leaf_hash(x) for x in leaves]
            for n in range(1, size + 1):
                assert root_hash(session, n) == merkle.root_hash(n, reference)
    finally:
        runtime.close()
