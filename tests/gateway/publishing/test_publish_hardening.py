"""Publishing under hostile or unlucky input: texts at their longest, dates at the edges of
the calendar, an item that makes the gateway itself fail, a retired key used to backdate, and
concurrent publishes about one enterprise on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from alembic import command
from contract_factories import (
    USCC,
    make_accident,
    make_award,
    make_downgrade,
    make_listing,
    make_overdue,
    make_rectification_order,
    make_registration,
    make_removal,
    make_renewal,
    make_revocation,
    make_self_assessment,
)
from fastapi.testclient import TestClient
from gateway_factories import (
    Publisher,
    publish,
    publish_many,
    register_publisher,
    snapshot,
    wait_for_a_lock_waiter,
)
from sqlalchemy import select

from contracts.registry import _schema
from contracts.uscc import complete_uscc
from gateway.clock import FixedClock
from gateway.migrate import alembic_config, upgrade
from gateway.models import Enterprise
from gateway.publishing import service
from gateway.publishing.orchestration import publish as publish_messages
from gateway.publishing.orchestration import publish_context
from gateway.publishing.service import Outcome, publish_batch
from gateway.runtime import Runtime
from gateway.settings import Settings

_FILLERS = ("甲", "A", "1", "a")


def _longest(message_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """`data` with every free-text field (string, maxLength, no enum or format) at its
    maxLength, in characters that satisfy its pattern."""
    longest = dict(data)
    for name, prop in _schema(message_type, 1)["properties"].items():
        if prop.get("type") != "string" or "maxLength" not in prop:
            continue
        if "enum" in prop or "format" in prop or name not in data:
            continue
        size, pattern = prop["maxLength"], prop.get("pattern")
        for filler in _FILLERS:
            candidate = filler * size
            if pattern is None or re.search(pattern, candidate):
                longest[name] = candidate
                break
        else:
            raise AssertionError(f"no filler satisfies {message_type} {name} pattern {pattern}")
    return longest


def test_every_text_field_at_its_longest_is_stored(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    """What a contract admits, the database holds: each column is at least as wide as the
    schema's maxLength (on PostgreSQL a narrower VARCHAR would refuse the row)."""
    sequence = [
        ("enterprise.registered", make_registration()),
        ("grade.awarded", make_award()),
        ("grade.downgraded", make_downgrade()),
        ("self_assessment.published", make_self_assessment()),
        ("rectification.ordered", make_rectification_order()),
        ("rectification.overdue", make_overdue()),
        ("accident.reported", make_accident()),
        ("listing.added", make_listing()),
        ("listing.removed", make_removal()),
        ("grade.revoked", make_revocation()),
    ]
    tokens = [authority.message(t, _longest(t, data)) for t, data in sequence]
    response = publish_many(client, tokens)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == [201] * len(sequence), results


@pytest.mark.parametrize(
    ("message_type", "data", "pointer"),
    [
        ("enterprise.registered", make_registration(registered_on="0000-01-01"), "registered_on"),
        ("enterprise.registered", make_registration(registered_on="1899-12-31"), "registered_on"),
        (
            "grade.awarded",
            make_award(announced_on="9999-01-01", valid_from="9999-01-01", valid_to="9999-12-31"),
            "announced_on",
        ),
        ("listing.added", make_listing(term_end="2200-01-01"), "term_end"),
    ],
)
def test_dates_beyond_the_calendar_the_rules_reach_are_refused(
    client: TestClient,
    authority: Publisher,
    runtime: Runtime,
    message_type: str,
    data: dict[str, Any],
    pointer: str,
) -> None:
    """The schemas admit any YYYY-MM-DD; dates the term arithmetic cannot carry (year 0,
    9999 plus three years) are a schema violation naming the field, not a 500."""
    if message_type != "enterprise.registered":
        assert publish(client, authority.message("enterprise.registered")).status_code == 201
    before = snapshot(runtime)
    response = publish(client, authority.message(message_type, data))
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["code"] == "schema_violation"
    assert problem["pointer"] == f"/data/{pointer}"
    assert "outside the dates the gateway accepts" in problem["detail"]
    assert snapshot(runtime) == before


def test_a_decision_dated_before_the_policy_records_is_a_rule_violation(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    assert publish(client, authority.message("enterprise.registered")).status_code == 201
    before = snapshot(runtime)
    award = make_award(announced_on="1999-12-31", valid_from="1999-12-31", valid_to="2002-12-30")
    response = publish(client, authority.message("grade.awarded", award))
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "rule_violation"
    assert (
        "no grade and list rules are recorded for region 350900 on 1999-12-31"
        in (response.json()["detail"])
    )
    assert snapshot(runtime) == before


def test_an_item_the_gateway_fails_on_fails_alone(
    client: TestClient, authority: Publisher, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug one message triggers (here: simulated) costs that message a 500, not the batch or
    the other agencies' single publishes grouped with it; nothing of it is stored."""
    poison = complete_uscc("91350100MA2P0001")
    accept_one = service._accept_one

    def failing(session: Any, item: Any, *args: Any) -> Outcome:
        if item.envelope["subject"] == poison:
            raise RuntimeError("simulated bug")
        return accept_one(session, item, *args)

    monkeypatch.setattr(service, "_accept_one", failing)
    before = snapshot(runtime)["log_size"]
    codes = [complete_uscc(f"91350100MA2G00{n:02d}") for n in range(5)]
    subjects = [*codes[:2], poison, *codes[2:]]
    tokens = [authority.message("enterprise.registered", subject=s) for s in subjects]
    response = publish_many(client, tokens)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == [201, 201, 500, 201, 201, 201]
    assert results[2]["problem"]["code"] == "internal_error"
    assert [r["index"] for r in results if r["status"] == 201] == list(range(before, before + 5))
    assert snapshot(runtime)["log_size"] == before + 5
    # single publishes grouped in one transaction (what the publishing thread hands over)
    again = [authority.message("enterprise.registered", subject=poison), tokens[0]]
    outcomes = publish_messages(runtime, again, callers=[authority.agency_id] * 2)
    assert [o.status for o in outcomes] == [500, 200]


def test_a_retired_key_cannot_publish_by_backdating(
    client: TestClient, runtime: Runtime, clock: FixedClock
) -> None:
    """A key that stopped being valid signs nothing that arrives afterwards, whatever
    issued_at the message claims."""
    retiring = register_publisher(
        runtime,
        "fj-old",
        ["enterprise.registered"],
        valid_to=clock.now() + dt.timedelta(days=1),
    )
    assert publish(client, retiring.message("enterprise.registered")).status_code == 201
    clock.advance(days=30)
    backdated = (clock.now() - dt.timedelta(days=29, hours=23)).isoformat(timespec="seconds")
    response = publish(
        client,
        retiring.message(
            "enterprise.registered", subject=complete_uscc("91350100MA2L0001"), issued_at=backdated
        ),
    )
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "key_not_valid"
    assert "ended before the message arrived" in response.json()["detail"]


def test_the_media_type_in_typ_is_compared_without_case(
    client: TestClient, authority: Publisher
) -> None:
    """RFC 7515 §4.1.9: media types are case-insensitive."""
    envelope = authority.envelope("enterprise.registered")
    token = authority.sign_envelope(envelope, typ="application/Gateway-Message+JWS")
    assert publish(client, token).status_code == 201


def test_a_publish_waiting_for_the_log_sees_what_committed_before_it(
    pg_settings: Settings,
) -> None:
    """PostgreSQL, READ COMMITTED: a renewal that waits for the log head while a revocation of
    the same grade commits is judged against the revoked grade (it used to read the grade
    before waiting, and its write then undid the revocation)."""
    clock = FixedClock(dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.UTC))
    runtime = Runtime.open(pg_settings, clock)
    try:
        authority = register_publisher(
            runtime,
            "fj-yjt",
            ["enterprise.registered", "grade.awarded", "grade.renewed", "grade.revoked"],
        )
        setup = [authority.message(t) for t in ("enterprise.registered", "grade.awarded")]
        assert [o.status for o in publish_messages(runtime, setup)] == [201, 201]
        revoke = authority.message("grade.revoked", make_revocation())
        renew = authority.message("grade.renewed", make_renewal())
        with ThreadPoolExecutor(1) as pool:
            with runtime.db.transaction() as session:
                held = publish_batch(session, [revoke], publish_context(runtime), clock.now())
                assert [o.status for o in held] == [201]
                racing = pool.submit(publish_messages, runtime, [renew])
                wait_for_a_lock_waiter(pg_settings.effective_database_url, "the second publish")
            outcomes: Sequence[Outcome] = racing.result(timeout=30)
        assert outcomes[0].status == 422
        assert outcomes[0].error is not None
        assert outcomes[0].error.code == "invalid_transition"
        state = publish_messages(runtime, [renew])[0]
        assert state.status == 422  # still revoked: the renewal was never applied
        with runtime.db.reader() as session:
            from gateway.models import Enterprise

            assert session.get(Enterprise, USCC).grade_status == "revoked"
    finally:
        runtime.close()


def test_a_refused_message_naming_an_unstorable_id_fails_alone(
    authority: Publisher, runtime: Runtime
) -> None:
    """A message under a revoked key is looked up as a possible resend by the id its payload
    names; an id the database cannot hold (U+0000) is not looked up, and neither it nor any
    other refusal escaping an item's own handling fails the messages grouped with it."""
    from gateway.registry import service as registry

    revoked = register_publisher(runtime, "fj-lost", ["enterprise.registered"])
    with runtime.db.transaction() as session:
        registry.revoke_key(
            session, runtime.signer, kid=revoked.key.kid, reason="lost", now=runtime.clock.now()
        )
    bad = revoked.message("enterprise.registered", id="\x00" * 36)
    good = authority.message("enterprise.registered")
    outcomes = publish_messages(runtime, [bad, good], callers=["fj-lost", authority.agency_id])
    assert [o.status for o in outcomes] == [401, 201]
    assert outcomes[0].error is not None
    assert outcomes[0].error.code == "key_revoked"


def test_a_revocation_backdated_before_the_award_cannot_skip_the_reapply_wait(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    """The reviewer's case: awarded 2024-01-10, "revoked" as of 2019 with re-application open
    from 2020, then awarded again three weeks later. The revocation is refused; one of the
    term before a renewal, published after it, is not."""
    publish(client, authority.message("enterprise.registered", make_registration()))
    assert publish(client, authority.message("grade.awarded", make_award())).status_code == 201
    before = snapshot(runtime)
    backdated = make_revocation(decided_on="2019-06-01", reapply_after="2020-06-01")
    refused = publish(client, authority.message("grade.revoked", backdated))
    assert refused.status_code == 422
    assert refused.json()["code"] == "invalid_transition"
    assert "before the grade was held (from 2024-01-10)" in refused.json()["detail"]
    assert snapshot(runtime) == before
    renewal = make_renewal(
        announced_on="2026-12-20", valid_from="2027-01-10", valid_to="2030-01-09"
    )
    assert publish(client, authority.message("grade.renewed", renewal)).status_code == 201
    of_the_term_before = make_revocation(decided_on="2026-12-28", reapply_after="2027-12-28")
    revoked = publish(client, authority.message("grade.revoked", of_the_term_before))
    assert revoked.status_code == 201, revoked.json()


def test_migration_0015_takes_the_holding_s_start_from_the_award_not_the_renewal(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    """Renewed early (announced 2026-10-20, from 2027-01-10): backfilled with the renewal's
    start, a revocation decided now (2026-10-30) would wait for 2027. The migration replays
    the log: the holding started with the award, 2024-01-10."""
    publish(client, authority.message("enterprise.registered", make_registration()))
    publish(client, authority.message("grade.awarded", make_award()))
    renewal = make_renewal(
        announced_on="2026-10-20", valid_from="2027-01-10", valid_to="2030-01-09"
    )
    assert publish(client, authority.message("grade.renewed", renewal)).status_code == 201
    url = runtime.settings.database_url
    command.downgrade(alembic_config(url), "0014")
    upgrade(url)
    with runtime.db.reader() as session:
        held = session.scalar(select(Enterprise.grade_held_since).where(Enterprise.uscc == USCC))
    assert held == dt.date(2024, 1, 10)
    revocation = make_revocation(decided_on="2026-10-30", reapply_after="2027-10-30")
    revoked = publish(client, authority.message("grade.revoked", revocation))
    assert revoked.status_code == 201, revoked.json()


def test_a_self_assessment_is_not_published_before_its_year(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    publish(client, authority.message("enterprise.registered", make_registration()))
    before = snapshot(runtime)
    future = make_self_assessment(year=2030, published_on="2025-01-20")
    refused = publish(client, authority.message("self_assessment.published", future))
    assert (refused.status_code, refused.json()["code"]) == (422, "rule_violation")
    assert snapshot(runtime) == before
    ok = make_self_assessment(year=2024, published_on="2025-01-20")
    assert publish(client, authority.message("self_assessment.published", ok)).status_code == 201
