"""GB 32100-2015 in full: golden codes, every part's refusal naming the part, every
single-character change, bad shapes, and the GB 11714 organisation-code check."""

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
    complete_uscc,
    is_valid_uscc,
    make_uscc,
    organisation_check,
    problem,
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
    assert problem(code) is None
    assert check_character(code[:17]) == code[17]
    assert make_uscc(code[:17]) == code
    assert complete_uscc(code[:16]) == code


@pytest.mark.parametrize(
    ("body", "check"), [("58752778", "3"), ("15798763", "2"), ("19220382", "1")]
)
def test_organisation_codes_of_domain_md_pass_gb_11714(body: str, check: str) -> None:
    assert organisation_check(body) == check


def test_organisation_check_maps_ten_to_x_and_eleven_to_zero() -> None:
    # Σ mod 11 == 1 gives 10 → "X"; Σ mod 11 == 0 gives 11 → "0".
    assert organisation_check("00000000") == "0"  # Σ = 0: 11 − 0 = 11 → "0"
    assert organisation_check("00000006") == "X"  # Σ = 6·2 = 12 ≡ 1: 11 − 1 = 10 → "X"
    assert organisation_check("MB000000") == "0"  # M = 22, B = 11: 66 + 77 = 143 ≡ 0


@pytest.mark.parametrize("position", range(18))
@pytest.mark.parametrize("code", GOLDEN)
def test_every_single_character_change_fails(code: str, position: int) -> None:
    for replacement in ALPHABET:
        if replacement != code[position]:
            changed = code[:position] + replacement + code[position + 1 :]
            assert not is_valid_uscc(changed), changed


@pytest.mark.parametrize(
    ("code", "part"),
    [
        ("91350900587527784T", "organisation_code"),  # the example: bad GB 11714 digit
        ("000000000000000000", "department"),
        ("81350900587527783P", "department"),
        ("94350900587527783P", "department"),  # market regulation has no category 4
        ("91A5090058752778XX", "region"),  # letters in the region part
        ("91990900587527783P", "region"),  # no province 99
        ("91350900587527783Q", "check"),
        ("91350900587527783", "length"),
        ("91350900587527783p", "alphabet"),
        ("9135090058752778I3", "alphabet"),
    ],
)
def test_a_refusal_names_the_part_that_fails(code: str, part: str) -> None:
    found = problem(code)
    assert found is not None
    assert found.part == part
    assert found.detail


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


def test_complete_uscc_refuses_what_no_check_can_mend() -> None:
    with pytest.raises(ValueError, match="department"):
        complete_uscc("81350900MA000001")
    with pytest.raises(ValueError, match="16"):
        complete_uscc("91350900MA00000")
