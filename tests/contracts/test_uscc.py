"""GB 32100-2015 check character: golden codes, every single-character change, bad shapes."""

from __future__ import annotations

import json
import re
import string
from pathlib import Path

import pytest

from contracts.uscc import (
    ALPHABET,
    WEIGHTS,
    check_character,
    is_valid_uscc,
    make_uscc,
    region_code,
)

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "contracts" / "schemas" / "v1"
GOLDEN = ("91350900587527783P", "91350000157987632G", "914403001922038216")


def test_alphabet_and_weights_follow_the_standard() -> None:
    assert len(ALPHABET) == 31
    assert not set("IOSVZ") & set(ALPHABET)
    assert tuple(pow(3, i - 1, 31) for i in range(1, 18)) == WEIGHTS


@pytest.mark.parametrize("code", GOLDEN)
def test_golden_codes_pass(code: str) -> None:
    assert is_valid_uscc(code)
    assert check_character(code[:17]) == code[17]
    assert make_uscc(code[:17]) == code


@pytest.mark.parametrize("position", range(18))
@pytest.mark.parametrize("code", GOLDEN)
def test_every_single_character_change_fails(code: str, position: int) -> None:
    # Exhaustive over the alphabet: 31 is prime and every weight is non-zero mod 31, so any one
    # substitution changes the weighted sum mod 31 and the check character no longer fits.
    for replacement in ALPHABET:
        if replacement != code[position]:
            changed = code[:position] + replacement + code[position + 1 :]
            assert not is_valid_uscc(changed), changed


@pytest.mark.parametrize("position", range(18))
def test_characters_outside_the_alphabet_fail(position: int) -> None:
    code = GOLDEN[0]
    for bad in "IOSVZ" + string.ascii_lowercase + " -Ｐ０":
        assert not is_valid_uscc(code[:position] + bad + code[position + 1 :])


@pytest.mark.parametrize(
    "code",
    ["91350900587527783p", "91350900587527783", "91350900587527783PP", "", "9" * 40],
)
def test_wrong_case_or_length_fails(code: str) -> None:
    assert not is_valid_uscc(code)


def test_envelope_subject_pattern_admits_exactly_the_alphabet() -> None:
    envelope = json.loads((SCHEMA_DIR / "envelope.json").read_text(encoding="utf-8"))
    pattern = envelope["properties"]["subject"]["pattern"]
    allowed = {c for c in map(chr, range(32, 127)) if re.fullmatch(pattern, c * 18)}
    assert allowed == set(ALPHABET)


@pytest.mark.parametrize(
    ("code", "region"), list(zip(GOLDEN, ("350900", "350000", "440300"), strict=True))
)
def test_region_code_is_positions_three_to_eight(code: str, region: str) -> None:
    assert region_code(code) == region


@pytest.mark.parametrize("first17", ["9135090058752778", "9135090058752778I", "913509005875277831"])
def test_check_character_refuses_bad_input(first17: str) -> None:
    with pytest.raises(ValueError, match="character"):
        check_character(first17)


def test_region_code_refuses_an_invalid_code() -> None:
    with pytest.raises(ValueError, match="not a valid"):
        region_code("91350900587527783Q")
