"""keys.merkle against the RFC 6962 vectors of transparency-dev/merkle, exhaustively to 100 leaves,
and a read count showing proofs cost O(log n) subtree reads."""

from __future__ import annotations

import hashlib

import pytest

from keys.merkle import (
    EMPTY_ROOT,
    MemorySubtrees,
    append_nodes,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_leaves,
    root_hash,
    subtree_hash,
    verify_consistency,
    verify_inclusion,
)

# transparency-dev/merkle proof/verify_test.go (`leaves`, `roots`, `inclusionProofs`,
# `consistencyProofs`); the same data as the RFC 6962 reference tests of certificate-transparency.
VECTOR_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
VECTOR_ROOTS = {
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
# (zero-based leaf index, tree size, PATH); the Go file numbers leaves from one.
VECTOR_INCLUSION = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
VECTOR_CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]

VECTOR_HASHES = [leaf_hash(leaf) for leaf in VECTOR_LEAVES]
VECTOR_TREE = MemorySubtrees(VECTOR_HASHES)

MAX = 100
HASHES = [leaf_hash(i.to_bytes(4, "big")) for i in range(MAX)]
TREE = MemorySubtrees(HASHES)
ROOTS = [root_from_leaves(HASHES[:n]) for n in range(MAX + 1)]
OTHER = hashlib.sha256(b"not a node of this tree").digest()


class CountingSource:
    """Wraps a source and counts `subtree` reads, standing in for the gateway's table."""

    def __init__(self, inner: MemorySubtrees) -> None:
        self.inner = inner
        self.reads = 0

    def subtree(self, level: int, index: int) -> bytes:
        self.reads += 1
        return self.inner.subtree(level, index)


def flipped(proof: list[bytes], i: int) -> list[bytes]:
    element = bytearray(proof[i])
    element[0] ^= 0x10
    return [*proof[:i], bytes(element), *proof[i + 1 :]]


def mangled(proof: list[bytes]) -> list[list[bytes]]:
    """Every element with one bit flipped, plus extra, missing and reordered elements."""
    variants = [flipped(proof, i) for i in range(len(proof))]
    variants += [[*proof, OTHER], [OTHER, *proof], [*proof, proof[-1]] if proof else [OTHER]]
    if proof:
        variants += [proof[:-1], proof[1:]]
    if len(proof) > 1:
        variants.append([proof[1], proof[0], *proof[2:]])
    return variants


def test_hashes_are_domain_separated_sha256() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert (
        node_hash(b"L" * 32, b"R" * 32) == hashlib.sha256(b"\x01" + b"L" * 32 + b"R" * 32).digest()
    )
    assert root_from_leaves([]) == EMPTY_ROOT == root_hash(0, MemorySubtrees())


@pytest.mark.parametrize("size", sorted(VECTOR_ROOTS))
def test_root_of_every_prefix_matches_the_vectors(size: int) -> None:
    expected = bytes.fromhex(VECTOR_ROOTS[size])
    assert root_from_leaves(VECTOR_HASHES[:size]) == expected
    assert root_hash(size, VECTOR_TREE) == expected


@pytest.mark.parametrize(("index", "size", "path"), VECTOR_INCLUSION)
def test_inclusion_proofs_match_the_vectors(index: int, size: int, path: list[str]) -> None:
    proof = inclusion_proof(index, size, VECTOR_TREE)
    assert [p.hex() for p in proof] == path
    root = bytes.fromhex(VECTOR_ROOTS[size])
    assert verify_inclusion(VECTOR_HASHES[index], index, size, proof, root)


@pytest.mark.parametrize(("old", "new", "path"), VECTOR_CONSISTENCY)
def test_consistency_proofs_match_the_vectors(old: int, new: int, path: list[str]) -> None:
    proof = consistency_proof(old, new, VECTOR_TREE)
    assert [p.hex() for p in proof] == path
    old_root, new_root = bytes.fromhex(VECTOR_ROOTS[old]), bytes.fromhex(VECTOR_ROOTS[new])
    assert verify_consistency(old, new, old_root, new_root, proof)


def test_right_edge_leaf_of_an_unbalanced_tree() -> None:
    # Size 7: leaf 6 has no sibling at level 0, so PATH is [MTH(D[4:6]), MTH(D[0:4])].
    h = VECTOR_HASHES
    expected = [node_hash(h[4], h[5]), bytes.fromhex(VECTOR_ROOTS[4])]
    assert inclusion_proof(6, 7, VECTOR_TREE) == expected
    assert verify_inclusion(h[6], 6, 7, expected, bytes.fromhex(VECTOR_ROOTS[7]))
    assert subtree_hash(4, 7, VECTOR_TREE) == root_from_leaves(h[4:7])


def test_memory_subtrees_hold_every_perfect_subtree() -> None:
    for level in range(7):
        for index in range(MAX >> level):
            span = HASHES[index << level : (index + 1) << level]
            assert TREE.subtree(level, index) == root_from_leaves(span)
    with pytest.raises(KeyError):
        TREE.subtree(2, MAX // 4)  # leaves 100..103 do not exist yet
    assert TREE.size == MAX
    assert TREE.root() == ROOTS[MAX]


@pytest.mark.parametrize("size_before", range(70))
def test_append_nodes_completes_one_subtree_per_trailing_one_bit(size_before: int) -> None:
    source = CountingSource(TREE)
    nodes = append_nodes(size_before, HASHES[size_before], source)
    trailing_ones = (size_before ^ (size_before + 1)).bit_length() - 1
    assert source.reads == trailing_ones
    assert [(level, index) for level, index, _ in nodes] == [
        (level, size_before >> level) for level in range(trailing_ones + 1)
    ]
    for level, index, value in nodes:
        assert value == TREE.subtree(level, index)


def test_every_inclusion_proof_to_100_leaves_verifies_and_resists_tampering() -> None:
    for size in range(1, MAX + 1):
        root = ROOTS[size]
        for index in range(size):
            proof = inclusion_proof(index, size, TREE)
            leaf = HASHES[index]
            assert verify_inclusion(leaf, index, size, proof, root), (index, size)
            for bad in mangled(proof):
                assert not verify_inclusion(leaf, index, size, bad, root), (index, size, bad)
            assert not verify_inclusion(OTHER, index, size, proof, root)
            assert not verify_inclusion(leaf, index, size, proof, OTHER)
            for other in (index - 1, index + 1, index ^ 2):
                if 0 <= other < size:
                    assert not verify_inclusion(leaf, other, size, proof, root)
                    assert not verify_inclusion(HASHES[other], other, size, proof, root)
            # A proof checks against another tree size only where both trees share that path.
            for other_size in (size - 1, size + 1, size * 2, size // 2):
                if index < other_size <= MAX:
                    same = inclusion_proof(index, other_size, TREE) == proof
                    assert (
                        verify_inclusion(leaf, index, other_size, proof, ROOTS[other_size]) == same
                    )


def test_every_consistency_proof_to_100_leaves_verifies_and_resists_tampering() -> None:
    for new in range(1, MAX + 1):
        for old in range(1, new + 1):
            proof = consistency_proof(old, new, TREE)
            assert verify_consistency(old, new, ROOTS[old], ROOTS[new], proof), (old, new)
            for bad in mangled(proof):
                assert not verify_consistency(old, new, ROOTS[old], ROOTS[new], bad), (old, new)
            if old == new:
                continue
            assert not verify_consistency(old, new, ROOTS[new], ROOTS[old], proof)
            assert not verify_consistency(old, new, OTHER, ROOTS[new], proof)
            assert not verify_consistency(old, new, ROOTS[old], OTHER, proof)
            for o, n in ((old - 1, new), (old + 1, new), (old, new - 1), (old, new + 1)):
                if 1 <= o <= n <= MAX and (o, n) != (old, new):
                    same = consistency_proof(o, n, TREE) == proof
                    assert verify_consistency(o, n, ROOTS[o], ROOTS[n], proof) == same, (o, n)


def test_verifiers_reject_malformed_input_without_raising() -> None:
    leaf, root = HASHES[0], ROOTS[1]
    assert verify_inclusion(leaf, 0, 1, [], root)
    assert not verify_inclusion(leaf, 0, 0, [], root)  # an empty tree has no leaves
    assert not verify_inclusion(leaf, 1, 1, [], root)
    assert not verify_inclusion(leaf, -1, 1, [], root)
    assert not verify_inclusion(leaf[:31], 0, 1, [], leaf[:31])
    assert not verify_inclusion(leaf, 0, 2, [b""], ROOTS[2])
    assert not verify_inclusion(leaf, 0, 2, HASHES[1], ROOTS[2])  # type: ignore[arg-type]
    assert not verify_inclusion(leaf, 0, 2, "abc", ROOTS[2])  # type: ignore[arg-type]
    assert not verify_inclusion(leaf, True, 2, [HASHES[1]], ROOTS[2])  # bool is not an index
    assert not verify_inclusion(leaf, 0, 2, [HASHES[1]], "root")  # type: ignore[arg-type]


def test_consistency_edge_cases_follow_rfc_9162() -> None:
    r3 = ROOTS[3]
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert verify_consistency(0, 3, EMPTY_ROOT, r3, [])  # every tree extends the empty one
    assert not verify_consistency(0, 3, OTHER, r3, [])  # a size-0 head must carry SHA-256("")
    assert not verify_consistency(0, 0, EMPTY_ROOT, OTHER, [])
    assert not verify_consistency(0, 3, EMPTY_ROOT, r3, [r3])
    assert verify_consistency(3, 3, r3, r3, [])
    assert not verify_consistency(3, 3, r3, ROOTS[4], [])
    assert not verify_consistency(3, 3, r3, r3, [r3])
    assert not verify_consistency(4, 3, ROOTS[4], r3, consistency_proof(3, 4, TREE))
    assert not verify_consistency(3, 4, r3, ROOTS[4], [])  # RFC 9162 §2.1.4.2 step 1
    assert not verify_consistency(-1, 3, r3, r3, [])
    assert not verify_consistency(3, 4, r3[:8], ROOTS[4], consistency_proof(3, 4, TREE))


def test_generators_refuse_impossible_requests() -> None:
    for index, size in ((0, 0), (5, 5), (-1, 3)):
        with pytest.raises(ValueError, match="outside"):
            inclusion_proof(index, size, TREE)
    for old, new in ((5, 3), (-1, 3)):
        with pytest.raises(ValueError, match="no consistency proof"):
            consistency_proof(old, new, TREE)
    assert consistency_proof(0, 7, TREE) == []
    assert consistency_proof(7, 7, TREE) == []
    with pytest.raises(ValueError, match="aligned"):
        subtree_hash(2, 6, TREE)  # MTH(D[2:6]) splits at 4, and [2, 6) has no stored half
    with pytest.raises(ValueError, match="size_before"):
        append_nodes(-1, HASHES[0], TREE)
    assert subtree_hash(5, 5, TREE) == EMPTY_ROOT


BIG = 1 << 16


@pytest.fixture(scope="module")
def big_tree() -> tuple[MemorySubtrees, list[bytes]]:
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(BIG)]
    return MemorySubtrees(hashes), hashes


@pytest.mark.parametrize("size", [BIG, BIG - 1, 40_000, 43_691, 12_345])
def test_proofs_over_2_16_leaves_take_logarithmic_reads(
    big_tree: tuple[MemorySubtrees, list[bytes]], size: int
) -> None:
    tree, hashes = big_tree
    source = CountingSource(tree)
    root = root_hash(size, source)
    assert source.reads == size.bit_count()  # one read per perfect subtree on the right edge
    assert root == root_from_leaves(hashes[:size])
    bound = 2 * size.bit_length() + 1  # a path of <= 17 levels plus one ragged right edge
    for index in (0, 1, size // 3, size // 2, size - 2, size - 1):
        source.reads = 0
        proof = inclusion_proof(index, size, source)
        assert source.reads <= bound, (index, source.reads)
        assert verify_inclusion(hashes[index], index, size, proof, root)
    for old in (1, 2, 3, size // 3, size // 2 + 1, size - 1):
        source.reads = 0
        proof = consistency_proof(old, size, source)
        assert source.reads <= bound, (old, source.reads)
        assert verify_consistency(old, size, root_hash(old, tree), root, proof)
    source.reads = 0
    append_nodes(BIG - 1, hashes[-1], source)
    assert source.reads == 16  # leaf 65535 completes every level up to the 2^16 root


def test_plans_give_the_recursions_proofs_to_70_leaves() -> None:
    """inclusion_nodes / consistency_nodes / right_edge, folded by fold_nodes, are
    inclusion_proof / consistency_proof / root_hash at every index and size to 70 leaves."""
    from keys.merkle import consistency_nodes, fold_nodes, inclusion_nodes, right_edge

    tree = MemorySubtrees([leaf_hash(b"%d" % n) for n in range(70)])

    def read(keys: list[tuple[int, int]]) -> list[bytes]:
        return [tree.subtree(level, idx) for level, idx in keys]

    for size in range(1, 71):
        edge = right_edge(size)
        assert fold_nodes(read(edge), 0, len(edge)) == [root_hash(size, tree)]
        for index in range(size):
            keys, at, count = inclusion_nodes(index, size)
            assert fold_nodes(read(keys), at, count) == inclusion_proof(index, size, tree)
        for old in range(size + 1):
            keys, at, count = consistency_nodes(old, size)
            assert fold_nodes(read(keys), at, count) == consistency_proof(old, size, tree)
    with pytest.raises(ValueError, match="outside a tree"):
        inclusion_nodes(5, 5)
    with pytest.raises(ValueError, match="no consistency proof"):
        consistency_nodes(6, 5)
