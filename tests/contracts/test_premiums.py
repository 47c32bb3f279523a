"""The premium link (闽安委〔2017〕1号 五（五）) over every combination of grade × accident class
× list × revocation, against the shipped catalog's rules computed again here: liability floats
by grade (while valid), accident and black list, summed and held within ±30 %, no discount set
against a penalty and none for a revoked grade; work-injury floats for social insurance only."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import date

import pytest

from contracts.catalog import premium, shipped_document
from contracts.measures import Standing, applicable

ON = date(2026, 6, 1)
FUZHOU = "350102"
GRADES = ("1", "2", "3", "small_micro", None, "revoked", "lapsed")
ACCIDENTS = (None, "ordinary", "larger", "major", "especially_major")
LISTS = ((), ("black",), ("red",), ("focus",))
# The shipped numbers, written out again rather than read from the catalog.
LIABILITY_GRADE = {"1": -0.15, "2": -0.10, "3": -0.05, "small_micro": -0.05}
LIABILITY_ACCIDENT = {"ordinary": 0.10, "larger": 0.20, "major": 0.30, "especially_major": 0.30}
WORK_INJURY_GRADE = {"1": -0.20, "2": -0.15, "3": -0.10, "small_micro": -0.10}


def standing(grade: str | None, accident: str | None, lists: tuple[str, ...]) -> Standing:
    status = {None: "none", "revoked": "revoked", "lapsed": "expired"}.get(grade, "active")
    level = grade if status == "active" else None
    scheme = "small_micro" if grade == "small_micro" else "hazardous_chemicals"
    return Standing(status, level, scheme, (accident,) if accident else (), lists, on=ON)


def expected_liability(grade: str | None, accident: str | None, lists: tuple[str, ...]) -> float:
    penalties = []
    if accident:
        penalties.append(LIABILITY_ACCIDENT[accident])
    if "black" in lists:
        penalties.append(0.10)
    discounts = []
    if grade in LIABILITY_GRADE:
        discounts.append(LIABILITY_GRADE[grade])
    if not accident:
        discounts.append(-0.10)
    if penalties or grade == "revoked":  # a penalty is never cancelled; no discount if revoked
        discounts = []
    total = sum(penalties) + sum(discounts)
    return round(1 + max(-0.3, min(0.3, total)), 4)


def expected_work_injury(grade: str | None, lists: tuple[str, ...]) -> float:
    penalty = 0.10 if "black" in lists else 0.0
    discount = WORK_INJURY_GRADE.get(grade or "", 0.0)
    if penalty or grade == "revoked":
        discount = 0.0
    return round(1 + max(-0.5, min(0.5, penalty + discount)), 4)


CASES = list(itertools.product(GRADES, ACCIDENTS, LISTS))


@pytest.mark.parametrize(("grade", "accident", "lists"), CASES)
def test_liability_and_work_injury_factors(
    grade: str | None, accident: str | None, lists: tuple[str, ...]
) -> None:
    catalog = shipped_document()
    found = standing(grade, accident, lists)
    liability = premium(found, FUZHOU, ON, catalog, "liability", "insurer")
    assert liability.factor == expected_liability(grade, accident, lists)
    work_injury = premium(found, FUZHOU, ON, catalog, "work_injury", "social_insurance")
    assert work_injury.factor == expected_work_injury(grade, lists)
    # every withheld float is a discount, and says why
    for applied in (liability, work_injury):
        for f in applied.floats:
            assert (f.withheld is not None) <= (f.value < 0)
            if f.withheld is not None:
                assert "penalty" in f.withheld or "revoked" in f.withheld


def test_a_level_two_grade_and_no_grade_get_different_liability_factors() -> None:
    catalog = shipped_document()
    graded = premium(standing("2", None, ()), FUZHOU, ON, catalog, "liability", "insurer")
    ungraded = premium(standing(None, None, ()), FUZHOU, ON, catalog, "liability", "insurer")
    assert (graded.factor, ungraded.factor) == (0.8, 0.9)


def test_a_black_listed_enterprise_without_accident_keeps_no_discount() -> None:
    catalog = shipped_document()
    found = premium(standing("2", None, ("black",)), FUZHOU, ON, catalog, "liability", "insurer")
    assert found.factor == 1.1
    assert {f.measure.code: f.withheld is None for f in found.floats} == {
        "insurance.liability.black_list": True,
        "insurance.liability.grade_2": False,
        "insurance.liability.no_accident": False,
    }


def test_after_a_fatal_accident_revocation_no_no_accident_discount() -> None:
    catalog = shipped_document()
    after = premium(
        standing("revoked", "ordinary", ()), FUZHOU, ON, catalog, "liability", "insurer"
    )
    assert after.factor == 1.1
    assert all(f.measure.code != "insurance.liability.no_accident" for f in after.floats)
    # a year on, the accident is out of the record period: still no discount while revoked
    later = premium(standing("revoked", None, ()), FUZHOU, ON, catalog, "liability", "insurer")
    assert later.factor == 1.0
    assert [f.withheld is not None for f in later.floats] == [True]


def test_insurers_get_no_work_injury_measure_and_social_insurance_no_liability() -> None:
    result = applicable(standing("1", None, ()), FUZHOU, ON, shipped_document())
    assert {m.product for m in result["insurer"]} == {"liability"}
    assert {m.product for m in result["social_insurance"]} == {"work_injury"}


def test_outside_fujian_no_assumed_float_applies() -> None:
    """The floats are our assumptions for Fujian (region 35): nowhere else."""
    catalog = shipped_document()
    found = premium(standing("1", None, ()), "110101", ON, catalog, "liability", "insurer")
    assert (found.factor, found.floats) == (1.0, ())


def test_each_product_counts_the_accidents_of_its_own_record_period() -> None:
    """A liability rule of 24 months counts an accident 15 months old, in its factor, in the
    accidents it reports and in the insurer's measures; the shipped 12 months do not."""
    shipped = shipped_document()
    longer = replace(
        shipped,
        products=tuple(
            replace(rule, record_period_months=24) if rule.product == "liability" else rule
            for rule in shipped.products
        ),
    )
    record = ((date(2025, 3, 1), "ordinary"), (date(2024, 5, 1), "major"))  # 15 and 25 months
    found = replace(standing(None, None, ()), accident_record=record)
    for catalog, counted, factor in ((shipped, (), 0.9), (longer, ("ordinary",), 1.1)):
        liability = premium(found, FUZHOU, ON, catalog, "liability", "insurer")
        assert (liability.accidents, liability.factor) == (counted, factor)
        insurer = {m.code for m in applicable(found, FUZHOU, ON, catalog)["insurer"]}
        assert ("insurance.liability.ordinary_accident" in insurer) is bool(counted)
        assert ("insurance.liability.no_accident" in insurer) is not bool(counted)
        assert "insurance.liability.major_accident" not in insurer  # 25 months: out of both
    assert longer.record_periods(FUZHOU, ON) == {"liability": 24, "work_injury": 12}
    assert longer.record_periods("110101", ON) == {"liability": 12, "work_injury": 12}
