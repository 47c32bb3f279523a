"""Feedback on a decision: who was told, who applied which measure, who is overdue."""

from __future__ import annotations

import datetime as dt

from contract_factories import make_award, make_measure, make_registration, make_revocation
from fastapi.testclient import TestClient
from gateway_factories import Publisher, publish, register_publisher, snapshot

from contracts.registry import parse_json
from gateway.clock import FixedClock
from gateway.measures.feedback import add_working_days
from gateway.publishing.orchestration import publish as publish_messages
from gateway.runtime import Runtime
from keys.jws import parse_compact


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
        make_measure(decision_message_id=decision, measure_code="insurance.liability.black_list"),
    )
    assert publish(client, applied).status_code == 201

    now = client.get(f"/v1/messages/{decision}/feedback").json()
    states = {a["agency_id"]: a["state"] for a in now["agencies"]}
    assert states == {"fj-picc": "applied", "fj-cib": "awaiting"}
    assert now["agencies"][1]["measures"][0]["measure_code"] == "insurance.liability.black_list"

    assert isinstance(runtime.clock, FixedClock)
    runtime.clock.advance(days=10)  # past five working days
    later = client.get(f"/v1/messages/{decision}/feedback").json()
    assert later["overdue"] == ["fj-cib"]
    assert (
        client.get("/v1/messages/00000000-0000-4000-8000-000000000000/feedback").status_code == 404
    )


def _revoked_enterprise(client: TestClient, authority: Publisher) -> tuple[str, str]:
    """(the registration's id, the revocation's id) of a registered, awarded, revoked
    enterprise."""
    registered = publish(client, authority.message("enterprise.registered", make_registration()))
    publish(client, authority.message("grade.awarded", make_award()))
    revoked = publish(client, authority.message("grade.revoked", make_revocation()))
    return registered.json()["message_id"], revoked.json()["message_id"]


def test_feedback_must_name_a_catalog_measure_of_its_role_for_a_decision_and_a_past_day(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    """domain.md §5: each agency reports the measure it applied; a report that is not one
    (an unknown code, another role's measure, an answer to a registration, a day before the
    decision or still to come, the same report twice) is refused and changes nothing."""
    bank = register_publisher(runtime, "fj-cib", ["measure.applied"], roles=["bank"])
    registration, revocation = _revoked_enterprise(client, authority)
    first = bank.message(
        "measure.applied",
        make_measure(decision_message_id=revocation, measure_code="bank.credit_review"),
    )
    accepted = publish(client, first)
    assert accepted.status_code == 201
    before = snapshot(runtime)
    refused = {
        "unknown_measure": make_measure(
            decision_message_id=revocation, measure_code="no.such.measure"
        ),
        "another role's measure": make_measure(
            decision_message_id=revocation, measure_code="insurance.liability.black_list"
        ),
        "a registration": make_measure(
            decision_message_id=registration, measure_code="bank.credit_review"
        ),
        "feedback on feedback": make_measure(
            decision_message_id=accepted.json()["message_id"], measure_code="bank.credit_review"
        ),
        "before the decision": make_measure(
            decision_message_id=revocation,
            measure_code="bank.credit_review",
            applied_on="2025-06-15",
        ),
        "in the future": make_measure(
            decision_message_id=revocation,
            measure_code="bank.credit_review",
            applied_on="2099-01-01",
        ),
        "the same report again": make_measure(
            decision_message_id=revocation, measure_code="bank.credit_review"
        ),
    }
    codes = {}
    for label, data in refused.items():
        response = publish(client, bank.message("measure.applied", data))
        assert response.status_code == 422, (label, response.json())
        codes[label] = response.json()["code"]
        assert response.json()["detail"]
    assert codes == {
        "unknown_measure": "unknown_measure",
        "another role's measure": "rule_violation",
        "a registration": "rule_violation",
        "feedback on feedback": "rule_violation",
        "before the decision": "rule_violation",
        "in the future": "rule_violation",
        "the same report again": "duplicate_report",
    }
    assert snapshot(runtime) == before
    # the next day, applying it again is a new report
    again = make_measure(
        decision_message_id=revocation, measure_code="bank.credit_review", applied_on="2026-11-02"
    )
    assert isinstance(runtime.clock, FixedClock)
    runtime.clock.advance(days=1)
    assert publish(client, bank.message("measure.applied", again)).status_code == 201


def test_feedback_may_answer_a_decision_published_in_the_same_transaction(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    bank = register_publisher(runtime, "fj-cib", ["measure.applied"], roles=["bank"])
    publish(client, authority.message("enterprise.registered", make_registration()))
    publish(client, authority.message("grade.awarded", make_award()))
    revocation = authority.message("grade.revoked", make_revocation())
    revocation_id = parse_json(parse_compact(revocation).payload)["id"]
    measure = bank.message(
        "measure.applied",
        make_measure(decision_message_id=revocation_id, measure_code="bank.credit_review"),
    )
    outcomes = publish_messages(
        runtime, [revocation, measure]
    )  # one transaction, as a group commits
    assert [o.status for o in outcomes] == [201, 201]


def test_feedback_days_are_fujian_days(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    """A revocation issued at 00:30 in Fujian on 1 November (31 October, 16:30 UTC): a
    measure applied on 31 October would precede it, one on 1 November does not."""
    bank = register_publisher(runtime, "fj-cib", ["measure.applied"], roles=["bank"])
    publish(client, authority.message("enterprise.registered", make_registration()))
    publish(client, authority.message("grade.awarded", make_award()))
    revocation = authority.message(
        "grade.revoked", make_revocation(), issued_at="2026-11-01T00:30:00+08:00"
    )
    decision = publish(client, revocation).json()["message_id"]

    def report(day: str) -> int:
        data = make_measure(
            decision_message_id=decision, measure_code="bank.credit_review", applied_on=day
        )
        return int(publish(client, bank.message("measure.applied", data)).status_code)

    assert report("2026-10-31") == 422
    assert report("2026-11-01") == 201
