"""The contract registry and its compatibility check: consumer schemas derived from producer
schemas, a table of schema changes judged compatible or breaking, producer-vs-consumer cases,
view registration, and every live contract proven compatible with its released revisions."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest
from contract_factories import VALID_DATA

from connectors import CONNECTORS
from contracts.checks import check_registry, check_version
from contracts.compat import check_compatible, judge_change
from contracts.consumers import consumer_id, consumer_schema
from contracts.errors import ContractError
from contracts.registry import MESSAGE_TYPES, SERVED_MAJORS, schema_for
from contracts.versions import ContractRegistry, ContractVersion, load_registry

Schema = dict[str, Any]

BASE: Schema = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://contracts.test/v1/example.json",
    "title": "example",
    "type": "object",
    "properties": {
        "level": {"type": "string", "enum": ["1", "2", "3"]},
        "name": {"type": "string", "minLength": 1, "maxLength": 100},
        "count": {"type": "integer", "minimum": 0},
        "score": {"type": "number", "minimum": 0, "maximum": 100},
        "note": {"description": "free text", "type": "string", "maxLength": 500},
        "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]+$"}},
        "place": {
            "type": "object",
            "properties": {
                "region": {"type": "string", "pattern": "^[1-9][0-9]{5}$"},
                "street": {"type": "string"},
            },
            "required": ["region"],
            "additionalProperties": False,
        },
        "kind": {"$ref": "#/$defs/kind"},
    },
    "required": ["level", "name", "count", "place"],
    "additionalProperties": False,
    "$defs": {"kind": {"type": "string", "enum": ["a", "b"]}},
}


def changed(edit: Callable[[Schema], object]) -> Schema:
    schema = copy.deepcopy(BASE)
    edit(schema)
    return schema


def props(schema: Schema) -> dict[str, Any]:
    return schema["properties"]


def rename(schema: Schema, old: str, new: str) -> None:
    props(schema)[new] = props(schema).pop(old)
    schema["required"] = [new if r == old else r for r in schema["required"]]


# (case, edit, pointer of the break or None for a compatible change)
CHANGES: list[tuple[str, Callable[[Schema], object], str | None]] = [
    ("add an optional field", lambda s: props(s).update(remark={"type": "string"}), None),
    ("remove an optional field", lambda s: props(s).pop("note"), None),
    ("reword a description", lambda s: props(s)["note"].update(description="other"), None),
    (
        "reorder required and enum",
        lambda s: (s["required"].reverse(), props(s)["level"]["enum"].reverse()),
        None,
    ),
    (
        "add an optional nested field",
        lambda s: props(s)["place"]["properties"].update(city={"type": "string"}),
        None,
    ),
    (
        "add a required field",
        lambda s: (props(s).update(ref={"type": "string"}), s["required"].append("ref")),
        "/ref",
    ),
    (
        "remove a required field",
        lambda s: (props(s).pop("count"), s["required"].remove("count")),
        "/count",
    ),
    ("make an optional field required", lambda s: s["required"].append("note"), "/note"),
    ("make a required field optional", lambda s: s["required"].remove("count"), "/count"),
    (
        "narrow a type: number to integer",
        lambda s: props(s)["score"].update(type="integer"),
        "/score",
    ),
    (
        "widen a type: integer to number",
        lambda s: props(s)["count"].update(type="number"),
        "/count",
    ),
    ("widen a type: nullable", lambda s: props(s)["note"].update(type=["string", "null"]), "/note"),
    ("narrow an enum", lambda s: props(s)["level"]["enum"].remove("3"), "/level"),
    ("widen an enum", lambda s: props(s)["level"]["enum"].append("4"), "/level"),
    ("lower maxLength", lambda s: props(s)["name"].update(maxLength=50), "/name"),
    ("raise maxLength", lambda s: props(s)["name"].update(maxLength=200), "/name"),
    ("raise a minimum", lambda s: props(s)["count"].update(minimum=1), "/count"),
    (
        "change a pattern",
        lambda s: props(s)["place"]["properties"]["region"].update(pattern="^35[0-9]{4}$"),
        "/place/region",
    ),
    ("narrow array items", lambda s: props(s)["tags"]["items"].update(maxLength=8), "/tags/-"),
    ("narrow an enum behind a $ref", lambda s: s["$defs"]["kind"]["enum"].remove("b"), "/kind"),
    (
        "add a required nested field",
        lambda s: (
            props(s)["place"]["properties"].update(city={"type": "string"}),
            props(s)["place"]["required"].append("city"),
        ),
        "/place/city",
    ),
    ("rename an optional field", lambda s: rename(s, "note", "remark"), "/note"),
    ("rename a required field", lambda s: rename(s, "name", "title"), "/name"),
    (
        "alternatives on the producer",
        lambda s: props(s).update(count={"anyOf": [{"type": "integer"}, {"type": "string"}]}),
        "/count",
    ),
]


@pytest.mark.parametrize(("case", "edit", "pointer"), CHANGES, ids=[c[0] for c in CHANGES])
def test_schema_change_is_judged_by_the_rules(
    case: str, edit: Callable[[Schema], object], pointer: str | None
) -> None:
    breaks = judge_change(BASE, changed(edit))
    if pointer is None:
        assert breaks == [], case
    else:
        assert breaks, f"{case} must be a break"
        assert pointer in {b.pointer for b in breaks}, breaks
        assert all(b.reason for b in breaks)


def test_the_table_covers_at_least_twelve_changes_of_both_kinds() -> None:
    assert len(CHANGES) >= 12
    assert sum(p is None for _, _, p in CHANGES) >= 4
    assert sum(p is not None for _, _, p in CHANGES) >= 12


def test_a_rename_is_named_as_such() -> None:
    breaks = judge_change(BASE, changed(lambda s: rename(s, "note", "remark")))
    assert [b.reason for b in breaks if b.pointer == "/note"] == [
        "renamed to 'remark' (same schema): a rename is a break"
    ]


def obj(**properties: Any) -> Schema:
    return {"type": "object", "properties": properties}


TREE: Schema = {
    "$defs": {
        "node": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
            },
            "required": ["name"],
        }
    },
    "$ref": "#/$defs/node",
}

# (case, producer, consumer, compatible?)
PAIRS: list[tuple[str, Any, Any, bool]] = [
    (
        "widened enum, consumer tolerant of values",
        {"type": "string", "enum": ["1", "4"]},
        {"type": "string"},
        True,
    ),
    (
        "widened enum, consumer with the old enum",
        {"type": "string", "enum": ["1", "4"]},
        {"type": "string", "enum": ["1", "2"]},
        False,
    ),
    ("integer into number", {"type": "integer"}, {"type": "number"}, True),
    ("number into integer", {"type": "number"}, {"type": "integer"}, False),
    ("integer into multipleOf 1", {"type": "integer"}, {"type": "number", "multipleOf": 1}, True),
    (
        "exclusive into inclusive bound",
        {"type": "number", "exclusiveMinimum": 0},
        {"type": "number", "minimum": 0},
        True,
    ),
    (
        "inclusive into exclusive bound",
        {"type": "number", "minimum": 0},
        {"type": "number", "exclusiveMinimum": 0},
        False,
    ),
    ("boolean into one boolean", {"type": "boolean"}, {"enum": [True]}, False),
    ("anything into an object", True, {"type": "object"}, False),
    (
        "a type into consumer anyOf",
        {"type": ["integer", "string"]},
        {"anyOf": [{"type": "integer"}, {"type": "string"}]},
        True,
    ),
    (
        "consumer oneOf matched twice",
        {"type": "integer"},
        {"oneOf": [{"type": "integer"}, {"type": "number"}]},
        False,
    ),
    (
        "consumer oneOf of consts",
        {"enum": ["a", "b"]},
        {"oneOf": [{"const": "a"}, {"const": "b"}]},
        True,
    ),
    (
        "tagged producer oneOf",
        {"oneOf": [obj(kind={"const": "x"}), obj(kind={"const": "y"})], "required": ["kind"]},
        obj(kind={"enum": ["x", "y"]}),
        True,
    ),
    (
        "producer allOf merged",
        {
            "allOf": [
                {**obj(a={"type": "integer"}), "required": ["a"]},
                {**obj(b={"type": "string"}), "required": ["b"]},
            ]
        },
        {**obj(a={"type": "number"}), "required": ["a", "b"]},
        True,
    ),
    (
        "extra field into a strict consumer",
        {**obj(a={"type": "string"}, b={"type": "string"}), "additionalProperties": False},
        {**obj(a={"type": "string"}), "additionalProperties": False},
        False,
    ),
    (
        "extra field into a tolerant consumer",
        {**obj(a={"type": "string"}, b={"type": "string"}), "additionalProperties": False},
        obj(a={"type": "string"}),
        True,
    ),
    (
        "consumer keyword not modelled",
        {"type": "string"},
        {"type": "string", "not": {"const": ""}},
        False,
    ),
    (
        "consumer $ref that cannot be followed",
        {"type": "string"},
        {"$ref": "https://elsewhere.example/x.json"},
        False,
    ),
    ("recursive schema into itself", TREE, TREE, True),
    (
        "recursive schema into a stricter self",
        TREE,
        {**TREE, "$defs": {"node": {**TREE["$defs"]["node"], "required": ["name", "children"]}}},
        False,
    ),
    (
        "unique items required",
        {"type": "array", "items": {"type": "string"}},
        {"type": "array", "uniqueItems": True},
        False,
    ),
    (
        "closed object within maxProperties",
        {**obj(a={}, b={}), "additionalProperties": False},
        {"type": "object", "maxProperties": 2},
        True,
    ),
]


@pytest.mark.parametrize(("case", "producer", "consumer", "ok"), PAIRS, ids=[p[0] for p in PAIRS])
def test_producer_against_consumer(case: str, producer: Any, consumer: Any, ok: bool) -> None:
    breaks = check_compatible(producer, consumer)
    assert (breaks == []) is ok, breaks


def test_a_compatible_verdict_is_never_contradicted_by_a_document() -> None:
    # The verdicts above, tried on documents: nothing a producer admits may be refused.
    samples = [None, True, 0, 1, -1, 1.5, "", "a", "b", "1", "2", "4", [], ["a", "a"], {}]
    samples += [{"a": 1, "b": "x"}, {"kind": "x"}, {"name": "n", "children": [{"name": "m"}]}]
    for case, producer, consumer, ok in PAIRS:
        if not ok:
            continue
        p, c = jsonschema.Draft202012Validator(producer), jsonschema.Draft202012Validator(consumer)
        for doc in samples:
            assert not (p.is_valid(doc) and not c.is_valid(doc)), (case, doc)


# --- consumer schemas ----------------------------------------------------------------------


def test_consumer_drops_only_the_refusal_of_unknown_fields() -> None:
    consumer = consumer_schema(BASE)
    assert "additionalProperties" not in consumer
    assert "additionalProperties" not in consumer["properties"]["place"]
    assert consumer["$id"] == "https://contracts.test/v1/example.consumer.json"
    rest = {k: v for k, v in consumer.items() if k not in ("$id", "$comment")}
    strict = {k: v for k, v in BASE.items() if k not in ("$id", "additionalProperties")}
    strict["properties"] = copy.deepcopy(BASE["properties"])
    del strict["properties"]["place"]["additionalProperties"]
    assert rest == strict
    assert BASE["additionalProperties"] is False  # the producer is not touched


@pytest.mark.parametrize(
    ("producer_id", "expected"),
    [
        (
            "https://contracts.gateway.example/v1/a.json",
            "https://contracts.gateway.example/v1/a.consumer.json",
        ),
        (
            "https://gateway.example/contracts/views/bank_credit/1",
            "https://gateway.example/contracts/views/bank_credit/1/consumer",
        ),
    ],
)
def test_consumer_ids_differ_from_producer_ids(producer_id: str, expected: str) -> None:
    assert consumer_id(producer_id) == expected


@pytest.mark.parametrize("message_type", MESSAGE_TYPES)
def test_consumer_ignores_unknown_fields_but_not_unknown_values(message_type: str) -> None:
    version = load_registry().get(message_type, 1)
    producer = jsonschema.Draft202012Validator(version.producer)
    consumer = jsonschema.Draft202012Validator(version.consumer)
    extended = VALID_DATA[message_type](added_in_a_later_revision="x")
    assert not producer.is_valid(extended)
    assert consumer.is_valid(extended)
    assert consumer.is_valid(VALID_DATA[message_type]())
    first_enum = next(
        (name for name, s in version.producer["properties"].items() if "enum" in s), None
    )
    if first_enum is not None:
        assert not consumer.is_valid(VALID_DATA[message_type](**{first_enum: "unheard-of"}))


# The connectors' view contracts (connectors/: one per consumer kind).
VIEWS = (
    ("bank_credit", 2),
    ("credit_disclosure", 2),
    ("insurance_premium", 2),
    ("market_regulator", 2),
    ("revocation_notice", 1),
    ("work_injury_premium", 1),
)
# Majors whose schema file is gone: kept in released.json for the documents already sent.
RETIRED_VIEWS = {("bank_credit", 1), ("credit_disclosure", 1), ("insurance_premium", 1)}
RETIRED_VIEWS |= {("market_regulator", 1)}


# --- the registry --------------------------------------------------------------------------


def test_message_producers_are_what_publishing_validates() -> None:
    registry = load_registry()
    versions = [v for v in registry.versions(live_only=True) if v.kind == "message"]
    assert [(v.name, v.major) for v in versions] == [
        (t, m) for t in MESSAGE_TYPES for m in SERVED_MAJORS[t]
    ]
    for version in versions:
        assert version.producer == schema_for(version.name, version.major)


def test_the_connectors_view_contracts_are_registered_live_views() -> None:
    views = {
        (v.name, v.major) for v in load_registry().versions(live_only=True) if v.kind == "view"
    }
    assert views == set(VIEWS)
    assert {(c.name, c.major) for c in CONNECTORS.values()} == set(VIEWS)
    retired = {
        (v.name, v.major) for v in load_registry().versions() if v.kind == "view" and not v.live
    }
    assert retired == RETIRED_VIEWS


def test_every_live_contract_passes_the_check() -> None:
    reports = check_registry(load_registry())
    served = sum(len(majors) for majors in SERVED_MAJORS.values())
    assert len(reports) == served + len(VIEWS)
    assert [r.as_dict() for r in reports if not r.compatible] == []
    assert all(r.compared >= 1 for r in reports)


def test_every_live_schema_is_a_released_revision() -> None:
    unreleased = [v.name for v in load_registry().versions(live_only=True) if v.revision is None]
    assert unreleased == [], (
        "these live schemas differ from their last released revision: once `gateway contracts "
        "check` passes, append each to contracts/schemas/released.json (a break needs a new "
        "major instead)"
    )


def broken(edit: Callable[[Schema], object]) -> ContractVersion:
    live = load_registry().get("grade.awarded", 1)
    producer = copy.deepcopy(live.producer)
    edit(producer)
    return ContractVersion("grade.awarded", "message", 1, producer, True, live.released)


def test_a_deliberately_broken_producer_is_caught() -> None:
    report = check_version(broken(lambda s: s["required"].remove("valid_to")))
    assert not report.compatible
    assert report.revision is None
    assert [(b.against, b.pointer) for b in report.breaks] == [("1.0", "/valid_to")]
    widened = check_version(broken(lambda s: s["properties"]["level"]["enum"].append("4")))
    assert [(b.against, b.pointer) for b in widened.breaks] == [("1.0", "/level")]


def test_an_unreleased_compatible_change_passes() -> None:
    report = check_version(broken(lambda s: s["properties"].update(remark={"type": "string"})))
    assert report.compatible
    assert report.revision is None


def test_unknown_contracts_are_refused() -> None:
    registry = load_registry()
    with pytest.raises(ContractError) as caught:
        registry.get("grade.awarded", 3)
    assert caught.value.code == "unknown_contract"
    assert "known majors: 1, 2" in caught.value.message
    with pytest.raises(ContractError):
        registry.get("grade.invented", 1)


VIEW: Schema = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://contracts.gateway.example/views/v1/insurer.standing.json",
    "type": "object",
    "properties": {"grade": {"type": "string", "enum": ["1", "2", "3"]}},
    "required": ["grade"],
    "additionalProperties": False,
}


def test_a_view_contract_is_registered_with_a_derived_consumer() -> None:
    registry = load_registry()
    view = registry.register_view("insurer.standing", 1, VIEW, released=[VIEW])
    assert (view.kind, view.live, view.revision) == ("view", True, "1.0")
    assert view.consumer == consumer_schema(VIEW)
    assert "insurer.standing" in [c.summary()["name"] for c in registry.contracts()]
    assert registry.get("insurer.standing", 1) is view
    assert check_version(view).compatible
    assert view.producer is not VIEW  # kept as a copy


@pytest.mark.parametrize(
    ("name", "major", "schema", "message"),
    [
        ("grade.awarded", 1, VIEW, "message type"),
        ("Insurer View", 1, VIEW, "view name"),
        ("insurer.standing", 0, VIEW, "major"),
        ("insurer.standing", 1, {**VIEW, "additionalProperties": True}, "unknown fields"),
        ("insurer.standing", 1, {**VIEW, "type": "array"}, "type: object"),
        ("insurer.standing", 1, {**VIEW, "properties": {"grade": {"type": "text"}}}, "JSON Schema"),
        (
            "insurer.standing",
            1,
            {**VIEW, "$schema": "http://json-schema.org/draft-07/schema#"},
            "2020-12",
        ),
    ],
)
def test_bad_view_registrations_are_refused(
    name: str, major: int, schema: Schema, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ContractRegistry().register_view(name, major, schema)


def test_a_name_and_major_register_once() -> None:
    registry = ContractRegistry()
    registry.register_view("insurer.standing", 1, VIEW)
    with pytest.raises(ValueError, match="registered already"):
        registry.register_view("insurer.standing", 1, VIEW)
    retired = ContractVersion("insurer.standing", "view", 2, VIEW, live=False, released=(VIEW,))
    registry.add(retired)
    assert [v.major for v in registry.versions(live_only=True)] == [1]
    assert [v["major"] for v in registry.contracts()[0].summary()["versions"]] == [1, 2]
