"""Ledgers (domain.md §4): basic / required / achieved, filters, pages, CSV and history."""

from __future__ import annotations

import csv
import io

import pytest
from contract_factories import make_award, make_registration, make_revocation
from fastapi.testclient import TestClient
from gateway_factories import Publisher, publish_many

from contracts.uscc import make_uscc

XIAMEN_A = make_uscc("91350200MA0000001")
XIAMEN_B = make_uscc("91350203MA0000002")
FUZHOU = make_uscc("91350100MA0000003")
NINGDE = make_uscc("91350900MA0000004")


@pytest.fixture
def populated(client: TestClient, authority: Publisher) -> TestClient:
    plan = [
        (XIAMEN_A, make_registration(region_code="350200", industry_section="C"), make_award()),
        (
            XIAMEN_B,
            make_registration(region_code="350203", industry_section="B", scheme="non_coal_mining"),
            make_award(level="3", scheme="non_coal_mining"),
        ),
        (FUZHOU, make_registration(region_code="350100", required=False), None),
        (NINGDE, make_registration(region_code="350900"), make_award(level="1")),
    ]
    tokens = []
    for code, registration, award in plan:
        tokens.append(authority.message("enterprise.registered", registration, subject=code))
        if award:
            tokens.append(authority.message("grade.awarded", award, subject=code))
    tokens.append(authority.message("grade.revoked", make_revocation(), subject=NINGDE))
    body = publish_many(client, tokens)
    assert body.json()["rejected"] == 0, [r for r in body.json()["results"] if "problem" in r]
    return client


def codes(response: object) -> list[str]:
    return [item["uscc"] for item in response.json()["items"]]  # type: ignore[attr-defined]


def test_three_ledgers(populated: TestClient) -> None:
    assert codes(populated.get("/v1/ledgers/basic")) == sorted([XIAMEN_A, XIAMEN_B, FUZHOU, NINGDE])
    assert FUZHOU not in codes(populated.get("/v1/ledgers/required"))
    assert codes(populated.get("/v1/ledgers/achieved")) == sorted([XIAMEN_A, XIAMEN_B])


def test_filters(populated: TestClient) -> None:
    assert codes(populated.get("/v1/ledgers/basic?region=3502")) == sorted([XIAMEN_A, XIAMEN_B])
    assert codes(populated.get("/v1/ledgers/basic?region=350203")) == [XIAMEN_B]
    assert codes(populated.get("/v1/ledgers/basic?industry=B")) == [XIAMEN_B]
    assert codes(populated.get("/v1/ledgers/basic?status=未达标")) == [NINGDE]
    assert codes(populated.get("/v1/ledgers/basic?status=新增")) == [FUZHOU]
    assert codes(populated.get("/v1/ledgers/achieved?grade=3")) == [XIAMEN_B]


def test_bad_filter_is_a_clear_error(populated: TestClient) -> None:
    for query in (
        "/v1/ledgers/basic?status=good",
        "/v1/ledgers/other",
        "/v1/ledgers/basic?region=35x",
    ):
        response = populated.get(query)
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_filter"


def test_pagination_walks_every_row_once(populated: TestClient) -> None:
    seen: list[str] = []
    after = None
    while True:
        url = "/v1/ledgers/basic?limit=3" + (f"&after={after}" if after else "")
        page = populated.get(url).json()
        seen += [i["uscc"] for i in page["items"]]
        assert page["total"] == 4
        after = page["next"]
        if after is None:
            break
    assert seen == sorted([XIAMEN_A, XIAMEN_B, FUZHOU, NINGDE])


def test_csv_export(populated: TestClient) -> None:
    response = populated.get("/v1/ledgers/achieved/export.csv?region=35")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text.lstrip("\ufeff"))))
    assert sorted(r["uscc"] for r in rows) == sorted([XIAMEN_A, XIAMEN_B])
    assert {r["ledger_status"] for r in rows} == {"达标"}


def test_history_names_who_when_and_which_message(
    populated: TestClient, authority: Publisher
) -> None:
    changes = populated.get(f"/v1/enterprises/{NINGDE}/ledger-history").json()["changes"]
    assert [(c["ledger"], c["change"], c["to_status"]) for c in changes] == [
        ("basic", "entered", "新增"),
        ("required", "entered", "新增"),
        ("achieved", "entered", "达标"),
        ("achieved", "left", "未达标"),
    ]
    assert {c["actor"] for c in changes} == {authority.agency_id}
    for change in changes:
        stored = populated.get(f"/v1/messages/{change['message_id']}").json()
        assert stored["index"] == change["log_index"]
