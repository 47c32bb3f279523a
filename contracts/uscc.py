"""The unified social credit code (统一社会信用代码) of GB 32100-2015, checked in full: the
registering department and category, the GB/T 2260 region, the GB 11714 organisation code
with its own check character, and the code's check character (domain.md §7).
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import mul
from typing import Literal

__all__ = [
    "ALPHABET",
    "CATEGORIES",
    "WEIGHTS",
    "UsccProblem",
    "check_character",
    "complete_uscc",
    "is_valid_uscc",
    "make_uscc",
    "organisation_check",
    "problem",
    "region_code",
]

# GB 32100-2015 code structure: 31 characters, the Latin letters I, O, S, V and Z left out;
# a character's value is its index here.
ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
# GB 32100-2015 check character: W_i = 3^(i-1) mod 31 for positions 1..17. (Pages that use a
# mod-11 check, as for the older organization code, give wrong answers.)
WEIGHTS: tuple[int, ...] = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
# Positions 1-2, GB 32100-2015 table 1 as domain.md §7 gives it: registering department →
# the entity categories it registers. National standard, not local policy: a constant.
CATEGORIES: dict[str, dict[str, str]] = {
    "1": {"1": "机关", "2": "事业单位", "3": "群众团体", "9": "其他"},  # 机构编制
    "5": {"1": "社会团体", "2": "民办非企业单位", "3": "基金会", "9": "其他"},  # 民政
    "9": {"1": "企业", "2": "个体工商户", "3": "农民专业合作社"},  # 工商 (市场监管)
    "Y": {"1": "其他"},  # 其他
}
# GB/T 2260 province-level codes (the first two digits of positions 3-8).
PROVINCES = frozenset(
    {
        *("11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36"),
        *("37", "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62"),
        *("63", "64", "65", "71", "81", "82"),
    }
)
# GB 11714-1997: weights of the eight body characters of an organisation code.
ORG_WEIGHTS: tuple[int, ...] = (3, 7, 9, 10, 5, 8, 4, 2)

_VALUE = {char: index for index, char in enumerate(ALPHABET)}
_MODULUS = len(ALPHABET)

Part = Literal["length", "alphabet", "department", "region", "organisation_code", "check"]


@dataclass(frozen=True)
class UsccProblem:
    """Which part of a code fails (`part`, stable for clients) and why, in a sentence."""

    part: Part
    detail: str


def check_character(first17: str) -> str:
    """The 18th character for the given first 17; ValueError if they are not 17 code characters."""
    if len(first17) != len(WEIGHTS):
        raise ValueError(f"expected 17 characters, got {len(first17)}")
    try:
        # sum(value_i * W_i) in C: every standing query checks the code it is asked about
        total = sum(map(mul, map(_VALUE.__getitem__, first17), WEIGHTS))
    except KeyError:
        position, char = next((i, c) for i, c in enumerate(first17, 1) if c not in _VALUE)
        raise ValueError(
            f"character {char!r} at position {position} is not in the alphabet"
        ) from None
    return ALPHABET[-total % _MODULUS]  # (31 - total mod 31) mod 31


def organisation_check(body: str) -> str:
    """GB 11714's check character of an 8-character organisation-code body: digits count
    0-9 and letters A-Z 10-35, weights 3 7 9 10 5 8 4 2, c = 11 − (Σ mod 11), 10 → X,
    11 → 0. ValueError for a body that is not 8 digits or capital letters."""
    if len(body) != len(ORG_WEIGHTS) or not all(c.isascii() and c.isalnum() for c in body):
        raise ValueError(f"an organisation-code body is 8 digits or capitals, not {body!r}")
    if not body.upper() == body:
        raise ValueError(f"an organisation-code body is 8 digits or capitals, not {body!r}")
    total = sum(int(c, 36) * w for c, w in zip(body, ORG_WEIGHTS, strict=True))
    check = 11 - total % 11
    return {10: "X", 11: "0"}.get(check, str(check))


def problem(code: object) -> UsccProblem | None:
    """None when `code` is a valid code; else the first part that fails, in the order a
    person reads the code: length and alphabet, department and category (1-2), region (3-8),
    organisation code (9-17), check character (18)."""
    if not isinstance(code, str) or len(code) != len(WEIGHTS) + 1:
        length = len(code) if isinstance(code, str) else 0
        return UsccProblem("length", f"a code has 18 characters, this one {length}")
    wrong = next(((i, c) for i, c in enumerate(code, 1) if c not in _VALUE), None)
    if wrong is not None:
        return UsccProblem(
            "alphabet",
            f"character {wrong[1]!r} at position {wrong[0]} is not in the code's alphabet "
            f"({ALPHABET}: no I, O, S, V, Z, no lower case)",
        )
    department, category = code[0], code[1]
    if category not in CATEGORIES.get(department, {}):
        known = "; ".join(f"{d}: {', '.join(c)}" for d, c in CATEGORIES.items())
        return UsccProblem(
            "department",
            f"positions 1-2 {code[:2]!r} are not a registering department and category of "
            f"GB 32100-2015 ({known})",
        )
    region = code[2:8]
    if not region.isdigit() or region[:2] not in PROVINCES:
        return UsccProblem(
            "region",
            f"positions 3-8 {region!r} are not a GB/T 2260 division code (six digits, "
            "starting with a province's two)",
        )
    body, org_check = code[8:16], code[16]
    if organisation_check(body) != org_check:
        return UsccProblem(
            "organisation_code",
            f"position 17 {org_check!r} is not the GB 11714 check character of the "
            f"organisation code {body} (expected {organisation_check(body)!r})",
        )
    if check_character(code[:17]) != code[17]:
        return UsccProblem(
            "check",
            f"position 18 {code[17]!r} is not the GB 32100-2015 check character "
            f"(expected {check_character(code[:17])!r})",
        )
    return None


def is_valid_uscc(code: str) -> bool:
    """True when `code` passes every part of `problem`. Lower case is refused rather than
    folded: the code is an identifier compared byte for byte."""
    return problem(code) is None


def make_uscc(first17: str) -> str:
    """The 18-character code for `first17` (its check character appended). It passes the
    full check only if the first 17 already carry a valid department, region and GB 11714
    check character; `complete_uscc` makes one from 16."""
    return first17 + check_character(first17)


def complete_uscc(first16: str) -> str:
    """A whole valid code from positions 1-16 (department, category, region and the
    organisation-code body): both check characters computed. ValueError if the result
    fails any part (e.g. an unknown department or region)."""
    if len(first16) != 16:
        raise ValueError(f"expected 16 characters, got {len(first16)}")
    code = make_uscc(first16 + organisation_check(first16[8:]))
    found = problem(code)
    if found is not None:
        raise ValueError(f"{code}: {found.detail}")
    return code


def region_code(code: str) -> str:
    """Positions 3-8: the GB/T 2260 administrative division code where the entity registered."""
    if not is_valid_uscc(code):
        raise ValueError(f"{code!r} is not a valid unified social credit code")
    return code[2:8]
