"""The contract registry over HTTP and on the command line, and `/asyncapi.json` against what
the gateway really sends: feed pages and webhook deliveries meet the document's schemas."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema_rs
import pytest
from contract_factories import make_award, make_registration
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient
from gateway_factories import Publisher, allow_subscribe, publish, register_publisher
from loopback import serving
from typer.testing import CliRunner

from connectors import CONNECTORS
from contracts.consumers import consumer_schema
from contracts.registry import MESSAGE_TYPES, SERVED_MAJORS, schema_for
from contracts.uscc import complete_uscc
from contracts.versions import ContractRegistry, ContractVersion, load_registry
from gateway.cli import app
from gateway.delivery.worker import make_client, run_once
from gateway.runtime import Runtime

VIEWS = sorted(CONNECTORS)  # the connectors' view contracts, listed after the messages
SPEC = Path(__file__).resolve().parents[2] / "data" / "asyncapi-3.0.0.schema.json"
A = complete_uscc("91350100MA000011")
runner = CliRunner()


def public_get(client: TestClient, url: str) -> Any:
    """GET without the operator's bearer token: these routes are public."""
    token = client.headers.pop("authorization")
    try:
        return client.get(url)
    finally:
        client.headers["authorization"] = token


def test_contracts_are_listed_without_a_token(client: TestClient) -> None:
    response = public_get(client, "/v1/contracts")
    assert response.status_code == 200, response.text
    contracts = response.json()["contracts"]
    assert [c["name"] for c in contracts] == [*MESSAGE_TYPES, *VIEWS]
    awarded = contracts[MESSAGE_TYPES.index("grade.awarded")]
    assert awarded["kind"] == "message"
    assert awarded["versions"] == [
        {
            "major": major,
            "live": True,
            "revision": f"{major}.0",
            "released_revisions": 1,
            "producer_id": f"https://contracts.gateway.example/v{major}/grade.awarded.json",
            "consumer_id": f"https://contracts.gateway.example/v{major}/grade.awarded.consumer.json",
            "href": f"/v1/contracts/grade.awarded/{major}",
        }
        for major in (1, 2)
    ]


@pytest.mark.parametrize("message_type", ["grade.awarded", "measure.applied"])
def test_a_version_has_its_producer_and_consumer_schemas(
    client: TestClient, message_type: str
) -> None:
    body = public_get(client, f"/v1/contracts/{message_type}/1").json()
    assert (body["name"], body["kind"], body["major"], body["live"]) == (
        message_type,
        "message",
        1,
        True,
    )
    assert body["producer"] == schema_for(message_type, 1)  # what publishing validates
    assert body["consumer"] == consumer_schema(schema_for(message_type, 1))
    assert body["producer"]["additionalProperties"] is False
    assert "additionalProperties" not in body["consumer"]


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/v1/contracts/grade.awarded/3", 404, "unknown_contract"),
        ("/v1/contracts/grade.invented/1", 404, "unknown_contract"),
        ("/v1/contracts/grade.awarded/0", 400, "invalid_request"),
    ],
)
def test_unknown_versions_are_problems(
    client: TestClient, path: str, status: int, code: str
) -> None:
    response = public_get(client, path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


@cache
def spec_validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SPEC.read_text(encoding="utf-8"))
    return jsonschema.Draft7Validator(
        schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )


def asyncapi(client: TestClient) -> dict[str, Any]:
    response = public_get(client, "/asyncapi.json")
    assert response.status_code == 200, response.text
    doc: dict[str, Any] = response.json()
    return doc


def test_asyncapi_json_is_valid_and_names_this_gateway(client: TestClient) -> None:
    doc = asyncapi(client)
    assert [e.message for e in spec_validator().iter_errors(doc)] == []
    assert doc["servers"]["gateway"]["host"] == "testserver"
    assert doc["info"]["version"] == client.app.version
    flows = doc["components"]["securitySchemes"]["publishToken"]["flows"]
    assert flows["clientCredentials"]["tokenUrl"] == "http://testserver/v1/oauth/token"
    forged = client.get("/asyncapi.json", headers={"host": "rp.other.example"}).json()
    assert forged["servers"]["gateway"]["host"] == "testserver"  # never the request's Host
    batch = doc["components"]["messages"]["batch"]["payload"]["schema"]
    assert batch["properties"]["messages"]["maxItems"] == 1000
    broken = copy.deepcopy(doc)
    broken["operations"]["readFeed"]["action"] = "poll"
    assert list(spec_validator().iter_errors(broken))


def payload(doc: dict[str, Any], message: str) -> jsonschema_rs.Validator:
    schema = doc["components"]["messages"][message]["payload"]["schema"]
    return jsonschema_rs.Draft202012Validator(schema, validate_formats=True, offline=True)


def assert_valid(validator: jsonschema_rs.Validator, instance: Any) -> None:
    errors = [f"{list(e.instance_path)}: {e.message}" for e in validator.iter_errors(instance)]
    assert errors == []


def subscribe(client: TestClient, agency: str, url: str | None, view: str) -> str:
    body = {"agency_id": agency, "url": url, "types": ["grade.awarded"], "view": view}
    if url is not None:
        body["signing"] = ["v1a", "v1"]
    response = client.post("/v1/subscriptions", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def award(client: TestClient, authority: Publisher) -> None:
    for token in (
        authority.message("enterprise.registered", make_registration(), subject=A),
        authority.message("grade.awarded", make_award(), subject=A),
    ):
        assert publish(client, token).status_code == 201


def test_feed_items_in_every_view_meet_the_document(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    register_publisher(runtime, "fj-picc", ["measure.applied"], roles=["insurer"])
    allow_subscribe(runtime, "fj-picc", ["grade.awarded"])
    register_publisher(runtime, "fj-bank", ["measure.applied"], roles=["bank"])
    allow_subscribe(runtime, "fj-bank", ["grade.awarded"], fields=["level", "valid_to"])
    feeds = {
        "full": subscribe(client, "fj-picc", None, "full"),
        "notice": subscribe(client, "fj-picc", None, "notice"),
        "fields": subscribe(client, "fj-bank", None, "fields"),
    }
    award(client, authority)
    doc = asyncapi(client)
    page_schema, event_schema = payload(doc, "feedPage"), payload(doc, "delivery.grade.awarded.v1")
    consumer = jsonschema_rs.Draft202012Validator(load_registry().get("grade.awarded", 1).consumer)
    items = {}
    for view, subscription in feeds.items():
        page = client.get(f"/v1/subscriptions/{subscription}/feed?after=-1").json()
        assert_valid(page_schema, page)
        [items[view]] = page["items"]
        assert_valid(event_schema, items[view])
    assert consumer.is_valid(items["full"]["data"])
    assert not event_schema.is_valid(items["full"] | {"data": {"level": "9"}})
    assert not event_schema.is_valid(items["notice"] | {"subject": "not a credit code"})
    assert "jws" in items["full"]
    assert set(items["fields"]["data"]) == {"level", "valid_to"}
    assert set(items["notice"]["data"]) == {"type", "subject", "issuer", "issued_at"}


def test_the_published_envelope_meets_its_publish_message(
    client: TestClient, authority: Publisher
) -> None:
    doc = asyncapi(client)
    envelope = authority.envelope("grade.awarded", make_award(), subject=A)
    assert_valid(payload(doc, "publish.grade.awarded.v2"), envelope)
    assert_valid(payload(doc, "publish.grade.awarded.v1"), envelope | {"contract": 1})
    assert_valid(
        payload(doc, "publish.enterprise.registered.v2"),
        authority.envelope("enterprise.registered", make_registration(), subject=A),
    )


@pytest.fixture
def receiver() -> Iterator[tuple[list[tuple[dict[str, str], bytes]], str]]:
    received: list[tuple[dict[str, str], bytes]] = []
    hooks = FastAPI()

    @hooks.post("/hook")
    async def hook(request: Request) -> Response:
        received.append((dict(request.headers), await request.body()))
        return Response(status_code=204)

    with serving(hooks) as base:
        yield received, base + "/hook"


def test_a_webhook_delivery_meets_the_document(
    client: TestClient, authority: Publisher, runtime: Runtime, receiver: Any
) -> None:
    received, url = receiver
    register_publisher(runtime, "fj-picc", ["measure.applied"], roles=["insurer"])
    allow_subscribe(runtime, "fj-picc", ["grade.awarded"])
    subscribe(client, "fj-picc", url, "full")
    award(client, authority)
    with make_client(runtime) as http:
        run_once(runtime, http)
    [(headers, body)] = received
    doc = asyncapi(client)
    message = doc["components"]["messages"]["delivery.grade.awarded.v1"]
    assert headers["content-type"] == message["contentType"]
    header_errors = jsonschema.Draft7Validator(message["headers"]).iter_errors(headers)
    assert [e.message for e in header_errors] == []
    assert_valid(payload(doc, "delivery.grade.awarded.v1"), json.loads(body))


# --- gateway contracts list / check ----------------------------------------------------------


def test_contracts_check_passes_with_a_table() -> None:
    result = runner.invoke(app, ["contracts", "check"])
    assert result.exit_code == 0, result.output
    assert "compatible" in result.output
    report = runner.invoke(app, ["contracts", "check", "--json"])
    assert report.exit_code == 0
    body = json.loads(report.output)
    assert body["compatible"] is True
    served = [t for t in MESSAGE_TYPES for _ in SERVED_MAJORS[t]]
    assert [c["name"] for c in body["contracts"]] == [*served, *VIEWS]


def test_contracts_check_fails_listing_the_breaks(monkeypatch: pytest.MonkeyPatch) -> None:
    live = load_registry().get("grade.awarded", 1)
    producer = copy.deepcopy(live.producer)
    producer["required"].remove("valid_to")  # a schema edited without a new major
    broken = ContractVersion("grade.awarded", "message", 1, producer, True, live.released)
    registry = ContractRegistry(
        broken if (v.name, v.major) == ("grade.awarded", 1) else v
        for v in load_registry().versions()
    )
    monkeypatch.setattr("contracts.versions.load_registry", lambda: registry)

    result = runner.invoke(app, ["contracts", "check"])
    assert result.exit_code == 1
    assert "breaks" in result.output
    report = runner.invoke(app, ["contracts", "check", "--json"])
    assert report.exit_code == 1
    body = json.loads(report.output)
    assert body["compatible"] is False
    [failing] = [c for c in body["contracts"] if not c["compatible"]]
    assert failing["name"] == "grade.awarded"
    assert [(b["against"], b["pointer"]) for b in failing["breaks"]] == [("1.0", "/valid_to")]


def test_contracts_list() -> None:
    result = runner.invoke(app, ["contracts", "list", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert [c["name"] for c in listed] == [*MESSAGE_TYPES, *VIEWS]
    # every live version is a released revision; retired view majors have none live
    revisions = {v["revision"] for c in listed for v in c["versions"] if v["live"]}
    assert None not in revisions
    assert runner.invoke(app, ["contracts", "list"]).exit_code == 0
    for command in (["contracts"], ["contracts", "check"], ["contracts", "list"]):
        assert runner.invoke(app, [*command, "--help"]).exit_code == 0
