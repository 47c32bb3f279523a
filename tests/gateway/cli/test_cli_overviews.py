"""The operators' overviews on the command line (issue 23 §5, issue 22 §8): `gateway deliveries
failing|dead-letters|health`, `gateway feedback overdue`, `gateway ledger summary` and
`gateway agency list` at 80 columns show every subscription id, message id, USCC and key id
whole, and their `--json` gives what the API gives."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from contract_factories import USCC, make_award, make_registration
from fastapi.testclient import TestClient
from gateway_factories import AGENCY_USCC, Publisher, allow_subscribe, publish
from sqlalchemy import select
from typer.testing import CliRunner

from gateway.cli import app
from gateway.cli.root import console
from gateway.delivery import health, subscriptions
from gateway.models import Delivery, Subscription
from gateway.registry import service
from gateway.runtime import Runtime
from gateway.settings import Settings

runner = CliRunner()
HOOK = "http://127.0.0.1:9/hook"  # nothing is sent: the deliveries' states are set here
# what a proxy in front of the receiver answered: console markup to rich, were it read so
RECEIVER_SAID = "[/error] upstream [b]timed out[/b]"


def run(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def subs(
    client: TestClient,
    runtime: Runtime,
    authority: Publisher,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """An insurer and a bank subscribed by push to awards; one award published: the bank's
    delivery of it failing (3 attempts), the insurer's dead. The CLI at 80 columns on the
    same database."""
    with runtime.db.transaction() as session:
        for agency_id, role in (("fj-picc", "insurer"), ("fj-cib", "bank")):
            service.add_agency(
                session,
                runtime.signer,
                agency_id=agency_id,
                name=f"agency {agency_id}",
                uscc=AGENCY_USCC,
                roles=[role],
                now=runtime.clock.now(),
            )
    made = {}
    for agency_id in ("fj-picc", "fj-cib"):
        allow_subscribe(runtime, agency_id, ["grade.awarded"])
        with runtime.db.transaction() as session:
            made[agency_id] = subscriptions.create_subscription(
                session,
                agency_id=agency_id,
                url=HOOK,
                types=["grade.awarded"],
                now=runtime.clock.now(),
                allowed_hosts=["127.0.0.1"],
            ).id
    assert publish(client, authority.message("enterprise.registered", make_registration()))
    assert publish(client, authority.message("grade.awarded", make_award())).status_code == 201
    with runtime.db.transaction() as session:
        failing = session.scalars(
            select(Delivery).where(Delivery.subscription_id == made["fj-cib"])
        ).one()
        failing.attempts, failing.last_error = 3, "connect_error"
        failing.next_attempt_at = runtime.clock.now() + dt.timedelta(minutes=5)
        session.get_one(Subscription, made["fj-cib"]).consecutive_failures = 3
        # the CLI's window is the last 24 hours by the system clock
        health.count_attempts(
            session,
            [
                {
                    "subscription_id": made["fj-cib"],
                    "at": dt.datetime.now(dt.UTC),
                    "status_code": 502,
                    "latency_ms": 40,
                    "error_class": None,
                    "response_excerpt": RECEIVER_SAID,
                }
            ],
        )
        dead = session.scalars(
            select(Delivery).where(Delivery.subscription_id == made["fj-picc"])
        ).one()
        dead.status, dead.attempts, dead.last_error = "dead", 12, "http_500"
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("GATEWAY_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setattr(console, "_width", 80)
    return made


def whole(text: str, *idents: str) -> None:
    """Each ident on one line of `text`, and no ellipsis anywhere."""
    assert "…" not in text, text
    lines = text.splitlines()
    for ident in idents:
        assert any(ident in line for line in lines), (ident, text)


def test_failing_deliveries_show_whole_ids_and_the_apis_figures(
    client: TestClient, subs: dict[str, str]
) -> None:
    text = run("deliveries", "failing")
    whole(text, subs["fj-cib"], USCC, "connect_error", f"http_502: {RECEIVER_SAID}")
    shown: dict[str, Any] = json.loads(run("deliveries", "failing", "--json"))
    assert [s["subscription_id"] for s in shown["subscriptions"]] == [subs["fj-cib"]]
    assert shown["subscriptions"][0]["last_error"] == f"http_502: {RECEIVER_SAID}"
    assert shown["subscriptions"][0]["consecutive_failures"] == 3
    assert shown["subscriptions"][0]["endpoint_host"] == "127.0.0.1"
    assert shown["deliveries"] == client.get("/v1/deliveries/failing").json()["deliveries"]
    assert [(d["agency_id"], d["enterprise"], d["attempts"]) for d in shown["deliveries"]] == [
        ("fj-cib", USCC, 3)
    ]


def test_dead_letters_show_whole_ids_and_the_apis_figures(
    client: TestClient, subs: dict[str, str]
) -> None:
    whole(run("deliveries", "dead-letters"), subs["fj-picc"], USCC, "http_500")
    shown = json.loads(run("deliveries", "dead-letters", "--json"))
    assert shown == client.get("/v1/deliveries/dead-letters").json()["items"]
    assert [(d["subscription_id"], d["status"], d["attempts"]) for d in shown] == [
        (subs["fj-picc"], "dead", 12)
    ]
    assert json.loads(run("deliveries", "dead-letters", "--agency", "fj-cib", "--json")) == []
    assert json.loads(run("deliveries", "dead-letters", "--agency", "fj-picc", "--json")) == shown


def test_health_shows_every_subscription_whole(subs: dict[str, str]) -> None:
    whole(run("deliveries", "health"), subs["fj-picc"], subs["fj-cib"])
    shown = json.loads(run("deliveries", "health", "--json"))
    assert {h["subscription_id"]: h["deliveries"] for h in shown} == {
        subs["fj-picc"]: {"dead": 1},
        subs["fj-cib"]: {"pending": 1},
    }
    assert {h["subscription_id"]: (h["attempts_24h"], h["success_rate_24h"]) for h in shown} == {
        subs["fj-picc"]: (0, None),
        subs["fj-cib"]: (1, 0.0),
    }


def test_overdue_feedback_shows_whole_message_ids_and_usccs(
    client: TestClient, subs: dict[str, str]
) -> None:
    # The CLI counts on today's date; the award was accepted on 2026-11-01 (the test clock):
    # more than 5 working days ago, so both agencies owe it overdue.
    award = client.get("/v1/deliveries/dead-letters").json()["items"][0]["message_id"]
    text = run("feedback", "overdue")
    whole(text, award, USCC, "fj-picc", "fj-cib")
    shown = json.loads(run("feedback", "overdue", "--json"))
    assert {a["agency_id"]: (a["awaiting"], a["overdue"]) for a in shown["agencies"]} == {
        "fj-picc": (0, 1),
        "fj-cib": (0, 1),
    }
    assert [(i["agency_id"], i["message_id"], i["subject"]) for i in shown["items"]] == [
        ("fj-cib", award, USCC),
        ("fj-picc", award, USCC),
    ]


@pytest.mark.usefixtures("subs")
def test_ledger_summary_by_region_gives_the_apis_counts(client: TestClient) -> None:
    api = client.get("/v1/ledgers/basic/summary", params={"by": "region"}).json()
    assert api["groups"] == [{"key": "350900", "total": 1, "by_status": {"达标": 1}}]
    text = run("ledger", "summary", "--by", "region", "--on", "2026-11-01")
    assert "…" not in text
    row = next(line for line in text.splitlines() if "350900" in line)
    assert [cell.strip() for cell in row.split("│")[1:-1]] == ["350900", "0", "1", "0", "1"]
    shown = json.loads(run("ledger", "summary", "--by", "region", "--on", "2026-11-01", "--json"))
    assert shown == api["groups"]


def test_agency_list_shows_whole_key_ids(runtime: Runtime, subs: dict[str, str]) -> None:
    from gateway.models import AgencyKey

    with runtime.db.reader() as session:
        kids = list(session.scalars(select(AgencyKey.kid)))
    assert kids  # the grading authority's key
    text = run("agency", "list")
    whole(text, *kids)
    shown = json.loads(run("agency", "list", "--json"))
    assert {k["kid"] for view in shown for k in view["keys"]} == set(kids)


@pytest.mark.usefixtures("subs")
def test_catalog_versions_show_whole_hashes() -> None:
    shown = json.loads(run("catalog", "versions", "--json"))
    assert shown, "the migrations put the built-in catalog in force"
    whole(run("catalog", "versions"), *(row["sha256"] for row in shown))
