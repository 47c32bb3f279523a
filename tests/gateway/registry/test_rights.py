"""Rights below the scopes (issue 6 §2, §5): subscribe and query rights with field views,
managed by the admin API, each change a log entry; data minimisation on delivery and
queries; per-agency rate limits."""

from __future__ import annotations

from typing import Any

import pytest
from contract_factories import USCC, make_award, make_registration, make_revocation
from fastapi.testclient import TestClient
from gateway_factories import Publisher, bearer, publish, register_publisher
from sqlalchemy import func, select

from gateway.models import AccessRecord, LogEntry
from gateway.registry import rights
from gateway.runtime import Runtime


def rights_entries(runtime: Runtime) -> int:
    with runtime.db.reader() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(LogEntry)
                .where(LogEntry.type.like("gateway.rights.%"))
            )
            or 0
        )


def last_record(runtime: Runtime) -> AccessRecord:
    with runtime.db.reader() as session:
        record = session.scalars(select(AccessRecord).order_by(AccessRecord.id.desc())).first()
        assert record is not None
        session.expunge(record)
        return record


@pytest.fixture
def bank(runtime: Runtime) -> Publisher:
    return register_publisher(runtime, "fj-cib", ["measure.applied"], roles=["bank"])


@pytest.fixture
def revoked(client: TestClient, authority: Publisher) -> str:
    """An enterprise registered, awarded and revoked: something to deliver and to ask about."""
    for message_type, data in (
        ("enterprise.registered", make_registration()),
        ("grade.awarded", make_award()),
        ("grade.revoked", make_revocation()),
    ):
        assert publish(client, authority.message(message_type, data)).status_code == 201
    return USCC


def test_admin_api_grants_changes_and_revokes_rights_each_logged(
    client: TestClient, bank: Publisher, runtime: Runtime
) -> None:
    base = "/v1/agencies/fj-cib"
    before = rights_entries(runtime)
    granted = client.put(
        f"{base}/rights/subscribe/grade.revoked", json={"fields": ["reason_code", "decided_on"]}
    )
    assert granted.status_code == 200, granted.text
    assert granted.json()["subscribe"] == {"grade.revoked": ["decided_on", "reason_code"]}
    assert client.put(f"{base}/rights/query/standing").json()["query"] == {"standing": None}
    assert client.put(f"{base}/rights/publish/grade.awarded").json()["publish"] == [
        "grade.awarded",
        "measure.applied",
    ]
    same = client.put(  # the same view again changes nothing and logs nothing
        f"{base}/rights/subscribe/grade.revoked", json={"fields": ["decided_on", "reason_code"]}
    )
    assert same.status_code == 200
    assert rights_entries(runtime) == before + 3
    assert client.delete(f"{base}/rights/publish/grade.awarded").json()["publish"] == [
        "measure.applied"
    ]
    assert client.delete(f"{base}/rights/query/standing").json()["query"] == {}
    assert rights_entries(runtime) == before + 5
    scoped = client.put(f"{base}/scopes/query").json()
    assert scoped["scopes"] == ["query"]
    assert client.delete(f"{base}/scopes/query").json()["scopes"] == []
    shown = client.get(f"{base}/rights").json()
    assert shown["subscribe"] == {"grade.revoked": ["decided_on", "reason_code"]}
    assert shown["rate_limit"] is None


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/fj-cib/rights/subscribe/grade.revoked", {"fields": ["salary"]}, 400, "unknown_field"),
        ("/fj-cib/rights/subscribe/grade.revoked", {"fields": []}, 400, "invalid_fields"),
        ("/fj-cib/rights/subscribe/grade.nonsense", None, 400, "unknown_type"),
        ("/fj-cib/rights/query/tax_records", None, 400, "unknown_contract"),
        ("/fj-cib/rights/publish/grade.awarded", {"fields": ["level"]}, 400, "invalid_fields"),
        ("/nobody/rights/query/standing", None, 404, "unknown_agency"),
        ("/fj-cib/scopes/root", None, 400, "unknown_scope"),
    ],
)
def test_bad_right_changes_are_refused_and_change_nothing(
    client: TestClient,
    bank: Publisher,
    runtime: Runtime,
    path: str,
    body: dict[str, Any] | None,
    status: int,
    code: str,
) -> None:
    before = rights_entries(runtime)
    response = client.put("/v1/agencies" + path, json=body)
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert rights_entries(runtime) == before
    assert client.delete("/v1/agencies/fj-cib/rights/query/standing").json()["code"] == (
        "no_such_right"
    )


def test_only_admins_manage_rights(client: TestClient, bank: Publisher, runtime: Runtime) -> None:
    response = client.put(
        "/v1/agencies/fj-cib/rights/query/standing", headers=bearer(runtime, "fj-cib", "query")
    )
    assert (response.status_code, response.json()["code"]) == (403, "insufficient_scope")


def subscribe(client: TestClient, **body: Any) -> Any:
    return client.post("/v1/subscriptions", json={"agency_id": "fj-cib", "url": None, **body})


def feed_items(client: TestClient, runtime: Runtime, subscription: str) -> list[dict[str, Any]]:
    response = client.get(
        f"/v1/subscriptions/{subscription}/feed?after=-1",
        headers=bearer(runtime, "fj-cib", "subscribe"),
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_subscribing_needs_a_right_and_the_full_view_needs_every_field(
    client: TestClient, bank: Publisher
) -> None:
    refused = subscribe(client, types=["grade.revoked"])
    assert (refused.status_code, refused.json()["code"]) == (403, "not_permitted")
    client.put(
        "/v1/agencies/fj-cib/rights/subscribe/grade.revoked",
        json={"fields": ["reason_code", "decided_on"]},
    )
    full = subscribe(client, types=["grade.revoked"], view="full")
    assert (full.status_code, full.json()["code"]) == (403, "view_not_permitted")
    assert subscribe(client, types=["grade.revoked"], view="fields").status_code == 201


def test_deliveries_carry_only_the_view_and_follow_later_changes(
    client: TestClient, bank: Publisher, authority: Publisher, runtime: Runtime
) -> None:
    """Data minimisation: a consumer never receives a field outside its view, and the
    publisher's JWS travels only where the view is the whole message."""
    agency = "/v1/agencies/fj-cib/rights/subscribe"
    client.put(f"{agency}/grade.revoked", json={"fields": ["reason_code", "decided_on"]})
    client.put(f"{agency}/grade.awarded")
    cut = subscribe(client, types=["grade.revoked", "grade.awarded"], view="fields").json()
    whole = subscribe(client, types=["grade.awarded"], view="full").json()
    for message_type, data in (
        ("enterprise.registered", make_registration()),
        ("grade.awarded", make_award()),
        ("grade.revoked", make_revocation()),
    ):
        assert publish(client, authority.message(message_type, data)).status_code == 201

    award, revocation = feed_items(client, runtime, cut["id"])
    assert set(revocation["data"]) == {"reason_code", "decided_on"}
    assert "jws" not in revocation
    assert set(award["data"]) == set(make_award())  # whole data, but view 'fields': no JWS
    assert "jws" not in award
    (full_award,) = feed_items(client, runtime, whole["id"])
    assert full_award["jws"].count(".") == 2

    # The right narrows after acceptance: later reads (and attempts, replays) follow it.
    client.put(f"{agency}/grade.awarded", json={"fields": ["level"]})
    (narrowed,) = feed_items(client, runtime, whole["id"])
    assert narrowed["data"] == {"level": make_award()["level"]}
    assert "jws" not in narrowed
    # Withdrawn: nothing of it, not even that something happened (issue 20, finding 6).
    client.delete(f"{agency}/grade.revoked")
    (only,) = feed_items(client, runtime, cut["id"])
    assert only["type"] == "grade.awarded"


def ask(client: TestClient, runtime: Runtime, path: str) -> Any:
    return client.get(path, headers=bearer(runtime, "fj-cib", "query"))


def test_queries_need_a_right_and_answer_within_the_view(
    client: TestClient, bank: Publisher, runtime: Runtime, revoked: str
) -> None:
    url = f"/v1/enterprises/{revoked}?purpose=loan+review"
    refused = ask(client, runtime, url)
    assert (refused.status_code, refused.json()["code"]) == (403, "not_permitted")
    assert last_record(runtime).result == "not_permitted"

    view = ["grade.status", "grade.valid_to", "lists", "ledger_status"]
    client.put("/v1/agencies/fj-cib/rights/query/standing", json={"fields": view})
    standing = ask(client, runtime, url).json()["standing"]
    assert set(standing) == {"uscc", "grade", "lists", "ledger_status"}
    assert set(standing["grade"]) == {"status", "valid_to"}
    assert standing["grade"]["status"] == "revoked"

    narrower = ask(client, runtime, url + "&fields=grade.status").json()["standing"]
    assert narrower == {"uscc": revoked, "grade": {"status": "revoked"}}

    outside = ask(client, runtime, url + "&fields=grade.status,measures")
    assert (outside.status_code, outside.json()["code"]) == (403, "field_not_in_view")
    assert "measures" in outside.json()["detail"]
    record = last_record(runtime)
    assert (record.agency_id, record.uscc, record.result) == (
        "fj-cib",
        revoked,
        "field_not_in_view",
    )

    batch = client.post(
        "/v1/enterprises/query",
        json={"codes": [revoked], "purpose": "portfolio", "fields": ["name"]},
        headers=bearer(runtime, "fj-cib", "query"),
    )
    assert (batch.status_code, batch.json()["code"]) == (403, "field_not_in_view")
    metrics = client.get("/metrics").text
    assert 'gateway_queries_total{agency="fj-cib",result="field_not_in_view"} 2.0' in metrics
    assert 'gateway_queries_total{agency="fj-cib",result="ok"} 2.0' in metrics
    assert 'gateway_queries_total{agency="fj-cib",result="not_permitted"} 1.0' in metrics


def test_grade_history_for_agencies_allowed_to_see_it(
    client: TestClient, bank: Publisher, runtime: Runtime, revoked: str
) -> None:
    url = f"/v1/enterprises/{revoked}/grade-history?purpose=due+diligence"
    assert ask(client, runtime, url).json()["code"] == "not_permitted"
    client.put(
        "/v1/agencies/fj-cib/rights/query/grade_history",
        json={"fields": ["level", "reason_code"]},
    )
    body = ask(client, runtime, url).json()
    events = body["grade_history"]["events"]
    assert [e["type"] for e in events] == ["grade.awarded", "grade.revoked"]
    assert events[0]["data"] == {"level": make_award()["level"]}
    assert set(events[1]["data"]) == {"reason_code"}
    assert body["attestation"].count(".") == 2
    assert last_record(runtime).action == "grade_history"


def test_rate_limit_per_agency_answers_429_with_retry_after(
    client: TestClient, bank: Publisher, runtime: Runtime, revoked: str
) -> None:
    limited = client.put("/v1/agencies/fj-cib/rate-limit", json={"per_second": 0.5, "burst": 2})
    assert limited.json()["rate_limit"] == {"per_second": 0.5, "burst": 2}
    with runtime.db.transaction() as session:
        rights.grant(
            session,
            runtime.signer,
            agency_id="fj-cib",
            action="query",
            contract="standing",
            fields=None,
            now=runtime.clock.now(),
        )
    url = f"/v1/enterprises/{revoked}?purpose=loan"
    assert [ask(client, runtime, url).status_code for _ in range(2)] == [200, 200]
    throttled = ask(client, runtime, url)
    assert throttled.status_code == 429
    assert throttled.json()["code"] == "rate_limited"
    assert 1 <= int(throttled.headers["retry-after"]) <= 2
    assert last_record(runtime).result == "rate_limited"
    # Another agency (here the operator) has its own bucket; nulls restore the default.
    reset = client.put("/v1/agencies/fj-cib/rate-limit", json={})
    assert reset.json()["rate_limit"] is None
    assert ask(client, runtime, url).status_code == 200
