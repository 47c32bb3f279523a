"""The measure catalog: defaults of domain.md §4–5, effective dates, regional overrides."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from contracts.measures import Standing, applicable, in_force, parse_measure, shipped_catalog

ON = date(2026, 6, 1)
XIAMEN = "350203"


def codes(result: dict[str, list[object]], role: str) -> list[str]:
    return [m.code for m in result.get(role, [])]  # type: ignore[attr-defined]


def test_every_shipped_measure_names_its_source_and_basis() -> None:
    catalog = shipped_catalog()
    assert len(catalog) >= 20
    assert all(m.source and m.legal_basis for m in catalog)
    roles = {m.role for m in catalog}
    assert {"insurer", "bank", "market_regulator", "credit_disclosure"} <= roles


def test_level_one_grade_without_accidents() -> None:
    standing = Standing("active", "1", "industry_trade")
    result = applicable(standing, XIAMEN, ON)
    assert sorted(codes(result, "insurer")) == [
        "insurance.premium.no_accident",
        "insurance.work_injury.grade_discount_1",
    ]
    assert codes(result, "market_regulator") == ["regulator.inspections.other.level1"]
    assert codes(result, "credit_disclosure") == ["disclosure.publish_grade"]
    assert codes(result, "bank") == ["bank.grade_factor.level1"]  # the credit factor only


@pytest.mark.parametrize(
    ("accident", "code", "float_"),
    [
        ("ordinary", "insurance.premium.ordinary_accident", 0.10),
        ("larger", "insurance.premium.larger_accident", 0.20),
        ("major", "insurance.premium.major_accident", 0.30),
        ("especially_major", "insurance.premium.major_accident", 0.30),
    ],
)
def test_accident_in_prior_year_floats_the_premium(accident: str, code: str, float_: float) -> None:
    standing = Standing("active", "2", "hazardous_chemicals", accident_classes=(accident,))
    insurer = applicable(standing, XIAMEN, ON, role="insurer")["insurer"]
    floats = {m.code: m.effect["premium_float"] for m in insurer}
    assert floats[code] == float_
    assert "insurance.premium.no_accident" not in floats


def test_revoked_and_blacklisted() -> None:
    standing = Standing("revoked", None, "hazardous_chemicals", list_types=("black",))
    result = applicable(standing, XIAMEN, ON)
    assert sorted(codes(result, "bank")) == ["bank.credit_review", "bank.no_new_loans"]
    assert codes(result, "market_regulator") == [
        "regulator.inspections.hazardous.ungraded",
        "regulator.key_target",
    ]
    assert "honours.no_awards" in codes(result, "implementing_agency")


def test_a_city_overrides_a_measure_from_its_date() -> None:
    base = next(m for m in shipped_catalog() if m.code == "insurance.premium.black_list")
    xiamen = replace(
        base, region_prefix="3502", valid_from=date(2026, 1, 1), effect={"premium_float": 0.5}
    )
    catalog = [*shipped_catalog(), xiamen]
    standing = Standing("none", None, "industry_trade", list_types=("black",))

    def black_float(region: str, on: date) -> float:
        insurer = applicable(standing, region, on, catalog, role="insurer")["insurer"]
        return next(m.effect["premium_float"] for m in insurer if m.code == base.code)

    assert black_float(XIAMEN, ON) == 0.5
    assert black_float(XIAMEN, date(2025, 12, 31)) == 0.10  # before the city's rule
    assert black_float("350100", ON) == 0.10  # Fuzhou keeps the default
    assert len([m for m in in_force(XIAMEN, ON, catalog) if m.code == base.code]) == 1


def test_unknown_trigger_keys_are_refused() -> None:
    record = shipped_catalog()[0].as_dict() | {"trigger": {"colour": ["red"]}}
    with pytest.raises(ValueError, match="unknown trigger"):
        parse_measure(record)
