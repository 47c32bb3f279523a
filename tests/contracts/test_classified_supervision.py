"""Classified supervision (闽安委〔2017〕1号 四（一）, issue 21 build 1): how the supervisor's
measures combine (contracts.supervision.supervision_of) and the reasons the shipped catalog
gives, recent accidents among them."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from contracts.measures import Measure, Standing, applicable, parse_measure
from contracts.supervision import ROLE, supervision_of

ON = date(2026, 6, 1)
XIAMEN = "350203"


def measure(code: str, *, role: str = ROLE, **effect: Any) -> Measure:
    return parse_measure(
        {
            "code": code,
            "role": role,
            "trigger": {"grade_status": ["active"]},  # not read by supervision_of
            "effect": effect,
            "legal_basis": "test",
            "region_prefix": "35",
            "valid_from": "2017-02-17",
            "source": {
                "title": "test",
                "region": "35",
                "kind": "assumption",
                "note": "a test's numbers",
            },
        }
    )


# --- supervision_of -------------------------------------------------------------------------


def test_nothing_said_is_no_minimum_no_cap_and_the_standard_scale() -> None:
    found = supervision_of([])
    assert (found.inspections_min, found.inspections_max) == (0, None)
    assert (found.penalty_scale, found.key_supervision, found.fewer_inspections) == (
        "standard",
        False,
        False,
    )


def test_the_highest_minimum_wins() -> None:
    found = supervision_of(
        [
            measure("a", inspections_per_year_min=2),
            measure("b", inspections_per_year_min=8),
            measure("c", inspections_per_year_min=4),
        ]
    )
    assert found.inspections_min == 8
    assert [m.code for m in found.reasons] == ["a", "b", "c"]


def test_the_lowest_cap_holds_while_no_minimum_exceeds_it() -> None:
    found = supervision_of(
        [
            measure("grade", inspections_per_year_min=2, inspections_per_year_max=4),
            measure("red", inspections_per_year_max=3),
        ]
    )
    assert (found.inspections_min, found.inspections_max) == (2, 3)
    equal = supervision_of(
        [measure("grade", inspections_per_year_max=4), measure("x", inspections_per_year_min=4)]
    )
    assert (equal.inspections_min, equal.inspections_max) == (4, 4)


def test_a_cap_is_dropped_when_a_minimum_exceeds_it() -> None:
    # a level-1 grade caps at 2; a penalty's minimum of 6 is never lowered by the incentive
    found = supervision_of(
        [
            measure("grade", inspections_per_year_min=2, inspections_per_year_max=2),
            measure("accident", inspections_per_year_min=6, key_supervision=True),
        ]
    )
    assert (found.inspections_min, found.inspections_max) == (6, None)
    assert found.key_supervision is True


def test_the_upper_limit_penalty_scale_wins_over_standard() -> None:
    found = supervision_of(
        [
            measure("graded", penalty_scale="standard"),
            measure("ungraded", penalty_scale="upper_limit"),
        ]
    )
    assert found.penalty_scale == "upper_limit"
    assert supervision_of([measure("graded", penalty_scale="standard")]).penalty_scale == "standard"


def test_only_the_supervisor_s_measures_count() -> None:
    found = supervision_of(
        [
            measure("bank", role="bank", inspections_per_year_min=12, penalty_scale="upper_limit"),
            measure("mine", inspections_per_year_min=1),
        ]
    )
    assert (found.inspections_min, found.penalty_scale) == (1, "standard")
    assert [m.code for m in found.reasons] == ["mine"]


# --- the shipped catalog's reasons ------------------------------------------------------------


def supervision_on(standing: Standing) -> Any:
    return supervision_of(applicable(standing, XIAMEN, ON, role=ROLE).get(ROLE, []))


@pytest.mark.parametrize("accident", ["ordinary", "larger", "major", "especially_major"])
def test_a_recent_accident_puts_a_graded_enterprise_under_key_supervision(accident: str) -> None:
    calm = Standing("active", "1", "hazardous_chemicals", self_assessment_year=2025, on=ON)
    before = supervision_on(calm)
    assert (before.inspections_min, before.inspections_max, before.key_supervision) == (
        2,
        2,
        False,
    )
    after = supervision_on(Standing(**{**calm.__dict__, "accident_classes": (accident,)}))
    assert (after.inspections_min, after.inspections_max, after.key_supervision) == (6, None, True)
    assert after.penalty_scale == "standard"  # the accident's own penalties follow their rules
    reason = next(m for m in after.reasons if m.code == "supervision.recent_accident")
    assert reason.source.kind == "assumption"  # no rule found fixes the number
    assert reason.region_prefix == "35"


def test_a_recent_accident_does_not_lower_a_higher_minimum() -> None:
    # ungraded hazardous chemicals: 12 a year already, at the upper limit
    found = supervision_on(
        Standing("none", None, "hazardous_chemicals", accident_classes=("ordinary",), on=ON)
    )
    assert (found.inspections_min, found.penalty_scale) == (12, "upper_limit")
    assert "supervision.recent_accident" in {m.code for m in found.reasons}
