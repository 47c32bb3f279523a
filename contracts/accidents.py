"""Accident classes of State Council Order 493 (《生产安全事故报告和调查处理条例》, 2007) and the
rule that derives a class from an accident's figures (domain.md §6).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["AccidentClass", "classify_accident"]


class AccidentClass(StrEnum):
    """Order 493 Art. 3 classes, declared from least to most serious; compare with < and >.

    StrEnum would compare the names as strings ("larger" > "especially_major"), so the
    comparison operators are redefined on the order of declaration.
    """

    ORDINARY = "ordinary"  # 一般事故
    LARGER = "larger"  # 较大事故
    MAJOR = "major"  # 重大事故
    ESPECIALLY_MAJOR = "especially_major"  # 特别重大事故

    @property
    def rank(self) -> int:
        return list(AccidentClass).index(self)

    def __lt__(self, other: str) -> bool:
        return self.rank < AccidentClass(other).rank

    def __le__(self, other: str) -> bool:
        return self.rank <= AccidentClass(other).rank

    def __gt__(self, other: str) -> bool:
        return self.rank > AccidentClass(other).rank

    def __ge__(self, other: str) -> bool:
        return self.rank >= AccidentClass(other).rank


# Order 493 Art. 3: lower bounds (deaths, serious injuries, direct loss in CNY) of each class,
# most serious first. "以上" includes the bound and "以下" excludes it (Art. 3, last paragraph).
# These are national law, not local policy, so they are constants rather than policy data.
_LOWER_BOUNDS: tuple[tuple[AccidentClass, int, int, int], ...] = (
    (AccidentClass.ESPECIALLY_MAJOR, 30, 100, 100_000_000),
    (AccidentClass.MAJOR, 10, 50, 50_000_000),
    (AccidentClass.LARGER, 3, 10, 10_000_000),
)


def classify_accident(deaths: int, serious_injuries: int, direct_loss_cny: float) -> AccidentClass:
    """The most serious class that any one of the three figures reaches.

    Serious injuries include acute industrial poisoning (Order 493 Art. 3). ValueError when a
    figure is negative.
    """
    if deaths < 0 or serious_injuries < 0 or direct_loss_cny < 0:
        raise ValueError("accident figures cannot be negative")
    for accident_class, min_deaths, min_injuries, min_loss in _LOWER_BOUNDS:
        if deaths >= min_deaths or serious_injuries >= min_injuries or direct_loss_cny >= min_loss:
            return accident_class
    return AccidentClass.ORDINARY
