"""Issue 20, finding 9 (the rest): there was no way to disable an agency. `gateway agency
disable` and `PUT /v1/agencies/{id}/status` now refuse its logins, its tokens (at once in the
process that made the change, within the refresh elsewhere) and its messages, hold its push
deliveries, and each change is a log entry; enabling it again undoes all of it."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import pytest
from contract_factories import make_registration
from fastapi.testclient import TestClient
from gateway_factories import Publisher, operator_token, register_publisher
from sqlalchemy import select
from typer.testing import CliRunner

from gateway.access import revocations
from gateway.access.assertion import ASSERTION_TYPE, make_client_assertion
from gateway.delivery.jobs import claim_due_deliveries
from gateway.models import Agency, Delivery, LogEntry
from gateway.publishing.orchestration import publish
from gateway.registry.scopes import grant_scopes
from gateway.runtime import Runtime
from keys.jws import parse_compact

AUDIENCE = "http://testserver/v1/oauth/token"
FEED = "/v1/subscriptions/00000000-0000-0000-0000-000000000000/feed"  # 404 once admitted


@pytest.fixture(autouse=True)
def quick_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(revocations, "REFRESH_SECONDS", 0.05)


@pytest.fixture
def agency(runtime: Runtime) -> Publisher:
    publisher = register_publisher(runtime, "fj-cib", ["enterprise.registered"], roles=["bank"])
    with runtime.db.transaction() as session:
        grant_scopes(
            session, runtime.signer, "fj-cib", ["subscribe", "publish"], runtime.clock.now()
        )
    return publisher


def log_in(client: TestClient, runtime: Runtime, publisher: Publisher) -> Any:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": make_client_assertion(
            publisher.key, "fj-cib", AUDIENCE, runtime.clock.now()
        ),
    }
    return client.post("/v1/oauth/token", data=form, headers={"authorization": ""})


def call(client: TestClient, token: str) -> Any:
    return client.get(FEED, headers={"authorization": f"Bearer {token}"})


def set_status(client: TestClient, status: str, reason: str | None = None) -> Any:
    return client.put("/v1/agencies/fj-cib/status", json={"status": status, "reason": reason})


def entries_of(runtime: Runtime, prefix: str) -> list[dict[str, Any]]:
    with runtime.db.reader() as session:
        rows = session.scalars(select(LogEntry.jws).where(LogEntry.type.startswith(prefix)))
        return [json.loads(parse_compact(jws).payload) for jws in rows]


def test_a_disabled_agency_gets_no_token_and_its_tokens_are_refused_at_once(
    client: TestClient, agency: Publisher, runtime: Runtime
) -> None:
    token = log_in(client, runtime, agency).json()["access_token"]
    assert call(client, token).status_code == 404  # admitted: no such subscription
    changed = set_status(client, "disabled", "key material leaked")
    assert changed.status_code == 200, changed.text
    assert changed.json()["status"] == "disabled"
    refused = call(client, token)  # the same process: no refresh to wait for
    assert refused.status_code == 401
    assert (refused.json()["code"], refused.json()["error"]) == ("agency_disabled", "invalid_token")
    login = log_in(client, runtime, agency)
    assert (login.status_code, login.json()["code"]) == (401, "agency_disabled")
    assert login.json()["error"] == "invalid_client"
    (entry,) = entries_of(runtime, "gateway.agency.disabled")
    assert entry["data"] == {"agency_id": "fj-cib", "reason": "key material leaked"}

    assert set_status(client, "active", "key replaced").status_code == 200
    fresh = log_in(client, runtime, agency)
    assert fresh.status_code == 200
    assert call(client, fresh.json()["access_token"]).status_code == 404
    assert [e["data"]["reason"] for e in entries_of(runtime, "gateway.agency.enabled")] == [
        "key replaced"
    ]


def test_a_disabled_agencys_messages_are_refused_even_in_process(
    client: TestClient, agency: Publisher, runtime: Runtime
) -> None:
    """A message signed by its key is refused whoever brings it (403 agency_disabled)."""
    assert set_status(client, "disabled").status_code == 200
    message = agency.message("enterprise.registered", make_registration())
    publish_token = operator_token(runtime, "publish", "fj-cib")
    over_http = client.post(
        "/v1/messages",
        content=message,
        headers={"content-type": "application/jose", "authorization": f"Bearer {publish_token}"},
    )
    assert (over_http.status_code, over_http.json()["code"]) == (401, "agency_disabled")
    (outcome,) = publish(runtime, [message])  # in-process: no token at all
    assert outcome.status == 403
    assert outcome.error is not None
    assert outcome.error.code == "agency_disabled"
    assert entries_of(runtime, "enterprise.") == []


def test_a_disabled_agencys_push_deliveries_wait_and_go_out_once_enabled(
    client: TestClient, agency: Publisher, authority: Publisher, runtime: Runtime
) -> None:
    register_publisher(runtime, "fj-cib", [], subscribe=["enterprise.registered"])
    body = {
        "agency_id": "fj-cib",
        "url": "http://127.0.0.1:9/hook",
        "types": ["enterprise.registered"],
    }
    assert client.post("/v1/subscriptions", json=body).status_code == 201
    assert set_status(client, "disabled").status_code == 200
    message = authority.message("enterprise.registered", make_registration())
    published = client.post(
        "/v1/messages",
        content=message,
        headers={
            "content-type": "application/jose",
            "authorization": f"Bearer {operator_token(runtime, 'publish', 'fj-yjt')}",
        },
    )
    assert published.status_code == 201
    lease = dt.timedelta(seconds=runtime.settings.delivery.lease_seconds)
    with runtime.db.transaction() as session:
        assert claim_due_deliveries(session, runtime.clock.now(), 10, lease) == []
    assert set_status(client, "active").status_code == 200
    with runtime.db.transaction() as session:
        claimed = claim_due_deliveries(session, runtime.clock.now(), 10, lease)
    assert len(claimed) == 1
    with runtime.db.reader() as session:
        assert session.scalars(select(Delivery.status)).all() == ["pending"]


@pytest.mark.parametrize(
    "body",
    [
        {"status": "removed"},
        {"status": "disabled", "reason": "x" * 501},
        {"reason": "no status"},
        {"status": "disabled", "reason": "   "},
    ],
)
def test_a_status_that_cannot_be_is_400_and_changes_nothing(
    client: TestClient, agency: Publisher, runtime: Runtime, body: dict[str, Any]
) -> None:
    refused = client.put("/v1/agencies/fj-cib/status", json=body)
    assert refused.status_code == 400, refused.text
    assert refused.json()["code"] in ("invalid_request", "invalid_reason")
    with runtime.db.reader() as session:
        assert session.get(Agency, "fj-cib").status == "active"  # type: ignore[union-attr]
    assert entries_of(runtime, "gateway.agency.disabled") == []


def test_an_unknown_agency_is_404_and_a_repeated_status_logs_nothing(
    client: TestClient, agency: Publisher, runtime: Runtime
) -> None:
    missing = client.put("/v1/agencies/nobody/status", json={"status": "disabled"})
    assert (missing.status_code, missing.json()["code"]) == (404, "unknown_agency")
    assert set_status(client, "disabled").status_code == 200
    assert set_status(client, "disabled").status_code == 200
    assert len(entries_of(runtime, "gateway.agency.disabled")) == 1
    needs_admin = client.put(
        "/v1/agencies/fj-cib/status",
        json={"status": "active"},
        headers={"authorization": f"Bearer {operator_token(runtime, 'ledger.read', 'x')}"},
    )
    assert (needs_admin.status_code, needs_admin.json()["code"]) == (403, "insufficient_scope")


def test_the_cli_disables_and_enables_and_a_running_api_follows(
    client: TestClient,
    agency: Publisher,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`gateway agency disable` runs in a process of its own: the API refuses the agency's
    tokens within the refresh."""
    from gateway.cli import app

    settings = runtime.settings
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("GATEWAY_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("GATEWAY_LOG_ORIGIN", settings.log_origin)
    token = log_in(client, runtime, agency).json()["access_token"]
    runner = CliRunner()
    done = runner.invoke(app, ["agency", "disable", "fj-cib", "--reason", "audit", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["status"] == "disabled"
    deadline = time.monotonic() + 3
    while call(client, token).status_code != 401 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert call(client, token).json()["code"] == "agency_disabled"
    listed = runner.invoke(app, ["agency", "list", "--json"])
    assert [a["status"] for a in json.loads(listed.output) if a["id"] == "fj-cib"] == ["disabled"]
    assert runner.invoke(app, ["agency", "enable", "fj-cib"]).exit_code == 0
    unknown = runner.invoke(app, ["agency", "disable", "nobody"])
    assert unknown.exit_code == 1
    assert "unknown_agency" in unknown.output
