"""Ledgers (domain.md §4): basic / required / achieved, filters, pages, CSV and history."""

from __future__ import annotations

import csv
import io

import pytest
from contract_factories import make_award, make_registration, make_revocation
from fastapi.testclient import TestClient
from gateway_factories import Publisher, publish, publish_many

from contracts.uscc import complete_uscc

XIAMEN_A = complete_uscc("91350200MA000001")
XIAMEN_B = complete_uscc("91350203MA000002")
FUZHOU = complete_uscc("91350100MA000003")
NINGDE = complete_uscc("91350900MA000004")


@pytest.fixture
def populated(client: TestClient, authority: Publisher) -> TestClient:
    plan = [
        (XIAMEN_A, make_registration(region_code="350200", industry_section="C"), make_award()),
        (
            XIAMEN_B,
            make_registration(region_code="350203", industry_section="B", scheme="non_coal_mining"),
            make_award(level="3", scheme="non_coal_mining"),
        ),
        (
            FUZHOU,
            make_registration(region_code="350100", required=False, registered_on="2026-06-01"),
            None,
        ),
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


def test_new_ages_into_not_achieved_after_its_period(
    client: TestClient, authority: Publisher
) -> None:
    """domain.md §4: 新增 is transitional; after new_status_months (12, shipped policy) a
    required enterprise without a grade is 未达标, with no message at all."""
    registration = make_registration(region_code="350100", registered_on="2025-09-01")
    assert (
        publish(
            client, authority.message("enterprise.registered", registration, subject=FUZHOU)
        ).status_code
        == 201
    )

    def status(on: str) -> str:
        items = client.get(f"/v1/ledgers/required?on={on}").json()["items"]
        return str(next(i for i in items if i["uscc"] == FUZHOU)["ledger_status"])

    assert status("2026-08-31") == "新增"
    assert status("2026-09-01") == "未达标"
    assert codes(client.get("/v1/ledgers/basic?status=未达标&on=2026-09-01")) == [FUZHOU]
    assert codes(client.get("/v1/ledgers/basic?status=新增&on=2026-08-31")) == [FUZHOU]


def test_a_lapsed_grade_is_not_achieved_in_any_ledger_whether_or_not_expiry_was_published(
    client: TestClient, authority: Publisher
) -> None:
    for message_type, data in (
        ("enterprise.registered", make_registration()),
        ("grade.awarded", make_award()),  # valid 2024-01-10 to 2027-01-09
    ):
        assert (
            publish(client, authority.message(message_type, data, subject=NINGDE)).status_code
            == 201
        )
    on_last_day = client.get("/v1/ledgers/achieved?on=2027-01-09").json()
    assert [i["uscc"] for i in on_last_day["items"]] == [NINGDE]
    lapsed = client.get("/v1/ledgers/basic?on=2027-01-10").json()["items"]
    assert [(i["ledger_status"], i["grade_status"]) for i in lapsed] == [("未达标", "expired")]
    assert client.get("/v1/ledgers/achieved?on=2027-01-10").json()["items"] == []
    export = client.get("/v1/ledgers/basic/export.csv?on=2027-01-10").text
    row = next(csv.DictReader(io.StringIO(export.lstrip("\ufeff"))))
    assert (row["ledger_status"], row["grade_status"]) == ("未达标", "expired")
    assert row["registered_on"] == "2023-05-04"


def test_bad_filter_is_a_clear_error(populated: TestClient) -> None:
    for query in (
        "/v1/ledgers/basic?status=good",
        "/v1/ledgers/other",
        "/v1/ledgers/basic?region=35x",
    ):
        response = populated.get(query)
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_filter"


@pytest.mark.parametrize(
    ("query", "allowed"),
    [
        ("industry=Z", "A to T"),  # not a GB/T 4754 section
        ("industry=CC", "A to T"),
        ("industry=%E5%8C%96", "A to T"),  # 化
        ("industry=%C4%B1", "A to T"),  # ı, whose upper case is I
        ("industry=", "A to T"),
        ("grade=4", "1, 2, 3, small_micro"),
        ("grade=%E4%B8%80%E7%BA%A7", "1, 2, 3, small_micro"),  # 一级
        ("region=%EF%BC%93%EF%BC%95", "ASCII digits"),  # full-width ３５
        ("region=%D9%A3%D9%A5", "ASCII digits"),  # Arabic-Indic ٣٥
        ("region=3502000", "1 to 6"),
    ],
)
def test_a_filter_no_row_could_match_is_refused_saying_what_is_allowed(
    client: TestClient, query: str, allowed: str
) -> None:
    for path in ("/v1/ledgers/basic", "/v1/ledgers/basic/export.csv"):
        response = client.get(f"{path}?{query}")
        assert response.status_code == 400, (path, response.text)
        assert response.json()["code"] == "invalid_filter"
        assert allowed in response.json()["detail"]


def test_industry_accepts_lower_case(populated: TestClient) -> None:
    assert codes(populated.get("/v1/ledgers/basic?industry=b")) == [XIAMEN_B]
    assert codes(populated.get("/v1/ledgers/achieved?grade=small_micro")) == []


@pytest.mark.parametrize(
    "query",
    ["industry=%00", "region=%00", "status=%00", "grade=%00", "industry=Z", "grade=0"],
)
def test_the_export_refuses_a_filter_as_the_list_does(client: TestClient, query: str) -> None:
    """On PostgreSQL, `industry=%00` was a 200 CSV holding only the header."""
    listed = client.get(f"/v1/ledgers/basic?{query}")
    exported = client.get(f"/v1/ledgers/basic/export.csv?{query}")
    assert listed.status_code == exported.status_code == 400
    assert exported.headers["content-type"] == "application/problem+json"
    assert exported.json()["code"] == listed.json()["code"]


@pytest.mark.parametrize(("limit", "pages"), [(1, 4), (2, 2), (3, 2), (4, 1), (5, 1)])
def test_the_last_page_has_no_cursor(populated: TestClient, limit: int, pages: int) -> None:
    """Rows ending exactly on a page boundary hand out no cursor to an empty page."""
    seen: list[list[str]] = []
    after = None
    while True:
        url = f"/v1/ledgers/basic?limit={limit}" + (f"&after={after}" if after else "")
        page = populated.get(url).json()
        seen.append([i["uscc"] for i in page["items"]])
        after = page["next"]
        if after is None:
            break
        assert after == seen[-1][-1]
    assert len(seen) == pages
    assert all(seen), "a cursor led to an empty page"
    assert [code for page in seen for code in page] == sorted([XIAMEN_A, XIAMEN_B, FUZHOU, NINGDE])


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
