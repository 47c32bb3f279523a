"""The console's actions over HTTP (issue 23 §1-4): the CLI's login link signs in; the English
switch and times in Fujian time; grant and revoke on the agencies page as log entries; a
dead letter skipped with its reason; an uploaded evidence bundle checked as `gateway verify`
checks it; an agency's own subscriptions made, paused, resumed and their secret rotated in
the portal, and the same over the API."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from console_factories import link, populate, refusals, sign_in
from contract_factories import USCC, make_registration
from fastapi.testclient import TestClient
from gateway_factories import Publisher, bearer, operator_token, publish
from sqlalchemy import func, select
from typer.testing import CliRunner

from contracts.uscc import complete_uscc
from gateway.cli import app
from gateway.clock import FixedClock
from gateway.errors import Unauthorized
from gateway.models import AccessRecord, Delivery, DeliveryAttempt, LogEntry, Subscription
from gateway.registry import rights
from gateway.runtime import Runtime
from gateway.settings import Settings
from keys.jws import parse_compact
from keys.suites import get_suite


def test_the_cli_prints_a_link_that_signs_in_once(
    client: TestClient,
    runtime: Runtime,
    authority: Publisher,
    clock: FixedClock,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    populate(client, runtime, authority)
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("GATEWAY_DATABASE_URL", settings.effective_database_url)
    result = CliRunner().invoke(
        app, ["console", "login", "fj-picc", "--base-url", "http://127.0.0.1:8123/"]
    )
    assert result.exit_code == 0, result.output
    printed = result.output.strip()
    assert printed.startswith("http://127.0.0.1:8123/console/login?token="), printed
    token = urlsplit(printed).query.removeprefix("token=")
    clock.at = dt.datetime.now(dt.UTC)  # the CLI signs its link by the system clock
    client.headers.pop("authorization")
    shown = client.get("/console/login", params={"token": token})
    assert shown.status_code == 200
    assert "agency fj-picc" in shown.text
    answer = client.post("/console/login", data={"token": token}, follow_redirects=False)
    assert answer.status_code == 303
    portal = client.get("/console/agency/")
    assert portal.status_code == 200
    assert "agency fj-picc" in portal.text
    again = client.post("/console/login", data={"token": token}, follow_redirects=False)
    assert again.status_code == 400
    assert "link_used" in again.text
    refused = CliRunner().invoke(app, ["console", "login", "fj-nobody"])
    assert refused.exit_code == 1
    assert "unknown_agency" in refused.output


def test_english_on_request_and_times_in_fujian_time(
    client: TestClient, runtime: Runtime, authority: Publisher
) -> None:
    populate(client, runtime, authority)
    sign_in(client, runtime, "ops")
    page = f"/console/enterprises/{USCC}"
    chinese = client.get(page).text
    assert '<html lang="zh-CN">' in chinese
    assert "时间均为福建时间（UTC+8）" in chinese
    switched = client.get("/console/lang/en", params={"next": page}, follow_redirects=False)
    assert switched.status_code == 303
    assert switched.headers["location"] == page
    english = client.get(page).text
    assert '<html lang="en">' in english
    assert "Times are Fujian time (UTC+8)" in english
    assert "时间均为福建时间" not in english
    # published at 08:00 UTC (the test clock): 16:00 in Fujian, never the UTC hour
    assert "2026-11-01 16:00:00" in english
    assert "2026-11-01 08:00:00" not in english
    # another site is no place to return to
    away = client.get(
        "/console/lang/zh", params={"next": "//evil.example/"}, follow_redirects=False
    )
    assert away.headers["location"] == "/console/"
    assert '<html lang="zh-CN">' in client.get(page).text


def gateway_entries(runtime: Runtime, entry_type: str) -> list[LogEntry]:
    with runtime.db.reader() as session:
        return list(
            session.scalars(
                select(LogEntry).where(LogEntry.type == entry_type).order_by(LogEntry.idx)
            )
        )


def test_grant_and_revoke_on_the_agencies_page_are_log_entries(
    client: TestClient, runtime: Runtime, authority: Publisher
) -> None:
    populate(client, runtime, authority)
    csrf = sign_in(client, runtime, "ops")
    granted_before = len(gateway_entries(runtime, "gateway.rights.granted"))
    answer = client.post(
        "/console/agencies/fj-cib/grant",
        data={
            "csrf": csrf,
            "action": "query",
            "contract": "standing",
            "fields": "grade.level, ledger_status",
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    granted = gateway_entries(runtime, "gateway.rights.granted")
    assert len(granted) == granted_before + 1
    assert granted[-1].kind == "gateway"
    assert granted[-1].issuer == "gateway"
    with runtime.db.reader() as session:
        held = rights.rights_of(session, "fj-cib")
    assert held["query"] == {"standing": ["grade.level", "ledger_status"]}
    shown = client.get(answer.headers["location"]).text
    assert 'data-right="query:standing"' in shown
    revoked = client.post(
        "/console/agencies/fj-cib/revoke",
        data={"csrf": csrf, "action": "query", "contract": "standing"},
        follow_redirects=False,
    )
    assert revoked.status_code == 303
    assert len(gateway_entries(runtime, "gateway.rights.revoked")) == 1
    with runtime.db.reader() as session:
        assert rights.rights_of(session, "fj-cib")["query"] == {}
    assert 'data-right="query:standing"' not in client.get("/console/agencies/fj-cib").text
    unknown = client.post(
        "/console/agencies/fj-cib/grant",
        data={"csrf": csrf, "action": "subscribe", "contract": "grade.nonsense"},
    )
    assert unknown.status_code == 400
    assert len(gateway_entries(runtime, "gateway.rights.granted")) == granted_before + 1


def test_scopes_granted_and_revoked_on_the_agencies_page_are_log_entries(
    client: TestClient, runtime: Runtime, authority: Publisher
) -> None:
    populate(client, runtime, authority)
    csrf = sign_in(client, runtime, "ops")
    granted = client.post(
        "/console/agencies/fj-cib/grant-scope",
        data={"csrf": csrf, "scope": "query"},
        follow_redirects=False,
    )
    assert granted.status_code == 303
    entry = gateway_entries(runtime, "gateway.scopes.granted")[-1]
    assert json.loads(parse_compact(entry.jws).payload)["data"]["agency_id"] == "fj-cib"
    shown = client.get("/console/agencies/fj-cib").text
    assert re.search(r'data-figure="scopes">query subscribe<', shown)
    revoked = client.post(
        "/console/agencies/fj-cib/revoke-scope",
        data={"csrf": csrf, "scope": "subscribe"},
        follow_redirects=False,
    )
    assert revoked.status_code == 303
    assert len(gateway_entries(runtime, "gateway.scopes.revoked")) == 1
    shown = client.get("/console/agencies/fj-cib").text
    assert re.search(r'data-figure="scopes">query<', shown)


def test_a_read_right_is_shown_granted_and_revoked_on_the_agencies_page(
    client: TestClient, runtime: Runtime, authority: Publisher
) -> None:
    """The `read` right (the raw message, issue 20 finding 8) beside the others."""
    populate(client, runtime, authority)
    csrf = sign_in(client, runtime, "ops")
    form = {"csrf": csrf, "action": "read", "contract": "grade.awarded"}
    granted = client.post("/console/agencies/fj-cib/grant", data=form, follow_redirects=False)
    assert granted.status_code == 303
    with runtime.db.reader() as session:
        assert rights.rights_of(session, "fj-cib")["read"] == ["grade.awarded"]
    entry = gateway_entries(runtime, "gateway.rights.granted")[-1]
    assert json.loads(parse_compact(entry.jws).payload)["data"] == {
        "agency_id": "fj-cib",
        "read": "grade.awarded",
        "fields": None,
    }
    page = client.get("/console/agencies/fj-cib").text
    assert 'data-right="read:grade.awarded"' in page
    assert "<option>read</option>" in page
    listed = client.get("/console/agencies").text
    row = listed[listed.index('data-agency="fj-cib"') :]
    assert "原文 1" in row[: row.index("</tr>")]
    revoked = client.post(
        "/console/agencies/fj-cib/revoke",
        data={"csrf": csrf, "action": "read", "contract": "grade.awarded"},
        follow_redirects=False,
    )
    assert revoked.status_code == 303
    with runtime.db.reader() as session:
        assert rights.rights_of(session, "fj-cib")["read"] == []
    assert 'data-right="read:grade.awarded"' not in client.get("/console/agencies/fj-cib").text


def test_a_dead_letter_is_skipped_from_the_console_with_its_reason(
    client: TestClient, runtime: Runtime, authority: Publisher
) -> None:
    subs = populate(client, runtime, authority)
    with runtime.db.transaction() as session:
        dead = session.scalars(
            select(Delivery).where(Delivery.subscription_id == subs["fj-cib"])
        ).one()
        dead.status, dead.last_error = "dead", "http_500"
        dead_id, index = dead.id, dead.log_index
    csrf = sign_in(client, runtime, "ops")
    listed = client.get("/console/deliveries").text
    assert f'name="subscription_id" value="{subs["fj-cib"]}"' in listed
    form = {"csrf": csrf, "subscription_id": subs["fj-cib"], "log_index": str(index)}
    unconfirmed = client.post("/console/deliveries/skip", data={**form, "reason": "gone"})
    assert unconfirmed.status_code == 400
    answer = client.post(
        "/console/deliveries/skip",
        data={**form, "reason": "receiver replaced", "confirm": "yes"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/deliveries?notice=Skipped%3A%201"
    with runtime.db.reader() as session:
        assert session.get_one(Delivery, dead_id).status == "skipped"
        notes = list(
            session.execute(
                select(DeliveryAttempt.error_class, DeliveryAttempt.response_excerpt).where(
                    DeliveryAttempt.delivery_id == dead_id
                )
            )
        )
    assert [tuple(n) for n in notes] == [("skipped", "skipped by ops: receiver replaced")]
    api = bearer(runtime, "ops", "admin")
    assert client.get("/v1/deliveries/dead-letters", headers=api).json()["items"] == []
    again = client.post(
        "/console/deliveries/skip", data={**form, "reason": "twice", "confirm": "yes"}
    )
    assert again.status_code == 409
    assert "not_stuck" in again.text


def test_an_uploaded_bundle_gets_the_checks_of_gateway_verify(
    client: TestClient, runtime: Runtime, authority: Publisher, tmp_path: Path
) -> None:
    populate(client, runtime, authority)
    first, second = (
        publish(
            client,
            authority.message("enterprise.registered", make_registration(), subject=code),
        )
        for code in (complete_uscc("91350200MA000001"), complete_uscc("91350300MA000001"))
    )
    message_id = first.json()["message_id"]
    issuer = {"authorization": f"Bearer {operator_token(runtime, 'admin', 'fj-yjt')}"}
    bundle = client.get(f"/v1/messages/{message_id}/bundle", headers=issuer).json()
    assert "jws" in bundle
    files = {
        "jwks": json.dumps(client.get("/.well-known/jwks.json").json()),
        "vkey": client.get("/v1/log/vkey").text,
        "publisher": json.dumps(authority.key.public_key.jwk()),
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    csrf = sign_in(client, runtime, "ops")

    def on_the_page(evidence: dict[str, object]) -> list[tuple[str, bool]]:
        answer = client.post(
            "/console/log/verify", data={"csrf": csrf, "bundle": json.dumps(evidence)}
        )
        assert answer.status_code == 200, answer.text[:300]
        table = answer.text[answer.text.index('<table id="checks">') :]
        rows = re.findall(r'<tr data-ok="(true|false)"><td>([^<]+)</td>', table)
        return [(html.unescape(name), ok == "true") for ok, name in rows]

    def by_the_cli(evidence: dict[str, object]) -> list[tuple[str, bool]]:
        (tmp_path / "bundle").write_text(json.dumps(evidence))
        result = CliRunner().invoke(
            app,
            [
                "verify",
                str(tmp_path / "bundle"),
                "--gateway-jwks",
                str(tmp_path / "jwks"),
                "--log-vkey",
                str(tmp_path / "vkey"),
                "--publisher-jwk",
                str(tmp_path / "publisher"),
                "--json",
            ],
        )
        return [(c["check"], c["ok"]) for c in json.loads(result.output)]

    good = on_the_page(bundle)
    assert good == by_the_cli(bundle)
    assert len(good) == 7
    assert all(ok for _, ok in good)
    assert good[-1][0] == "inclusion in the checkpoint"
    # another message's receipt in this message's bundle
    forged = dict(bundle, receipt=second.json()["receipt"])
    caught = on_the_page(forged)
    assert caught == by_the_cli(forged)
    assert {name for name, ok in caught if not ok} == {
        "receipt names this message",
        "receipt index = proof index",
        "receipt leaf hash",
    }
    # the publisher's key as registered under its kid, and as pasted: the same verdict
    pasted = client.post(
        "/console/log/verify",
        data={"csrf": csrf, "bundle": json.dumps(bundle), "publisher_jwk": files["publisher"]},
    )
    assert pasted.text.count('data-ok="true"') == 7
    other_key = json.dumps(get_suite("ed25519").generate().public_key.jwk())
    wrong = client.post(
        "/console/log/verify",
        data={"csrf": csrf, "bundle": json.dumps(bundle), "publisher_jwk": other_key},
    )
    assert '<tr data-ok="false"><td>publisher signature</td>' in wrong.text
    not_a_bundle = client.post("/console/log/verify", data={"csrf": csrf, "bundle": "[1]"})
    assert not_a_bundle.status_code == 400


def test_an_agency_manages_its_own_subscriptions_in_the_portal(
    client: TestClient, runtime: Runtime, authority: Publisher
) -> None:
    subs = populate(client, runtime, authority)
    csrf = sign_in(client, runtime, "fj-picc")
    made = client.post(
        "/console/agency/subscriptions",
        data={
            "csrf": csrf,
            "types": "grade.awarded",
            "url": "http://127.0.0.1:9/hook",
            "view": "full",
            "hmac": "yes",
        },
    )
    assert made.status_code == 201, made.text[:300]
    sub_id = re.search(r"<h1>[^<]*<code>([0-9a-f-]{36})</code>", made.text)
    assert sub_id, made.text[:500]
    secret = re.search(r'<code id="secret">(whsec_[^<]+)</code>', made.text)
    assert secret
    assert 'data-figure="whpk">whpk_' in made.text
    with runtime.db.reader() as session:
        row = session.get_one(Subscription, sub_id[1])
        assert (row.agency_id, row.url, row.types, row.hmac_secret) == (
            "fj-picc",
            "http://127.0.0.1:9/hook",
            ["grade.awarded"],
            secret[1],
        )
    refused = client.post(
        "/console/agency/subscriptions", data={"csrf": csrf, "types": "grade.revoked"}
    )
    assert refused.status_code == 403
    assert "not_permitted" in refused.text
    base = f"/console/agency/subscriptions/{sub_id[1]}"
    assert client.post(f"{base}/pause", data={"csrf": csrf}).status_code == 200
    assert status_of(runtime, sub_id[1]) == "paused"
    assert client.post(f"{base}/resume", data={"csrf": csrf}).status_code == 200
    assert status_of(runtime, sub_id[1]) == "active"
    rotated = client.post(f"{base}/rotate", data={"csrf": csrf})
    assert rotated.status_code == 200
    new = re.search(r'<code id="secret">(whsec_[^<]+)</code>', rotated.text)
    assert new
    assert new[1] != secret[1]
    with runtime.db.reader() as session:
        row = session.get_one(Subscription, sub_id[1])
        assert (row.hmac_secret, row.previous_hmac_secret) == (new[1], secret[1])
    other = client.post(
        f"/console/agency/subscriptions/{subs['fj-cib']}/pause", data={"csrf": csrf}
    )
    assert other.status_code == 403
    assert status_of(runtime, subs["fj-cib"]) == "active"
    portal = client.get("/console/agency/").text
    assert sub_id[1] in portal
    assert subs["fj-cib"] not in portal


def status_of(runtime: Runtime, sub_id: str) -> str:
    with runtime.db.reader() as session:
        return session.get_one(Subscription, sub_id).status


def test_an_agency_resumes_rotates_and_reads_dead_letters_of_its_own_over_the_api(
    client: TestClient, runtime: Runtime, authority: Publisher
) -> None:
    subs = populate(client, runtime, authority)
    insurer = bearer(runtime, "fj-picc", "subscribe")
    made = client.post(
        "/v1/subscriptions",
        json={"types": ["grade.awarded"], "signing": ["v1a", "v1"]},
        headers=insurer,
    ).json()
    own = made["id"]
    assert made["hmac_secret"].startswith("whsec_")
    path = f"/v1/subscriptions/{own}"
    assert client.patch(path, json={"status": "paused"}, headers=insurer).json()["status"] == (
        "paused"
    )
    resumed = client.patch(path, json={"status": "active"}, headers=insurer)
    assert resumed.json()["status"] == "active"
    assert status_of(runtime, own) == "active"
    rotated = client.post(f"{path}/rotate-secret", json={"overlap_hours": 2}, headers=insurer)
    assert rotated.status_code == 200
    assert rotated.json()["hmac_secret"] not in (made["hmac_secret"], None)
    assert rotated.json()["previous_valid_until"] == "2026-11-01T10:00:00+00:00"
    bank_path = f"/v1/subscriptions/{subs['fj-cib']}"
    assert client.post(f"{bank_path}/rotate-secret", json={}, headers=insurer).status_code == 403
    with runtime.db.transaction() as session:
        for sub_id in (subs["fj-picc"], subs["fj-cib"]):
            dead = session.scalars(select(Delivery).where(Delivery.subscription_id == sub_id)).one()
            dead.status, dead.last_error = "dead", f"http_500 for {sub_id}"
        total = session.scalar(select(func.count()).select_from(Delivery))
    assert total == 2
    letters = client.get(f"/v1/subscriptions/{subs['fj-picc']}/dead-letters", headers=insurer)
    assert letters.status_code == 200
    items = letters.json()["items"]
    assert [i["last_error"] for i in items] == [f"http_500 for {subs['fj-picc']}"]
    bank = client.get(f"{bank_path}/dead-letters", headers=insurer)
    assert bank.status_code == 403
    assert bank.json()["code"] == "not_your_subscription"


def test_a_disabled_agency_is_refused_by_the_console_as_by_the_api(
    client: TestClient, runtime: Runtime, authority: Publisher
) -> None:
    """`gateway agency disable`: its tokens are refused; its console session and its login
    links too, until it is enabled again (each refusal an access record)."""
    subs = populate(client, runtime, authority)
    sign_in(client, runtime, "fj-picc")
    unused = link(runtime, "fj-picc")
    operator = bearer(runtime, "ops", "admin")
    disabled = client.put(
        "/v1/agencies/fj-picc/status",
        json={"status": "disabled", "reason": "leaked key"},
        headers=operator,
    )
    assert disabled.status_code == 200
    with pytest.raises(Unauthorized, match="disabled"):  # `gateway console login` refuses
        link(runtime, "fj-picc")
    api = client.get("/v1/subscriptions", headers=bearer(runtime, "fj-picc", "subscribe"))
    assert api.json()["code"] == "agency_disabled"
    page = client.get(f"/console/agency/subscriptions/{subs['fj-picc']}")
    assert page.status_code == 401
    assert "agency_disabled" in page.text
    shown = client.get("/console/login", params={"token": unused})
    assert shown.status_code == 401
    assert "agency_disabled" in shown.text
    signed = client.post("/console/login", data={"token": unused}, follow_redirects=False)
    assert signed.status_code == 401
    assert "agency_disabled" in signed.text
    assert ("auth", f"GET /console/agency/subscriptions/{subs['fj-picc']}", "agency_disabled") in (
        refusals(runtime, "fj-picc")
    )
    assert ("console_login", "POST /console/login", "agency_disabled") in refusals(
        runtime, "fj-picc"
    )
    own_session = client.cookies["gw_console"]
    client.cookies.clear()
    sign_in(client, runtime, "ops")
    listed = client.get("/console/agencies").text
    row = listed[listed.index('data-agency="fj-picc"') :]
    assert 'data-status="disabled"' in row[: row.index("</tr>")]
    detail = client.get("/console/agencies/fj-picc").text
    assert 'data-status="disabled"' in detail
    assert "leaked key" in detail
    client.cookies.clear()
    client.cookies.set("gw_console", own_session, path="/console")
    enabled = client.put("/v1/agencies/fj-picc/status", json={"status": "active"}, headers=operator)
    assert enabled.status_code == 200
    assert client.get(f"/console/agency/subscriptions/{subs['fj-picc']}").status_code == 200


def test_the_enterprise_search_records_the_purpose_as_typed(
    client: TestClient, runtime: Runtime, authority: Publisher
) -> None:
    """The purpose is the access record's "why": `&`, `#` or `+` in it must not cut it."""
    populate(client, runtime, authority)
    sign_in(client, runtime, "ops")
    purpose = "complaint #42 & review + audit"
    found = client.get(
        "/console/enterprises", params={"code": f" {USCC.lower()} ", "purpose": purpose}
    )
    assert found.status_code == 200
    assert found.url.path == f"/console/enterprises/{USCC}"
    with runtime.db.reader() as session:
        recorded = set(
            session.scalars(
                select(AccessRecord.purpose).where(
                    AccessRecord.uscc == USCC, AccessRecord.agency_id == "ops"
                )
            )
        )
    assert recorded == {purpose}


def test_the_portal_shows_the_agencys_own_dead_letters_and_feedback_owed(
    client: TestClient, runtime: Runtime, authority: Publisher, clock: FixedClock
) -> None:
    subs = populate(client, runtime, authority)
    with runtime.db.transaction() as session:
        for sub_id, error in (
            (subs["fj-picc"], "http_500 (insurer)"),
            (subs["fj-cib"], "http_503 (bank)"),
        ):
            dead = session.scalars(select(Delivery).where(Delivery.subscription_id == sub_id)).one()
            dead.status, dead.last_error = "dead", error
    clock.advance(days=10)  # past the 5 working days: the award's feedback is overdue
    operator = bearer(runtime, "ops", "admin")
    owed = client.get("/v1/feedback", params={"agency_id": "fj-picc"}, headers=operator).json()
    (mine,) = owed["agencies"]
    assert (mine["awaiting"], mine["overdue"]) == (0, 1)
    sign_in(client, runtime, "fj-picc")
    portal = client.get("/console/agency/").text
    assert re.search(r'data-figure="stuck">1<', portal)
    assert "http_500 (insurer)" in portal
    assert "http_503 (bank)" not in portal
    assert re.search(r'data-figure="overdue">1<', portal)
    assert re.search(r'data-figure="awaiting">0<', portal)
