"""A connector document is the view of its message (protocol.md §4, §5): the enterprise as the
log stood just after that message, so every later attempt, replay or feed read of it sends the
same bytes under the same webhook-id, whatever was accepted about the enterprise since."""

from __future__ import annotations

import json
from typing import Any

import pytest
import test_connectors
from contract_factories import (
    make_accident,
    make_award,
    make_downgrade,
    make_expiry,
    make_listing,
    make_registration,
    make_removal,
    make_renewal,
    make_revocation,
)
from fastapi.testclient import TestClient
from gateway_factories import Publisher
from sqlalchemy import select
from test_connectors import CONSUMERS, Story

from contracts import grades
from contracts.errors import TransitionError
from gateway.delivery.jobs import load_jobs
from gateway.models import Delivery
from gateway.runtime import Runtime

feeds = test_connectors.feeds  # the fixture: each consumer agency subscribed to its feed

LISTING = "FJ-SX-2027-0011"
STEPS: list[tuple[str, str, dict[str, Any]]] = [
    ("2026-11-02", "enterprise.registered", make_registration()),
    (
        "2026-11-02",
        "grade.awarded",
        make_award(
            level="2", announced_on="2026-11-01", valid_from="2026-11-01", valid_to="2029-10-31"
        ),
    ),
    # Reported after the award, about the day before it: inside the award's prior year.
    (
        "2026-11-20",
        "accident.reported",
        make_accident(accident_id="ND-ACC-2026-001", occurred_on="2026-11-01", deaths=0),
    ),
    ("2026-12-01", "grade.downgraded", make_downgrade(decided_on="2026-11-30")),
    (
        "2026-12-11",
        "grade.renewed",
        make_renewal(
            level="3", announced_on="2026-12-10", valid_from="2026-12-15", valid_to="2029-12-14"
        ),
    ),
    (
        "2027-03-16",
        "grade.revoked",
        make_revocation(decided_on="2027-03-15", reapply_after="2028-03-15"),
    ),
    (
        "2027-04-02",
        "listing.added",
        make_listing(
            listing_id=LISTING,
            decided_on="2027-04-01",
            term_start="2027-04-01",
            term_end="2030-04-01",
        ),
    ),
    (
        "2028-04-03",
        "listing.removed",
        make_removal(
            listing_id=LISTING,
            removed_on="2028-04-02",
            removal_reason="early_removal",
            credit_repair={
                "applied_on": "2028-03-01",
                "completed_on": "2028-03-30",
                "measures": ["信用承诺"],
            },
        ),
    ),
    (
        "2028-04-11",
        "grade.awarded",
        make_award(
            level="3",
            announced_on="2028-04-10",
            valid_from="2028-04-10",
            valid_to="2031-04-09",
            certificate_no="闽AQBWHⅢ202800007",
        ),
    ),
    ("2031-04-10", "grade.expired", make_expiry(valid_to="2031-04-09", expired_on="2031-04-10")),
]


def bodies(runtime: Runtime, feeds: dict[str, str]) -> dict[int, tuple[str, bytes]]:
    """Every connector delivery's webhook-id and the exact body a push or feed read sends."""
    with runtime.db.reader() as session:
        ids = list(
            session.scalars(select(Delivery.id).where(Delivery.subscription_id.in_(feeds.values())))
        )
        jobs = load_jobs(session, ids, "https://gateway.test")
    assert all(job.parked is None for job in jobs), [job.parked for job in jobs]
    return {job.delivery_id: (job.webhook_id, job.body) for job in jobs}


def test_a_document_is_the_same_bytes_after_later_messages_about_its_enterprise(
    client: TestClient,
    runtime: Runtime,
    authority: Publisher,
    feeds: dict[str, str],
) -> None:
    story = Story(client, runtime, authority, feeds)
    first: dict[int, tuple[str, bytes]] = {}
    for day, message_type, data in STEPS:
        story.on(day)
        story.publish(message_type, data)
        now = bodies(runtime, feeds)
        assert {i: now[i] for i in first} == first, f"changed by {message_type} on {day}"
        first |= now
    assert len(first) == 44  # 1 + 5 + 2 + 5 + 5 + 6 + 5 + 5 + 5 + 5 documents, step by step

    documents = [json.loads(body) for _, body in first.values()]
    award = next(
        d["data"]
        for d in documents
        if d["data"].get("signal") and d["data"]["source"]["type"] == "grade.awarded"
    )
    # The reviewer's case: read after the revocation and the new award, still the first award.
    assert (award["grade"]["status"], award["grade"]["level"]) == ("active", "2")
    assert award["grade"]["valid_to"] == "2029-10-31"
    insurer = next(
        d["data"]
        for d in documents
        if d["data"].get("instruction") and d["data"]["source"]["type"] == "grade.awarded"
    )
    assert insurer["accidents_in_record_period"] == []  # reported only after the award
    listed = next(
        d["data"]
        for d in documents
        if d["data"].get("record_type") == "enterprise_sync"
        and d["data"]["source"]["type"] == "listing.added"
    )
    assert [entry["list_type"] for entry in listed["lists"]] == ["black"]  # removed later
    assert listed["grade"]["status"] == "revoked"  # awarded again later
    assert {name for _, _, name in CONSUMERS} == set(feeds)


def test_history_is_replayed_as_accepted_not_judged_again_by_todays_rules(
    client: TestClient,
    runtime: Runtime,
    authority: Publisher,
    feeds: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    story = Story(client, runtime, authority, feeds)
    for day, message_type, data in STEPS[:2] + STEPS[5:6]:  # registered, awarded, revoked
        story.on(day)
        story.publish(message_type, data)
    before = bodies(runtime, feeds)

    def refuse(*_: Any) -> Any:
        raise TransitionError("a rule tightened since these messages were accepted")

    for grade_type in list(grades._HANDLERS):
        monkeypatch.setitem(grades._HANDLERS, grade_type, refuse)
    assert bodies(runtime, feeds) == before  # the award's documents still render, unchanged
