"""The database-backed tree (node table) gives the same roots and proofs as keys.merkle."""

from __future__ import annotations

import random

from gateway.runtime import Runtime
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
