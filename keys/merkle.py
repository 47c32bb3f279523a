"""RFC 6962 / RFC 9162 Merkle tree math for the message log: hashes, roots, proofs, verifiers.

Pure and storage-agnostic: proofs are built from a `SubtreeSource` of perfect-subtree hashes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MemorySubtrees",
    "SubtreeSource",
    "append_nodes",
    "consistency_nodes",
    "consistency_proof",
    "fold_nodes",
    "inclusion_nodes",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "right_edge",
    "root_bottom_up",
    "root_from_leaves",
    "root_hash",
    "subtree_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
# RFC 6962 §2.1: the hash of an empty list is the hash of an empty string.
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    # RFC 6962 §2.1: the 0x00 prefix separates leaves from interior nodes (second preimages).
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below `n` (n >= 2): RFC 6962 §2.1's `k`."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaves(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over already-hashed leaves, straight from the RFC 6962 §2.1 recursion; O(n)."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = _split(n)
    return node_hash(root_from_leaves(leaf_hashes[:k]), root_from_leaves(leaf_hashes[k:]))


def root_bottom_up(leaf_hashes: Sequence[bytes]) -> bytes:
    """`root_from_leaves` computed level by level, an odd last node carried up unchanged (the
    same tree: RFC 6962's left-heavy split is what bottom-up pairing builds). No recursion or
    slicing, so about 40 % faster on 10^5 leaves; verifiers of whole logs use it."""
    level = list(leaf_hashes)
    if not level:
        return EMPTY_ROOT
    sha256 = hashlib.sha256
    while len(level) > 1:
        paired = [
            sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


class SubtreeSource(Protocol):
    def subtree(self, level: int, index: int) -> bytes:
        """Hash of the complete perfect subtree over leaves [index << level, (index + 1) << level).

        Level 0 is the leaf hash itself. Only subtrees whose every leaf exists are ever asked for;
        such a hash never changes once written, whatever the tree grows to.
        """
        ...


def append_nodes(
    size_before: int, new_leaf_hash: bytes, source: SubtreeSource
) -> list[tuple[int, int, bytes]]:
    """The (level, index, hash) of every perfect subtree completed by appending leaf `size_before`.

    Bottom-up; the first entry is the leaf itself. Reads one left sibling per trailing one bit of
    `size_before`, so O(log n) reads; the caller persists the result before the next append.
    """
    if size_before < 0:
        raise ValueError("size_before must be non-negative")
    nodes = [(0, size_before, new_leaf_hash)]
    level, index, current = 0, size_before, new_leaf_hash
    while index & 1:
        current = node_hash(source.subtree(level, index - 1), current)
        level, index = level + 1, index >> 1
        nodes.append((level, index, current))
    return nodes


def subtree_hash(start: int, end: int, source: SubtreeSource) -> bytes:
    """RFC 6962 MTH of leaves [start, end), read as at most log2(n) + 1 perfect subtrees.

    `start` must be a multiple of the largest power of two <= end - start, which every range in
    the RFC 6962 recursion is; MTH then folds the binary decomposition of the range from the right.
    """
    n = end - start
    if start < 0 or n < 0:
        raise ValueError(f"bad range [{start}, {end})")
    if n == 0:
        return EMPTY_ROOT
    if start % (1 << (n.bit_length() - 1)):
        raise ValueError(f"range [{start}, {end}) is not aligned to a subtree boundary")
    pieces: list[bytes] = []
    offset = start
    for level in range(n.bit_length() - 1, -1, -1):
        if n >> level & 1:
            pieces.append(source.subtree(level, offset >> level))
            offset += 1 << level
    result = pieces.pop()
    while pieces:
        result = node_hash(pieces.pop(), result)
    return result


def root_hash(size: int, source: SubtreeSource) -> bytes:
    return subtree_hash(0, size, source)


def inclusion_proof(index: int, size: int, source: SubtreeSource) -> list[bytes]:
    """RFC 6962 §2.1.1 PATH(index, D[size]), leaf sibling first.

    Siblings above the path's first left turn are perfect (one read each); the one right sibling
    where it turns left may be the tree's incomplete right edge (popcount reads): O(log n) total.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        mid = start + _split(end - start)
        if index < mid:
            path.append(subtree_hash(mid, end, source))
            end = mid
        else:
            path.append(subtree_hash(start, mid, source))
            start = mid
    path.reverse()
    return path


def consistency_proof(old: int, new: int, source: SubtreeSource) -> list[bytes]:
    """RFC 6962 §2.1.2 PROOF(old, D[new]) in O(log n) reads.

    Empty when old == new (SUBPROOF(m, D[m], true)) and when old == 0, which RFC 6962 leaves
    undefined: every tree extends the empty one, and `verify_consistency` accepts exactly that.
    """
    if not 0 <= old <= new:
        raise ValueError(f"no consistency proof from size {old} to size {new}")
    if old in (0, new):
        return []
    path: list[bytes] = []
    start, end, m, old_is_whole_subtree = 0, new, old, True
    while m < end - start:
        mid = start + _split(end - start)
        if m <= mid - start:
            path.append(subtree_hash(mid, end, source))
            end = mid
        else:
            path.append(subtree_hash(start, mid, source))
            m -= mid - start
            start = mid
            old_is_whole_subtree = False
    if not old_is_whole_subtree:
        # SUBPROOF(m, D[m], false) = {MTH(D[m])}: the old tree's node, first in the proof.
        path.append(subtree_hash(start, end, source))
    path.reverse()
    return path


# The same proofs as plans: which perfect subtrees a proof is made of, worked out from the
# indexes' bits alone (as transparency-dev/merkle's proof.Nodes does), so that a store can read
# them all at once and the proof is then assembled without walking the recursion again.
# A plan is (keys, at, count): the (level, index) of each subtree in proof order, and the
# `count` keys from `at` that fold (as `subtree_hash` does, from the right) into the one proof
# element covering the tree's incomplete right edge (count 0 when there is none).
Plan = tuple[list[tuple[int, int]], int, int]


def right_edge(size: int) -> list[tuple[int, int]]:
    """The perfect subtrees a tree of `size` leaves is made of, largest first: its root folds
    them (`fold_nodes`), and they are what the next append reads."""
    return _decompose(0, size, [])


def _decompose(start: int, end: int, keys: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Append the perfect subtrees of [start, end) to `keys`, largest first (`start` aligned
    as `subtree_hash` requires)."""
    n = end - start
    for level in range(n.bit_length() - 1, -1, -1):
        if n >> level & 1:
            keys.append((level, start >> level))
            start += 1 << level
    return keys


def _path_nodes(leaf: int, level: int, size: int, keys: list[tuple[int, int]]) -> tuple[int, int]:
    """Append the inclusion path of the node at `level` holding leaf `leaf` in a tree of `size`
    leaves, bottom-up; returns (at, count) of its right-edge element. Below the highest bit
    where `leaf` and the last leaf differ (`inner`) every sibling is perfect but the one at
    inner - 1, the block that holds the last leaf; above it, a sibling exists (on the left)
    only where `leaf` has a one bit."""
    inner = (leaf ^ (size - 1)).bit_length()
    for lv in range(level, inner - 1):
        keys.append((lv, (leaf >> lv) ^ 1))
    at = len(keys)
    if inner > level:
        lv = inner - 1
        _decompose(((leaf >> lv) | 1) << lv, size, keys)
    count = len(keys) - at
    for lv in range(inner, (size - 1).bit_length()):
        if leaf >> lv & 1:
            keys.append((lv, (leaf >> lv) ^ 1))
    return at, count


def inclusion_nodes(index: int, size: int) -> Plan:
    """The plan of `inclusion_proof(index, size)`: the same proof, read as one batch."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    keys: list[tuple[int, int]] = []
    at, count = _path_nodes(index, 0, size, keys)
    return keys, at, count


def consistency_nodes(old: int, new: int) -> Plan:
    """The plan of `consistency_proof(old, new)`: the old tree's last perfect subtree (unless
    the old tree is one, when the verifier has it as the old root) and its inclusion path in
    the new tree."""
    if not 0 <= old <= new:
        raise ValueError(f"no consistency proof from size {old} to size {new}")
    keys: list[tuple[int, int]] = []
    if old in (0, new):
        return keys, 0, 0
    level = (old & -old).bit_length() - 1
    if old >> level != 1:
        keys.append((level, (old - 1) >> level))
    at, count = _path_nodes(old - 1, level, new, keys)
    return keys, at, count


def fold_nodes(hashes: list[bytes], at: int, count: int) -> list[bytes]:
    """The proof a plan describes, from its nodes' hashes in the plan's order."""
    if count <= 1:
        return hashes
    result = hashes[at + count - 1]
    for i in range(at + count - 2, at - 1, -1):
        result = node_hash(hashes[i], result)
    return [*hashes[:at], result, *hashes[at + count :]]


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _all_hashes(values: object) -> bool:
    if isinstance(values, bytes | str) or not isinstance(values, Sequence):
        return False
    return all(_is_hash(v) for v in values)


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2, step for step; False (never an exception) for any malformed input."""
    if not (_is_count(index) and _is_count(size) and index < size):
        return False  # step 1; also rejects size 0, which has no leaves
    if not (_is_hash(leaf_hash) and _is_hash(root) and _all_hashes(proof)):
        return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            return False  # step 4a: the proof is longer than the path
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # Step 4b.ii: a right-edge node with no sibling at this level moves up unchanged.
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2 for 0 < old < new; the edge cases as RFC 9162 §2.1.4 implies.

    Equal sizes need equal roots and an empty proof; size 0 needs the empty-tree root and an
    empty proof (any tree extends it). False, never an exception, for malformed input.
    """
    if not (_is_count(old_size) and _is_count(new_size) and old_size <= new_size):
        return False
    if not (_is_hash(old_root) and _is_hash(new_root) and _all_hashes(proof)):
        return False
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT and (new_size > 0 or new_root == EMPTY_ROOT)
    if old_size == new_size:
        return not proof and old_root == new_root
    if not proof:
        return False  # step 1
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)  # step 2: the old root is itself a node of the new tree
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:  # step 4
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old_root and sr == new_root  # step 7


class MemorySubtrees:
    """Dict-backed `SubtreeSource` that grows by `append`; for tests and offline tools."""

    def __init__(self, leaf_hashes: Sequence[bytes] = ()) -> None:
        self._nodes: dict[tuple[int, int], bytes] = {}
        self._size = 0
        for h in leaf_hashes:
            self.append(h)

    @property
    def size(self) -> int:
        return self._size

    def subtree(self, level: int, index: int) -> bytes:
        try:
            return self._nodes[level, index]
        except KeyError:
            raise KeyError(f"no complete subtree at level {level}, index {index}") from None

    def append(self, leaf_hash: bytes) -> int:
        """Add one leaf hash; returns its index."""
        index = self._size
        for level, position, value in append_nodes(index, leaf_hash, self):
            self._nodes[level, position] = value
        self._size += 1
        return index

    def root(self) -> bytes:
        return root_hash(self._size, self)
