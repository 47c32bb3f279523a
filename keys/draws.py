"""Draws nobody can steer (双随机, issue 21): the seed, its deterministic random stream, the
stratified selection of enterprises and the matching of inspectors; docs/draws.md specifies them.

DrawError                       code
└── InsufficientInspectorsError insufficient_inspectors

Bad arguments (k > population, duplicate names, unsorted candidates) raise plain ValueError.
"""

from __future__ import annotations

import hashlib
import itertools
from bisect import bisect_left, insort
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

__all__ = [
    "COMMITMENT_LABEL",
    "MAX_SECRET",
    "MIN_SECRET",
    "SEED_LABEL",
    "DrawError",
    "DrawStream",
    "InsufficientInspectorsError",
    "Stratum",
    "StratumResult",
    "assign_inspectors",
    "commitment",
    "derive_seed",
    "frame",
    "minimum_pool",
    "select",
]

SEED_LABEL = b"gateway-draw-seed/v1"
COMMITMENT_LABEL = b"gateway-draw-commitment/v1\n"
MIN_SECRET, MAX_SECRET = 16, 64  # bytes: 128 bits at least, so the secret cannot be searched
_TWO_64 = 1 << 64


class DrawError(ValueError):
    code: ClassVar[str] = "draw_error"


class InsufficientInspectorsError(DrawError):
    """Fewer eligible inspectors than `per_enterprise` remain for one enterprise."""

    code: ClassVar[str] = "insufficient_inspectors"

    def __init__(self, enterprise: str, eligible: int, needed: int) -> None:
        super().__init__(
            f"enterprise {enterprise}: {eligible} eligible inspectors, {needed} needed "
            "(the pool less the inspectors of its last drawn inspection)"
        )
        self.enterprise, self.eligible, self.needed = enterprise, eligible, needed


def frame(*fields: bytes) -> bytes:
    """Each field as a 4-byte big-endian length then its bytes: no two field lists collide."""
    return b"".join(len(f).to_bytes(4, "big") + f for f in fields)


def _check_secret(secret: bytes) -> None:
    if not MIN_SECRET <= len(secret) <= MAX_SECRET:
        raise ValueError(f"a draw secret is {MIN_SECRET} to {MAX_SECRET} bytes, not {len(secret)}")


def commitment(secret: bytes) -> str:
    """Lowercase hex SHA-256 of COMMITMENT_LABEL || secret; the request carries it."""
    _check_secret(secret)
    return hashlib.sha256(COMMITMENT_LABEL + secret).hexdigest()


def derive_seed(
    *,
    checkpoint_root: bytes,
    request_leaf_hash: bytes,
    secret: bytes,
    beacon: bytes | None = None,
) -> bytes:
    """SHA-256(frame(SEED_LABEL, root, leaf hash, secret[, beacon])); no beacon = four fields.

    An empty beacon is refused, so "no beacon" and "a beacon" never encode alike.
    """
    if len(checkpoint_root) != 32 or len(request_leaf_hash) != 32:
        raise ValueError("the checkpoint root and the request leaf hash are 32 bytes each")
    _check_secret(secret)
    fields = [SEED_LABEL, checkpoint_root, request_leaf_hash, secret]
    if beacon is not None:
        if not beacon:
            raise ValueError("a beacon value, when given, is not empty")
        fields.append(beacon)
    return hashlib.sha256(frame(*fields)).digest()


class DrawStream:
    """SHA-256 in counter mode: block i = SHA-256(seed || frame(label) || u64be(i)), read as
    four 64-bit big-endian integers in order. One stream per label; streams never share state."""

    def __init__(self, seed: bytes, label: str) -> None:
        if len(seed) != 32:
            raise ValueError("a draw seed is 32 bytes")
        self._prefix = seed + frame(label.encode("utf-8"))
        self._block = 0
        self._words: list[int] = []

    def next_u64(self) -> int:
        if not self._words:
            digest = hashlib.sha256(self._prefix + self._block.to_bytes(8, "big")).digest()
            self._block += 1
            # Reversed so that pop() hands them out first to last.
            self._words = [int.from_bytes(digest[i : i + 8], "big") for i in (24, 16, 8, 0)]
        return self._words.pop()

    def uniform(self, n: int) -> int:
        """Uniform in [0, n) by rejection: values at or above the largest multiple of n below
        2^64 are discarded, so every residue is equally likely (no modulo bias)."""
        if n < 1:
            raise ValueError("uniform(n) needs n >= 1")
        limit = _TWO_64 - _TWO_64 % n
        while True:
            x = self.next_u64()
            if x < limit:
                return x % n


class Stratum(NamedTuple):
    """(name, candidates, sample); a plain 3-tuple of the same shape is accepted too."""

    name: str
    candidates: Sequence[str]  # sorted canonically (ascending code points = UTF-8 bytes)
    sample: int


@dataclass(frozen=True)
class StratumResult:
    name: str
    population: int
    sample: int
    selected: tuple[str, ...]  # in draw order, not sorted


def _check_canonical(values: Sequence[str], what: str) -> None:
    for before, after in itertools.pairwise(values):
        if not before < after:
            raise ValueError(f"{what} must be sorted ascending without repeats ({after!r})")


def _check_strata(strata: Sequence[Stratum]) -> None:
    names: set[str] = set()
    seen: dict[str, str] = {}
    for stratum in strata:
        if stratum.name in names:
            raise ValueError(f"stratum name {stratum.name!r} is used twice")
        names.add(stratum.name)
        _check_canonical(stratum.candidates, f"stratum {stratum.name}'s candidates")
        if not 0 <= stratum.sample <= len(stratum.candidates):
            raise ValueError(
                f"stratum {stratum.name}: sample {stratum.sample} of "
                f"{len(stratum.candidates)} candidates"
            )
        for code in stratum.candidates:
            if code in seen:
                raise ValueError(f"enterprise {code} is in strata {seen[code]} and {stratum.name}")
            seen[code] = stratum.name


def select(seed: bytes, strata: Sequence[tuple[str, Sequence[str], int]]) -> list[StratumResult]:
    """Draw each stratum's sample by a partial Fisher–Yates shuffle on stream "select/<name>".

    Step i (0-based, i < k): j = i + uniform(n - i); swap positions i and j; the first k
    positions, in that order, are the selection. Results follow the order of `strata`.
    """
    normalised = [Stratum(*stratum) for stratum in strata]
    _check_strata(normalised)
    results = []
    for stratum in normalised:
        stream = DrawStream(seed, "select/" + stratum.name)
        pool = list(stratum.candidates)
        n = len(pool)
        for i in range(stratum.sample):
            j = i + stream.uniform(n - i)
            pool[i], pool[j] = pool[j], pool[i]
        results.append(
            StratumResult(stratum.name, n, stratum.sample, tuple(pool[: stratum.sample]))
        )
    return results


def minimum_pool(per_enterprise: int) -> int:
    """A pool this large always suffices when every enterprise's previous inspectors number at
    most `per_enterprise`: at most that many are excluded, and `per_enterprise` remain."""
    if per_enterprise < 1:
        raise ValueError("per_enterprise is at least 1")
    return 2 * per_enterprise


def assign_inspectors(
    seed: bytes,
    selected: Sequence[str],
    pool: Iterable[str],
    per_enterprise: int,
    previous: Mapping[str, frozenset[str]],
) -> dict[str, tuple[str, ...]]:
    """Inspectors per enterprise, enterprises taken in `selected` order (draw order).

    For an enterprise e: eligible = the pool, sorted canonically, less previous[e] (no inspector
    twice running at the same enterprise). Then `per_enterprise` times, on stream
    "inspectors/<e>": among the eligible not yet chosen for e, keep those with the fewest
    assignments so far in this draw, in canonical order, and take the one at uniform(count).
    The inspectors of e are listed in the order chosen.
    """
    ordered = sorted(pool)
    _check_canonical(ordered, "the inspector pool")
    if per_enterprise < 1:
        raise ValueError("per_enterprise is at least 1")
    if len(set(selected)) != len(selected):
        raise ValueError("an enterprise is selected twice")
    loads = _Loads(ordered)
    assignments: dict[str, tuple[str, ...]] = {}
    for enterprise in selected:
        excluded = {name for name in previous.get(enterprise, ()) if name in loads.load}
        if len(ordered) - len(excluded) < per_enterprise:
            raise InsufficientInspectorsError(
                enterprise, len(ordered) - len(excluded), per_enterprise
            )
        stream = DrawStream(seed, "inspectors/" + enterprise)
        chosen = [loads.pick(stream, excluded) for _ in range(per_enterprise)]
        assignments[enterprise] = tuple(chosen)
    return assignments


class _Loads:
    """The pool grouped by load, each group in canonical order: picking the k-th least loaded
    eligible inspector then costs O(skipped · log n), not a scan of the pool (bench/draws.py)."""

    def __init__(self, ordered: Sequence[str]) -> None:
        self.load = dict.fromkeys(ordered, 0)
        self.levels: list[list[str]] = [list(ordered)]  # index = assignments so far

    def pick(self, stream: DrawStream, skip: set[str]) -> str:
        """The pick of `assign_inspectors`; adds it to `skip` and counts its assignment."""
        for level, members in enumerate(self.levels):
            positions = sorted(bisect_left(members, s) for s in skip if self.load[s] == level)
            count = len(members) - len(positions)
            if count == 0:
                continue
            index = stream.uniform(count)
            for position in positions:  # the index-th member not skipped
                if position > index:
                    break
                index += 1
            pick = members.pop(index)
            if level + 1 == len(self.levels):
                self.levels.append([])
            insort(self.levels[level + 1], pick)
            self.load[pick] = level + 1
            skip.add(pick)
            return pick
        raise AssertionError("the caller counts the eligible first")
