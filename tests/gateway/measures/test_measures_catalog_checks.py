"""A catalog version is checked whole before it is stored (domain.md §5: the catalog is data),
and effective-dated revisions of a measure are in force from their own date."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from contract_factories import USCC, make_award, make_registration
from fastapi.testclient import TestClient
from gateway_factories import Publisher, publish

from gateway.measures.catalog import digest, parse_checked, shipped_document, shipped_records
from gateway.models import MeasureCatalog
from gateway.runtime import Runtime

DISCOUNT_1 = "insurance.liability.grade_1"


def graded(client: TestClient, authority: Publisher) -> None:
    for message_type, data in (
        ("enterprise.registered", make_registration()),
        ("grade.awarded", make_award(level="1")),  # valid 2024-01-10 to 2027-01-09
    ):
        assert publish(client, authority.message(message_type, data)).status_code == 201


def discount(client: TestClient, on: str) -> float:
    url = f"/v1/enterprises/{USCC}/measures"
    answer = client.get(url, params={"on": on, "role": "insurer", "purpose": "review"})
    assert answer.status_code == 200, answer.text
    found = [m for m in answer.json()["measures"]["insurer"] if m["code"] == DISCOUNT_1]
    assert len(found) == 1
    return float(found[0]["effect"]["premium_float"])


def test_the_shipped_catalog_passes_the_gateway_checks() -> None:
    assert len(parse_checked(shipped_document()).measures) == len(shipped_records())


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"trigger": {"scheme": 5}}, "trigger scheme must be a non-empty list of strings"),
        ({"trigger": {"grade_level": 1}}, "trigger grade_level must be a non-empty list"),
        ({"trigger": {"ungraded": "false"}}, "trigger ungraded must be true or false"),
        ({"term_months": "forever"}, "term_months must be an integer >= 0 or null"),
        ({"role": "nobody"}, "role 'nobody' is not an agency role"),
        ({"role": "operator"}, "role 'operator' is not an agency role"),
        ({"valid_from": "2030-01-01", "valid_to": "2020-01-01"}, "valid_to must be after"),
        ({"legal_basis": None}, "legal_basis is required"),
        ({"source": "one city's rule"}, "source must be an object"),
        (
            {
                "region_prefix": "",
                "source": {
                    "title": "x",
                    "region": "3502",
                    "kind": "rule",
                    "effective": "2017-01-01",
                },
            },
            "region_prefix '' reaches beyond the region the rule was found for",
        ),
    ],
)
def test_a_catalog_with_a_bad_record_is_refused_and_nothing_is_stored(
    client: TestClient, authority: Publisher, change: dict[str, Any], detail: str
) -> None:
    graded(client, authority)
    records = copy.deepcopy(shipped_records())
    records[3] |= change
    refused = client.put("/v1/measures/catalog", json={"records": records})
    assert refused.status_code == 400
    problem = refused.json()
    assert problem["code"] == "invalid_catalog"
    assert problem["detail"].startswith(f"record 3 ({records[3]['code']}): {detail}")
    assert problem["pointer"] == "/records/3"
    assert len(client.get("/v1/measures/catalog").json()["versions"]) == 1
    assert discount(client, "2026-11-01") == -0.15  # the version in force still answers


def revision(valid_to_of_old: str | None) -> list[dict[str, Any]]:
    records = copy.deepcopy(shipped_records())
    old = next(r for r in records if r["code"] == DISCOUNT_1)
    old["valid_to"] = valid_to_of_old
    new = copy.deepcopy(old) | {
        "valid_from": "2026-01-01",
        "valid_to": None,
        "effect": {"premium_float": -0.25},
        "source": old["source"] | {"note": "2026 revision: level 1 −25 %"},
    }
    return [*records, new]


def test_a_revision_from_a_date_is_in_force_from_it_and_overlaps_are_refused(
    client: TestClient, authority: Publisher
) -> None:
    graded(client, authority)
    overlapping = client.put("/v1/measures/catalog", json={"records": revision(None)})
    assert overlapping.status_code == 400
    assert overlapping.json()["code"] == "invalid_catalog"
    index = len(shipped_records())
    assert overlapping.json()["detail"].startswith(f"record {index} ({DISCOUNT_1}): valid_from")
    assert "valid_to 2026-01-01" in overlapping.json()["detail"]

    published = client.put("/v1/measures/catalog", json={"records": revision("2026-01-01")})
    assert published.status_code == 200, published.text
    assert discount(client, "2025-12-31") == -0.15
    assert discount(client, "2026-11-01") == -0.25
    listed = client.get("/v1/measures", params={"region": "350900", "on": "2026-11-01"}).json()
    assert [m["effect"] for m in listed["measures"] if m["code"] == DISCOUNT_1] == [
        {"premium_float": -0.25}
    ]


def test_a_stored_version_with_a_record_refused_today_still_answers(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    """A version stored before these checks: its bad record is left out, not a 500, and an
    overlapping revision it holds is settled by the later valid_from."""
    graded(client, authority)
    records = revision(None)
    broken = next(i for i, r in enumerate(records) if r["code"].endswith("no_accident"))
    records[broken] = records[broken] | {"trigger": {"scheme": 5}}
    with runtime.db.transaction() as session:
        session.add(
            MeasureCatalog(
                version=2,
                sha256=digest(records),
                records=records,
                source="operator",
                created_at=runtime.clock.now(),
                log_index=10_000,
            )
        )
    assert discount(client, "2026-11-01") == -0.25
    url = f"/v1/enterprises/{USCC}/measures"
    answer = client.get(url, params={"on": "2026-11-01", "role": "insurer", "purpose": "review"})
    assert records[broken]["code"] not in {m["code"] for m in answer.json()["measures"]["insurer"]}
