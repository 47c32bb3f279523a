"""Issue 20, finding 3: impossible retry schedules poisoned a round. `POST /v1/subscriptions`
took `retry_schedule` [0, NaN], Infinity, 1e308 or 100,000 entries and `rate_limit` NaN; when
such a subscription failed, computing its next attempt raised and the whole round's results
were discarded, so a healthy subscriber got the same webhook every lease with its row left
pending. Every number is refused unless finite and within its bounds (API, CLI and service),
a row stored before that is read within those bounds, and one delivery's failure while its
result is recorded never discards another's."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from contract_factories import make_award, make_registration
from fastapi.testclient import TestClient
from gateway_factories import Publisher, publish, register_publisher
from sqlalchemy import select, update
from typer.testing import CliRunner

from gateway.app import create_app
from gateway.cli import app as cli
from gateway.delivery import worker
from gateway.delivery.subscriptions import (
    DEFAULT_SCHEDULE,
    MAX_RATE_LIMIT,
    MAX_RETRY_DELAY_SECONDS,
    MAX_SCHEDULE_ENTRIES,
    MIN_RATE_LIMIT,
    create_subscription,
)
from gateway.delivery.worker import make_client, run_once
from gateway.models import Delivery, DeliveryAttempt, Subscription
from gateway.runtime import Runtime
from gateway.settings import Settings

HEALTHY, POISONED = "https://healthy.example/hook", "https://poisoned.example/hook"


@pytest.fixture
def bank(runtime: Runtime) -> Publisher:
    return register_publisher(
        runtime, "fj-cib", ["measure.applied"], roles=["bank"], subscribe=["grade.awarded"]
    )


def subscriptions(runtime: Runtime) -> list[Subscription]:
    with runtime.db.reader() as session:
        return list(session.scalars(select(Subscription)))


def post_raw(client: TestClient, body: str) -> httpx.Response:
    """A JSON body as written: NaN and Infinity are not JSON, but Python's parser reads them."""
    return client.post(
        "/v1/subscriptions", content=body, headers={"content-type": "application/json"}
    )


BASE = '"agency_id": "fj-cib", "types": ["grade.awarded"]'


@pytest.mark.parametrize(
    ("member", "code"),
    [
        ('"retry_schedule": [0, NaN]', "invalid_schedule"),
        ('"retry_schedule": [0, Infinity]', "invalid_schedule"),
        ('"retry_schedule": [0, -Infinity]', "invalid_schedule"),
        ('"retry_schedule": [0, 1e308]', "invalid_schedule"),
        ('"retry_schedule": [0, 1e999]', "invalid_schedule"),  # Python reads it as inf
        ('"retry_schedule": [0, -1]', "invalid_schedule"),
        (f'"retry_schedule": [0, {MAX_RETRY_DELAY_SECONDS + 1}]', "invalid_schedule"),
        ('"retry_schedule": ' + json.dumps([0] * 100_000), "invalid_schedule"),
        ('"retry_schedule": ' + json.dumps([0] * (MAX_SCHEDULE_ENTRIES + 1)), "invalid_schedule"),
        ('"rate_limit": NaN', "invalid_rate_limit"),
        ('"rate_limit": Infinity', "invalid_rate_limit"),
        ('"rate_limit": 1e308', "invalid_rate_limit"),
        ('"rate_limit": 1e-300', "invalid_rate_limit"),  # one delivery in 1e300 s: never
        ('"rate_limit": 0', "invalid_rate_limit"),
        ('"rate_limit": -2', "invalid_rate_limit"),
    ],
)
def test_an_impossible_number_is_refused_and_nothing_is_stored(
    client: TestClient, bank: Publisher, runtime: Runtime, member: str, code: str
) -> None:
    response = post_raw(client, "{" + BASE + ", " + member + "}")
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert subscriptions(runtime) == []


def test_the_bounds_themselves_are_accepted(
    client: TestClient, bank: Publisher, runtime: Runtime
) -> None:
    schedule = [0] * (MAX_SCHEDULE_ENTRIES - 1) + [MAX_RETRY_DELAY_SECONDS]
    for rate in (MIN_RATE_LIMIT, MAX_RATE_LIMIT):
        body = {"agency_id": "fj-cib", "types": ["grade.awarded"], "retry_schedule": schedule}
        response = client.post("/v1/subscriptions", json=body | {"rate_limit": rate})
        assert response.status_code == 201, response.text
        assert response.json()["retry_schedule"] == schedule


def test_patch_refuses_members_it_does_not_change(
    client: TestClient, bank: Publisher, runtime: Runtime
) -> None:
    """PATCH sets status and reason only; a schedule sent there was ignored with a 200."""
    created = client.post(
        "/v1/subscriptions", json={"agency_id": "fj-cib", "types": ["grade.awarded"]}
    )
    sub = created.json()["id"]
    for member in ('"retry_schedule": [0, NaN]', '"rate_limit": Infinity'):
        response = client.patch(
            f"/v1/subscriptions/{sub}",
            content='{"status": "paused", ' + member + "}",
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "invalid_request"
    assert [s.status for s in subscriptions(runtime)] == ["active"]


@pytest.mark.parametrize("rate", ["nan", "inf", "1e308", "0"])
def test_the_cli_refuses_an_impossible_rate_limit(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch, rate: str
) -> None:
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GATEWAY_DATABASE_URL", database_url)
    runner = CliRunner()
    assert runner.invoke(cli, ["init"]).exit_code == 0
    add = ["agency", "add", "fj-cib", "--name", "cib", "--uscc", "11350000MB0000035C"]
    for args in (
        [*add, "--role", "bank"],
        ["agency", "grant", "fj-cib", "--subscribe", "grade.awarded"],
    ):
        done = runner.invoke(cli, args)
        assert done.exit_code == 0, done.output
    result = runner.invoke(
        cli, ["subscription", "add", "fj-cib", "--type", "grade.awarded", "--rate-limit", rate]
    )
    assert result.exit_code == 1, result.output
    assert "rate_limit is deliveries per second" in result.output
    listed = runner.invoke(cli, ["subscription", "list", "--json"])
    assert json.loads(listed.output) == []


# --- the worker: one delivery's bad row never discards another's result ----------------------


def two_subscribers(client: TestClient, authority: Publisher, runtime: Runtime) -> None:
    runtime.settings.delivery.allowed_hosts.extend(["healthy.example", "poisoned.example"])
    with runtime.db.transaction() as session:
        for url in (HEALTHY, POISONED):
            create_subscription(
                session,
                agency_id="fj-cib",
                url=url,
                types=["grade.awarded"],
                now=runtime.clock.now(),
                allowed_hosts=runtime.settings.delivery.allowed_hosts,
                retry_schedule=[0, 60, 600],
            )
    assert publish(client, authority.message("enterprise.registered", make_registration()))
    assert publish(client, authority.message("grade.awarded", make_award())).status_code == 201


def deliveries_by_url(runtime: Runtime) -> dict[str, tuple[Delivery, list[DeliveryAttempt]]]:
    with runtime.db.reader() as session:
        rows = session.execute(
            select(Delivery, Subscription.url).join(
                Subscription, Subscription.id == Delivery.subscription_id
            )
        ).all()
        return {
            str(url): (
                delivery,
                list(
                    session.scalars(
                        select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == delivery.id)
                    )
                ),
            )
            for delivery, url in rows
        }


def one_round(runtime: Runtime, poisoned: httpx.Response | None = None) -> None:
    with respx.mock(assert_all_called=True) as mock, make_client(runtime) as http:
        mock.post(HEALTHY).return_value = httpx.Response(204)
        mock.post(POISONED).return_value = poisoned or httpx.Response(500)
        assert run_once(runtime, http) == 2


@pytest.mark.parametrize("stored", ["1e308", "NaN", "Infinity", "100000 entries"])
def test_a_schedule_stored_before_the_check_cannot_poison_the_round(
    client: TestClient, authority: Publisher, bank: Publisher, runtime: Runtime, stored: str
) -> None:
    two_subscribers(client, authority, runtime)
    schedule = {
        "1e308": [0, 1e308],
        "NaN": [0, math.nan],
        "Infinity": [0, math.inf],
        "100000 entries": [0] + [1e308] * 99_999,
    }[stored]
    if runtime.settings.effective_database_url.startswith("postgresql") and stored in (
        "NaN",
        "Infinity",
    ):
        pytest.skip("PostgreSQL's json type cannot hold NaN or Infinity: never stored there")
    with runtime.db.transaction() as session:
        session.execute(
            update(Subscription).where(Subscription.url == POISONED).values(retry_schedule=schedule)
        )
    one_round(runtime)
    listed = client.get("/v1/subscriptions")  # a NaN in the answer was a 500 for the operator
    assert listed.status_code == 200, listed.text
    found = deliveries_by_url(runtime)
    healthy, healthy_attempts = found[HEALTHY]
    assert (healthy.status, healthy.claimed_until) == ("delivered", None)
    assert [a.status_code for a in healthy_attempts] == [204]
    poisoned, poisoned_attempts = found[POISONED]
    assert (poisoned.status, poisoned.attempts, poisoned.claimed_until) == ("pending", 1, None)
    assert [a.status_code for a in poisoned_attempts] == [500]
    delay = (poisoned.next_attempt_at - runtime.clock.now()).total_seconds()
    assert 0 < delay <= MAX_RETRY_DELAY_SECONDS * 1.2  # within the bound, with its jitter


@pytest.mark.parametrize("rate", [1e308, math.nan, math.inf])
def test_a_rate_limit_stored_before_the_check_neither_stops_the_claim_nor_the_listing(
    client: TestClient, authority: Publisher, bank: Publisher, runtime: Runtime, rate: float
) -> None:
    two_subscribers(client, authority, runtime)
    with runtime.db.transaction() as session:
        session.execute(update(Subscription).values(rate_limit=rate))
    listed = client.get("/v1/subscriptions")
    assert listed.status_code == 200, listed.text
    one_round(runtime)
    assert {d.status for d, _ in deliveries_by_url(runtime).values()} == {"delivered", "pending"}


def test_an_unexpected_failure_recording_one_result_keeps_the_others(
    client: TestClient,
    authority: Publisher,
    bank: Publisher,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The class: whatever goes wrong deciding one delivery's next state (a bug as much as a
    bad row), that delivery alone gets an `internal_error` attempt and a retry; every other
    result of the round is recorded."""
    two_subscribers(client, authority, runtime)
    real = worker._apply_result

    def broken_for_poisoned(session: Any, state: Any, subscription: Any, job: Any, *a: Any) -> Any:
        if job.subscription["url"] == POISONED:
            raise RuntimeError("a bug that only this delivery reaches")
        return real(session, state, subscription, job, *a)

    monkeypatch.setattr(worker, "_apply_result", broken_for_poisoned)
    one_round(runtime)
    found = deliveries_by_url(runtime)
    assert found[HEALTHY][0].status == "delivered"
    poisoned, attempts = found[POISONED]
    assert (poisoned.status, poisoned.attempts, poisoned.claimed_until) == ("pending", 1, None)
    assert [(a.status_code, a.error_class) for a in attempts] == [(500, "internal_error")]
    assert (
        poisoned.last_error == "internal_error: RuntimeError: a bug that only this delivery reaches"
    )
    delay = (poisoned.next_attempt_at - runtime.clock.now()).total_seconds()
    assert 0 < delay <= DEFAULT_SCHEDULE[1] * 1.2 + 60


NUL_KID_RECEIPT = "eyJhbGciOiJFZERTQSIsImtpZCI6Ilx1MDAwMCJ9.e30.AAAA"  # header kid "\u0000"


@pytest.mark.parametrize(
    ("answer", "status", "error"),
    [
        (httpx.Response(500, content=b"failed\x00here"), "pending", "http_500"),
        (httpx.Response(200, content=NUL_KID_RECEIPT.encode()), "delivered", "receipt_invalid"),
    ],
)
def test_a_receivers_answer_the_database_cannot_store_stays_with_its_delivery(
    client: TestClient,
    authority: Publisher,
    bank: Publisher,
    runtime: Runtime,
    answer: httpx.Response,
    status: str,
    error: str,
) -> None:
    """Text with U+0000 is refused before any statement (gateway.db): in an answer's excerpt,
    or as the kid of a receipt, it failed the statements of the whole round."""
    two_subscribers(client, authority, runtime)
    one_round(runtime, answer)
    found = deliveries_by_url(runtime)
    assert found[HEALTHY][0].status == "delivered"
    poisoned, attempts = found[POISONED]
    assert (poisoned.status, poisoned.claimed_until) == (status, None)
    assert [a.error_class for a in attempts] == [error]
    assert "\x00" not in (attempts[0].response_excerpt or "") + (poisoned.last_error or "")


# --- the class: every number a request body carries -------------------------------------------


def _number_fields() -> set[tuple[str, str, str]]:
    """(method, path, member) of every number in a JSON request body of the OpenAPI document
    (members of objects, and items of arrays of numbers)."""
    with tempfile.TemporaryDirectory() as data_dir:
        document = create_app(Settings(data_dir=data_dir)).openapi()
    schemas = document["components"]["schemas"]

    def numbers(node: Any, member: str) -> set[str]:
        if isinstance(node, dict):
            if "$ref" in node:
                return numbers(schemas[node["$ref"].rsplit("/", 1)[1]], member)
            found = {member} if node.get("type") == "number" else set()
            for key in ("anyOf", "oneOf", "allOf"):
                for sub in node.get(key, []):
                    found |= numbers(sub, member)
            if "items" in node:
                found |= numbers(node["items"], member + "[]")
            for name, sub in node.get("properties", {}).items():
                found |= numbers(sub, name)
            return found
        return set()

    found = set()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            schema = content.get("application/json", {}).get("schema")
            for member in numbers(schema, "") if schema else ():
                found.add((method.upper(), path, member))
    return found


# A valid body around each number (the walk below fails when a new one has no case here).
NUMBER_CASES: dict[tuple[str, str, str], tuple[str, str]] = {
    ("POST", "/v1/subscriptions", "retry_schedule[]"): (
        "/v1/subscriptions",
        '{"agency_id": "fj-cib", "types": ["grade.awarded"], "retry_schedule": [0, %s]}',
    ),
    ("POST", "/v1/subscriptions", "rate_limit"): (
        "/v1/subscriptions",
        '{"agency_id": "fj-cib", "types": ["grade.awarded"], "rate_limit": %s}',
    ),
    ("POST", "/v1/subscriptions/{subscription_id}/rotate-secret", "overlap_hours"): (
        "/v1/subscriptions/{sub}/rotate-secret",
        '{"overlap_hours": %s}',
    ),
    ("PUT", "/v1/agencies/{agency_id}/rate-limit", "per_second"): (
        "/v1/agencies/fj-cib/rate-limit",
        '{"per_second": %s, "burst": 5}',
    ),
}


def test_every_number_in_a_request_body_has_a_case() -> None:
    assert _number_fields() == set(NUMBER_CASES)


@pytest.mark.parametrize("where", sorted(NUMBER_CASES))
def test_no_number_field_takes_a_non_finite_or_huge_value(
    client: TestClient, bank: Publisher, runtime: Runtime, where: tuple[str, str, str]
) -> None:
    created = client.post(
        "/v1/subscriptions",
        json={"agency_id": "fj-cib", "types": ["grade.awarded"], "signing": ["v1a", "v1"]},
    )
    path, template = NUMBER_CASES[where]
    path = path.replace("{sub}", created.json()["id"])
    method = where[0]
    for value in ("NaN", "Infinity", "-Infinity", "1e999", "-1e308", "1e308"):
        response = client.request(
            method, path, content=template % value, headers={"content-type": "application/json"}
        )
        if value == "1e308":  # finite: a bound may take it (an agency's rate: no limit at all)
            assert response.status_code < 500, response.text
            continue
        assert response.status_code == 400, (value, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert len(subscriptions(runtime)) == 1


def test_a_valid_number_still_passes_every_case(
    client: TestClient, bank: Publisher, runtime: Runtime
) -> None:
    created = client.post(
        "/v1/subscriptions",
        json={"agency_id": "fj-cib", "types": ["grade.awarded"], "signing": ["v1a", "v1"]},
    )
    for (method, _, _), (path, template) in NUMBER_CASES.items():
        path = path.replace("{sub}", created.json()["id"])
        response = client.request(
            method, path, content=template % "2", headers={"content-type": "application/json"}
        )
        assert response.status_code < 300, (path, response.text)
