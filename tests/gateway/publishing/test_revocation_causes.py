"""A `grade.revoked` must cite its cause, on record about the same enterprise (domain.md §3):
over HTTP, a fatal-accident revocation with no accident, with a non-fatal one or citing
another enterprise's accident, and a major-hazard revocation citing an order of an ordinary
hazard, are refused 422 with their stable code, and nothing is stored."""

from __future__ import annotations

from typing import Any

from contract_factories import (
    make_accident,
    make_award,
    make_overdue,
    make_rectification_order,
    make_registration,
    make_revocation,
)
from fastapi.testclient import TestClient
from gateway_factories import Publisher, publish, snapshot

from gateway.runtime import Runtime

OTHER = "91350000157987632G"  # another enterprise, with a fatal accident of its own
FATAL = make_revocation(reason_code="fatal_accident", reason="发生生产安全死亡事故")
MAJOR = make_revocation(reason_code="major_hazard_unrectified", reason="重大事故隐患逾期未整改")


def accepted(
    client: TestClient, authority: Publisher, message_type: str, data: Any, **kw: Any
) -> str:
    answer = publish(client, authority.message(message_type, data, **kw))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["message_id"])


def refused(
    client: TestClient, runtime: Runtime, authority: Publisher, data: dict[str, Any], code: str
) -> dict[str, Any]:
    before = snapshot(runtime)
    answer = publish(client, authority.message("grade.revoked", data))
    assert answer.status_code == 422, answer.text
    problem: dict[str, Any] = answer.json()
    assert problem["code"] == code
    assert snapshot(runtime) == before, "a refused revocation changed stored state"
    return problem


def graded(client: TestClient, authority: Publisher) -> None:
    accepted(client, authority, "enterprise.registered", make_registration())
    accepted(client, authority, "grade.awarded", make_award())


def test_fatal_accident_revocations_without_a_fatal_accident_of_the_enterprise_are_refused(
    client: TestClient, runtime: Runtime, authority: Publisher
) -> None:
    graded(client, authority)
    accepted(client, authority, "enterprise.registered", make_registration(), subject=OTHER)
    theirs = accepted(client, authority, "accident.reported", make_accident(), subject=OTHER)
    injured = make_accident(accident_id="ND-ACC-2025-008", deaths=0, serious_injuries=2)
    non_fatal = accepted(client, authority, "accident.reported", injured)

    assert refused(client, runtime, authority, FATAL, "cause_missing")["needs"]
    cites = {"related_message_ids": [non_fatal]}
    problem = refused(client, runtime, authority, FATAL | cites, "cause_mismatch")
    assert "death" in problem["needs"]
    problem = refused(
        client,
        runtime,
        authority,
        FATAL | {"related_message_ids": [theirs]},
        "cause_other_enterprise",
    )
    assert OTHER in problem["detail"]

    fatal = accepted(client, authority, "accident.reported", make_accident())  # one death
    accepted(client, authority, "grade.revoked", FATAL | {"related_message_ids": [fatal]})


def test_a_major_hazard_revocation_citing_an_ordinary_hazard_s_order_is_refused(
    client: TestClient, runtime: Runtime, authority: Publisher
) -> None:
    graded(client, authority)
    order = make_rectification_order(hazard_level="ordinary")
    accepted(client, authority, "rectification.ordered", order)
    overdue = accepted(client, authority, "rectification.overdue", make_overdue())
    cites = {"related_message_ids": [overdue]}
    problem = refused(client, runtime, authority, MAJOR | cites, "cause_mismatch")
    assert "major" in problem["needs"]
