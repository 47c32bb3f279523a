"""The measure catalog over HTTP and the measures that apply to an enterprise (domain.md §5)."""

from __future__ import annotations

import json
from typing import Any

from contract_factories import (
    USCC,
    make_accident,
    make_award,
    make_listing,
    make_registration,
    make_revocation,
)
from fastapi.testclient import TestClient
from gateway_factories import Publisher, bearer, publish

from keys import jws


def test_catalog_lists_measures_in_force(client: TestClient) -> None:
    body = client.get("/v1/measures?region=350203&on=2026-06-01&role=bank").json()
    assert {m["code"] for m in body["measures"]} == {
        "bank.no_new_loans",
        "bank.credit_review",
        "bank.red_list_priority",
        "bank.grade_factor.level1",
        "bank.grade_factor.level2",
        "bank.grade_factor.level3",
    }
    bad = client.get("/v1/measures?region=3502&on=2026-06-01")
    assert bad.status_code == 400


def test_an_enterprise_through_award_accident_revocation_and_black_list(
    client: TestClient, authority: Publisher
) -> None:
    for message_type, data in (
        ("enterprise.registered", make_registration()),
        ("grade.awarded", make_award(level="1")),
    ):
        assert publish(client, authority.message(message_type, data)).status_code == 201
    url = f"/v1/enterprises/{USCC}/measures"
    early = client.get(url, params={"on": "2024-03-01", "purpose": "review"}).json()["measures"]
    assert {m["code"] for m in early["insurer"]} == {
        "insurance.liability.no_accident",
        "insurance.liability.grade_1",
    }
    assert {m["code"] for m in early["social_insurance"]} == {
        "social_insurance.work_injury.grade_1"
    }
    # hazardous chemicals, level 1: 2 inspections a year, for the work-safety supervisor
    supervisor = {m["code"]: m["effect"] for m in early["work_safety_supervisor"]}
    assert supervisor["supervision.frequency.hazardous.level1"] == {
        "inspections_per_year_min": 2,
        "inspections_per_year_max": 2,
    }
    assert "market_regulator" not in early or all(
        "inspections_per_year_max" not in m["effect"] for m in early["market_regulator"]
    )

    publish(client, authority.message("accident.reported", make_accident()))  # 2025-05-20, 1 death
    publish(client, authority.message("grade.revoked", make_revocation()))
    publish(client, authority.message("listing.added", make_listing()))  # black, from 2025-07-01
    later = client.get(url, params={"on": "2025-08-01", "purpose": "review"}).json()
    assert later["standing"] == {
        "grade_status": "revoked",
        "grade_level": None,
        "scheme": "hazardous_chemicals",
        "accidents_prior_year": ["ordinary"],
        "lists": ["black"],
    }
    measures = later["measures"]
    assert "social_insurance.work_injury.black_list" in {
        m["code"] for m in measures["social_insurance"]
    }
    assert {m["code"] for m in measures["bank"]} == {"bank.no_new_loans", "bank.credit_review"}
    assert {m["code"] for m in measures["insurer"]} == {
        "insurance.liability.ordinary_accident",
        "insurance.liability.black_list",
    }
    assert client.get(f"/v1/enterprises/{USCC}/measures?on=junk").json()["code"] == "invalid_date"


def test_catalog_versions_are_recorded_in_the_log_and_the_newest_is_in_force(
    client: TestClient, authority: Publisher, runtime: Any
) -> None:
    import copy

    from sqlalchemy import select

    from gateway.measures.catalog import shipped_document, shipped_records
    from gateway.models import LogEntry

    history = client.get("/v1/measures/catalog").json()["versions"]
    assert [(v["version"], v["source"]) for v in history] == [(1, "shipped")]
    assert client.get("/v1/measures?region=350203").json()["catalog_version"] == 1
    for message_type, data in (
        ("enterprise.registered", make_registration()),
        ("grade.awarded", make_award(level="1")),
    ):
        assert publish(client, authority.message(message_type, data)).status_code == 201
    url = f"/v1/enterprises/{USCC}/measures?on=2024-03-01&role=insurer&purpose=review"

    def floats() -> dict[str, float]:
        measures = client.get(url).json()["measures"]["insurer"]
        return {m["code"]: m["effect"]["premium_float"] for m in measures}

    assert floats()["insurance.liability.grade_1"] == -0.15
    records = copy.deepcopy(shipped_records())
    for record in records:
        if record["code"] == "insurance.liability.grade_1":
            record["effect"] = {"premium_float": -0.25}
    published = client.put("/v1/measures/catalog", json={"records": records})
    assert published.status_code == 200, published.text
    assert published.json()["version"] == 2
    assert floats()["insurance.liability.grade_1"] == -0.25
    again = client.put("/v1/measures/catalog", json={"records": records}).json()
    assert again["version"] == 2  # the same catalog is not a new version
    with runtime.db.reader() as session:
        entries = list(
            session.scalars(
                select(LogEntry.jws).where(LogEntry.type == "gateway.catalog.published")
            )
        )
    assert len(entries) == 2
    claims = json.loads(jws.parse_compact(entries[1]).payload)
    assert claims["data"]["version"] == 2
    assert claims["data"]["records"] == records
    # the sections left out were carried over from the version in force
    assert claims["data"]["products"] == shipped_document()["products"]

    broken = copy.deepcopy(records)
    broken[3]["trigger"] = {"weather": "rainy"}
    refused = client.put("/v1/measures/catalog", json={"records": broken})
    assert (refused.status_code, refused.json()["code"]) == (400, "invalid_catalog")
    assert refused.json()["pointer"] == "/records/3"
    assert client.put("/v1/measures/catalog", json={"records": []}).status_code == 400
    assert len(client.get("/v1/measures/catalog").json()["versions"]) == 2
    forbidden = client.put(
        "/v1/measures/catalog",
        json={"records": records},
        headers=bearer(runtime, "fj-cib", "query"),
    )
    assert forbidden.status_code == 403
