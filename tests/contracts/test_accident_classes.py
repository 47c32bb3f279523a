"""State Council Order 493 classes: each boundary ("以上" inclusive), and the most serious
criterion decides."""

from __future__ import annotations

import pytest

from contracts.accidents import AccidentClass, classify_accident
from contracts.registry import schema_for

ORDINARY, LARGER = AccidentClass.ORDINARY, AccidentClass.LARGER
MAJOR, ESPECIALLY_MAJOR = AccidentClass.MAJOR, AccidentClass.ESPECIALLY_MAJOR
M = 1_000_000


@pytest.mark.parametrize(
    ("deaths", "injuries", "loss", "expected"),
    [
        (0, 0, 0, ORDINARY),
        (2, 9, 10 * M - 0.01, ORDINARY),
        # deaths: 3-9 larger, 10-29 major, 30+ especially major
        (3, 0, 0, LARGER),
        (9, 0, 0, LARGER),
        (10, 0, 0, MAJOR),
        (29, 0, 0, MAJOR),
        (30, 0, 0, ESPECIALLY_MAJOR),
        # serious injuries: 10-49, 50-99, 100+
        (0, 10, 0, LARGER),
        (0, 49, 0, LARGER),
        (0, 50, 0, MAJOR),
        (0, 99, 0, MAJOR),
        (0, 100, 0, ESPECIALLY_MAJOR),
        # direct loss: 10M-<50M, 50M-<100M, 100M+
        (0, 0, 10 * M, LARGER),
        (0, 0, 50 * M - 0.01, LARGER),
        (0, 0, 50 * M, MAJOR),
        (0, 0, 100 * M - 0.01, MAJOR),
        (0, 0, 100 * M, ESPECIALLY_MAJOR),
        # mixed: the most serious criterion decides
        (3, 50, 0, MAJOR),
        (1, 0, 100 * M, ESPECIALLY_MAJOR),
        (10, 10, 10 * M, MAJOR),
    ],
)
def test_class_boundaries(deaths: int, injuries: int, loss: float, expected: AccidentClass) -> None:
    assert classify_accident(deaths, injuries, loss) is expected


def test_classes_are_ordered_by_seriousness() -> None:
    assert ORDINARY < LARGER < MAJOR < ESPECIALLY_MAJOR
    assert ESPECIALLY_MAJOR >= MAJOR > ORDINARY
    assert sorted([ESPECIALLY_MAJOR, ORDINARY, MAJOR, LARGER]) == list(AccidentClass)
    assert max(LARGER, MAJOR) is MAJOR
    assert MAJOR > "larger"


def test_values_match_the_message_contract() -> None:
    enum = schema_for("accident.reported", 1)["properties"]["accident_class"]["enum"]
    assert [c.value for c in AccidentClass] == enum


def test_negative_figures_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        classify_accident(-1, 0, 0)
