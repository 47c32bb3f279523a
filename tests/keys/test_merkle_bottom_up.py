"""keys.merkle.root_bottom_up against the RFC 6962 recursion (root_from_leaves) it replaces in
draw verification, size by size across several powers of two."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from keys.merkle import EMPTY_ROOT, leaf_hash, root_bottom_up, root_from_leaves

HASHES = [leaf_hash(str(n).encode()) for n in range(300)]


def test_equal_to_the_recursion_for_every_size_up_to_300() -> None:
    assert root_bottom_up([]) == EMPTY_ROOT
    for size in range(1, len(HASHES) + 1):
        assert root_bottom_up(HASHES[:size]) == root_from_leaves(HASHES[:size]), size


def test_rfc6962_shape_by_hand() -> None:
    a, b, c = HASHES[:3]

    def node(left: bytes, right: bytes) -> bytes:
        return hashlib.sha256(b"\x01" + left + right).digest()

    assert root_bottom_up([a, b, c]) == node(node(a, b), c)


@given(st.lists(st.binary(min_size=32, max_size=32), max_size=70))
def test_equal_for_arbitrary_hashes(hashes: list[bytes]) -> None:
    assert root_bottom_up(hashes) == root_from_leaves(hashes)
