"""Credit queries: standing with an attestation, batches, purpose, and the access records."""

from __future__ import annotations

import json

import pytest
from contract_factories import USCC, make_award, make_listing, make_registration, make_revocation
from fastapi.testclient import TestClient
from gateway_factories import Publisher, allow_query, operator_token, publish, register_publisher
from joserfc import jws as joserfc_jws
from joserfc.jwk import KeySet

from contracts.uscc import complete_uscc
from gateway.clock import FixedClock
from gateway.runtime import Runtime


@pytest.fixture
def bank_headers(client: TestClient, authority: Publisher, runtime: Runtime) -> dict[str, str]:
    register_publisher(runtime, "fj-cib", ["measure.applied"], roles=["bank"])
    allow_query(runtime, "fj-cib", "standing")
    for message_type, data in (
        ("enterprise.registered", make_registration()),
        ("grade.awarded", make_award()),
        ("grade.revoked", make_revocation()),
        (
            "listing.added",
            make_listing(term_start="2026-10-01", decided_on="2026-10-01", term_end="2029-10-01"),
        ),
    ):
        assert publish(client, authority.message(message_type, data)).status_code == 201
    return {"authorization": f"Bearer {operator_token(runtime, 'query', 'fj-cib')}"}


def test_standing_with_attestation_that_verifies_with_joserfc(
    client: TestClient, bank_headers: dict[str, str]
) -> None:
    response = client.get(f"/v1/enterprises/{USCC}?purpose=loan+application", headers=bank_headers)
    assert response.status_code == 200, response.text
    body = response.json()
    standing = body["standing"]
    assert standing["grade"]["status"] == "revoked"
    assert standing["lists"][0]["list_type"] == "black"
    assert set(standing["measures"]) == {"bank"}  # only the caller's role
    assert {m["code"] for m in standing["measures"]["bank"]} == {
        "bank.no_new_loans",
        "bank.credit_review",
    }
    keys = KeySet.import_key_set(client.get("/.well-known/jwks.json").json())
    with pytest.warns(Warning, match="RFC 9864"):
        verified = joserfc_jws.deserialize_compact(body["attestation"], keys, algorithms=["EdDSA"])
    claims = json.loads(verified.payload)
    assert claims["answer"] == standing
    assert claims["audience"] == "fj-cib"
    assert claims["log_size"] >= 4


def test_batch_answers_per_item_and_refuses_1001(
    client: TestClient, bank_headers: dict[str, str]
) -> None:
    codes = [USCC, USCC[:-1] + "0", complete_uscc("91350100MA000099")]
    body = client.post(
        "/v1/enterprises/query",
        json={"codes": codes, "purpose": "portfolio review"},
        headers=bank_headers,
    ).json()
    assert [r["status"] for r in body["results"]] == [200, 400, 404]
    assert body["results"][1]["problem"]["code"] == "invalid_uscc"
    assert body["attestation"]
    too_many = client.post(
        "/v1/enterprises/query", json={"codes": [USCC] * 1001, "purpose": "x"}, headers=bank_headers
    )
    assert too_many.status_code == 413
    assert too_many.json()["code"] == "batch_too_large"


def test_every_query_is_recorded_refusals_included(
    client: TestClient, bank_headers: dict[str, str]
) -> None:
    assert (
        client.get(f"/v1/enterprises/{USCC}", headers=bank_headers).json()["code"]
        == "missing_purpose"
    )
    no_token = client.get(f"/v1/enterprises/{USCC}?purpose=x", headers={"authorization": ""})
    assert no_token.status_code == 401
    assert (
        client.get(
            f"/v1/enterprises/{USCC}?purpose=credit+rating", headers=bank_headers
        ).status_code
        == 200
    )
    records = client.get(f"/v1/enterprises/{USCC}/access-records?purpose=audit").json()["items"]
    assert [(r["agency_id"], r["purpose"], r["result"]) for r in records] == [
        ("fj-cib", "credit rating", "ok"),
        (None, "x", "missing_token"),
        ("fj-cib", None, "missing_purpose"),
    ]
    refused = client.get(
        f"/v1/enterprises/{USCC}/access-records?purpose=audit", headers=bank_headers
    )
    assert (refused.status_code, refused.json()["code"]) == (403, "not_permitted")


def test_a_regulator_with_the_right_reads_who_accessed(
    client: TestClient, bank_headers: dict[str, str], runtime: Runtime
) -> None:
    """Not only operators: an agency holding an access_records query right (a regulator, the
    supervising agency) reads the records, cut to its field view."""
    assert client.get(f"/v1/enterprises/{USCC}?purpose=loan", headers=bank_headers).is_success
    register_publisher(runtime, "fj-scjg", [], roles=["market_regulator"])
    allow_query(runtime, "fj-scjg", "access_records", ["agency_id", "at", "purpose"])
    regulator = {"authorization": f"Bearer {operator_token(runtime, 'query', 'fj-scjg')}"}
    url = f"/v1/enterprises/{USCC}/access-records?purpose=supervision"
    items = client.get(url, headers=regulator).json()["items"]
    assert [(i["agency_id"], i["purpose"]) for i in items] == [("fj-cib", "loan")]
    assert set(items[0]) == {"id", "agency_id", "at", "purpose", "count", "last_at"}


def test_a_grade_past_its_validity_is_answered_lapsed_before_its_expiry_is_published(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    """domain.md §3: a grade not renewed lapses at valid_to. Until grade.expired is published
    the ledgers still hold it active; the attested standing must not."""
    register_publisher(runtime, "fj-cib", ["measure.applied"], roles=["bank"])
    allow_query(runtime, "fj-cib", "standing")
    publish(client, authority.message("enterprise.registered", make_registration()))
    award = make_award(level="1", valid_to="2026-12-31")
    assert publish(client, authority.message("grade.awarded", award)).status_code == 201

    def grade_and_bank_measures() -> tuple[str, str, set[str]]:
        headers = {"authorization": f"Bearer {operator_token(runtime, 'query', 'fj-cib')}"}
        answer = client.get(f"/v1/enterprises/{USCC}?purpose=renewal+check", headers=headers)
        assert answer.status_code == 200, answer.json()
        standing = answer.json()["standing"]
        codes = {m["code"] for m in standing["measures"].get("bank", [])}
        return standing["grade"]["status"], standing["grade"]["valid_to"], codes

    assert grade_and_bank_measures() == ("active", "2026-12-31", {"bank.grade_factor.level1"})
    assert isinstance(runtime.clock, FixedClock)
    runtime.clock.advance(days=60)  # 2026-12-31, its last day: still held
    assert grade_and_bank_measures()[0] == "active"
    runtime.clock.advance(days=1)  # lapsed
    assert grade_and_bank_measures() == ("expired", "2026-12-31", set())


def test_a_closed_enterprise_s_standing_says_so_and_carries_no_measure(
    client: TestClient, bank_headers: dict[str, str], authority: Publisher
) -> None:
    before = client.get(f"/v1/enterprises/{USCC}?purpose=review", headers=bank_headers)
    assert before.json()["standing"]["closure"] is None
    closure = {
        "closed_on": "2026-10-30",
        "closure": "licence_revoked",
        "deciding_body": "宁德市市场监督管理局",
    }
    assert publish(client, authority.message("enterprise.closed", closure)).status_code == 201
    standing = client.get(f"/v1/enterprises/{USCC}?purpose=review", headers=bank_headers).json()
    assert standing["standing"]["closure"] == {
        "closed_on": "2026-10-30",
        "closure": "licence_revoked",
    }
    assert standing["standing"]["measures"] == {}  # no agency acts on a closed enterprise
    assert standing["standing"]["ledger_status"] == "未达标"
