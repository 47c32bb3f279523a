"""Console test helpers: agencies with scopes, one-time links, a signed-in TestClient, and a
small populated gateway (two enterprises, an insurer and a bank subscribed by pull to awards).

(Named console_factories: test helper modules are imported by bare name, see contract_factories.)
"""

from __future__ import annotations

import datetime as dt
import re

from contract_factories import make_award, make_registration
from fastapi.testclient import TestClient
from gateway_factories import Publisher, allow_subscribe, publish
from sqlalchemy import select

from gateway.console.sessions import issue_link
from gateway.delivery import subscriptions
from gateway.models import AccessRecord
from gateway.registry import service
from gateway.runtime import Runtime

AGENCY_USCC = "11350000MB0000019N"


def agency(runtime: Runtime, agency_id: str, roles: list[str], scopes: list[str]) -> None:
    from gateway.registry.scopes import grant_scopes

    with runtime.db.transaction() as session:
        now = runtime.clock.now()
        service.add_agency(
            session,
            runtime.signer,
            agency_id=agency_id,
            name=f"agency {agency_id}",
            uscc=AGENCY_USCC,
            roles=roles,
            now=now,
        )
        grant_scopes(session, runtime.signer, agency_id, scopes, now)


def link(runtime: Runtime, agency_id: str, minutes: float = 10) -> str:
    with runtime.db.reader() as session:
        return issue_link(
            session, runtime.signer, agency_id, runtime.clock.now(), dt.timedelta(minutes=minutes)
        )


def sign_in(client: TestClient, runtime: Runtime, agency_id: str) -> str:
    """Follow a fresh link for `agency_id`; returns the session's CSRF token."""
    client.headers.pop("authorization", None)
    token = link(runtime, agency_id)
    assert "Continue" in client.get("/console/login", params={"token": token}).text or True
    answer = client.post("/console/login", data={"token": token}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    page = client.get("/console/agency/" if agency_id != "ops" else "/console/overview")
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert found, page.text[:500]
    return found.group(1)


def populate(client: TestClient, runtime: Runtime, authority: Publisher) -> dict[str, str]:
    """Two enterprises, one graded; an insurer and a bank subscribed (pull) to awards."""
    agency(runtime, "ops", ["operator"], ["admin"])
    agency(runtime, "fj-picc", ["insurer"], ["subscribe"])
    agency(runtime, "fj-cib", ["bank"], ["subscribe"])
    allow_subscribe(runtime, "fj-picc", ["grade.awarded"])
    allow_subscribe(runtime, "fj-cib", ["grade.awarded"])
    subs = {}
    with runtime.db.transaction() as session:
        for agency_id in ("fj-picc", "fj-cib"):
            sub = subscriptions.create_subscription(
                session,
                agency_id=agency_id,
                url=None,
                types=["grade.awarded"],
                now=runtime.clock.now(),
                allowed_hosts=[],
                view="full",
            )
            subs[agency_id] = sub.id
    assert (
        publish(client, authority.message("enterprise.registered", make_registration())).status_code
        == 201
    )
    assert publish(client, authority.message("grade.awarded", make_award())).status_code == 201
    return subs


def refusals(runtime: Runtime, agency_id: str) -> list[tuple[str, str | None, str]]:
    with runtime.db.reader() as session:
        rows = session.execute(
            select(AccessRecord.action, AccessRecord.purpose, AccessRecord.result).where(
                AccessRecord.agency_id == agency_id, AccessRecord.result != "ok"
            )
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]
