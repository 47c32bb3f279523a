"""The message schemas and validate_message: every type, its required and unknown fields,
envelope errors, and the published schema files themselves."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jsonschema
import pytest
from contract_factories import VALID_DATA, data_for, make_envelope, optional_for

from contracts.registry import (
    CONTRACT_MAJORS,
    MESSAGE_TYPES,
    SERVED_MAJORS,
    ContractError,
    list_contracts,
    schema_for,
    validate_message,
)
from contracts.versions import envelope_schema

SCHEMAS = Path(__file__).resolve().parents[2] / "contracts" / "schemas"
SCHEMA_DIR = SCHEMAS / "v1"
SERVED = [(t, m) for t in MESSAGE_TYPES for m in SERVED_MAJORS[t]]
ENVELOPE_FIELDS = ("id", "type", "contract", "issuer", "issued_at", "subject", "data")


def refusal(envelope: dict[str, Any]) -> ContractError:
    with pytest.raises(ContractError) as caught:
        validate_message(envelope)
    return caught.value


def required_cases() -> list[tuple[str, int, str]]:
    return [(t, m, f) for t, m in SERVED for f in schema_for(t, m)["required"]]


def served_id(case: tuple[str, int]) -> str:
    return f"{case[0]}-v{case[1]}"


def test_every_type_has_an_example_and_a_schema() -> None:
    assert set(VALID_DATA) == set(MESSAGE_TYPES)
    assert len(MESSAGE_TYPES) == 17
    assert CONTRACT_MAJORS == (1, 2)
    for major in CONTRACT_MAJORS:
        files = {p.stem for p in (SCHEMAS / f"v{major}").glob("*.json")} - {"envelope"}
        assert files == {t for t in MESSAGE_TYPES if major in SERVED_MAJORS[t]}


@pytest.mark.parametrize(("message_type", "major"), SERVED, ids=map(served_id, SERVED))
def test_valid_example_passes(message_type: str, major: int) -> None:
    data = data_for(message_type, major)
    validate_message(make_envelope(message_type=message_type, contract=major, data=data))


@pytest.mark.parametrize(("message_type", "major"), SERVED, ids=map(served_id, SERVED))
def test_optional_fields_are_accepted(message_type: str, major: int) -> None:
    data = data_for(message_type, major) | optional_for(message_type, major)
    validate_message(make_envelope(message_type=message_type, contract=major, data=data))


@pytest.mark.parametrize(("message_type", "major"), SERVED, ids=map(served_id, SERVED))
def test_example_fields_are_exactly_the_required_ones(message_type: str, major: int) -> None:
    # The example holds every required field and may hold optional ones a rule asks for
    # (a hazard's hazard_level); optional_for gives the rest.
    schema = schema_for(message_type, major)
    example = set(data_for(message_type, major))
    assert set(schema["required"]) <= example
    optional = set(schema["properties"]) - set(schema["required"])
    assert optional == (example - set(schema["required"])) | set(optional_for(message_type, major))


@pytest.mark.parametrize(("message_type", "major", "field"), required_cases())
def test_missing_required_field_is_refused_with_its_pointer(
    message_type: str, major: int, field: str
) -> None:
    data = data_for(message_type, major)
    del data[field]
    error = refusal(make_envelope(message_type=message_type, contract=major, data=data))
    assert (error.code, error.pointer) == ("schema_violation", f"/data/{field}")
    assert error.message == f"required field /data/{field} is missing"


@pytest.mark.parametrize(("message_type", "major"), SERVED, ids=map(served_id, SERVED))
def test_unknown_field_is_refused_with_its_pointer(message_type: str, major: int) -> None:
    data = data_for(message_type, major, grade_note="x")
    error = refusal(make_envelope(message_type=message_type, contract=major, data=data))
    assert (error.code, error.pointer) == ("schema_violation", "/data/grade_note")


@pytest.mark.parametrize("field", ENVELOPE_FIELDS)
def test_missing_envelope_field_is_refused(field: str) -> None:
    envelope = make_envelope()
    del envelope[field]
    error = refusal(envelope)
    assert (error.code, error.pointer) == ("schema_violation", f"/{field}")


def test_unknown_envelope_field_is_refused_with_an_escaped_pointer() -> None:
    extra: dict[str, Any] = {"x/y~z": 1}
    error = refusal(make_envelope(**extra))
    assert (error.code, error.pointer) == ("schema_violation", "/x~1y~0z")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "0f8fad5bd9cb469fa16570867728950e"),
        ("id", "{0f8fad5b-d9cb-469f-a165-70867728950e}"),
        ("issuer", "FJ.YJT"),
        ("issuer", "x"),
        ("issued_at", "2024-01-10T09:30:00"),
        ("issued_at", "2024-01-10 09:30:00+08:00"),
        ("issued_at", "2024-02-30T09:30:00+08:00"),
        ("subject", "91350900587527783p"),
        ("subject", "9135090058752778"),
        ("subject", "9135090058752778IP"),
        ("contract", 0),
        ("contract", "1"),
        ("contract", True),
        ("data", []),
        ("type", 7),
    ],
)
def test_bad_envelope_values_are_refused(field: str, value: Any) -> None:
    error = refusal(make_envelope(**{field: value}))
    assert (error.code, error.pointer) == ("schema_violation", f"/{field}")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "0F8FAD5B-D9CB-469F-A165-70867728950E"),
        ("issued_at", "2024-01-10T01:30:00Z"),
        ("issued_at", "2024-01-10T09:30:00.123456+08:00"),
        ("contract", 1.0),  # JSON Schema 2020-12 counts 1.0 as an integer
    ],
)
def test_accepted_envelope_variants(field: str, value: Any) -> None:
    validate_message(make_envelope(**{field: value}))


def test_any_mapping_is_accepted() -> None:
    validate_message(MappingProxyType(make_envelope()))


def test_unknown_type_has_its_own_code() -> None:
    error = refusal(make_envelope(message_type="grade.suspended"))
    assert (error.code, error.pointer) == ("unknown_type", "/type")
    assert "grade.suspended" in error.message


def test_unknown_contract_major_has_its_own_code() -> None:
    error = refusal(make_envelope(message_type="grade.renewed", contract=2))
    assert (error.code, error.pointer) == ("unknown_contract", "/contract")
    assert "served majors: 1" in error.message


def test_envelope_errors_come_before_the_type_check() -> None:
    envelope = make_envelope(message_type="grade.suspended")
    del envelope["subject"]
    assert refusal(envelope).pointer == "/subject"


@pytest.mark.parametrize(
    ("message_type", "overrides", "pointer"),
    [
        ("grade.awarded", {"level": "4"}, "/data/level"),
        ("grade.awarded", {"announced_on": "2023-02-29"}, "/data/announced_on"),
        ("grade.awarded", {"valid_from": "2024-1-10"}, "/data/valid_from"),
        ("grade.awarded", {"scheme": "Mining"}, "/data/scheme"),
        ("grade.downgraded", {"reason": "   "}, "/data/reason"),
        ("grade.revoked", {"related_message_ids": ["nope"]}, "/data/related_message_ids/0"),
        ("enterprise.registered", {"region_code": "050900"}, "/data/region_code"),
        ("enterprise.registered", {"industry_section": "U"}, "/data/industry_section"),
        ("enterprise.registered", {"name": "x" * 201}, "/data/name"),
        ("self_assessment.published", {"report_uri": "not a uri"}, "/data/report_uri"),
        ("self_assessment.published", {"year": 1999}, "/data/year"),
        ("self_assessment.published", {"score": 100.5}, "/data/score"),
        ("self_assessment.published", {"report_sha256": "AB" * 32}, "/data/report_sha256"),
        ("accident.reported", {"deaths": -1}, "/data/deaths"),
        ("accident.reported", {"deaths": 1.5}, "/data/deaths"),
        ("accident.reported", {"direct_loss_cny": -0.01}, "/data/direct_loss_cny"),
        ("listing.added", {"deciding_agency": "Bad Agency"}, "/data/deciding_agency"),
        ("listing.removed", {"removal_reason": "expired"}, "/data/removal_reason"),
        ("measure.applied", {"decision_message_id": "123"}, "/data/decision_message_id"),
        ("measure.applied", {"measure_code": "Premium"}, "/data/measure_code"),
        ("rectification.ordered", {"rectification_id": " id"}, "/data/rectification_id"),
    ],
)
def test_bad_data_values_are_refused(
    message_type: str, overrides: dict[str, Any], pointer: str
) -> None:
    data = VALID_DATA[message_type](**overrides)
    error = refusal(make_envelope(message_type=message_type, data=data))
    assert (error.code, error.pointer) == ("schema_violation", pointer)
    assert error.message.startswith(pointer)


def test_envelope_type_enum_lists_exactly_the_message_types() -> None:
    assert tuple(envelope_schema()["properties"]["type"]["enum"]) == MESSAGE_TYPES


def test_an_older_major_is_still_served_with_its_own_shape() -> None:
    v1 = data_for("rectification.ordered", 1)
    validate_message(make_envelope(message_type="rectification.ordered", contract=1, data=v1))
    error = refusal(make_envelope(message_type="rectification.ordered", contract=2, data=v1))
    assert error.pointer == "/data/kind"


SCHEMA_FILES = sorted(SCHEMAS.glob("v*/*.json"))


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_schema_files_are_strict_and_self_describing(path: Path) -> None:
    schema = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    major = path.parent.name
    assert schema["$id"] == f"https://contracts.gateway.example/{major}/{path.stem}.json"
    assert schema["additionalProperties"] is False
    assert re.search(r"[\u4e00-\u9fff]", schema["title"] + schema["description"])


@pytest.mark.parametrize(("message_type", "major"), SERVED, ids=map(served_id, SERVED))
def test_an_off_the_shelf_validator_agrees_on_the_examples(message_type: str, major: int) -> None:
    # protocol.md: an agency must be able to check messages without our code.
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    data = data_for(message_type, major)
    envelope = make_envelope(message_type=message_type, contract=major, data=data)
    jsonschema.Draft202012Validator(
        schema_for(message_type, major), format_checker=checker
    ).validate(envelope["data"])
    jsonschema.Draft202012Validator(envelope_schema(), format_checker=checker).validate(envelope)


def test_list_contracts_names_every_served_major_once() -> None:
    listed = list_contracts()
    assert [(c["type"], c["major"]) for c in listed] == sorted(
        SERVED, key=lambda case: (case[1], MESSAGE_TYPES.index(case[0]))
    )
    assert listed[3]["$id"] == "https://contracts.gateway.example/v1/grade.awarded.json"


def test_schema_for_returns_a_copy() -> None:
    schema_for("grade.awarded", 1)["required"].clear()
    assert "level" in schema_for("grade.awarded", 1)["required"]


@pytest.mark.parametrize(
    ("message_type", "major", "code"),
    [("grade.suspended", 1, "unknown_type"), ("grade.renewed", 2, "unknown_contract")],
)
def test_schema_for_refuses_unknown_contracts(message_type: str, major: int, code: str) -> None:
    with pytest.raises(ContractError) as caught:
        schema_for(message_type, major)
    assert caught.value.code == code
