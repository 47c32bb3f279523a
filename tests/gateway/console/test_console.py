"""The console over HTTP (issue 23 §2-5): sign-in by a one-time link, the session cookie,
CSRF, the rights of the signed-in agency (refusals recorded), the pages' figures against the
API's, the agencies' self-service subscriptions and the operators' overviews over the API."""

from __future__ import annotations

import re
from typing import Any

from console_factories import link, populate, refusals, sign_in
from contract_factories import USCC
from fastapi.testclient import TestClient
from gateway_factories import Publisher, bearer
from sqlalchemy import select

from gateway.clock import FixedClock
from gateway.models import AccessRecord, Delivery
from gateway.runtime import Runtime


def test_a_link_signs_in_once_and_sets_a_strict_http_only_cookie(
    client: TestClient, runtime: Runtime, authority: Publisher, clock: FixedClock
) -> None:
    populate(client, runtime, authority)
    client.headers.pop("authorization")
    token = link(runtime, "ops")
    shown = client.get("/console/login", params={"token": token})
    assert shown.status_code == 200
    assert "agency ops" in shown.text
    assert "script-src 'self'" in shown.headers["content-security-policy"]
    assert "unsafe-inline" not in shown.headers["content-security-policy"]
    answer = client.post("/console/login", data={"token": token}, follow_redirects=False)
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Max-Age=" in cookie
    assert "Secure" not in cookie  # plain http here; https sets it
    assert client.get("/console/overview").status_code == 200
    again = client.post("/console/login", data={"token": token}, follow_redirects=False)
    assert again.status_code == 400
    assert "link_used" in again.text
    assert ("console_login", "POST /console/login", "link_used") in refusals(runtime, "ops")
    late = link(runtime, "ops", minutes=1)
    clock.advance(minutes=2)
    expired = client.post("/console/login", data={"token": late}, follow_redirects=False)
    assert expired.status_code == 400
    assert "link_expired" in expired.text


def test_an_expired_or_ended_session_goes_back_to_sign_in(
    client: TestClient, runtime: Runtime, authority: Publisher, clock: FixedClock
) -> None:
    populate(client, runtime, authority)
    csrf = sign_in(client, runtime, "ops")
    clock.advance(hours=9)  # past GATEWAY_CONSOLE__SESSION_SECONDS (8 h)
    gone = client.get("/console/overview", follow_redirects=False)
    assert gone.status_code == 303
    assert gone.headers["location"] == "/console/login"
    clock.advance(hours=-9)
    out = client.post("/console/logout", data={"csrf": csrf}, follow_redirects=False)
    assert out.status_code == 303
    assert client.get("/console/overview", follow_redirects=False).status_code == 303


def test_a_form_without_its_csrf_token_is_refused_and_recorded(
    client: TestClient, runtime: Runtime, authority: Publisher
) -> None:
    populate(client, runtime, authority)
    sign_in(client, runtime, "ops")
    answer = client.post("/console/agencies/fj-cib/grant-scope", data={"scope": "query"})
    assert answer.status_code == 403
    assert "csrf_failed" in answer.text
    assert ("auth", "POST /console/agencies/fj-cib/grant-scope", "csrf_failed") in refusals(
        runtime, "ops"
    )


def test_an_insurer_reaches_neither_the_banks_subscription_nor_an_operator_page(
    client: TestClient, runtime: Runtime, authority: Publisher
) -> None:
    subs = populate(client, runtime, authority)
    sign_in(client, runtime, "fj-picc")
    own = client.get(f"/console/agency/subscriptions/{subs['fj-picc']}")
    assert own.status_code == 200
    assert "whpk_" in own.text
    bank = client.get(f"/console/agency/subscriptions/{subs['fj-cib']}")
    assert bank.status_code == 403
    assert "not_your_subscription" in bank.text
    for page in ("/console/overview", "/console/deliveries", "/console/agencies"):
        assert client.get(page).status_code == 403
    recorded = refusals(runtime, "fj-picc")
    assert (
        "auth",
        f"GET /console/agency/subscriptions/{subs['fj-cib']}",
        "not_your_subscription",
    ) in recorded
    assert ("auth", "GET /console/overview", "insufficient_scope") in recorded


def test_operator_pages_show_the_figures_the_api_gives(
    client: TestClient, runtime: Runtime, authority: Publisher
) -> None:
    populate(client, runtime, authority)
    api = {"authorization": bearer(runtime, "ops", "admin")["Authorization"]}
    summary = client.get("/v1/ledgers/basic/summary", headers=api).json()
    sign_in(client, runtime, "ops")
    overview = client.get("/console/overview").text
    assert figure(overview, "log_size") == str(client_log_size(runtime))
    ledgers = client.get("/console/ledgers").text
    assert figure(ledgers, "ledger_total") == str(summary["total"]) == "1"
    group = summary["groups"][0]
    assert f'data-key="{group["key"]}"' in ledgers
    enterprise = client.get(f"/console/enterprises/{USCC}", params={"purpose": "audit"})
    assert enterprise.status_code == 200
    assert "grade.awarded" in enterprise.text
    with runtime.db.reader() as session:
        actions = set(
            session.scalars(
                select(AccessRecord.action).where(
                    AccessRecord.uscc == USCC, AccessRecord.agency_id == "ops"
                )
            )
        )
    assert actions == {"grade_history", "measures", "access_records"}
    for page in ("/console/deliveries", "/console/feedback", "/console/agencies", "/console/log"):
        answer = client.get(page)
        assert answer.status_code == 200, (page, answer.text[:300])
    feedback = client.get("/v1/feedback", headers=api).json()
    shown = client.get("/console/feedback").text
    for row in feedback["agencies"]:
        assert f'data-agency="{row["agency_id"]}"' in shown


def figure(html: str, name: str) -> str:
    found = re.search(rf'data-figure="{name}">([^<]*)<', html)
    assert found, name
    return found.group(1).strip()


def client_log_size(runtime: Runtime) -> int:
    from gateway.models import LogHead

    with runtime.db.reader() as session:
        return int(session.scalar(select(LogHead.size)) or 0)


def test_agencies_manage_their_own_subscriptions_over_the_api(
    client: TestClient, runtime: Runtime, authority: Publisher
) -> None:
    subs = populate(client, runtime, authority)
    insurer = bearer(runtime, "fj-picc", "subscribe")
    made = client.post("/v1/subscriptions", json={"types": ["grade.awarded"]}, headers=insurer)
    assert made.status_code == 201
    assert made.json()["agency_id"] == "fj-picc"
    other = client.post(
        "/v1/subscriptions",
        json={"agency_id": "fj-cib", "types": ["grade.awarded"]},
        headers=insurer,
    )
    assert other.json()["code"] == "not_your_subscription"
    refused = client.post("/v1/subscriptions", json={"types": ["grade.revoked"]}, headers=insurer)
    assert refused.json()["code"] == "not_permitted"
    listed = client.get("/v1/subscriptions", headers=insurer).json()["items"]
    assert {s["agency_id"] for s in listed} == {"fj-picc"}
    paused = client.patch(
        f"/v1/subscriptions/{subs['fj-picc']}", json={"status": "paused"}, headers=insurer
    )
    assert paused.json()["status"] == "paused"
    assert (
        client.patch(
            f"/v1/subscriptions/{subs['fj-cib']}", json={"status": "paused"}, headers=insurer
        ).status_code
        == 403
    )
    assert (
        client.patch(
            f"/v1/subscriptions/{subs['fj-picc']}", json={"status": "disabled"}, headers=insurer
        ).status_code
        == 403
    )


def test_operators_overviews_over_the_api(
    client: TestClient, runtime: Runtime, authority: Publisher
) -> None:
    subs = populate(client, runtime, authority)
    with runtime.db.transaction() as session:
        dead = session.scalars(
            select(Delivery).where(Delivery.subscription_id == subs["fj-cib"])
        ).one()
        dead.status, dead.last_error = "dead", "http_500"
    items = client.get("/v1/deliveries/dead-letters").json()["items"]
    assert [(i["agency_id"], i["type"], i["last_error"]) for i in items] == [
        ("fj-cib", "grade.awarded", "http_500")
    ]
    health: dict[str, Any] = client.get("/v1/deliveries/health").json()
    assert {s["agency_id"] for s in health["subscriptions"]} == {"fj-picc", "fj-cib"}
    assert client.get("/v1/deliveries/failing").status_code == 200
    feedback = client.get("/v1/feedback").json()
    assert {a["agency_id"]: a["awaiting"] for a in feedback["agencies"]} == {
        "fj-picc": 1,
        "fj-cib": 1,
    }
    by_region = client.get("/v1/ledgers/basic/summary", params={"by": "region"}).json()
    assert by_region["groups"] == [{"key": "350900", "total": 1, "by_status": {"达标": 1}}]
    assert (
        client.get("/v1/ledgers/basic/summary", params={"by": "colour"}).json()["code"]
        == "invalid_filter"
    )


def test_api_docs_are_served_offline_with_the_bearer_scheme(client: TestClient) -> None:
    docs = client.get("/docs").text
    assert "/docs-assets/swagger-ui-bundle.js" in docs
    assert "cdn" not in docs
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    assert "/docs-assets/redoc.standalone.js" in client.get("/redoc").text
    document = client.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert document["paths"]["/v1/ledgers/{ledger}"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in document["paths"]["/v1/log/checkpoint"]["get"]
