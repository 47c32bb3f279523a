"""Every query is recorded (protocol.md §7: who, when, which enterprise, stated purpose), and
the records are bounded: what the access review found about the query routes, each a test."""

from __future__ import annotations

from typing import Any

import pytest
from contract_factories import USCC, make_award, make_listing, make_registration, make_revocation
from fastapi.testclient import TestClient
from gateway_factories import Publisher, allow_query, bearer, publish, register_publisher
from sqlalchemy import select

from gateway.models import AccessRecord
from gateway.publishing.orchestration import publish as publish_messages
from gateway.runtime import Runtime

Record = tuple[str | None, str | None, str, str | None, str]


def records(runtime: Runtime, after: int = 0) -> list[Record]:
    """(agency, uscc, action, purpose, result) of each access record past id `after`."""
    with runtime.db.reader() as session:
        rows = session.scalars(
            select(AccessRecord).where(AccessRecord.id > after).order_by(AccessRecord.id)
        )
        return [(r.agency_id, r.uscc, r.action, r.purpose, r.result) for r in rows]


def last_id(runtime: Runtime) -> int:
    with runtime.db.reader() as session:
        return session.scalar(select(AccessRecord.id).order_by(AccessRecord.id.desc())) or 0


@pytest.fixture
def graded(client: TestClient, authority: Publisher, runtime: Runtime) -> str:
    """A registered enterprise with a grade, and a bank holding the whole standing right."""
    for message_type, data in (
        ("enterprise.registered", make_registration()),
        ("grade.awarded", make_award()),
    ):
        assert publish(client, authority.message(message_type, data)).status_code == 201
    register_publisher(runtime, "fj-cib", [], roles=["bank"])
    allow_query(runtime, "fj-cib", "standing")
    return USCC


def test_a_refusal_after_the_token_verified_names_the_agency(
    client: TestClient, runtime: Runtime, graded: str
) -> None:
    """A verified token without the `query` scope is refused under its agency, not as if no
    token had been sent."""
    wrong_scope = bearer(runtime, "fj-cib", "subscribe")
    client.get(f"/v1/enterprises/{graded}?purpose=p1", headers=wrong_scope)
    client.get(f"/v1/enterprises/{graded}/grade-history?purpose=p2", headers=wrong_scope)
    client.post(
        "/v1/enterprises/query", json={"codes": [graded], "purpose": "p3"}, headers=wrong_scope
    )
    assert records(runtime) == [
        ("fj-cib", graded, "query", "p1", "insufficient_scope"),
        ("fj-cib", graded, "grade_history", "p2", "insufficient_scope"),
        ("fj-cib", graded, "batch_query", "p3", "insufficient_scope"),
    ]


def test_a_rate_limited_query_names_the_agency(
    client: TestClient, runtime: Runtime, graded: str
) -> None:
    client.put("/v1/agencies/fj-cib/rate-limit", json={"per_second": 0.001, "burst": 1})
    before = last_id(runtime)
    url = f"/v1/enterprises/{graded}?purpose=loan"
    statuses = [client.get(url, headers=bearer(runtime, "fj-cib", "query")).status_code]
    statuses.append(client.get(url, headers=bearer(runtime, "fj-cib", "query")).status_code)
    assert statuses == [200, 429]
    assert records(runtime, before)[-1] == ("fj-cib", graded, "query", "loan", "rate_limited")


def test_a_refused_request_is_one_record_however_many_codes_it_names(
    client: TestClient, runtime: Runtime, graded: str
) -> None:
    """No token, a bad token, over the rate, too many codes: one record for the request (no
    enterprise named for a batch), not one per code; the token is checked before the size."""
    client.put("/v1/agencies/fj-cib/rate-limit", json={"per_second": 0.001, "burst": 2})
    bank = bearer(runtime, "fj-cib", "query")
    before = last_id(runtime)

    def batch(codes: list[str], headers: dict[str, str]) -> tuple[int, str]:
        response = client.post(
            "/v1/enterprises/query", json={"codes": codes, "purpose": "p"}, headers=headers
        )
        return response.status_code, response.json().get("code", "ok")

    nobody = {"authorization": ""}
    forged = {"authorization": "Bearer " + bank["Authorization"].split()[1][:-4] + "AAAA"}
    outcomes = [
        batch([graded] * 1001, nobody),
        batch([graded] * 1000, forged),
        batch([graded] * 1001, bank),
        batch([graded], bank),
        batch([graded] * 1000, bank),
    ]
    assert outcomes == [
        (401, "missing_token"),
        (401, "invalid_token"),
        (413, "batch_too_large"),
        (200, "ok"),
        (429, "rate_limited"),
    ]
    assert records(runtime, before) == [
        (None, None, "batch_query", "p", "missing_token"),
        (None, None, "batch_query", "p", "invalid_token"),
        ("fj-cib", None, "batch_query", "p", "batch_too_large"),
        ("fj-cib", graded, "batch_query", "p", "ok"),
        ("fj-cib", None, "batch_query", "p", "rate_limited"),
    ]


def test_reading_the_access_records_needs_a_purpose_and_is_recorded_refusals_included(
    client: TestClient, runtime: Runtime, graded: str
) -> None:
    url = f"/v1/enterprises/{graded}/access-records"
    bank = bearer(runtime, "fj-cib", "query")
    register_publisher(runtime, "fj-scjg", [], roles=["market_regulator"])
    allow_query(runtime, "fj-scjg", "access_records", ["agency_id", "purpose"])
    regulator = bearer(runtime, "fj-scjg", "query")
    before = last_id(runtime)

    refused = client.get(url, params={"purpose": "curious"}, headers=bank)
    assert (refused.status_code, refused.json()["code"]) == (403, "not_permitted")
    silent = client.get(url, headers=regulator)
    assert (silent.status_code, silent.json()["code"]) == (400, "missing_purpose")
    first = client.get(url, params={"purpose": "supervision"}, headers=regulator)
    assert first.status_code == 200, first.text
    operator = client.get(url, params={"purpose": "audit"})
    assert operator.status_code == 200, operator.text
    assert records(runtime, before) == [
        ("fj-cib", graded, "access_records", "curious", "not_permitted"),
        ("fj-scjg", graded, "access_records", None, "missing_purpose"),
        ("fj-scjg", graded, "access_records", "supervision", "ok"),
        ("ops", graded, "access_records", "audit", "ok"),
    ]
    # a read is not on the page it returns; the next read sees it
    seen = [(i["agency_id"], i["purpose"]) for i in operator.json()["items"]]
    assert seen[:3] == [
        ("fj-scjg", "supervision"),
        ("fj-scjg", None),
        ("fj-cib", "curious"),
    ]
    assert "ops" not in {agency for agency, _ in seen}


def test_the_measures_of_an_enterprise_are_a_recorded_query_within_the_standing_right(
    client: TestClient, runtime: Runtime, graded: str
) -> None:
    """Deny by default: the `standing` query right, a purpose, an access record; the answer
    cut to the right's field view and to the caller's own role (operators see every role)."""
    url = f"/v1/enterprises/{graded}/measures"
    register_publisher(runtime, "fj-none", [], roles=["bank"])
    stranger = client.get(
        url, params={"purpose": "loan"}, headers=bearer(runtime, "fj-none", "query")
    )
    assert (stranger.status_code, stranger.json()["code"]) == (403, "not_permitted")
    bank = bearer(runtime, "fj-cib", "query")
    silent = client.get(url, headers=bank)
    assert (silent.status_code, silent.json()["code"]) == (400, "missing_purpose")

    whole = client.get(url, params={"purpose": "loan"}, headers=bank)
    assert whole.status_code == 200, whole.text
    assert set(whole.json()["measures"]) == {"bank"}
    client.put("/v1/agencies/fj-cib/rights/query/standing", json={"fields": ["grade.status"]})
    narrow = client.get(url, params={"purpose": "loan"}, headers=bank).json()
    assert narrow == {
        "uscc": graded,
        "on": whole.json()["on"],
        "standing": {"grade_status": whole.json()["standing"]["grade_status"]},
    }
    operator = client.get(url, params={"purpose": "audit"}).json()  # scope admin
    assert {"bank", "insurer", "market_regulator"} <= set(operator["measures"])
    assert set(operator["standing"]) == {
        "grade_status",
        "grade_level",
        "scheme",
        "accidents_prior_year",
        "lists",
    }
    assert records(runtime) == [
        ("fj-none", graded, "measures", "loan", "not_permitted"),
        ("fj-cib", graded, "measures", None, "missing_purpose"),
        ("fj-cib", graded, "measures", "loan", "ok"),
        ("fj-cib", graded, "measures", "loan", "ok"),
        ("ops", graded, "measures", "audit", "ok"),
    ]


def test_an_attested_answer_and_its_log_size_come_from_one_snapshot_on_postgresql(
    pg_settings: Any, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between an answer's reads and the log size it attests, another connection commits a
    message (first a revocation); the attested size is still the one the answer was read at,
    on every attested path: single standing (grouped), batch, grade history."""
    from gateway.app import create_app
    from gateway.queries import service

    runtime = Runtime.open(pg_settings, clock)
    authority = register_publisher(
        runtime,
        "fj-yjt",
        ["enterprise.registered", "grade.awarded", "grade.revoked", "listing.added"],
        roles=["grading_authority", "listing_department"],
    )
    register_publisher(runtime, "fj-cib", [], roles=["bank"])
    for contract in ("standing", "grade_history"):
        allow_query(runtime, "fj-cib", contract)
    raced = [
        authority.message("grade.revoked", make_revocation()),
        authority.message("listing.added", make_listing()),
        authority.message("listing.added", make_listing(listing_id="FJ-SX-2025-0004")),
    ]
    sizes: list[int] = []
    record_accesses = service.record_accesses

    def racing(session: Any, rows: Any) -> None:  # runs after the reads, before the size
        if raced:
            sizes.append(log_size(runtime))
            assert [o.status for o in publish_messages(runtime, [raced.pop(0)])] == [201]
        record_accesses(session, rows)

    try:
        for data in (
            ("enterprise.registered", make_registration()),
            ("grade.awarded", make_award()),
        ):
            assert [o.status for o in publish_messages(runtime, [authority.message(*data)])] == [
                201
            ]
        monkeypatch.setattr(service, "record_accesses", racing)
        bank = bearer(runtime, "fj-cib", "query")
        with TestClient(create_app(pg_settings, clock=clock)) as client:
            single = client.get(f"/v1/enterprises/{USCC}?purpose=loan", headers=bank).json()
            batch = client.post(
                "/v1/enterprises/query", json={"codes": [USCC], "purpose": "loan"}, headers=bank
            ).json()
            history = client.get(
                f"/v1/enterprises/{USCC}/grade-history?purpose=loan", headers=bank
            ).json()
        assert single["standing"]["grade"]["status"] != "revoked"
        assert batch["results"][0]["standing"]["grade"]["status"] == "revoked"
        assert [e["type"] for e in history["grade_history"]["events"]][-1] == "grade.revoked"
        attested = [attested_size(a["attestation"]) for a in (single, batch, history)]
        assert attested == sizes
        assert log_size(runtime) == sizes[-1] + 1
    finally:
        runtime.close()


def log_size(runtime: Runtime) -> int:
    from gateway.models import LogHead

    with runtime.db.reader() as session:
        return int(session.scalar(select(LogHead.size)) or 0)


def attested_size(attestation: str) -> int:
    import json

    from keys.jws import parse_compact

    return int(json.loads(parse_compact(attestation).payload)["log_size"])
