"""Feedback on a decision: who was told, who applied which measure, who is overdue."""

from __future__ import annotations

import datetime as dt

from contract_factories import make_award, make_measure, make_registration, make_revocation
from fastapi.testclient import TestClient
from gateway_factories import Publisher, publish, register_publisher

from gateway.clock import FixedClock
from gateway.measures.feedback import add_working_days
from gateway.runtime import Runtime


def test_working_days_skip_weekends() -> None:
    friday = dt.date(2026, 11, 27)
    assert add_working_days(friday, 1) == dt.date(2026, 11, 30)
    assert add_working_days(friday, 5) == dt.date(2026, 12, 4)


def test_feedback_shows_applied_and_overdue_agencies(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    revoked = ["grade.revoked"]
    insurer = register_publisher(
        runtime, "fj-picc", ["measure.applied"], roles=["insurer"], subscribe=revoked
    )
    register_publisher(runtime, "fj-cib", ["measure.applied"], roles=["bank"], subscribe=revoked)
    for agency in ("fj-picc", "fj-cib"):
        body = {"agency_id": agency, "url": None, "types": ["grade.revoked"]}
        assert client.post("/v1/subscriptions", json=body).status_code == 201
    publish(client, authority.message("enterprise.registered", make_registration()))
    publish(client, authority.message("grade.awarded", make_award()))
    revocation = publish(client, authority.message("grade.revoked", make_revocation())).json()
    decision = revocation["message_id"]
    applied = insurer.message(
        "measure.applied",
        make_measure(decision_message_id=decision, measure_code="insurance.premium.black_list"),
    )
    assert publish(client, applied).status_code == 201

    now = client.get(f"/v1/messages/{decision}/feedback").json()
    states = {a["agency_id"]: a["state"] for a in now["agencies"]}
    assert states == {"fj-picc": "applied", "fj-cib": "awaiting"}
    assert now["agencies"][1]["measures"][0]["measure_code"] == "insurance.premium.black_list"

    assert isinstance(runtime.clock, FixedClock)
    runtime.clock.advance(days=10)  # past five working days
    later = client.get(f"/v1/messages/{decision}/feedback").json()
    assert later["overdue"] == ["fj-cib"]
    assert (
        client.get("/v1/messages/00000000-0000-4000-8000-000000000000/feedback").status_code == 404
    )
