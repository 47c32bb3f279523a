"""The measures on a date read the grade held on that date (domain.md §3), as they read that
date's accidents and list entries: not the grade held today."""

from __future__ import annotations

import datetime as dt
import json
from importlib import resources
from typing import Any

import pytest
from contract_factories import (
    USCC,
    make_accident,
    make_award,
    make_downgrade,
    make_registration,
    make_renewal,
    make_revocation,
    make_self_assessment,
    make_update,
)
from fastapi.testclient import TestClient
from gateway_factories import (
    Publisher,
    allow_query,
    operator_token,
    publish,
    register_publisher,
)
from sqlalchemy import select

import contracts.policy
from contracts.catalog import premium
from contracts.policy import parse_policy_records
from gateway.measures.catalog import active_catalog, catalog_as_of, shipped_document
from gateway.measures.service import standing_as_of, standing_facts
from gateway.models import LogEntry
from gateway.runtime import Runtime


def standing_on(client: TestClient, on: str) -> dict[str, Any]:
    url = f"/v1/enterprises/{USCC}/measures"
    answer = client.get(url, params={"on": on, "role": "insurer", "purpose": "review"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    insurer = {m["code"] for m in body["measures"].get("insurer", [])}
    return {**body["standing"], "insurer": insurer}


def grade_on(client: TestClient, on: str) -> tuple[str, str | None]:
    standing = standing_on(client, on)
    return standing["grade_status"], standing["grade_level"]


def given(client: TestClient, authority: Publisher, *messages: tuple[str, Any]) -> None:
    for message_type, data in (("enterprise.registered", make_registration()), *messages):
        answer = publish(client, authority.message(message_type, data))
        assert answer.status_code == 201, answer.text


@pytest.mark.parametrize(
    ("on", "status", "level"),
    [
        ("2023-06-01", "none", None),  # before the award
        ("2024-01-09", "none", None),
        ("2024-01-10", "active", "1"),  # valid_from
        ("2027-01-09", "active", "1"),  # valid_to: the last day it is held
        ("2027-01-10", "expired", None),  # lapsed, grade.expired not (yet) published
        ("2027-06-01", "expired", None),
    ],
)
def test_the_grade_is_held_on_its_validity_only(
    client: TestClient, authority: Publisher, on: str, status: str, level: str | None
) -> None:
    given(client, authority, ("grade.awarded", make_award(level="1")))
    standing = standing_on(client, on)
    assert (standing["grade_status"], standing["grade_level"]) == (status, level)
    discounted = "insurance.liability.grade_1" in standing["insurer"]
    assert discounted is (status == "active")


def test_a_downgrade_and_a_revocation_count_from_their_decision(
    client: TestClient, authority: Publisher
) -> None:
    given(
        client,
        authority,
        ("grade.awarded", make_award(level="2")),
        ("grade.downgraded", make_downgrade()),  # 2 -> 3 on 2025-03-01
        ("grade.revoked", make_revocation()),  # on 2025-06-15
    )
    assert grade_on(client, "2025-02-28") == ("active", "2")
    assert grade_on(client, "2025-03-01") == ("active", "3")
    assert grade_on(client, "2025-06-14") == ("active", "3")
    assert grade_on(client, "2025-06-15") == ("revoked", None)
    assert grade_on(client, "2026-11-01") == ("revoked", None)


def test_a_renewal_counts_from_its_valid_from(client: TestClient, authority: Publisher) -> None:
    renewal = make_renewal(level="1", announced_on="2026-10-20")  # from 2027-01-10 to 2030-01-09
    given(client, authority, ("grade.awarded", make_award(level="1")), ("grade.renewed", renewal))
    assert grade_on(client, "2026-12-01") == ("active", "1")  # the first grade, still held
    assert grade_on(client, "2027-01-10") == ("active", "1")  # the renewal, not a lapse
    assert grade_on(client, "2030-01-09") == ("active", "1")
    assert grade_on(client, "2030-01-10") == ("expired", None)


def test_queries_and_connector_documents_agree_that_a_grade_lapsed(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    """Valid to 2026-06-30, no grade.expired published yet, an accident reported on
    2026-11-01: the standing a query reads and the one a document for the accident shows
    both have the grade lapsed, with no level for the triggers."""
    for message_type, data in (
        ("enterprise.registered", make_registration()),
        ("grade.awarded", make_award(level="1", valid_to="2026-06-30")),
        ("accident.reported", make_accident(accident_id="A-1", occurred_on="2026-10-20")),
    ):
        assert publish(client, authority.message(message_type, data)).status_code == 201
    on = dt.date(2026, 11, 1)
    with runtime.db.reader() as session:
        index = session.scalar(select(LogEntry.idx).where(LogEntry.type == "accident.reported"))
        facts, standing, _ = standing_facts(session, [USCC], on)[USCC]
        as_of, standing_then, _ = standing_as_of(session, USCC, on, index)
    assert (facts.grade_status, standing.grade_status, standing.grade_level) == (
        "expired",
        "expired",
        None,
    )
    assert (as_of.grade_status, standing_then.grade_status, standing_then.grade_level) == (
        "expired",
        "expired",
        None,
    )
    assert as_of.grade_valid_to == dt.date(2026, 6, 30)  # the last grade stays shown


def publish_record_period(client: TestClient, product: str, months: int) -> None:
    """A catalog version whose `product` counts the accidents of `months` (shipped: 12)."""
    document = shipped_document()
    for rule in document["products"]:
        if rule["product"] == product:
            rule["record_period_months"] = months
    answer = client.put("/v1/measures/catalog", json=document)
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(("on", "counted"), [("2026-08-01", True), ("2027-06-01", False)])
def test_the_accidents_counted_follow_the_record_period_of_the_catalog_in_force(
    client: TestClient, authority: Publisher, runtime: Runtime, on: str, counted: bool
) -> None:
    """A liability rule of 24 months: an ordinary accident of 2025-05-20 still floats the
    premium 14 months on (the shipped 12 would have dropped it) and no longer 25 months on;
    the same on the measures route, in a query's standing and in a document's, and the
    document's accidents are the ones counted."""
    publish_record_period(client, "liability", 24)
    given(client, authority, ("accident.reported", make_accident(occurred_on="2025-05-20")))
    insurer = standing_on(client, on)["insurer"]
    assert ("insurance.liability.ordinary_accident" in insurer) is counted
    assert ("insurance.liability.no_accident" in insurer) is not counted
    day = dt.date.fromisoformat(on)
    with runtime.db.reader() as session:
        catalog = active_catalog(session)
        index = session.scalar(select(LogEntry.idx).where(LogEntry.type == "accident.reported"))
        facts, standing, _ = standing_facts(session, [USCC], day)[USCC]
        _, standing_then, _ = standing_as_of(session, USCC, day, index)
        assert catalog_as_of(session, index) == catalog
    assert standing.accident_classes == ()  # the prior 12 months: what a query shows as such
    for found in (standing, standing_then):
        liability = premium(found, facts.region_code, day, catalog, "liability", "insurer")
        assert liability.accidents == (("ordinary",) if counted else ())
        assert liability.factor == (1.1 if counted else 0.9)
    # work-injury insurance states its own period (12): the accident is not its business anyway
    work_injury = premium(
        standing, facts.region_code, day, catalog, "work_injury", "social_insurance"
    )
    assert work_injury.accidents == ()


def test_a_standing_query_counts_the_record_period_of_the_catalog_in_force(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    """The query path (its memo of measures per region) reads the same 24 months: on
    2026-11-01 the accident of 2025-05-20 still floats an insurer's liability premium."""
    register_publisher(runtime, "fj-picc", ["measure.applied"], roles=["insurer"])
    allow_query(runtime, "fj-picc", "standing")
    insurer_token = operator_token(runtime, "query", "fj-picc")
    publish_record_period(client, "liability", 24)
    given(client, authority, ("accident.reported", make_accident(occurred_on="2025-05-20")))
    answer = client.get(
        f"/v1/enterprises/{USCC}",
        params={"purpose": "premium renewal"},
        headers={"authorization": f"Bearer {insurer_token}"},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()["standing"]
    insurer = {m["code"] for m in body["measures"]["insurer"]}
    assert "insurance.liability.ordinary_accident" in insurer
    assert "insurance.liability.no_accident" not in insurer
    assert body["accidents_prior_year"] == []  # what it says: the 12 months before


@pytest.fixture
def ningde_new_for_24_months(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped policy plus a Ningde (3509) record: 新增 lasts 24 months there."""
    shipped = json.loads((resources.files("contracts") / "data/policy.json").read_text("utf-8"))
    ningde = {
        "parameter": "new_status_months",
        "value": 24,
        "region_prefix": "3509",
        "valid_from": "2000-01-01",
        "valid_to": None,
        "source": {
            "title": "Test assumption for Ningde",
            "region": "3509",
            "effective": None,
            "kind": "assumption",
            "note": "a regional period that differs from the nationwide 12 months",
        },
    }
    records = tuple(parse_policy_records({"records": [*shipped["records"], ningde]}))
    monkeypatch.setattr(contracts.policy, "_shipped_records", lambda: records)


def index_of(runtime: Runtime, message_type: str) -> int:
    with runtime.db.reader() as session:
        found = session.scalar(select(LogEntry.idx).where(LogEntry.type == message_type))
    assert found is not None
    return found


@pytest.mark.usefixtures("ningde_new_for_24_months")
def test_a_document_replays_the_regional_new_status_period(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    """Registered 2023-05-04 in Ningde, whose policy keeps 新增 24 months: 18 months on the
    ledger says 新增, and so does a document made as of the registration and replayed after
    a later message changed the row (not the nationwide 12 months of a constant)."""
    given(client, authority, ("self_assessment.published", make_self_assessment()))
    on = dt.date(2024, 11, 4)
    with runtime.db.reader() as session:
        now, _, _ = standing_facts(session, [USCC], on)[USCC]
        then, _, _ = standing_as_of(session, USCC, on, index_of(runtime, "enterprise.registered"))
    assert (now.new_until, now.ledger_status) == (dt.date(2025, 5, 4), "新增")
    assert (then.new_until, then.ledger_status) == (dt.date(2025, 5, 4), "新增")
    assert then.self_assessment_year is None  # replayed: as the log stood then


def test_a_document_replays_a_newly_required_enterprise_s_new_status(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    """Registered 2023-05-04 not required, included 2024-01-01: 新增 anew until 2025-01-01
    (update_enterprise), also in a document made as of the inclusion and replayed later."""
    for message_type, data in (
        ("enterprise.registered", make_registration(required=False)),
        ("enterprise.updated", make_update(changed_on="2024-01-01", changes={"required": True})),
        ("self_assessment.published", make_self_assessment()),
    ):
        assert publish(client, authority.message(message_type, data)).status_code == 201
    on = dt.date(2024, 11, 4)
    with runtime.db.reader() as session:
        now, _, _ = standing_facts(session, [USCC], on)[USCC]
        then, _, _ = standing_as_of(session, USCC, on, index_of(runtime, "enterprise.updated"))
    assert (now.new_until, now.ledger_status) == (dt.date(2025, 1, 1), "新增")
    assert (then.required, then.new_until, then.ledger_status) == (
        True,
        dt.date(2025, 1, 1),
        "新增",
    )
