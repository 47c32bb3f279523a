"""Issue 20, finding 11: year 0000 in `issued_at` passed the envelope schema and then raised
in date parsing: a 500 with a traceback per item. Every date and time the gateway reads is
held to the one range of contracts.registry (EARLIEST_DATE to LATEST_DATE): outside it, or
not a date at all, is a 400 with a stable code, never a 500, and changes nothing."""

from __future__ import annotations

import logging
import tempfile
from typing import Any

import pytest
from contract_factories import USCC, make_registration
from fastapi.testclient import TestClient
from gateway_factories import Publisher, publish, publish_many, snapshot

from contracts.registry import EARLIEST_DATE, LATEST_DATE, ContractError, validate_message
from gateway.app import create_app
from gateway.runtime import Runtime
from gateway.settings import Settings

OUT_OF_RANGE = [
    "0000-01-01T00:00:00Z",  # the finding: year 0 is no year to Python
    "0001-01-01T00:00:00+14:00",  # year 1 once in UTC is year 0
    "9999-12-31T23:59:59-14:00",  # and year 10000
    "1899-12-31T23:59:59Z",  # a day before EARLIEST_DATE
    "2200-01-01T00:00:00Z",  # a day after LATEST_DATE
]


def registration(authority: Publisher, issued_at: str) -> bytes:
    return authority.message("enterprise.registered", make_registration(), issued_at=issued_at)


@pytest.mark.parametrize("issued_at", OUT_OF_RANGE)
def test_an_issued_at_outside_the_date_range_is_a_schema_violation(
    client: TestClient, authority: Publisher, runtime: Runtime, issued_at: str
) -> None:
    before = snapshot(runtime)
    response = publish(client, registration(authority, issued_at))
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["code"], problem["pointer"]) == ("schema_violation", "/issued_at")
    assert f"({EARLIEST_DATE} to {LATEST_DATE})" in problem["detail"]
    assert snapshot(runtime) == before


def test_a_batch_of_year_0000_messages_is_refused_per_item_without_a_traceback(
    client: TestClient,
    authority: Publisher,
    runtime: Runtime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = authority.message("enterprise.registered", make_registration())
    bad = [registration(authority, "0000-01-01T00:00:00Z") for _ in range(200)]
    with caplog.at_level(logging.ERROR):
        response = publish_many(client, [good, *bad])
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["accepted"], answer["rejected"]) == (1, 200)
    assert {r["problem"]["code"] for r in answer["results"][1:]} == {"schema_violation"}
    assert [r for r in caplog.records if r.exc_info] == []


@pytest.mark.parametrize(
    "issued_at", [f"{EARLIEST_DATE}T00:00:00Z", f"{LATEST_DATE}T23:59:59.999999999Z"]
)
def test_the_ends_of_the_range_are_valid_envelopes(issued_at: str) -> None:
    envelope = {
        "id": "0b6f8a57-3c8e-4c59-9f4f-d4b8a7c3c001",
        "type": "enterprise.registered",
        "contract": 1,
        "issuer": "fj-yjt",
        "issued_at": issued_at,
        "subject": USCC,
        "data": make_registration(),
    }
    validate_message(envelope)
    with pytest.raises(ContractError, match="outside the dates"):
        validate_message(envelope | {"issued_at": "0000-01-01T00:00:00Z"})


# --- the class: every date or time the API takes, at the ends of what its format admits ----

EXTREME_DAYS = ["0000-01-01", "0001-01-01", "9999-12-31", "1899-12-31", "2200-01-01"]


def _date_parameters() -> list[tuple[str, str]]:
    """(path, query parameter) of every GET operation whose parameter is a date ("on" and
    the like: format date, or a string described as a date)."""
    with tempfile.TemporaryDirectory() as data_dir:
        document = create_app(Settings(data_dir=data_dir)).openapi()
    found = []
    for path, operations in document["paths"].items():
        for parameter in operations.get("get", {}).get("parameters", []):
            text = str(parameter.get("schema", "")) + str(parameter.get("description", ""))
            if parameter["in"] == "query" and ("'date'" in text or "date (" in text):
                found.append((path, parameter["name"]))
    return found


DATE_PARAMETERS = _date_parameters()


def test_the_walk_finds_the_date_parameters() -> None:
    assert ("/v1/ledgers/{ledger}", "on") in DATE_PARAMETERS
    assert ("/v1/measures", "on") in DATE_PARAMETERS


def _fill(path: str) -> str:
    return (
        path.replace("{ledger}", "basic")
        .replace("{code}", USCC)
        .replace("{subscription_id}", "none")
    )


@pytest.mark.parametrize(("path", "name"), DATE_PARAMETERS)
def test_an_extreme_date_in_a_query_is_answered_not_a_500(
    client: TestClient, authority: Publisher, path: str, name: str
) -> None:
    assert publish(client, authority.message("enterprise.registered", make_registration()))
    for day in EXTREME_DAYS:
        params: dict[str, Any] = {name: day, "purpose": "audit", "region": "350203"}
        response = client.get(_fill(path), params=params)
        assert response.status_code < 500, (day, response.text)
        if response.status_code >= 400:
            assert response.headers["content-type"] == "application/problem+json"
