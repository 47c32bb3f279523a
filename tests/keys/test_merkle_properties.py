"""keys.merkle under hypothesis, against a reference written here straight from RFC 6962 §2.1:
roots, inclusion and consistency proofs for random trees of 1 to 300 leaves, and tampering."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

from hypothesis import example, given, settings
from hypothesis import strategies as st

from keys.merkle import (
    MemorySubtrees,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_leaves,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

# --- RFC 6962 §2.1, written out on leaf data with no shared code ------------------------------


def ref_split(n: int) -> int:
    """k: the largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(leaves: list[bytes]) -> bytes:
    """MTH(D[n]): SHA-256() for n = 0, SHA-256(0x00 || d(0)) for n = 1, else
    SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = ref_split(len(leaves))
    return hashlib.sha256(b"\x01" + ref_mth(leaves[:k]) + ref_mth(leaves[k:])).digest()


def ref_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of §2.1.1."""
    if len(leaves) == 1:
        return []
    k = ref_split(len(leaves))
    if m < k:
        return [*ref_path(m, leaves[:k]), ref_mth(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), ref_mth(leaves[:k])]


def ref_subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of §2.1.2; PROOF(m, D[n]) = SUBPROOF(m, D[n], true)."""
    if m == len(leaves):
        return [] if complete else [ref_mth(leaves)]
    k = ref_split(len(leaves))
    if m <= k:
        return [*ref_subproof(m, leaves[:k], complete), ref_mth(leaves[k:])]
    return [*ref_subproof(m - k, leaves[k:], False), ref_mth(leaves[:k])]


# --- trees -------------------------------------------------------------------------------------


@dataclass
class Tree:
    leaves: list[bytes]

    @cached_property
    def source(self) -> MemorySubtrees:
        return MemorySubtrees([leaf_hash(leaf) for leaf in self.leaves])

    @property
    def size(self) -> int:
        return len(self.leaves)

    def root(self, size: int | None = None) -> bytes:
        return root_hash(self.size if size is None else size, self.source)


# Sizes on both sides of every power of two are where the RFC 6962 recursion changes shape.
EDGE_SIZES = sorted({n for p in range(9) for n in (2**p - 1, 2**p, 2**p + 1) if 1 <= n <= 300})
sizes = st.integers(1, 300) | st.sampled_from([*EDGE_SIZES, 300])


@st.composite
def trees(draw: st.DrawFn, min_size: int = 1) -> Tree:
    """Random leaf data, made distinct by an index prefix: with two equal leaves a proof for one
    also proves the other, and "a wrong index fails" would not hold. (A few random tails used in
    turn: drawing 300 independent byte strings per example would triple the run time.)"""
    n = draw(sizes.filter(lambda n: n >= min_size))
    tails = draw(st.lists(st.binary(max_size=6), min_size=1, max_size=8))
    return Tree([i.to_bytes(2, "big") + tails[i % len(tails)] for i in range(n)])


def tree_of(n: int) -> Tree:
    return Tree([i.to_bytes(2, "big") for i in range(n)])


def flipped(proof: list[bytes], i: int) -> list[bytes]:
    return [bytes([p[0] ^ 1]) + p[1:] if j == i else p for j, p in enumerate(proof)]


# --- roots -------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(tree=trees(), data=st.data())
def test_roots_match_the_rfc_recursion_at_every_size_asked(tree: Tree, data: st.DataObject) -> None:
    assert tree.root() == ref_mth(tree.leaves)
    assert root_from_leaves([leaf_hash(leaf) for leaf in tree.leaves]) == ref_mth(tree.leaves)
    # The subtrees written for size n still answer for every earlier size (append-only log).
    m = data.draw(st.integers(0, tree.size), label="earlier size")
    assert tree.root(m) == ref_mth(tree.leaves[:m])


# --- inclusion ---------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(tree=trees(), pick=st.integers(0, 299))
@example(tree=tree_of(1), pick=0)
@example(tree=tree_of(300), pick=299)
@example(tree=tree_of(257), pick=256)
def test_inclusion_proofs_match_the_rfc_and_verify(tree: Tree, pick: int) -> None:
    n, root = tree.size, tree.root()
    index = pick % n
    proof = inclusion_proof(index, n, tree.source)
    assert proof == ref_path(index, tree.leaves)
    assert verify_inclusion(leaf_hash(tree.leaves[index]), index, n, proof, root)


@settings(max_examples=50, deadline=None)
@given(tree=trees(), data=st.data())
def test_inclusion_fails_for_a_wrong_leaf_index_or_root(tree: Tree, data: st.DataObject) -> None:
    n, root = tree.size, tree.root()
    index = data.draw(st.integers(0, n - 1), label="index")
    proof = inclusion_proof(index, n, tree.source)
    leaf = leaf_hash(tree.leaves[index])

    other_data = data.draw(st.binary(max_size=8).filter(lambda d: d != tree.leaves[index]))
    assert not verify_inclusion(leaf_hash(other_data), index, n, proof, root)
    # The leaf data itself, unhashed or hashed as an interior node, is not the leaf.
    assert not verify_inclusion(hashlib.sha256(tree.leaves[index]).digest(), index, n, proof, root)

    if n > 1:
        wrong_index = data.draw(st.integers(0, n - 1).filter(lambda i: i != index), label="wrong")
        assert not verify_inclusion(leaf, wrong_index, n, proof, root)
    assert not verify_inclusion(leaf, n, n, proof, root)
    assert not verify_inclusion(leaf, -1, n, proof, root)

    wrong_root = data.draw(st.binary(min_size=32, max_size=32).filter(lambda r: r != root))
    assert not verify_inclusion(leaf, index, n, proof, wrong_root)

    for i in range(len(proof)):
        assert not verify_inclusion(leaf, index, n, flipped(proof, i), root)
    if proof:
        assert not verify_inclusion(leaf, index, n, proof[:-1], root)
    assert not verify_inclusion(leaf, index, n, [*proof, root], root)


@settings(max_examples=30, deadline=None)
@given(tree=trees(min_size=3))
def test_an_interior_node_is_not_a_leaf(tree: Tree) -> None:
    # RFC 6962 §2.1 domain separation, and the verifier's check that the path reaches the top
    # (RFC 9162 §2.1.3.2 step 5): the root's two children with a one-element "proof" are no leaf.
    n, k = tree.size, ref_split(tree.size)
    left, right, root = ref_mth(tree.leaves[:k]), ref_mth(tree.leaves[k:]), tree.root()
    assert hashlib.sha256(b"\x01" + left + right).digest() == root
    if k > 1:
        assert not verify_inclusion(left, 0, n, [right], root)
    if n - k > 1:
        assert not verify_inclusion(right, n - 1, n, [left], root)
        assert not verify_inclusion(right, k, n, [left], root)


# --- consistency -------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(tree=trees(), pick=st.integers(0, 300))
@example(tree=tree_of(300), pick=255)
@example(tree=tree_of(300), pick=300)
@example(tree=tree_of(129), pick=127)
def test_consistency_proofs_match_the_rfc_and_verify(tree: Tree, pick: int) -> None:
    n = tree.size
    m = pick % (n + 1)
    proof = consistency_proof(m, n, tree.source)
    if m > 0:
        assert proof == ref_subproof(m, tree.leaves, True)
    else:
        assert proof == []  # RFC 6962 leaves PROOF(0, D[n]) undefined; keys.merkle sends none
    assert verify_consistency(m, n, ref_mth(tree.leaves[:m]), ref_mth(tree.leaves), proof)
    # Whatever the sizes, including m == 0 and m == n, a longer proof is refused.
    assert not verify_consistency(m, n, tree.root(m), tree.root(), [*proof, tree.root()])


@settings(max_examples=60, deadline=None)
@given(tree=trees(), data=st.data())
def test_consistency_holds_exactly_when_the_old_leaves_are_unchanged(
    tree: Tree, data: st.DataObject
) -> None:
    n = tree.size
    m = data.draw(st.integers(0, n), label="old size")
    changed = data.draw(st.integers(0, n - 1), label="changed leaf")
    new_data = data.draw(st.binary(max_size=8).filter(lambda d: d != tree.leaves[changed]))
    rewritten = Tree([new_data if i == changed else leaf for i, leaf in enumerate(tree.leaves)])
    # The old root is the original tree's; the proof and new root come from the rewritten log.
    proof = consistency_proof(m, n, rewritten.source)
    consistent = verify_consistency(m, n, tree.root(m), rewritten.root(), proof)
    assert consistent == (changed >= m)


@settings(max_examples=50, deadline=None)
@given(tree=trees(min_size=2), data=st.data())
def test_consistency_fails_for_a_tampered_proof_or_root(tree: Tree, data: st.DataObject) -> None:
    n = tree.size
    m = data.draw(st.integers(1, n - 1), label="old size")
    proof = consistency_proof(m, n, tree.source)
    old_root, new_root = tree.root(m), tree.root()
    assert verify_consistency(m, n, old_root, new_root, proof)
    for i in range(len(proof)):
        assert not verify_consistency(m, n, old_root, new_root, flipped(proof, i))
    assert not verify_consistency(m, n, old_root, new_root, proof[:-1])
    assert not verify_consistency(m, n, old_root, new_root, [*proof, new_root])
    wrong = data.draw(st.binary(min_size=32, max_size=32).filter(lambda r: r != old_root))
    assert not verify_consistency(m, n, wrong, new_root, proof)
    assert not verify_consistency(m, n, old_root, flipped([new_root], 0)[0], proof)


# --- hostile input -----------------------------------------------------------------------------

# Values of the wrong type or shape for each kind of argument; each is refused on its own.
not_counts = (
    st.none()
    | st.booleans()
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=8)
    | st.integers(max_value=-1)
)
not_hashes = (
    st.none()
    | st.integers()
    | st.text(max_size=40)
    | st.binary(max_size=80).filter(lambda b: len(b) != 32)
    | st.lists(st.binary(min_size=32, max_size=32), max_size=2)
)
not_proofs = (
    st.none()
    | st.integers()
    | st.text(max_size=40)
    | st.binary(max_size=96)  # bytes are a Sequence, but not of hashes
    | st.lists(not_hashes, min_size=1, max_size=4).flatmap(
        lambda bad: st.lists(st.binary(min_size=32, max_size=32), max_size=4).map(
            lambda good: [*good, *bad]
        )
    )
)
MALFORMED = {"hash": not_hashes, "count": not_counts, "proof": not_proofs}
INCLUSION_ARGS = ("hash", "count", "count", "proof", "hash")  # leaf, index, size, proof, root
CONSISTENCY_ARGS = ("count", "count", "hash", "hash", "proof")  # old, new, roots, proof


def one_malformed(kinds: tuple[str, ...]) -> st.SearchStrategy[tuple[int, object]]:
    """(position, value): which argument to replace, and a malformed value of its kind."""
    return st.integers(0, len(kinds) - 1).flatmap(
        lambda i: st.tuples(st.just(i), MALFORMED[kinds[i]])
    )


@settings(max_examples=60, deadline=None)
@given(tree=trees(), pick=st.integers(0, 299), bad=one_malformed(INCLUSION_ARGS))
@example(tree=tree_of(1), pick=0, bad=(3, b""))  # empty bytes are no empty proof
@example(tree=tree_of(4), pick=1, bad=(1, True))  # a bool is no index
def test_verify_inclusion_refuses_any_malformed_argument_without_raising(
    tree: Tree, pick: int, bad: tuple[int, object]
) -> None:
    index = pick % tree.size
    args: list[object] = [
        leaf_hash(tree.leaves[index]),
        index,
        tree.size,
        inclusion_proof(index, tree.size, tree.source),
        tree.root(),
    ]
    assert verify_inclusion(*args)  # type: ignore[arg-type]
    position, args[position] = bad
    assert verify_inclusion(*args) is False  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(tree=trees(), pick=st.integers(0, 300), bad=one_malformed(CONSISTENCY_ARGS))
@example(tree=tree_of(5), pick=5, bad=(4, b""))
@example(tree=tree_of(5), pick=0, bad=(4, ""))
def test_verify_consistency_refuses_any_malformed_argument_without_raising(
    tree: Tree, pick: int, bad: tuple[int, object]
) -> None:
    m = pick % (tree.size + 1)
    args: list[object] = [
        m,
        tree.size,
        tree.root(m),
        tree.root(),
        consistency_proof(m, tree.size, tree.source),
    ]
    assert verify_consistency(*args)  # type: ignore[arg-type]
    position, args[position] = bad
    assert verify_consistency(*args) is False  # type: ignore[arg-type]
