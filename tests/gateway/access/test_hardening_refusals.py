"""Issue 20, finding 5: 2,094 `Bearer x.y.z` requests in 10 s wrote 2,094 access records. An
address now has a budget of refusals before it is answered 429 ahead of any token check, and
identical refusals are one access record with a count, first and last seen."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from gateway_factories import bearer, operator_token, register_publisher
from sqlalchemy import func, select

from gateway.access.assertion import ASSERTION_TYPE
from gateway.access.refusals import OVERFLOW, Refusal, Refusals
from gateway.app import create_app
from gateway.clock import FixedClock
from gateway.errors import TooManyRequests
from gateway.models import AccessRecord
from gateway.runtime import Runtime
from gateway.settings import RefusalSettings, Settings

FLOOD = 200
BURST = RefusalSettings().burst
FEED = "/v1/subscriptions/00000000-0000-0000-0000-000000000000/feed"


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def attacker(settings: Settings, clock: FixedClock) -> Iterator[TestClient]:
    """The API as a client with no valid token sees it, from one address; the budget's clock
    stands still, so a slow machine's requests never earn a refill in the middle of a flood."""
    with TestClient(create_app(settings, clock=clock), client=("192.0.2.7", 4000)) as client:
        state = client.app.state  # type: ignore[attr-defined]
        state.runtime.refusals = Refusals(settings.refusals, Ticks())
        yield client


def records(runtime: Runtime, client: TestClient) -> list[tuple[Any, ...]]:
    client.app.state.runtime.refusals.flush(runtime.db)  # type: ignore[attr-defined]
    with runtime.db.reader() as session:
        rows = session.execute(
            select(
                AccessRecord.address,
                AccessRecord.agency_id,
                AccessRecord.result,
                AccessRecord.count,
            ).order_by(AccessRecord.id)
        )
        return [tuple(row) for row in rows]


@pytest.mark.parametrize(
    "path", [FEED, "/v1/enterprises/91350100MA2YH2C65A?purpose=x", "/v1/ledgers/basic"]
)
def test_a_flood_of_bad_tokens_is_answered_429_and_written_as_two_records(
    attacker: TestClient, runtime: Runtime, path: str
) -> None:
    answers = [attacker.get(path, headers={"authorization": "Bearer x.y.z"}) for _ in range(FLOOD)]
    codes = [(a.status_code, a.json()["code"]) for a in answers]
    assert codes == [(401, "invalid_token")] * BURST + [(429, "rate_limited")] * (FLOOD - BURST)
    limited = answers[-1]
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["retry_after"] == int(limited.headers["retry-after"])
    assert limited.headers["content-type"] == "application/problem+json"
    assert "192.0.2.7" in limited.json()["detail"]
    assert records(runtime, attacker) == [
        ("192.0.2.7", None, "invalid_token", BURST),
        ("192.0.2.7", None, "rate_limited", FLOOD - BURST),
    ]


def test_failed_logins_spend_the_budget_too_and_are_answered_as_oauth_errors(
    attacker: TestClient, runtime: Runtime
) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": "x.y.z",
    }
    answers = [attacker.post("/v1/oauth/token", data=form) for _ in range(BURST + 5)]
    assert {a.json()["code"] for a in answers[:BURST]} == {"malformed_assertion"}
    last = answers[-1]
    assert (last.status_code, last.json()["code"], last.json()["error"]) == (
        429,
        "rate_limited",
        "invalid_request",
    )
    assert last.headers["retry-after"]
    assert last.headers["cache-control"] == "no-store"
    assert [r[2:] for r in records(runtime, attacker)] == [
        ("malformed_assertion", BURST),
        ("rate_limited", 5),
    ]


def test_a_verified_agencys_refusals_do_not_spend_its_address_budget(
    attacker: TestClient, runtime: Runtime
) -> None:
    """An agency asking for what its scope does not cover is refused on its own rate, never
    locked out by the address's refusal budget."""
    register_publisher(runtime, "fj-cib", [], roles=["bank"])
    headers = bearer(runtime, "fj-cib", "query")
    answers = [attacker.get(FEED, headers=headers) for _ in range(BURST * 2)]
    assert {(a.status_code, a.json()["code"]) for a in answers} == {(403, "insufficient_scope")}
    assert records(runtime, attacker) == [("192.0.2.7", "fj-cib", "insufficient_scope", BURST * 2)]


def test_operators_list_the_refusals_with_their_counts(
    attacker: TestClient, client: TestClient, runtime: Runtime
) -> None:
    for _ in range(5):
        attacker.get(FEED, headers={"authorization": "Bearer x.y.z"})
    attacker.app.state.runtime.refusals.flush(runtime.db)  # type: ignore[attr-defined]
    listed = client.get("/v1/access-records?refused=true&address=192.0.2.7")
    assert listed.status_code == 200, listed.text
    (item,) = listed.json()["items"]
    assert (item["count"], item["result"], item["address"]) == (5, "invalid_token", "192.0.2.7")
    assert item["purpose"] == f"GET {FEED}"
    assert item["last_at"] >= item["at"]
    bank = {"authorization": f"Bearer {operator_token(runtime, 'query', 'fj-cib')}"}
    refused = client.get("/v1/access-records", headers=bank)
    assert (refused.status_code, refused.json()["code"]) == (403, "insufficient_scope")
    bad = client.get("/v1/access-records?limit=0")
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_request")


# --- the budget and the records, on a fake clock ------------------------------------------------


def test_a_budget_refills_at_its_rate_and_names_when() -> None:
    ticks = Ticks()
    refusals = Refusals(RefusalSettings(per_second=0.5, burst=2), ticks)
    refusals.check_address("a")
    refusals.spend("a")
    refusals.spend("a")
    with pytest.raises(TooManyRequests) as refused:
        refusals.check_address("a")
    assert refused.value.retry_after == 2
    refusals.check_address("b")  # another address: its own budget
    ticks.now += 2
    refusals.check_address("a")
    refusals.check_address(None)  # a Unix socket: no address, no budget


def test_the_tables_are_bounded(runtime: Runtime) -> None:
    ticks = Ticks()
    refusals = Refusals(RefusalSettings(max_tracked=3), ticks)
    for n in range(10):
        refusals.spend(f"198.51.100.{n}")
    assert len(refusals._buckets) == 3
    at = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    written = []
    for n in range(6):
        first = refusals.note(Refusal(f"a{n}", None, None, "auth", "GET /", "invalid_token"), at)
        if first is not None:
            refusals.write_first(runtime.db, first, at)
            written.append(first.what)
    assert written == ["GET /", "GET /", "GET /", OVERFLOW]
    refusals.flush(runtime.db)
    with runtime.db.reader() as session:
        counts = session.execute(
            select(AccessRecord.purpose, AccessRecord.count).order_by(AccessRecord.id)
        ).all()
    assert [tuple(c) for c in counts] == [("GET /", 1)] * 3 + [(OVERFLOW, 3)]


def test_a_new_window_starts_a_new_record_and_the_old_keeps_its_count(runtime: Runtime) -> None:
    ticks = Ticks()
    refusals = Refusals(RefusalSettings(window_seconds=60), ticks)
    refusal = Refusal("a", None, None, "auth", "GET /", "invalid_token")
    at = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    for step in range(4):
        first = refusals.note(refusal, at + dt.timedelta(seconds=step * 30))
        if first is not None:
            refusals.write_first(runtime.db, first, at + dt.timedelta(seconds=step * 30))
        ticks.now += 30
    refusals.flush(runtime.db)
    with runtime.db.reader() as session:
        rows = session.execute(
            select(AccessRecord.count, AccessRecord.at, AccessRecord.last_at).order_by(
                AccessRecord.id
            )
        ).all()
        total = session.scalar(select(func.sum(AccessRecord.count)))
    assert [r.count for r in rows] == [2, 2]
    assert total == 4
    assert rows[0].last_at == at + dt.timedelta(seconds=30)


def test_the_cli_lists_the_refusals_with_their_counts(
    attacker: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from typer.testing import CliRunner

    from gateway.cli import app

    for _ in range(3):
        attacker.get(FEED, headers={"authorization": "Bearer x.y.z"})
    attacker.app.state.runtime.refusals.flush(runtime.db)  # type: ignore[attr-defined]
    settings = runtime.settings
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("GATEWAY_DATABASE_URL", settings.effective_database_url)
    listed = CliRunner().invoke(app, ["agency", "access-records", "--refused", "--json"])
    assert listed.exit_code == 0, listed.output
    (item,) = json.loads(listed.output)
    assert (item["count"], item["address"], item["result"]) == (3, "192.0.2.7", "invalid_token")
    table = CliRunner().invoke(app, ["agency", "access-records"])
    assert table.exit_code == 0, table.output
    assert "count" in table.output
