"""The unified social credit code (统一社会信用代码) of GB 32100-2015: its alphabet, check
character and the region it names (domain.md §7).
"""

from __future__ import annotations

from operator import mul

__all__ = ["ALPHABET", "WEIGHTS", "check_character", "is_valid_uscc", "make_uscc", "region_code"]

# GB 32100-2015 code structure: 31 characters, the Latin letters I, O, S, V and Z left out;
# a character's value is its index here.
ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
# GB 32100-2015 check character: W_i = 3^(i-1) mod 31 for positions 1..17. (Pages that use a
# mod-11 check, as for the older organization code, give wrong answers.)
WEIGHTS: tuple[int, ...] = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

_VALUE = {char: index for index, char in enumerate(ALPHABET)}
_MODULUS = len(ALPHABET)


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


def is_valid_uscc(code: str) -> bool:
    """True when `code` is 18 upper-case code characters whose last is the right check character.

    Lower case is refused rather than folded: the code is an identifier compared byte for byte.
    """
    if not isinstance(code, str) or len(code) != len(WEIGHTS) + 1:
        return False
    try:
        return check_character(code[:-1]) == code[-1]
    except ValueError:
        return False


def make_uscc(first17: str) -> str:
    """The full 18-character code for `first17` (for fixtures and tools; ValueError if invalid)."""
    return first17 + check_character(first17)


def region_code(code: str) -> str:
    """Positions 3-8: the GB/T 2260 administrative division code where the entity registered."""
    if not is_valid_uscc(code):
        raise ValueError(f"{code!r} is not a valid unified social credit code")
    return code[2:8]
