"""定期核实 (闽安委〔2017〕1号 四（二）, domain.md §4): `enterprise.updated` and `enterprise.closed`
keep the register true, and the ledgers, history and export reflect them; schemes are catalog
data (三（一）): one the catalog does not list is refused, one added by a version is accepted."""

from __future__ import annotations

import csv
import io
from typing import Any

from contract_factories import (
    USCC,
    make_award,
    make_closure,
    make_registration,
    make_renewal,
    make_self_assessment,
    make_update,
)
from fastapi.testclient import TestClient
from gateway_factories import Publisher, publish, snapshot

from gateway.measures.catalog import shipped_document
from gateway.runtime import Runtime


def accepted(client: TestClient, authority: Publisher, message_type: str, data: Any) -> None:
    answer = publish(client, authority.message(message_type, data))
    assert answer.status_code == 201, answer.text


def refused(
    client: TestClient, runtime: Runtime, authority: Publisher, message_type: str, data: Any
) -> dict[str, Any]:
    before = snapshot(runtime)
    answer = publish(client, authority.message(message_type, data))
    assert answer.status_code == 422, answer.text
    assert snapshot(runtime) == before, "a refused message changed stored state"
    problem: dict[str, Any] = answer.json()
    return problem


def item(client: TestClient, ledger: str, on: str) -> dict[str, Any] | None:
    items = client.get(f"/v1/ledgers/{ledger}", params={"on": on}).json()["items"]
    return next((i for i in items if i["uscc"] == USCC), None)


def exported(client: TestClient, on: str) -> dict[str, str]:
    answer = client.get("/v1/ledgers/basic/export.csv", params={"on": on})
    assert answer.status_code == 200, answer.text
    return next(csv.DictReader(io.StringIO(answer.text.lstrip("\ufeff"))))


def history(client: TestClient) -> list[tuple[str, str, str | None]]:
    changes = client.get(f"/v1/enterprises/{USCC}/ledger-history").json()["changes"]
    return [(c["ledger"], c["change"], c["to_status"]) for c in changes]


def test_inclusion_in_the_required_ledger_restarts_new_and_leaving_it_ends_it(
    client: TestClient, authority: Publisher
) -> None:
    """Registered 2024-03-01 not required; required from 2025-09-01: 新增 for the policy's 12
    months from the inclusion (not from the registration), then 未达标; then not required."""
    accepted(client, authority, "enterprise.registered", make_registration(required=False))
    assert item(client, "required", "2025-08-31") is None
    include = make_update(changed_on="2025-09-01", changes={"required": True})
    accepted(client, authority, "enterprise.updated", include)
    included = item(client, "required", "2026-08-31")
    assert included is not None
    assert included["ledger_status"] == "新增"  # 2023-05-04 + 12 months is long past
    assert (item(client, "required", "2026-09-01") or {})["ledger_status"] == "未达标"
    leave = make_update(changed_on="2026-10-01", changes={"required": False})
    accepted(client, authority, "enterprise.updated", leave)
    assert item(client, "required", "2026-11-01") is None
    assert [h[:2] for h in history(client)] == [
        ("basic", "entered"),
        ("basic", "updated"),
        ("required", "entered"),
        ("basic", "updated"),
        ("required", "left"),
    ]


def test_a_change_of_region_scheme_or_legal_representative_shows_in_ledgers_and_export(
    client: TestClient, authority: Publisher
) -> None:
    """A move to Xiamen, another scheme and a new legal representative: the ledger item, its
    region filter, the export and the history follow; 新增 does not restart (no inclusion)."""
    accepted(client, authority, "enterprise.registered", make_registration())
    changes = {
        "region_code": "350203",
        "scheme": "industry_trade",
        "legal_representative": "陈某某",
    }
    accepted(client, authority, "enterprise.updated", make_update(changes=changes))
    row = item(client, "basic", "2025-09-01")
    assert row is not None
    assert (row["region_code"], row["scheme"], row["legal_representative"]) == (
        "350203",
        "industry_trade",
        "陈某某",
    )
    assert row["ledger_status"] == "未达标"  # registered 2023-05-04: 新增 ended 2024-05-04
    moved = client.get("/v1/ledgers/basic", params={"region": "3502"}).json()["items"]
    assert [i["uscc"] for i in moved] == [USCC]
    assert client.get("/v1/ledgers/basic", params={"region": "3509"}).json()["items"] == []
    export = exported(client, "2025-09-01")
    assert (export["region_code"], export["scheme"], export["legal_representative"]) == (
        "350203",
        "industry_trade",
        "陈某某",
    )
    updated = client.get(f"/v1/enterprises/{USCC}/ledger-history").json()["changes"][-1]
    assert "legal_representative '林某某' → '陈某某'" in updated["reason"]
    assert "region_code '350900' → '350203'" in updated["reason"]


def test_closing_an_enterprise_whose_grade_is_active_ends_the_grade_in_every_ledger(
    client: TestClient, runtime: Runtime, authority: Publisher
) -> None:
    accepted(client, authority, "enterprise.registered", make_registration())
    accepted(client, authority, "grade.awarded", make_award())  # 2024-01-10 to 2027-01-09
    assert item(client, "achieved", "2026-03-01") is not None
    accepted(client, authority, "enterprise.closed", make_closure(closed_on="2026-03-01"))
    assert item(client, "achieved", "2026-03-01") is None
    assert item(client, "required", "2026-03-01") is None
    kept = item(client, "basic", "2026-03-01")
    assert kept is not None
    assert (kept["ledger_status"], kept["grade_status"]) == ("未达标", "expired")
    assert (kept["closed_on"], kept["closure"]) == ("2026-03-01", "deregistered")
    assert history(client)[-3:] == [
        ("achieved", "left", "未达标"),
        ("required", "left", "未达标"),
        ("basic", "updated", None),  # the basic ledger keeps it, marked closed
    ]
    problem = refused(client, runtime, authority, "grade.renewed", make_renewal())
    assert problem["code"] == "enterprise_closed"


def test_the_export_says_the_latest_self_assessment_and_whether_it_was_published(
    client: TestClient, authority: Publisher
) -> None:
    """四（一）: the self-assessment of the year before the day asked counts as published."""
    accepted(client, authority, "enterprise.registered", make_registration())
    assert exported(client, "2025-06-01")["self_assessment_year"] == ""
    assert exported(client, "2025-06-01")["self_assessment_report_published"] == "False"
    accepted(client, authority, "self_assessment.published", make_self_assessment(year=2025))
    this_year = exported(client, "2026-06-01")
    assert (this_year["self_assessment_year"], this_year["self_assessment_report_published"]) == (
        "2025",
        "True",
    )
    next_year = exported(client, "2027-06-01")  # the 2026 report was not published
    assert (next_year["self_assessment_year"], next_year["self_assessment_report_published"]) == (
        "2025",
        "False",
    )


FORESTRY = {
    "code": "forestry",
    "name": "林业",
    "standard": "福建省林业企业安全生产标准化评定标准 (provincial, test data)",
    "sector": "provincial",
    "source": {
        "title": "闽安委〔2017〕1号 三（一）",
        "region": "35",
        "effective": "2017-02-17",
        "kind": "rule",
        "note": "other sectors are graded on provincial standards under AQ/T 9006",
    },
}


def test_a_scheme_the_catalog_lacks_is_refused_until_a_catalog_version_adds_it(
    client: TestClient, runtime: Runtime, authority: Publisher
) -> None:
    forestry = make_registration(scheme="forestry")
    problem = refused(client, runtime, authority, "enterprise.registered", forestry)
    assert (problem["code"], problem["pointer"]) == ("unknown_scheme", "/data/scheme")
    document = shipped_document()
    document["schemes"].append(FORESTRY)
    answer = client.put("/v1/measures/catalog", json=document)
    assert answer.status_code == 200, answer.text
    accepted(client, authority, "enterprise.registered", forestry)
    accepted(client, authority, "grade.awarded", make_award(scheme="forestry"))
    assert (item(client, "achieved", "2025-01-01") or {})["scheme"] == "forestry"
    problem = refused(
        client, runtime, authority, "enterprise.updated", make_update(changes={"scheme": "x_y"})
    )
    assert (problem["code"], problem["pointer"]) == ("unknown_scheme", "/data/changes/scheme")
