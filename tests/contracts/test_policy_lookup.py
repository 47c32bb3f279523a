"""Policy records: the shipped data, lookup by longest region prefix and by date, and the checks
that keep the data file honest; plus the month arithmetic terms rely on."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from contracts.dates import add_months
from contracts.policy import (
    PARAMETERS,
    PolicyRecord,
    load_policy_records,
    parse_policy_records,
    policy_for,
)
from contracts.sources import Source

TEST_SOURCE = {"title": "test rule", "region": "", "effective": "2000-01-01", "kind": "rule"}


def record(parameter: str = "grade_validity_years", **overrides: Any) -> PolicyRecord:
    values: dict[str, Any] = {
        "parameter": parameter,
        "value": 3,
        "region_prefix": "",
        "valid_from": date(2000, 1, 1),
        "valid_to": None,
        "source": Source("test rule", "", date(2000, 1, 1), "rule"),
    }
    return PolicyRecord(**(values | overrides))


def nationwide() -> list[PolicyRecord]:
    return [record(p, value=100 + i) for i, p in enumerate(PARAMETERS)]


def raw(**overrides: Any) -> dict[str, Any]:
    return {
        "parameter": "grade_validity_years",
        "value": 3,
        "region_prefix": "",
        "valid_from": "2000-01-01",
        "valid_to": None,
        "source": TEST_SOURCE,
    } | overrides


def document(*extra: dict[str, Any]) -> dict[str, Any]:
    base = [raw(parameter=p) for p in PARAMETERS]
    return {"records": base + list(extra)}


def test_shipped_policy_has_the_documented_defaults() -> None:
    policy = policy_for("350200", date(2025, 6, 1))
    assert (policy.grade_validity_years, policy.reapply_wait_months) == (3, 12)
    assert (policy.black_list_max_term_months, policy.black_list_early_removal_min_months) == (
        36,
        12,
    )
    assert (policy.red_list_term_months, policy.focus_list_max_term_months) == (36, 24)
    assert policy.new_status_months == 12


def test_shipped_records_name_their_rule_and_flag_the_assumption() -> None:
    records = load_policy_records()
    assert {r.parameter for r in records} == set(PARAMETERS)
    assert all(r.source.title.strip() for r in records)
    focus = next(r for r in records if r.parameter == "focus_list_max_term_months")
    assert focus.source.kind == "assumption"
    sources = dict(policy_for("110000", date(2025, 1, 1)).sources)
    assert "应急〔2021〕83号" in sources["grade_validity_years"]
    # before that rule took effect the same number is our labelled assumption, not the rule
    earlier = dict(policy_for("110000", date(2019, 1, 1)).sources)
    assert "应急〔2021〕83号" not in earlier["grade_validity_years"]


def test_longest_matching_prefix_wins() -> None:
    records = [
        *nationwide(),
        record(value=4, region_prefix="35"),
        record(value=5, region_prefix="3502"),
    ]
    on = date(2025, 1, 1)
    assert policy_for("350200", on, records).grade_validity_years == 5  # Xiamen
    assert policy_for("350100", on, records).grade_validity_years == 4  # Fuzhou
    assert policy_for("440300", on, records).grade_validity_years == 100  # Shenzhen
    # a regional record overrides only its own parameter
    assert policy_for("350200", on, records).reapply_wait_months == 101


def test_records_apply_from_valid_from_until_before_valid_to() -> None:
    records = [
        *nationwide(),
        record(value=4, region_prefix="35", valid_from=date(2024, 1, 1), valid_to=date(2025, 1, 1)),
    ]
    assert policy_for("350900", date(2023, 12, 31), records).grade_validity_years == 100
    assert policy_for("350900", date(2024, 1, 1), records).grade_validity_years == 4
    assert policy_for("350900", date(2024, 12, 31), records).grade_validity_years == 4
    assert policy_for("350900", date(2025, 1, 1), records).grade_validity_years == 100


def test_no_record_in_force_is_a_lookup_error() -> None:
    with pytest.raises(LookupError, match="grade_validity_years"):
        policy_for("350900", date(1999, 12, 31))


def test_overlapping_records_of_one_prefix_are_ambiguous() -> None:
    records = [*nationwide(), record(value=9)]
    with pytest.raises(ValueError, match="overlap"):
        policy_for("350900", date(2025, 1, 1), records)


@pytest.mark.parametrize("region", ["35020", "3502000", "050200", "35020X"])
def test_region_code_must_be_six_digits(region: str) -> None:
    with pytest.raises(ValueError, match="six"):
        policy_for(region, date(2025, 1, 1))


def test_parse_accepts_regional_and_successive_records() -> None:
    records = parse_policy_records(
        document(
            raw(region_prefix="35", value=4, valid_to="2025-01-01"),
            raw(region_prefix="35", value=5, valid_from="2025-01-01"),
        )
    )
    assert policy_for("350900", date(2025, 1, 1), records).grade_validity_years == 5


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (raw(parameter="grade_validity_days"), "unknown parameter"),
        (raw(value=0, region_prefix="35"), "positive"),
        (raw(value=True, region_prefix="35"), "positive"),
        (raw(region_prefix="3x"), "region_prefix"),
        (raw(region_prefix="0"), "region_prefix"),
        (raw(region_prefix="35", source=TEST_SOURCE | {"title": " "}), "source"),
        (raw(region_prefix="35", source="a rule"), "source"),
        (raw(region_prefix="35", valid_from="1999-01-01", valid_to="2000-01-01"), "before"),
        (raw(region_prefix="35", valid_from="2025-13-01"), "valid_from"),
        (raw(region_prefix="35", valid_from=None), "valid_from"),
        (raw(region_prefix="35", valid_from="2025-01-01", valid_to="2025-01-01"), "after"),
        (raw(region_prefix="35") | {"note": "x"}, "exactly"),
        (raw(), "overlap"),
    ],
)
def test_parse_refuses_bad_records(extra: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_policy_records(document(extra))


def test_parse_requires_a_nationwide_record_for_every_parameter() -> None:
    records = document()["records"][1:]
    with pytest.raises(ValueError, match="nationwide"):
        parse_policy_records({"records": records})


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (date(2024, 1, 10), 36, date(2027, 1, 10)),
        (date(2024, 2, 29), 12, date(2025, 2, 28)),
        (date(2024, 1, 31), 1, date(2024, 2, 29)),
        (date(2024, 12, 15), 1, date(2025, 1, 15)),
        (date(2025, 1, 15), -1, date(2024, 12, 15)),
        (date(2024, 3, 31), 0, date(2024, 3, 31)),
    ],
)
def test_add_months(start: date, months: int, expected: date) -> None:
    assert add_months(start, months) == expected
