"""Issue 20, finding 8: `ledger.read` showed every message's full JWS whatever the agency's field
views (`GET /v1/messages/{id}`, `GET /v1/log/entries`, bundles). Reading messages whole is now
a right per message type (`read`, deny by default, admins included, each grant a log entry);
the issuer reads its own; anyone else gets the leaf hash and proof, and what its subscribe view
shows. Proofs stay public."""

from __future__ import annotations

import json
from typing import Any

import pytest
from contract_factories import make_listing, make_registration
from fastapi.testclient import TestClient
from gateway_factories import Publisher, allow_subscribe, bearer, publish, register_publisher
from sqlalchemy import select
from typer.testing import CliRunner

from gateway.models import LogEntry
from gateway.registry.scopes import grant_scopes
from gateway.runtime import Runtime
from gateway.transparency.bundle_check import check_bundle
from keys.jws import parse_compact

LISTING_VIEW = ["list_type", "term_end"]


@pytest.fixture
def listed(client: TestClient, authority: Publisher, runtime: Runtime) -> dict[str, Any]:
    """A registration and a black-listing published; a bank with ledger.read and a cut
    subscribe view of listing.added; another agency with ledger.read and no right."""
    assert publish(client, authority.message("enterprise.registered", make_registration()))
    token = authority.message("listing.added", make_listing())
    assert publish(client, token).status_code == 201
    register_publisher(runtime, "fj-cib", [], roles=["bank"])
    register_publisher(runtime, "fj-other", [], roles=["bank"])
    allow_subscribe(runtime, "fj-cib", ["listing.added"], fields=LISTING_VIEW)
    with runtime.db.transaction() as session:
        for agency in ("fj-cib", "fj-other"):
            grant_scopes(session, runtime.signer, agency, ["ledger.read"], runtime.clock.now())
    payload = json.loads(parse_compact(token).payload)
    return {"token": token.decode(), "id": payload["id"]}


def as_agency(runtime: Runtime, agency: str) -> dict[str, str]:
    return bearer(runtime, agency, "ledger.read")


def never_the_message(answer: Any, token: str) -> None:
    """Neither the JWS nor its payload or signature appears anywhere in the answer."""
    _header, payload, signature = token.split(".")
    assert payload not in answer.text
    assert signature not in answer.text
    assert '"jws"' not in answer.text


def test_without_a_read_right_a_message_is_its_hashes_or_its_subscribe_view(
    client: TestClient, runtime: Runtime, listed: dict[str, Any]
) -> None:
    url = f"/v1/messages/{listed['id']}"
    other = client.get(url, headers=as_agency(runtime, "fj-other"))
    assert other.status_code == 200, other.text
    never_the_message(other, listed["token"])
    shown = other.json()
    assert set(shown) == {"message_id", "index", "kind", "leaf_hash", "view"}
    assert shown["view"] == "hashes"
    proof = client.get(f"/v1/log/proofs/inclusion?tree_size={shown['index'] + 1}&index=0")
    assert proof.status_code == 200  # public: hashes, not contents

    bank = client.get(url, headers=as_agency(runtime, "fj-cib"))
    never_the_message(bank, listed["token"])
    cut = bank.json()
    assert cut["view"] == "fields"
    assert set(cut["data"]) == set(LISTING_VIEW)
    assert cut["receipt"].count(".") == 2  # the gateway's: names type, subject, leaf hash
    assert cut["leaf_hash"] == shown["leaf_hash"]

    operator = client.get(url)  # scope admin, no read right: deny by default, admins included
    never_the_message(operator, listed["token"])
    assert operator.json()["view"] == "hashes"

    issuer = client.get(url, headers=as_agency(runtime, "fj-yjt"))  # it signed those bytes
    assert issuer.json()["jws"] == listed["token"]


def test_a_read_right_is_granted_like_the_others_and_logged(
    client: TestClient, runtime: Runtime, listed: dict[str, Any]
) -> None:
    granted = client.put("/v1/agencies/fj-cib/rights/read/listing.added")
    assert granted.status_code == 200, granted.text
    assert granted.json()["read"] == ["listing.added"]
    url = f"/v1/messages/{listed['id']}"
    whole = client.get(url, headers=as_agency(runtime, "fj-cib")).json()
    assert (whole["view"], whole["jws"]) == ("raw", listed["token"])
    with runtime.db.reader() as session:
        entry = session.scalars(
            select(LogEntry.jws)
            .where(LogEntry.type == "gateway.rights.granted")
            .order_by(LogEntry.idx)
        ).all()[-1]
    assert json.loads(parse_compact(entry).payload)["data"] == {
        "agency_id": "fj-cib",
        "read": "listing.added",
        "fields": None,
    }
    assert client.delete("/v1/agencies/fj-cib/rights/read/listing.added").status_code == 200
    assert client.get(url, headers=as_agency(runtime, "fj-cib")).json()["view"] == "fields"


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        (
            "/v1/agencies/fj-cib/rights/read/listing.added",
            {"fields": ["list_type"]},
            "invalid_fields",
        ),
        ("/v1/agencies/fj-cib/rights/read/listing.nonsense", None, "unknown_type"),
        ("/v1/agencies/fj-cib/rights/write/listing.added", None, "invalid_request"),
    ],
)
def test_a_read_right_that_cannot_be_is_400_and_grants_nothing(
    client: TestClient, listed: dict[str, Any], path: str, body: Any, code: str
) -> None:
    refused = client.put(path, json=body)
    assert (refused.status_code, refused.json()["code"]) == (400, code)
    assert client.get("/v1/agencies/fj-cib/rights").json()["read"] == []


def test_log_entries_show_jws_only_where_the_caller_may_read(
    client: TestClient, runtime: Runtime, listed: dict[str, Any]
) -> None:
    answer = client.get("/v1/log/entries?start=0&end=1000", headers=as_agency(runtime, "fj-cib"))
    assert answer.status_code == 200, answer.text
    entries = answer.json()["entries"]
    messages = [e for e in entries if e["kind"] == "message"]
    assert {e["view"] for e in messages} == {"hashes", "fields"}
    assert all("jws" not in e for e in messages)
    (listing,) = [e for e in messages if e["view"] == "fields"]
    assert set(listing["data"]) == set(LISTING_VIEW)
    registration = next(e for e in messages if e["view"] == "hashes")
    assert set(registration) == {"index", "kind", "message_id", "leaf_hash", "view"}
    gateway_entries = [e for e in entries if e["kind"] == "gateway"]
    assert gateway_entries
    assert all(e["jws"].count(".") == 2 for e in gateway_entries)  # the registry's history
    assert listed["token"].split(".")[1] not in answer.text


def test_a_bundle_without_the_read_right_proves_inclusion_of_the_leaf_hash(
    client: TestClient, runtime: Runtime, listed: dict[str, Any], authority: Publisher
) -> None:
    client.get("/v1/log/checkpoint")
    url = f"/v1/messages/{listed['id']}/bundle"
    jwks = client.get("/.well-known/jwks.json").json()
    vkey = client.get("/v1/log/vkey").text
    publisher = authority.key.public_key.jwk()
    for agency, view in (("fj-other", "hashes"), ("fj-cib", "fields")):
        answer = client.get(url, headers=as_agency(runtime, agency))
        assert answer.status_code == 200, answer.text
        never_the_message(answer, listed["token"])
        bundle = answer.json()
        assert bundle["view"] == view
        checks = check_bundle(bundle, gateway_jwks=jwks, log_vkey=vkey, publisher_jwk=publisher)
        assert all(c.ok for c in checks), checks
        assert checks[-1].name == "inclusion in the checkpoint"
    whole = client.get(url, headers=as_agency(runtime, "fj-yjt")).json()
    assert whole["jws"] == listed["token"]
    checks = check_bundle(whole, gateway_jwks=jwks, log_vkey=vkey, publisher_jwk=publisher)
    assert [c.ok for c in checks] == [True] * 7


def test_the_cli_grants_and_revokes_a_read_right(
    runtime: Runtime, listed: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.cli import app

    monkeypatch.setenv("GATEWAY_DATA_DIR", str(runtime.settings.data_dir))
    monkeypatch.setenv("GATEWAY_DATABASE_URL", runtime.settings.effective_database_url)
    runner = CliRunner()
    granted = runner.invoke(app, ["agency", "grant", "fj-cib", "--read", "listing.added", "--json"])
    assert granted.exit_code == 0, granted.output
    assert json.loads(granted.output)["read"] == ["listing.added"]
    revoked = runner.invoke(app, ["agency", "revoke", "fj-cib", "--read", "listing.added"])
    assert revoked.exit_code == 0, revoked.output
    again = runner.invoke(app, ["agency", "revoke", "fj-cib", "--read", "listing.added"])
    assert again.exit_code == 1
    assert "no_such_right" in again.output
