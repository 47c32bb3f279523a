"""keys.draws: golden vectors a re-implementation of docs/draws.md can check itself against, the
encodings spelled out with hashlib alone, rejection sampling, selection and inspector rules."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keys.draws import (
    DrawStream,
    InsufficientInspectorsError,
    Stratum,
    assign_inspectors,
    commitment,
    derive_seed,
    minimum_pool,
    select,
)

# The golden inputs: docs/draws.md §8 repeats them.
ROOT = hashlib.sha256(b"checkpoint root").digest()
LEAF = hashlib.sha256(b"request leaf").digest()
SECRET = bytes(range(16))
SEED = bytes.fromhex("4ae65e155f6df2fdc6bd11abdca3995e32604daffdee773221e552de5904fae2")
CODES = tuple(f"E{i:02d}" for i in range(20))
INSPECTORS = tuple(f"I{i}" for i in range(6))


def u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


def test_commitment_golden_and_spelled_out() -> None:
    expected = "fb240b699cffd7d7f7f790f821d300882d1c5999f51686d7a9202485669752aa"
    assert commitment(SECRET) == expected
    assert hashlib.sha256(b"gateway-draw-commitment/v1\n" + SECRET).hexdigest() == expected


def test_seed_golden_and_spelled_out() -> None:
    label = b"gateway-draw-seed/v1"
    encoded = u32(len(label)) + label + u32(32) + ROOT + u32(32) + LEAF + u32(16) + SECRET
    assert hashlib.sha256(encoded).digest() == SEED
    assert derive_seed(checkpoint_root=ROOT, request_leaf_hash=LEAF, secret=SECRET) == SEED


def test_seed_with_a_beacon_is_a_fifth_field() -> None:
    beacon = b"beacon round 1"
    seed = derive_seed(checkpoint_root=ROOT, request_leaf_hash=LEAF, secret=SECRET, beacon=beacon)
    assert seed.hex() == "e2c5565db6e3c275ffaa2ef96b01d3ab106223110b64a1bd0240e965fb53c069"
    label = b"gateway-draw-seed/v1"
    fields = (label, ROOT, LEAF, SECRET, beacon)
    assert hashlib.sha256(b"".join(u32(len(f)) + f for f in fields)).digest() == seed


@pytest.mark.parametrize("secret", [bytes(15), bytes(65), b""])
def test_secret_length_is_16_to_64_bytes(secret: bytes) -> None:
    with pytest.raises(ValueError, match="16 to 64 bytes"):
        commitment(secret)
    with pytest.raises(ValueError, match="16 to 64 bytes"):
        derive_seed(checkpoint_root=ROOT, request_leaf_hash=LEAF, secret=secret)


def test_empty_beacon_refused() -> None:
    with pytest.raises(ValueError, match="not empty"):
        derive_seed(checkpoint_root=ROOT, request_leaf_hash=LEAF, secret=SECRET, beacon=b"")


def test_stream_golden_and_spelled_out() -> None:
    stream = DrawStream(SEED, "select/level-1")
    values = [stream.next_u64() for _ in range(5)]
    assert values == [
        4138962378432343115,
        17067699747462081384,
        7760884424306188167,
        9190665472522325831,
        14444297603576579721,
    ]
    label = b"select/level-1"
    block0 = hashlib.sha256(SEED + u32(len(label)) + label + (0).to_bytes(8, "big")).digest()
    block1 = hashlib.sha256(SEED + u32(len(label)) + label + (1).to_bytes(8, "big")).digest()
    words = [int.from_bytes(block0[i : i + 8], "big") for i in range(0, 32, 8)]
    assert values == [*words, int.from_bytes(block1[:8], "big")]


def test_select_golden() -> None:
    strata = [Stratum("level-1", CODES[:8], 3), Stratum("level-2", CODES[8:], 4)]
    results = select(SEED, strata)
    assert [(r.name, r.population, r.sample, r.selected) for r in results] == [
        ("level-1", 8, 3, ("E03", "E00", "E05")),
        ("level-2", 12, 4, ("E19", "E17", "E15", "E11")),
    ]


def test_select_takes_plain_tuples() -> None:
    plain = [("level-1", list(CODES[:8]), 3), ("level-2", list(CODES[8:]), 4)]
    strata = [Stratum("level-1", CODES[:8], 3), Stratum("level-2", CODES[8:], 4)]
    assert select(SEED, plain) == select(SEED, strata)


def test_select_spelled_out_as_fisher_yates() -> None:
    # The first step by hand: j = uniform(8) from the first word (no rejection is possible
    # for n = 8, a power of two), then swap positions 0 and j.
    first = DrawStream(SEED, "select/level-1").next_u64()
    assert CODES[first % 8] == select(SEED, [Stratum("level-1", CODES[:8], 3)])[0].selected[0]


def test_assign_inspectors_golden() -> None:
    selected = ["E03", "E00", "E05", "E19", "E17", "E15", "E11"]
    previous = {"E03": frozenset({"I0", "I1"})}
    assert assign_inspectors(SEED, selected, INSPECTORS, 2, previous) == {
        "E03": ("I3", "I5"),
        "E00": ("I0", "I1"),
        "E05": ("I2", "I4"),
        "E19": ("I2", "I0"),
        "E17": ("I1", "I5"),
        "E15": ("I3", "I4"),
        "E11": ("I0", "I4"),
    }


def test_uniform_has_no_modulo_bias_on_a_small_n() -> None:
    stream = DrawStream(SEED, "bias/6")
    counts = Counter(stream.uniform(6) for _ in range(60_000))
    chi2 = sum((counts[v] - 10_000) ** 2 / 10_000 for v in range(6))
    assert chi2 < 20.5  # chi-square, 5 degrees of freedom, p = 0.001


def test_uniform_rejects_the_biased_tail() -> None:
    # n = 3 * 2^62: plain x mod n would land in [0, 2^62) for half the values (x in [0, 2^62)
    # and x in [n, 2^64)); rejection keeps it to a third.
    n = 3 << 62
    stream = DrawStream(SEED, "bias/large")
    low = sum(stream.uniform(n) < 1 << 62 for _ in range(30_000))
    assert 0.32 < low / 30_000 < 0.345


class ScriptedStream(DrawStream):
    def __init__(self, values: list[int]) -> None:
        super().__init__(SEED, "scripted")
        self.values = values

    def next_u64(self) -> int:
        return self.values.pop(0)


def test_uniform_discards_values_at_or_above_the_limit() -> None:
    limit = 2**64 - 2**64 % 3
    stream = ScriptedStream([limit, 2**64 - 1, limit - 1])
    assert stream.uniform(3) == (limit - 1) % 3
    assert stream.values == []


def test_uniform_of_one_still_consumes_a_value() -> None:
    stream = ScriptedStream([7, 8])
    assert stream.uniform(1) == 0
    assert stream.values == [8]


def test_sample_larger_than_population_refused() -> None:
    with pytest.raises(ValueError, match="stratum s: sample 4 of 3 candidates"):
        select(SEED, [Stratum("s", CODES[:3], 4)])


def test_duplicate_stratum_names_refused() -> None:
    with pytest.raises(ValueError, match="stratum name 's' is used twice"):
        select(SEED, [Stratum("s", CODES[:3], 1), Stratum("s", CODES[3:6], 1)])


def test_enterprise_in_two_strata_refused() -> None:
    with pytest.raises(ValueError, match="enterprise E02 is in strata a and b"):
        select(SEED, [Stratum("a", CODES[:3], 1), Stratum("b", CODES[2:6], 1)])


def test_unsorted_candidates_refused() -> None:
    with pytest.raises(ValueError, match="sorted ascending"):
        select(SEED, [Stratum("a", ("E02", "E01"), 1)])


def test_twice_running_rule_excludes_last_inspectors() -> None:
    previous = {code: frozenset({"I0", "I1"}) for code in CODES}
    assignments = assign_inspectors(SEED, CODES, INSPECTORS, 2, previous)
    assert all(not set(names) & {"I0", "I1"} for names in assignments.values())
    assert all(len(set(names)) == 2 for names in assignments.values())


def test_load_is_balanced_across_the_pool() -> None:
    assignments = assign_inspectors(SEED, CODES[:10], INSPECTORS[:5], 1, {})
    assert Counter(n for names in assignments.values() for n in names) == dict.fromkeys(
        INSPECTORS[:5], 2
    )


def test_balance_prefers_the_least_loaded_eligible() -> None:
    # E00 may not have I2 or I3, so it takes I0 and I1; E01 then takes the two at load 0.
    both = assign_inspectors(
        SEED, ["E00", "E01"], ["I0", "I1", "I2", "I3"], 2, {"E00": frozenset({"I2", "I3"})}
    )
    assert set(both["E00"]) == {"I0", "I1"}
    assert set(both["E01"]) == {"I2", "I3"}


def test_too_small_pool_names_the_enterprise() -> None:
    previous = {"E05": frozenset({"I0", "I1", "I2", "I3", "I4"})}
    with pytest.raises(InsufficientInspectorsError, match="enterprise E05: 1 eligible") as info:
        assign_inspectors(SEED, CODES[:8], INSPECTORS, 2, previous)
    assert (info.value.enterprise, info.value.eligible, info.value.needed) == ("E05", 1, 2)
    assert info.value.code == "insufficient_inspectors"


def test_minimum_pool_suffices_against_the_previous_draw() -> None:
    pool = [f"I{i}" for i in range(minimum_pool(3))]
    previous = {code: frozenset(pool[i % 4 : i % 4 + 3]) for i, code in enumerate(CODES)}
    assignments = assign_inspectors(SEED, CODES, pool, 3, previous)
    assert all(len(names) == 3 for names in assignments.values())


def test_duplicate_inspectors_and_selections_refused() -> None:
    with pytest.raises(ValueError, match="inspector pool"):
        assign_inspectors(SEED, CODES[:2], ["I0", "I0", "I1"], 1, {})
    with pytest.raises(ValueError, match="selected twice"):
        assign_inspectors(SEED, ["E00", "E00"], INSPECTORS, 1, {})


@given(
    seed=st.binary(min_size=32, max_size=32),
    population=st.integers(min_value=1, max_value=60),
    data=st.data(),
)
def test_selection_is_a_prefix_of_any_larger_selection(
    seed: bytes, population: int, data: st.DataObject
) -> None:
    codes = tuple(f"C{i:03d}" for i in range(population))
    k = data.draw(st.integers(min_value=0, max_value=population))
    small = select(seed, [Stratum("s", codes, k)])[0].selected
    whole = select(seed, [Stratum("s", codes, population)])[0].selected
    assert small == whole[:k]
    assert sorted(whole) == list(codes)


@given(
    seed=st.binary(min_size=32, max_size=32),
    enterprises=st.integers(min_value=1, max_value=30),
    pool=st.integers(min_value=2, max_value=12),
)
def test_without_exclusions_loads_differ_by_at_most_one(
    seed: bytes, enterprises: int, pool: int
) -> None:
    per = min(2, pool)
    inspectors = [f"I{i:02d}" for i in range(pool)]
    assignments = assign_inspectors(
        seed, [f"E{i:02d}" for i in range(enterprises)], inspectors, per, {}
    )
    load = Counter(n for names in assignments.values() for n in names)
    counts = [load[i] for i in inspectors]
    assert max(counts) - min(counts) <= 1
    assert all(len(set(names)) == per for names in assignments.values())


def reference_assignment(
    seed: bytes,
    selected: list[str],
    pool: list[str],
    per: int,
    previous: dict[str, frozenset[str]],
) -> dict[str, tuple[str, ...]]:
    """docs/draws.md §5 read literally: a scan of the pool for every pick."""
    load = dict.fromkeys(sorted(pool), 0)
    out = {}
    for enterprise in selected:
        eligible = [i for i in sorted(pool) if i not in previous.get(enterprise, ())]
        stream = DrawStream(seed, "inspectors/" + enterprise)
        chosen: list[str] = []
        for _ in range(per):
            fewest = min(load[i] for i in eligible)
            least = [i for i in eligible if load[i] == fewest]
            pick = least[stream.uniform(len(least))]
            chosen.append(pick)
            eligible.remove(pick)
            load[pick] += 1
        out[enterprise] = tuple(chosen)
    return out


@given(
    seed=st.binary(min_size=32, max_size=32),
    enterprises=st.integers(min_value=1, max_value=25),
    pool=st.integers(min_value=4, max_value=10),
    per=st.integers(min_value=1, max_value=2),
    data=st.data(),
)
def test_assignment_matches_the_rule_read_literally(
    seed: bytes, enterprises: int, pool: int, per: int, data: st.DataObject
) -> None:
    inspectors = [f"I{i:02d}" for i in range(pool)]
    selected = [f"E{i:02d}" for i in range(enterprises)]
    previous = {
        code: frozenset(data.draw(st.lists(st.sampled_from([*inspectors, "gone"]), max_size=per)))
        for code in selected
    }
    assert assign_inspectors(seed, selected, inspectors, per, previous) == reference_assignment(
        seed, selected, inspectors, per, previous
    )
