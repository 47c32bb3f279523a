"""The measure catalog: defaults of domain.md §4–5, effective dates, regional overrides, and the
walk that holds every shipped record to its source."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import replace
from datetime import date
from importlib import resources
from typing import Any

import pytest

from contracts.measures import (
    CatalogError,
    InvalidMeasure,
    Standing,
    applicable,
    in_force,
    parse_catalog,
    parse_measure,
    parse_stored_measure,
    shipped_catalog,
    triggered,
)

ON = date(2026, 6, 1)
XIAMEN = "350203"


def codes(result: dict[str, list[object]], role: str) -> list[str]:
    return [m.code for m in result.get(role, [])]  # type: ignore[attr-defined]


def test_every_shipped_measure_names_its_source_and_basis() -> None:
    catalog = shipped_catalog()
    assert len(catalog) >= 20
    assert all(m.source.title and m.legal_basis for m in catalog)
    roles = {m.role for m in catalog}
    assert {
        "insurer",
        "social_insurance",
        "bank",
        "market_regulator",
        "credit_disclosure",
        "work_safety_supervisor",
    } <= roles


def shipped_document_json() -> dict[str, Any]:
    text = resources.files("contracts").joinpath("data/measures.json").read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def policy_records() -> list[dict[str, Any]]:
    text = resources.files("contracts").joinpath("data/policy.json").read_text("utf-8")
    records: list[dict[str, Any]] = json.loads(text)["records"]
    return records


def _walk() -> list[tuple[str, dict[str, Any]]]:
    document = shipped_document_json()
    found = [(f"measure {r['code']}", r) for r in document["records"]]
    found += [(f"product {r['product']}", r) for r in document["products"]]
    found += [(f"scheme {r['code']}", r) for r in document["schemes"]]
    found += [(f"finding {r['code']}", r) for r in document["findings"]]
    found += [(f"policy {r['parameter']} from {r['valid_from']}", r) for r in policy_records()]
    return found


def test_the_walk_covers_every_section_of_the_shipped_catalog() -> None:
    document = shipped_document_json()
    sections = {name for name, value in document.items() if isinstance(value, list)}
    assert sections == {"records", "products", "schemes", "findings"}, "walk the new section"
    assert len(_walk()) == sum(len(document[s]) for s in sections) + len(policy_records())


@pytest.mark.parametrize(("name", "record"), _walk(), ids=[name for name, _ in _walk()])
def test_every_shipped_record_keeps_to_its_source(name: str, record: dict[str, Any]) -> None:
    """domain.md §5: each record names its source and the region it was found for; a rule
    found for one region applies only within it; nothing takes effect before its source did;
    an unverified number is labelled an assumption, saying what it is modelled on."""
    source = record.get("source")
    assert isinstance(source, dict), f"{name}: no source, or a plain text"
    assert source.get("kind") in ("rule", "assumption"), name
    assert source["title"].strip(), name
    region = source.get("region")
    assert isinstance(region, str), f"{name}: the source names no region it was found for"
    assert re.fullmatch(r"(?:[1-9][0-9]{0,5})?", region), f"{name}: region {region!r}"
    # Schemes and findings hold no period or region of their own: their source's region and
    # day are what a reader weighs them by.
    if source["effective"] is not None and "valid_from" in record:
        assert record["valid_from"] >= source["effective"], f"{name} starts before its source"
    if source["kind"] == "rule":
        assert source["effective"], f"{name}: a rule without the day it took effect"
        if "region_prefix" in record:
            assert record["region_prefix"].startswith(region), (
                f"{name}: a rule found for {region or 'the nation'} applied to "
                f"{record['region_prefix'] or 'the nation'}"
            )
    else:
        assert source["note"].strip(), f"{name}: an assumption must say what it rests on"
    # 闽安委〔2017〕1号: the premium, disclosure and credit links are 五（五）, not 四（五）
    assert "四（五）" not in json.dumps(record, ensure_ascii=False), name


def test_no_shipped_rule_found_for_a_city_reaches_the_province() -> None:
    """A city's accident floats (once shipped nationwide) are at most our labelled assumption
    for Fujian, never a rule beyond the city it was found for."""
    for measure in shipped_catalog():
        if len(measure.source.region) > 2:
            assert measure.region_prefix.startswith(measure.source.region), measure.code
        if measure.product is not None:
            assert measure.region_prefix, f"{measure.code} floats premiums nationwide"


def test_level_one_grade_without_accidents() -> None:
    standing = Standing("active", "1", "industry_trade", on=ON)
    result = applicable(standing, XIAMEN, ON)
    assert sorted(codes(result, "insurer")) == [
        "insurance.liability.grade_1",
        "insurance.liability.no_accident",
    ]
    assert codes(result, "social_insurance") == ["social_insurance.work_injury.grade_1"]
    assert codes(result, "market_regulator") == ["regulator.record_grade"]
    assert codes(result, "credit_disclosure") == ["disclosure.publish_grade"]
    assert codes(result, "bank") == ["bank.grade_factor.level1"]  # the credit factor only
    assert "supervision.frequency.other.level1" in codes(result, "work_safety_supervisor")


def test_a_never_graded_enterprise_gets_no_grade_float_and_key_supervision() -> None:
    standing = Standing("none", None, "hazardous_chemicals", on=ON)
    result = applicable(standing, XIAMEN, ON)
    assert codes(result, "insurer") == ["insurance.liability.no_accident"]
    effects = {m.code: m.effect for m in result["work_safety_supervisor"]}
    assert effects["supervision.key_supervision.ungraded"] == {
        "key_supervision": True,
        "penalty_scale": "upper_limit",
    }
    assert effects["supervision.frequency.hazardous.ungraded"] == {"inspections_per_year_min": 12}


@pytest.mark.parametrize(
    ("accident", "code", "float_"),
    [
        ("ordinary", "insurance.liability.ordinary_accident", 0.10),
        ("larger", "insurance.liability.larger_accident", 0.20),
        ("major", "insurance.liability.major_accident", 0.30),
        ("especially_major", "insurance.liability.major_accident", 0.30),
    ],
)
def test_accident_in_prior_year_floats_the_premium(accident: str, code: str, float_: float) -> None:
    standing = Standing("active", "2", "hazardous_chemicals", accident_classes=(accident,))
    insurer = applicable(standing, XIAMEN, ON, role="insurer")["insurer"]
    floats = {m.code: m.effect["premium_float"] for m in insurer}
    assert floats[code] == float_
    assert "insurance.liability.no_accident" not in floats


def test_revoked_and_blacklisted() -> None:
    standing = Standing("revoked", None, "hazardous_chemicals", list_types=("black",), on=ON)
    result = applicable(standing, XIAMEN, ON)
    assert sorted(codes(result, "bank")) == ["bank.credit_review", "bank.no_new_loans"]
    assert codes(result, "market_regulator") == [
        "regulator.record_black_list",
        "regulator.record_grade",
    ]
    supervisor = codes(result, "work_safety_supervisor")
    assert "supervision.black_list" in supervisor
    assert "supervision.key_supervision.ungraded" in supervisor
    assert "honours.no_awards" in codes(result, "implementing_agency")


def test_measures_citing_the_2023_black_list_rules_start_with_them() -> None:
    standing = Standing("none", None, "industry_trade", list_types=("black",), on=ON)
    before = applicable(standing, XIAMEN, date(2023, 9, 30))
    assert "bank.no_new_loans" not in codes(before, "bank")
    after = applicable(standing, XIAMEN, date(2023, 10, 1))
    assert "bank.no_new_loans" in codes(after, "bank")


def test_a_closed_enterprise_gets_no_measure() -> None:
    standing = Standing("active", "1", "industry_trade", closed=True, on=ON)
    assert applicable(standing, XIAMEN, ON) == {}


def test_self_assessment_published_reads_the_previous_year() -> None:
    trigger = {"self_assessment_published": True}
    assert triggered(trigger, Standing("active", "1", "x", self_assessment_year=2025, on=ON))
    assert not triggered(trigger, Standing("active", "1", "x", self_assessment_year=2024, on=ON))
    assert not triggered(trigger, Standing("active", "1", "x", on=ON))


def test_a_city_overrides_a_measure_from_its_date() -> None:
    base = next(m for m in shipped_catalog() if m.code == "insurance.liability.black_list")
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


def shipped_records() -> list[dict[str, Any]]:
    text = resources.files("contracts").joinpath("data/measures.json").read_text("utf-8")
    records: list[dict[str, Any]] = json.loads(text)["records"]
    return records


# The roles of the shipped catalog (the gateway passes its agency roles)
ROLES = frozenset(
    {
        "insurer",
        "social_insurance",
        "bank",
        "market_regulator",
        "credit_disclosure",
        "implementing_agency",
        "work_safety_supervisor",
    }
)


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"trigger": {"scheme": 5}}, "trigger scheme must be a non-empty list of strings"),
        ({"trigger": {"grade_level": 1}}, "trigger grade_level must be a non-empty list of"),
        ({"trigger": {"grade_level": ["1", 1]}}, "trigger grade_level must be a non-empty list"),
        ({"trigger": {"list_type": []}}, "trigger list_type must be a non-empty list of strings"),
        ({"trigger": {"ungraded": "false"}}, "trigger ungraded must be true or false"),
        ({"trigger": {"accident_free_prior_year": 1}}, "accident_free_prior_year must be true"),
        ({"trigger": {"grade_status": ["lapsed"]}}, "trigger grade_status 'lapsed' is not a"),
        ({"trigger": {"colour": ["red"]}}, "unknown trigger key 'colour'"),
        ({"trigger": {}}, "trigger must be a non-empty object"),
        ({"trigger": ["grade_level"]}, "trigger must be a non-empty object"),
        ({"effect": {}}, "effect must be a non-empty object"),
        ({"effect": {"premium_float": "-10 %"}}, "effect premium_float must be a number"),
        ({"effect": {"premium_float": True}}, "effect premium_float must be a number"),
        ({"effect": {"inspections_per_year_max": 2.5}}, "must be an integer"),
        ({"role": "nobody"}, "role 'nobody' is not an agency role"),
        ({"role": 7}, "role must be a non-empty string"),
        ({"legal_basis": ""}, "legal_basis must be a non-empty string"),
        ({"term_months": "forever"}, "term_months must be an integer >= 0 or null"),
        ({"term_months": -1}, "term_months must be an integer >= 0 or null"),
        ({"term_months": True}, "term_months must be an integer >= 0 or null"),
        ({"term_months": 12.5}, "term_months must be an integer >= 0 or null"),
        ({"region_prefix": "35-02"}, "region_prefix must be up to six digits"),
        ({"valid_from": "01/01/2017"}, "valid_from must be a date like 2026-01-01"),
        ({"valid_from": 20170101}, "valid_from must be a date like 2026-01-01"),
        ({"valid_to": "2017-02-30"}, "valid_to must be a date like 2026-01-01"),
        ({"valid_from": "2030-01-01", "valid_to": "2020-01-01"}, "valid_to must be after"),
        ({"valid_to": "2017-01-01"}, "valid_to must be after valid_from"),
        ({"region_perfix": "3502"}, "unknown field 'region_perfix'"),
        ({"source": None}, "source is required"),
        ({"source": "domain.md"}, "source must be an object"),
        ({"effect": {"premium_float": 10}}, "premium_float is a fraction"),
        ({"effect": {"penalty_scale": "double"}}, "penalty_scale must be standard or upper"),
    ],
)
def test_a_catalog_names_the_record_and_field_it_refuses(
    change: dict[str, Any], detail: str
) -> None:
    records = shipped_records()
    records[3] = records[3] | change
    with pytest.raises(CatalogError) as refused:
        parse_catalog(records, ROLES)
    assert str(refused.value).startswith(f"record 3 ({records[3]['code']}): ")
    assert detail in str(refused.value)
    assert refused.value.index == 3


def test_a_record_without_code_or_not_an_object_is_named_by_its_index() -> None:
    records = shipped_records()
    del records[2]["code"]
    with pytest.raises(CatalogError, match=r"^record 2: code is required"):
        parse_catalog(records)
    with pytest.raises(CatalogError, match=r"^record 1: a record is a JSON object"):
        parse_catalog([shipped_records()[0], "insurer"])
    with pytest.raises(CatalogError, match=r"^a catalog is a non-empty list"):
        parse_catalog([])


def test_the_shipped_catalog_passes_every_check() -> None:
    assert len(parse_catalog(shipped_records(), ROLES)) == len(shipped_records())


@pytest.mark.parametrize(
    ("source", "detail"),
    [
        ({"kind": "law"}, "source kind must be one of rule, assumption"),
        ({"region": "35a"}, "source region must be"),
        ({"kind": "rule", "effective": None}, "a rule's source names the day it took effect"),
        ({"kind": "assumption", "note": " "}, "an assumption's note says what"),
        ({"kind": "rule", "effective": "2030-01-01"}, "is before its source took effect"),
        ({"kind": "rule", "region": "3505"}, "reaches beyond the region the rule was found for"),
        ({"colour": 1}, "unknown source field"),
    ],
)
def test_a_source_is_checked_with_its_record(source: dict[str, Any], detail: str) -> None:
    records = shipped_records()
    index = next(i for i, r in enumerate(records) if r["code"] == "disclosure.publish_grade")
    records[index]["source"] = records[index]["source"] | source
    with pytest.raises(CatalogError, match=detail):
        parse_catalog(records, ROLES)


def revised(valid_to_of_old: str | None) -> list[dict[str, Any]]:
    """The shipped catalog with level-1 work-injury discount revised to -25 % from 2026."""
    records = shipped_records()
    old = next(r for r in records if r["code"] == "social_insurance.work_injury.grade_1")
    old["valid_to"] = valid_to_of_old
    new = copy.deepcopy(old) | {
        "valid_from": "2026-01-01",
        "valid_to": None,
        "effect": {"premium_float": -0.25},
    }
    return [*records, new]


def test_overlapping_periods_of_one_code_and_region_are_refused() -> None:
    with pytest.raises(CatalogError) as refused:
        parse_catalog(revised(valid_to_of_old=None))
    assert str(refused.value).startswith(
        f"record {len(shipped_records())} (social_insurance.work_injury.grade_1): valid_from"
    )
    assert "end the earlier one with valid_to 2026-01-01" in str(refused.value)
    with pytest.raises(CatalogError, match="falls in record"):
        parse_catalog(revised(valid_to_of_old="2026-01-02"))


def test_a_revision_from_a_date_is_in_force_from_that_date() -> None:
    catalog = parse_catalog(revised(valid_to_of_old="2026-01-01"))
    standing = Standing("active", "1", "industry_trade")

    def discount(on: date) -> float:
        role = "social_insurance"
        found = [
            m
            for m in applicable(standing, XIAMEN, on, catalog, role=role)[role]
            if m.code == "social_insurance.work_injury.grade_1"
        ]
        assert len(found) == 1
        return float(found[0].effect["premium_float"])

    assert discount(date(2025, 12, 31)) == -0.2
    assert discount(date(2026, 1, 1)) == -0.25  # valid_to is exclusive, valid_from inclusive
    assert discount(date(2026, 11, 1)) == -0.25


def test_an_unchecked_catalog_with_overlapping_revisions_takes_the_later_one() -> None:
    """Versions stored before overlaps were refused: the newer revision, whatever its place."""
    old = next(m for m in shipped_catalog() if m.code == "social_insurance.work_injury.grade_1")
    new = replace(old, valid_from=date(2026, 1, 1), effect={"premium_float": -0.25})
    for catalog in ([*shipped_catalog(), new], [new, *shipped_catalog()]):
        chosen = [m for m in in_force(XIAMEN, date(2026, 11, 1), catalog) if m.code == old.code]
        assert [m.effect for m in chosen] == [{"premium_float": -0.25}]
        earlier = [m for m in in_force(XIAMEN, date(2025, 6, 1), catalog) if m.code == old.code]
        assert [m.effect for m in earlier] == [{"premium_float": -0.2}]


def test_a_stored_record_reads_as_it_did_when_stored_unless_it_cannot_be_evaluated() -> None:
    """Versions in the log were read leniently when stored (an extra field, an empty
    valid_to, any role): they must read the same now, so documents re-render byte for byte.
    Only a trigger that fails evaluation (a number where a list belongs) is refused."""
    old = {
        "code": "bank.local_rule",
        "role": "city_bank_office",  # not a role publishing accepts today
        "trigger": {"grade_status": ["revoked"]},
        "effect": {"flag": "credit_review"},
        "legal_basis": "local rule",
        "valid_from": "2020-01-01",
        "valid_to": "",
        "source": "operator",
        "comment": "a field no schema knew",
    }
    measure = parse_stored_measure(old)
    assert (measure.role, measure.valid_to, measure.code) == (
        "city_bank_office",
        None,
        "bank.local_rule",
    )
    with pytest.raises(InvalidMeasure, match="trigger scheme must be a list"):
        parse_stored_measure(old | {"trigger": {"scheme": 5}})
