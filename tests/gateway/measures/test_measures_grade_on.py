"""The measures on a date read the grade held on that date (domain.md §3), as they read that
date's accidents and list entries: not the grade held today."""

from __future__ import annotations

import datetime as dt
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
)
from fastapi.testclient import TestClient
from gateway_factories import Publisher, publish
from sqlalchemy import select

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
