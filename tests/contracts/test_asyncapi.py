"""The generated AsyncAPI 3.0.0 document: valid against the official AsyncAPI JSON Schema
(vendored from @asyncapi/specs, see tests/data/README.md), every reference resolving, every
payload a 2020-12 schema that the real message bodies meet."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema_rs
import pytest
from contract_factories import data_for, make_envelope, optional_for

from contracts.asyncapi import SCHEMA_FORMAT, asyncapi_document
from contracts.registry import MESSAGE_TYPES, SERVED_MAJORS, schema_for
from contracts.versions import load_registry

DATA = Path(__file__).resolve().parents[1] / "data"
SPEC = DATA / "asyncapi-3.0.0.schema.json"


@cache
def spec_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SPEC.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    assert cls is jsonschema.Draft7Validator  # the schema says draft-07; a surprise is a bug
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def document() -> dict[str, Any]:
    return asyncapi_document(load_registry(), base_url="https://gateway.example")


def spec_errors(doc: dict[str, Any]) -> list[str]:
    return [e.message for e in spec_validator().iter_errors(doc)]


def test_the_vendored_schema_is_the_one_the_readme_names() -> None:
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    assert "@asyncapi/specs` **6.11.1**" in readme
    digest = hashlib.sha256(SPEC.read_bytes()).hexdigest()
    assert digest in readme
    assert json.loads(SPEC.read_text(encoding="utf-8"))["title"] == "AsyncAPI 3.0.0 schema."


def test_the_document_is_valid_asyncapi_3() -> None:
    doc = document()
    assert doc["asyncapi"] == "3.0.0"
    assert spec_errors(doc) == []


CORRUPTIONS: list[tuple[str, Callable[[dict[str, Any]], object]]] = [
    ("another spec version", lambda d: d.update(asyncapi="2.6.0")),
    ("no info", lambda d: d.pop("info")),
    ("unknown action", lambda d: d["operations"]["readFeed"].update(action="publish")),
    ("operation without channel", lambda d: d["operations"]["publishBatch"].pop("channel")),
    ("address not a string", lambda d: d["channels"]["feed"].update(address=42)),
    (
        "unknown HTTP method",
        lambda d: d["operations"]["readFeed"]["bindings"]["http"].update(method="FETCH"),
    ),
    ("server without protocol", lambda d: d["servers"]["gateway"].pop("protocol")),
    (
        "payload schema invalid",
        lambda d: d["components"]["messages"]["receipt"].update(payload={"type": 12}),
    ),
    ("unknown root field", lambda d: d.update(webhooks={})),
]


@pytest.mark.parametrize(("case", "corrupt"), CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_a_corrupted_copy_fails_validation(
    case: str, corrupt: Callable[[dict[str, Any]], object]
) -> None:
    doc = copy.deepcopy(document())
    corrupt(doc)
    assert spec_errors(doc), f"{case} must be refused"


def references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for value in node:
            yield from references(value)


def follow(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for token in ref.removeprefix("#/").split("/"):
        node = node[token.replace("~1", "/").replace("~0", "~")]
    return node


def test_every_reference_resolves_and_operations_use_their_channels_messages() -> None:
    doc = document()
    refs = list(references(doc))
    assert len(refs) > 50
    for ref in refs:
        assert ref.startswith("#/"), ref
        follow(doc, ref)
    for name, operation in doc["operations"].items():
        channel = operation["channel"]["$ref"]
        for message in operation["messages"] + operation.get("reply", {}).get("messages", []):
            assert message["$ref"].startswith(channel + "/messages/"), name


def test_every_live_type_has_publish_delivery_and_feed() -> None:
    doc = document()
    for message_type in MESSAGE_TYPES:
        key = f"{message_type}.v1"
        assert doc["operations"][f"publish.{key}"]["action"] == "send"
        assert doc["operations"][f"receive.{key}"]["action"] == "receive"
        assert doc["channels"][f"delivery.{key}"]["address"] is None  # the subscription's url
        assert key in doc["channels"]["publish"]["messages"]
    assert doc["channels"]["publish"]["address"] == "/v1/messages"
    assert doc["channels"]["feed"]["address"] == "/v1/subscriptions/{subscription_id}/feed"
    assert doc["servers"]["gateway"] == {
        "host": "gateway.example",
        "protocol": "https",
        "description": "The gateway's HTTP API.",
    }


def payloads(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, message in doc["components"]["messages"].items():
        yield f"messages/{name}", message["payload"]
    for name, schema in doc["components"]["schemas"].items():
        yield f"schemas/{name}", schema


def test_every_payload_is_a_2020_12_schema_in_a_multi_format_object() -> None:
    for where, payload in payloads(document()):
        assert payload["schemaFormat"] == SCHEMA_FORMAT, where
        jsonschema.Draft202012Validator.check_schema(payload["schema"])
        jsonschema_rs.Draft202012Validator(payload["schema"], validate_formats=True, offline=True)


def payload(doc: dict[str, Any], message: str) -> jsonschema_rs.Validator:
    schema = doc["components"]["messages"][message]["payload"]["schema"]
    return jsonschema_rs.Draft202012Validator(schema, validate_formats=True, offline=True)


SERVED = [(t, m) for t in MESSAGE_TYPES for m in SERVED_MAJORS[t]]


@pytest.mark.parametrize(("message_type", "major"), SERVED)
def test_published_envelopes_meet_their_payload_and_no_other(message_type: str, major: int) -> None:
    doc = document()
    data = data_for(message_type, major) | optional_for(message_type, major)
    envelope = make_envelope(message_type=message_type, contract=major, data=data)
    assert payload(doc, f"publish.{message_type}.v{major}").is_valid(envelope)
    other = MESSAGE_TYPES[(MESSAGE_TYPES.index(message_type) + 1) % len(MESSAGE_TYPES)]
    assert not payload(doc, f"publish.{other}.v1").is_valid(envelope)
    with_unknown = make_envelope(
        message_type=message_type, contract=major, data=data | {"unheard_of": 1}
    )
    assert not payload(doc, f"publish.{message_type}.v{major}").is_valid(with_unknown)


@pytest.mark.parametrize("message_type", MESSAGE_TYPES)
def test_contract_schemas_in_the_document_are_the_registry_s(message_type: str) -> None:
    doc = document()
    version = load_registry().get(message_type, 1)
    schemas = doc["components"]["schemas"]
    assert schemas[f"{message_type}.v1.producer"]["schema"] == schema_for(message_type, 1)
    assert schemas[f"{message_type}.v1.consumer"]["schema"] == version.consumer
    envelope = doc["components"]["messages"][f"publish.{message_type}.v1"]["payload"]["schema"]
    data = envelope["properties"]["data"]
    assert data == {k: v for k, v in schema_for(message_type, 1).items() if k != "$schema"}


def test_a_view_contract_appears_among_the_schemas() -> None:
    registry = load_registry()
    registry.register_view(
        "insurer.standing",
        1,
        {
            "type": "object",
            "properties": {"grade": {"type": "string"}},
            "additionalProperties": False,
        },
    )
    doc = asyncapi_document(registry, base_url="http://127.0.0.1:8000/base")
    assert "insurer.standing.v1.producer" in doc["components"]["schemas"]
    assert "insurer.standing.v1.consumer" in doc["components"]["schemas"]
    assert doc["servers"]["gateway"]["pathname"] == "/base"
    assert spec_errors(doc) == []


def test_a_delivered_event_meets_its_payload_and_its_sequence_sorts_as_text() -> None:
    from gateway.delivery.webhooks import cloud_event

    doc = document()
    events = [
        json.loads(
            cloud_event(
                source="test.gateway.example/log",
                message_id="7cc31130-de06-44c1-8a2b-490cc20329a5",
                message_type="grade.revoked",
                subject="91350203AY4CL12T2P",
                time="2026-12-07T08:48:01+00:00",
                sequence=index,
                subseq=1,
                leaf_hash=hashlib.sha256(b"x").digest(),
                data=data_for("grade.revoked", 2),
                jws=None,
            )
        )
        for index in (9, 10, 995, 1000)
    ]
    for event in events:
        assert payload(doc, "delivery.grade.revoked.v2").is_valid(event), event
    texts = [e["sequence"] for e in events]
    assert sorted(texts) == texts  # "10" after "9": zero-padded, as the extension requires
