"""RFC 6962 / RFC 9162 §2.1 Merkle hashing and the inclusion-proof check (the gateway's
keys/merkle.py, the verifier half, copied: this package is installed without the gateway)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = ["HASH_SIZE", "leaf_hash", "node_hash", "verify_inclusion"]

HASH_SIZE = 32


def leaf_hash(data: bytes) -> bytes:
    # RFC 6962 §2.1: the 0x00 prefix separates leaves from interior nodes (second preimages).
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2, step for step; False (never an exception) for any malformed input."""
    if isinstance(index, bool) or isinstance(size, bool) or not 0 <= index < size:
        return False  # step 1; also rejects size 0, which has no leaves
    if not (_is_hash(leaf) and _is_hash(root) and all(_is_hash(p) for p in proof)):
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False  # step 4a: the proof is longer than the path
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # step 4b.ii: a right-edge node with no sibling at this level moves up unchanged
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root
