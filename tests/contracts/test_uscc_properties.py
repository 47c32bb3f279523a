"""contracts.uscc under hypothesis, against check characters computed here from GB 32100-2015 and
GB 11714 (domain.md §7): valid codes pass, single substitutions and transpositions fail, nothing
raises."""

from __future__ import annotations

import string

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from contracts.uscc import (
    CATEGORIES,
    PROVINCES,
    check_character,
    is_valid_uscc,
    make_uscc,
    region_code,
)

# GB 32100-2015, written out again rather than imported: the Latin letters I, O, S, V and Z are
# left out, and a character's value is its position in this string.
CODE_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
MODULUS = 31


def standard_weight(position: int) -> int:
    """W_i = 3^(i-1) mod 31 for the 1-based position i (GB 32100-2015, as in domain.md §7)."""
    return pow(3, position - 1, MODULUS)


def standard_check(first17: str) -> str:
    total = sum(
        CODE_ALPHABET.index(char) * standard_weight(position)
        for position, char in enumerate(first17, start=1)
    )
    return CODE_ALPHABET[(MODULUS - total % MODULUS) % MODULUS]


def standard_org_check(body: str) -> str:
    """GB 11714: values 0-35 for 0-9 and A-Z, weights 3 7 9 10 5 8 4 2, 11 − Σ mod 11."""
    total = sum(int(c, 36) * w for c, w in zip(body, (3, 7, 9, 10, 5, 8, 4, 2), strict=True))
    return {10: "X", 11: "0"}.get(11 - total % 11, str(11 - total % 11))


first17s = st.text(alphabet=CODE_ALPHABET, min_size=17, max_size=17)
departments = st.sampled_from(sorted(d + c for d, cs in CATEGORIES.items() for c in cs))
regions = st.sampled_from(["350000", "350100", "350203", "440300", "110101", "650000"])
bodies = st.text(alphabet=CODE_ALPHABET, min_size=8, max_size=8)
valid_17s = st.builds(
    lambda dept, region, body: dept + region + body + standard_org_check(body),
    departments,
    regions,
    bodies,
)
valid_codes = valid_17s.map(lambda first17: first17 + standard_check(first17))


def with_char(code: str, position: int, char: str) -> str:
    return code[:position] + char + code[position + 1 :]


@settings(max_examples=200)
@given(code=valid_codes)
@example(code="91350900587527783P")  # domain.md §7
@example(code="914403001922038216")
def test_every_standard_code_validates(code: str) -> None:
    assert is_valid_uscc(code)
    assert make_uscc(code[:17]) == code
    assert region_code(code) == code[2:8]


@settings(max_examples=200)
@given(first17=valid_17s, check=st.sampled_from(CODE_ALPHABET))
def test_exactly_one_check_character_fits(first17: str, check: str) -> None:
    assert is_valid_uscc(first17 + check) == (check == standard_check(first17))


@settings(max_examples=200)
@given(first17=first17s)
@example(first17="00000000000000000")  # weighted sum 0: check character is "0", not index 31
def test_the_check_character_is_the_standards(first17: str) -> None:
    assert check_character(first17) == standard_check(first17)


@settings(max_examples=250)
@given(code=valid_codes, position=st.integers(0, 17), data=st.data())
def test_every_single_substitution_is_detected(
    code: str, position: int, data: st.DataObject
) -> None:
    # True for this scheme, the check character included: 31 is prime and no weight is 0 mod 31,
    # so a change of d != 0 in one value changes the sum by d * W_i != 0 (mod 31).
    replacement = data.draw(st.sampled_from(CODE_ALPHABET).filter(lambda c: c != code[position]))
    assert not is_valid_uscc(with_char(code, position, replacement))


def test_weights_are_distinct_and_nonzero_mod_31() -> None:
    # The facts the substitution and transposition properties rest on: 3 is a primitive root
    # mod 31, so the 17 weights are non-zero and distinct. The check character acts as an 18th
    # value of weight 1 (a code is valid iff the full weighted sum is 0 mod 31), the same
    # weight as position 1, and that is the one blind spot.
    weights = [standard_weight(i) for i in range(1, 18)]
    assert 0 not in weights
    assert len(set(weights)) == 17
    assert weights[0] == 1


def swapped(code: str, i: int, j: int) -> str:
    return with_char(with_char(code, i, code[j]), j, code[i])


@settings(max_examples=200)
@given(code=valid_codes, data=st.data())
def test_a_transposition_is_detected_except_first_and_check_by_the_check_alone(
    code: str, data: st.DataObject
) -> None:
    # Swapping values a != b at positions i, j changes the full sum by (a - b)(w_i - w_j) with
    # w the 17 weights then 1 for the check character: non-zero mod 31 except for {1, 18}.
    i = data.draw(st.integers(0, 17), label="i")
    others = [j for j in range(18) if code[j] != code[i]]
    assume(others)
    j = data.draw(st.sampled_from(others), label="j")
    if {i, j} != {0, 17}:
        assert not is_valid_uscc(swapped(code, i, j))


@settings(max_examples=100)
@given(code=valid_codes)
@example(code="91350900587527783P")  # 'P' + "1350900587527783" + '9' passes the check too
def test_swapping_the_first_and_check_characters_escapes_the_check_character(code: str) -> None:
    # A limit of GB 32100-2015's check character, asserted so nobody relies on it; the full
    # check catches most such swaps only because position 1 must name a department.
    other = swapped(code, 0, 17)
    assert check_character(other[:17]) == other[17]


@settings(max_examples=200)
@given(
    code=valid_codes,
    position=st.integers(0, 17),
    char=st.characters().filter(lambda c: c not in CODE_ALPHABET),
)
@example(code="91350900587527783P", position=17, char="p")  # lower case is not folded
@example(code="91350900587527783P", position=3, char="Ｐ")
def test_a_character_outside_the_alphabet_fails(code: str, position: int, char: str) -> None:
    assert not is_valid_uscc(with_char(code, position, char))


@settings(max_examples=200)
@given(
    text=st.text()
    | st.text(alphabet=CODE_ALPHABET + string.ascii_lowercase + "IOSVZ", min_size=17, max_size=19)
)
@example(text="")
@example(text="\ud800" * 18)
def test_arbitrary_strings_never_raise(text: str) -> None:
    valid = is_valid_uscc(text)
    assert isinstance(valid, bool)
    expected = (
        len(text) == 18
        and all(c in CODE_ALPHABET for c in text)
        and text[1] in CATEGORIES.get(text[0], {})
        and text[2:8].isdigit()
        and text[2:4] in PROVINCES
        and standard_org_check(text[8:16]) == text[16]
        and standard_check(text[:17]) == text[17]
    )
    assert valid == expected


@settings(max_examples=50)
@given(value=st.none() | st.integers() | st.binary() | st.lists(st.text()))
def test_non_strings_are_simply_invalid(value: object) -> None:
    assert is_valid_uscc(value) is False  # type: ignore[arg-type]
