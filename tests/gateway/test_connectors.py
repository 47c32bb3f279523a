"""Connectors (issue 5 §3, §6): one enterprise's story told to five consumer kinds.

Award level 2 → ordinary accident → overdue major-hazard rectification → revocation →
black-listing → early removal after 12 months → new award after the re-apply wait. At each
step, on its date, the test reads every connector's newest document from its agency's feed and
asserts it whole, with each agency's measures, the insurer's premium factors and the
regulator's inspection cap. Then: a document failing its view contract is parked, never sent;
the market regulator's snapshot verifies against its signed manifest.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import time
from typing import Any

import httpx
import pytest
import respx
from contract_factories import (
    USCC,
    make_accident,
    make_award,
    make_listing,
    make_overdue,
    make_rectification_order,
    make_registration,
    make_removal,
    make_revocation,
)
from fastapi.testclient import TestClient
from gateway_factories import Publisher, allow_subscribe, bearer, operator_token, publish
from gateway_factories import register_publisher as register
from sqlalchemy import func, select

from connectors import CONNECTORS
from contracts.uscc import complete_uscc
from gateway.clock import FixedClock
from gateway.delivery.worker import make_client, run_once
from gateway.models import Delivery, Enterprise
from gateway.runtime import Runtime
from gateway.tlog import root_hash
from keys import jws
from keys.jwks import key_from_jwks

# agency, role, connector
CONSUMERS = (
    ("fj-picc", "insurer", "insurance_premium"),
    ("fj-cib", "bank", "bank_credit"),
    ("fj-xyb", "credit_disclosure", "credit_disclosure"),
    ("fj-scjg", "market_regulator", "market_regulator"),
    ("fj-sw", "implementing_agency", "revocation_notice"),
)
NAME = make_registration()["name"]


@pytest.fixture
def feeds(client: TestClient, runtime: Runtime) -> dict[str, str]:
    """Each consumer agency subscribed (pull) through its connector: subscription ids."""
    subscriptions = {}
    for agency, role, name in CONSUMERS:
        types = sorted(CONNECTORS[name].types)
        register(runtime, agency, [], roles=[role])
        allow_subscribe(runtime, agency, types)
        body = {"agency_id": agency, "url": None, "types": types, "view": name}
        response = client.post("/v1/subscriptions", json=body)
        assert response.status_code == 201, response.text
        subscriptions[name] = response.json()["id"]
    return subscriptions


class Story:
    """Moves the clock to each step's date and reads what each connector made of it."""

    def __init__(
        self, client: TestClient, runtime: Runtime, authority: Publisher, feeds: dict[str, str]
    ) -> None:
        self.client, self.runtime, self.authority, self.feeds = client, runtime, authority, feeds
        self.seen = {name: 0 for name in feeds}

    def on(self, day: str) -> None:
        clock = self.runtime.clock
        assert isinstance(clock, FixedClock)
        clock.at = dt.datetime.fromisoformat(day).replace(hour=9, tzinfo=dt.UTC)
        self.client.headers["authorization"] = f"Bearer {operator_token(self.runtime)}"

    def publish(self, message_type: str, data: dict[str, Any]) -> int:
        response = publish(self.client, self.authority.message(message_type, data))
        assert response.status_code == 201, response.text
        return int(response.json()["index"])

    def new(self, name: str) -> list[dict[str, Any]]:
        """The connector's documents since the last look."""
        agency = next(a for a, _, n in CONSUMERS if n == name)
        response = self.client.get(
            f"/v1/subscriptions/{self.feeds[name]}/feed?after=-1&limit=500",
            headers=bearer(self.runtime, agency, "subscribe"),
        )
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["parked"] == []
        items = page["items"][self.seen[name] :]
        self.seen[name] = len(page["items"])
        for item in items:
            assert item["dataschema"] == CONNECTORS[name].schema["$id"]
            assert "jws" not in item  # the publisher's JWS never travels with a connector view
        return [item["data"] for item in items]

    def last(self, name: str) -> dict[str, Any]:
        documents = self.new(name)
        assert documents, f"{name} made no document"
        return documents[-1]

    def measures(self) -> dict[str, set[str]]:
        day = self.runtime.clock.now().date().isoformat()
        body = self.client.get(f"/v1/enterprises/{USCC}/measures?on={day}&purpose=review").json()
        return {role: {m["code"] for m in ms} for role, ms in body["measures"].items()}


def factors(document: dict[str, Any]) -> dict[str, float]:
    return {a["product"]: a["premium_factor"] for a in document["adjustments"]}


def source(index: int, message_type: str, document: dict[str, Any]) -> dict[str, Any]:
    assert document["source"]["message_id"]
    return {
        "log_index": index,
        "message_id": document["source"]["message_id"],
        "type": message_type,
    }


def test_one_enterprise_through_award_accident_revocation_listing_and_new_award(
    client: TestClient, runtime: Runtime, authority: Publisher, feeds: dict[str, str]
) -> None:
    story = Story(client, runtime, authority, feeds)

    # 1. Registered, then awarded level 2 (hazardous chemicals, Ningde).
    story.on("2026-11-02")
    story.publish("enterprise.registered", make_registration())
    award = make_award(
        level="2",
        announced_on="2026-11-01",
        valid_from="2026-11-01",
        valid_to="2029-10-31",
        certificate_no="闽AQBWHⅡ202600031",
        announcement_no="闽应急公告〔2026〕9号",
    )
    at = story.publish("grade.awarded", award)
    insurer = story.last("insurance_premium")
    assert insurer == {
        "instruction": "adjust_premium",
        "uscc": USCC,
        "enterprise_name": NAME,
        "effective_on": "2026-11-02",
        "grade": {"status": "active", "level": "2"},
        "accidents_prior_year": [],
        "lists": [],
        "adjustments": [
            {
                "product": "liability",
                "premium_factor": 0.9,
                "reasons": [
                    {
                        "measure_code": "insurance.premium.no_accident",
                        "premium_float": -0.1,
                        "legal_basis": insurer["adjustments"][0]["reasons"][0]["legal_basis"],
                        "term_months": 12,
                    }
                ],
            },
            {
                "product": "work_injury",
                "premium_factor": 0.85,
                "reasons": [
                    {
                        "measure_code": "insurance.work_injury.grade_discount_2",
                        "premium_float": -0.15,
                        "legal_basis": "工伤保险费率浮动 (one city's rule)",
                        "term_months": 36,
                    }
                ],
            },
        ],
        "source": source(at, "grade.awarded", insurer),
    }
    bank = story.last("bank_credit")
    assert bank == {
        "signal": "credit_factor",
        "uscc": USCC,
        "enterprise_name": NAME,
        "effective_on": "2026-11-02",
        "grade": {"status": "active", "level": "2", "valid_to": "2029-10-31"},
        "credit_factor": 1.1,
        "restrictions": [],
        "priority": False,
        "source": source(at, "grade.awarded", bank),
    }
    disclosure = story.last("credit_disclosure")
    assert disclosure == {
        "record_type": "grade_award",
        "uscc": USCC,
        "enterprise_name": NAME,
        "region_code": "350900",
        "deciding_agency": "fj-yjt",
        "decision_no": "闽应急公告〔2026〕9号",
        "decided_on": "2026-11-01",
        "publication": {"from": "2026-11-01", "until": "2029-10-31"},
        "grade": {
            "level": "2",
            "scheme": "hazardous_chemicals",
            "certificate_no": "闽AQBWHⅡ202600031",
            "valid_from": "2026-11-01",
            "valid_to": "2029-10-31",
        },
        "source": source(at, "grade.awarded", disclosure),
    }
    regulator = story.new("market_regulator")
    assert [d["source"]["type"] for d in regulator] == ["enterprise.registered", "grade.awarded"]
    assert regulator[-1] == {
        "record_type": "enterprise_sync",
        "uscc": USCC,
        "name": NAME,
        "region_code": "350900",
        "industry_section": "C",
        "scheme": "hazardous_chemicals",
        "ledger_status": "达标",
        "grade": {
            "status": "active",
            "level": "2",
            "valid_from": "2026-11-01",
            "valid_to": "2029-10-31",
            "certificate_no": "闽AQBWHⅡ202600031",
        },
        "lists": [],
        "inspection_cap_per_year": 4,
        "key_target": False,
        "fewer_inspections": False,
        "as_of_log_index": at,
        "source": source(at, "grade.awarded", regulator[-1]),
    }
    assert story.new("revocation_notice") == []
    assert story.measures() == {
        "insurer": {"insurance.premium.no_accident", "insurance.work_injury.grade_discount_2"},
        "bank": {"bank.grade_factor.level2"},
        "market_regulator": {"regulator.inspections.hazardous.level2"},
        "credit_disclosure": {"disclosure.publish_grade"},
    }

    # 2. An ordinary accident: the liability premium floats up, nothing else changes.
    story.on("2027-02-02")
    at = story.publish(
        "accident.reported",
        make_accident(accident_id="ND-ACC-2027-001", occurred_on="2027-02-01", deaths=0),
    )
    insurer = story.last("insurance_premium")
    assert factors(insurer) == {"liability": 1.1, "work_injury": 0.85}
    assert insurer["accidents_prior_year"] == ["ordinary"]
    assert story.last("market_regulator")["inspection_cap_per_year"] == 4
    assert story.new("bank_credit") == []  # accidents are not the bank connector's
    assert story.new("credit_disclosure") == []
    assert story.measures() == {
        "insurer": {
            "insurance.premium.ordinary_accident",
            "insurance.work_injury.grade_discount_2",
        },
        "bank": {"bank.grade_factor.level2"},
        "market_regulator": {"regulator.inspections.hazardous.level2"},
        "credit_disclosure": {"disclosure.publish_grade"},
    }

    # 3. A major hazard ordered rectified, found overdue.
    story.on("2027-03-02")
    story.publish(
        "rectification.ordered",
        make_rectification_order(ordered_on="2027-01-10", deadline="2027-02-28"),
    )
    story.publish(
        "rectification.overdue", make_overdue(deadline="2027-02-28", found_on="2027-03-01")
    )
    rectification = story.new("market_regulator")
    assert [d["source"]["type"] for d in rectification] == [
        "rectification.ordered",
        "rectification.overdue",
    ]
    assert rectification[-1]["inspection_cap_per_year"] == 4  # still graded, until revoked
    for name in ("insurance_premium", "bank_credit", "credit_disclosure", "revocation_notice"):
        assert story.new(name) == []

    # 4. Revocation: credit review at the bank, no grade discount, the ungraded cap.
    story.on("2027-03-16")
    revocation = make_revocation(
        reason_code="major_hazard_unrectified",
        decided_on="2027-03-15",
        reapply_after="2028-03-15",
        decision_no="闽应急撤〔2027〕4号",
    )
    at = story.publish("grade.revoked", revocation)
    assert factors(story.last("insurance_premium")) == {"liability": 1.1, "work_injury": 1.0}
    bank = story.last("bank_credit")
    assert bank["signal"] == "restriction"
    assert bank["credit_factor"] == 1.0
    assert bank["grade"] == {"status": "revoked", "level": None, "valid_to": None}
    assert [(r["measure_code"], r["until"]) for r in bank["restrictions"]] == [
        ("bank.credit_review", None)
    ]
    disclosure = story.last("credit_disclosure")
    assert disclosure["record_type"] == "grade_revocation"
    assert disclosure["publication"] == {"from": "2027-03-15", "until": "2028-03-15"}
    assert disclosure["revocation"] == {
        "reason_code": "major_hazard_unrectified",
        "reapply_after": "2028-03-15",
    }
    assert "reason" not in json.dumps(disclosure["revocation"]).replace("reason_code", "")
    regulator = story.last("market_regulator")
    assert regulator["ledger_status"] == "未达标"
    assert regulator["inspection_cap_per_year"] == 12  # hazardous, ungraded
    notice = story.last("revocation_notice")
    assert notice == {
        "notice_type": "grade_revocation",
        "title": notice["title"],
        "uscc": USCC,
        "enterprise_name": NAME,
        "region_code": "350900",
        "revoked_on": "2027-03-15",
        "decision_no": "闽应急撤〔2027〕4号",
        "deciding_agency": "fj-yjt",
        "reapply_after": "2028-03-15",
        "expected_measures": notice["expected_measures"],
        "source": source(at, "grade.revoked", notice),
    }
    assert "撤销" in notice["title"]
    assert story.measures() == {
        "insurer": {"insurance.premium.ordinary_accident"},
        "bank": {"bank.credit_review"},
        "market_regulator": {"regulator.inspections.hazardous.ungraded"},
        "credit_disclosure": {"disclosure.publish_grade"},
    }
    assert {(m["role"], m["measure_code"]) for m in notice["expected_measures"]} == {
        (role, code) for role, codes in story.measures().items() for code in codes
    }

    # 5. Black-listed for three years.
    story.on("2027-04-02")
    listing = make_listing(
        listing_id="FJ-SX-2027-0011",
        decided_on="2027-04-01",
        term_start="2027-04-01",
        term_end="2030-04-01",
        decision_no="闽应急失信〔2027〕11号",
    )
    story.publish("listing.added", listing)
    assert factors(story.last("insurance_premium")) == {"liability": 1.2, "work_injury": 1.0}
    bank = story.last("bank_credit")
    assert sorted((r["measure_code"], r["until"]) for r in bank["restrictions"]) == [
        ("bank.credit_review", None),
        ("bank.no_new_loans", "2028-04-01"),
    ]
    disclosure = story.last("credit_disclosure")
    assert disclosure["record_type"] == "list_entry"
    assert disclosure["publication"] == {"from": "2027-04-01", "until": "2030-04-01"}
    assert disclosure["list"] == {
        "list_type": "black",
        "term_start": "2027-04-01",
        "term_end": "2030-04-01",
    }
    regulator = story.last("market_regulator")
    assert regulator["key_target"] is True
    assert regulator["lists"] == [
        {"list_type": "black", "term_start": "2027-04-01", "term_end": "2030-04-01"}
    ]
    assert story.measures() == {
        "insurer": {"insurance.premium.ordinary_accident", "insurance.premium.black_list"},
        "bank": {"bank.no_new_loans", "bank.credit_review"},
        "market_regulator": {"regulator.inspections.hazardous.ungraded", "regulator.key_target"},
        "credit_disclosure": {"disclosure.publish_grade", "disclosure.publish_list_entry"},
        "implementing_agency": {"honours.no_awards"},
    }
    assert story.new("revocation_notice") == []

    # 6. Removed early, after twelve months: the accident is over a year old by now.
    story.on("2028-04-03")
    story.publish(
        "listing.removed",
        make_removal(
            listing_id="FJ-SX-2027-0011",
            removed_on="2028-04-02",
            removal_reason="early_removal",
            decision_no="闽应急移〔2028〕2号",
        ),
    )
    insurer = story.last("insurance_premium")
    assert factors(insurer) == {"liability": 0.9, "work_injury": 1.0}
    assert insurer["lists"] == []
    assert insurer["accidents_prior_year"] == []
    bank = story.last("bank_credit")
    assert [r["measure_code"] for r in bank["restrictions"]] == ["bank.credit_review"]
    assert story.last("credit_disclosure")["record_type"] == "list_removal"
    regulator = story.last("market_regulator")
    assert (regulator["key_target"], regulator["lists"]) == (False, [])
    assert regulator["inspection_cap_per_year"] == 12
    assert story.measures() == {
        "insurer": {"insurance.premium.no_accident"},
        "bank": {"bank.credit_review"},
        "market_regulator": {"regulator.inspections.hazardous.ungraded"},
        "credit_disclosure": {"disclosure.publish_grade"},
    }

    # 7. A new award, level 3, after the re-apply wait.
    story.on("2028-04-11")
    story.publish(
        "grade.awarded",
        make_award(
            level="3",
            announced_on="2028-04-10",
            valid_from="2028-04-10",
            valid_to="2031-04-09",
            certificate_no="闽AQBWHⅢ202800007",
            announcement_no="闽应急公告〔2028〕4号",
        ),
    )
    assert factors(story.last("insurance_premium")) == {"liability": 0.9, "work_injury": 0.9}
    bank = story.last("bank_credit")
    assert (bank["signal"], bank["credit_factor"], bank["restrictions"]) == (
        "credit_factor",
        1.05,
        [],
    )
    assert story.last("credit_disclosure")["grade"]["level"] == "3"
    regulator = story.last("market_regulator")
    assert (regulator["ledger_status"], regulator["inspection_cap_per_year"]) == ("达标", 8)
    assert story.new("revocation_notice") == []
    assert story.measures() == {
        "insurer": {"insurance.premium.no_accident", "insurance.work_injury.grade_discount_3"},
        "bank": {"bank.grade_factor.level3"},
        "market_regulator": {"regulator.inspections.hazardous.level3"},
        "credit_disclosure": {"disclosure.publish_grade"},
    }


def test_a_connector_view_needs_its_role_and_its_types(
    client: TestClient, runtime: Runtime
) -> None:
    register(runtime, "fj-cib", [], roles=["bank"])
    allow_subscribe(runtime, "fj-cib", ["grade.revoked", "accident.reported"])
    body = {"agency_id": "fj-cib", "url": None, "types": ["grade.revoked"]}
    wrong_role = client.post("/v1/subscriptions", json=body | {"view": "insurance_premium"})
    assert (wrong_role.status_code, wrong_role.json()["code"]) == (403, "view_not_permitted")
    wrong_type = client.post(
        "/v1/subscriptions", json=body | {"types": ["accident.reported"], "view": "bank_credit"}
    )
    assert (wrong_type.status_code, wrong_type.json()["code"]) == (400, "invalid_view")
    listed = client.get("/v1/connectors").json()["connectors"]
    assert {c["name"] for c in listed} == set(CONNECTORS)
    assert all(c["view_contract"]["additionalProperties"] is False for c in listed)


def test_a_document_failing_its_view_contract_is_parked_and_never_sent(
    client: TestClient,
    runtime: Runtime,
    authority: Publisher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    register(runtime, "fj-cib", [], roles=["bank"])
    allow_subscribe(runtime, "fj-cib", ["grade.awarded", "grade.revoked"])
    runtime.settings.delivery.allowed_hosts.append("bank.example")
    body = {
        "agency_id": "fj-cib",
        "url": "https://bank.example/hook",
        "types": ["grade.awarded", "grade.revoked"],
        "view": "bank_credit",
    }
    assert client.post("/v1/subscriptions", json=body).status_code == 201
    real = CONNECTORS["bank_credit"]

    def leaky(ctx: Any) -> dict[str, Any]:  # a bug that would leak a field outside the view
        document = real.render(ctx)
        if ctx.decision.type == "grade.awarded":
            document["certificate_no"] = ctx.decision.data["certificate_no"]
        return document

    monkeypatch.setitem(CONNECTORS, "bank_credit", dataclasses.replace(real, render=leaky))
    publish(client, authority.message("enterprise.registered", make_registration()))
    publish(client, authority.message("grade.awarded", make_award()))
    publish(client, authority.message("grade.revoked", make_revocation()))
    with respx.mock(assert_all_called=False) as mock, make_client(runtime) as http:
        route = mock.post("https://bank.example/hook").mock(return_value=httpx.Response(204))
        for _ in range(3):
            run_once(runtime, http)
        # the award never left, and the revocation waits behind it (per-enterprise order)
        assert route.calls == []
        with runtime.db.reader() as session:
            parked = session.scalars(select(Delivery).where(Delivery.status == "parked")).one()
            assert "bank_credit view contract v1" in str(parked.last_error)
            assert "certificate_no" in str(parked.last_error)
        assert 'gateway_deliveries{status="parked"} 1.0' in client.get("/metrics").text
        # an operator skips the parked award: the revocation goes out, without the leak
        skipped = client.post(
            f"/v1/subscriptions/{parked.subscription_id}/skip",
            json={"log_indexes": [parked.log_index]},
        )
        assert skipped.status_code == 200, skipped.text
        run_once(runtime, http)
    sent = [json.loads(call.request.content) for call in route.calls]
    assert [event["type"] for event in sent] == ["grade.revoked"]
    assert "certificate_no" not in sent[0]["data"]


def test_market_regulator_snapshot_with_a_signed_manifest(
    client: TestClient, runtime: Runtime, authority: Publisher
) -> None:
    codes = []
    for n in range(5):
        uscc = complete_uscc(f"91350900MA{n:06d}")
        codes.append(uscc)
        publish(
            client, authority.message("enterprise.registered", make_registration(), subject=uscc)
        )
    publish(client, authority.message("grade.awarded", make_award(), subject=codes[0]))
    register(runtime, "fj-scjg", [], roles=["market_regulator"])  # snapshots are its own
    manifest = client.post("/v1/connectors/market_regulator/snapshots")
    assert manifest.status_code == 201, manifest.text
    claims = manifest.json()
    listed = client.get(
        "/v1/connectors/market_regulator/snapshots", headers=bearer(runtime, "fj-scjg", "subscribe")
    ).json()["snapshots"]
    assert listed[0]["log_size"] == claims["log_size"]
    data = client.get(f"/v1/connectors/market_regulator/snapshots/{listed[0]['data']}")
    signed = client.get(f"/v1/connectors/market_regulator/snapshots/{listed[0]['manifest']}")
    assert data.headers["content-type"].startswith("application/x-ndjson")
    parsed = jws.parse_compact(signed.text.strip())
    jwks = client.get("/.well-known/jwks.json").json()
    jws.verify_compact(parsed, key_from_jwks(jwks, str(parsed.header["kid"])))
    verified = json.loads(parsed.payload)
    assert verified == claims
    assert parsed.header["typ"] == "gateway-snapshot-manifest+jws"
    assert hashlib.sha256(data.content).hexdigest() == verified["sha256"]
    records = [json.loads(line) for line in data.content.splitlines()]
    with runtime.db.reader() as session:
        assert (
            len(records)
            == verified["records"]
            == session.scalar(select(func.count()).select_from(Enterprise))
        )
        assert verified["root_hash"] == root_hash(session, verified["log_size"]).hex()
    assert [r["uscc"] for r in records] == sorted(codes)
    graded = next(r for r in records if r["uscc"] == codes[0])
    assert (graded["grade"]["level"], graded["inspection_cap_per_year"]) == ("2", 4)
    bad = client.get("/v1/connectors/market_regulator/snapshots/..%2Fkeys")
    assert bad.status_code == 404


def test_snapshots_are_also_taken_on_a_schedule(
    settings: Any, clock: FixedClock, authority: Publisher, runtime: Runtime
) -> None:
    from gateway.app import create_app
    from gateway.connectors_routes import snapshot_dir

    scheduled = settings.model_copy(
        update={
            "connectors": settings.connectors.model_copy(update={"snapshot_interval_seconds": 0.2})
        }
    )
    with TestClient(create_app(scheduled, clock=clock)) as app_client:
        app_client.headers["authorization"] = f"Bearer {operator_token(runtime)}"
        registered = authority.message("enterprise.registered", make_registration())
        assert publish(app_client, registered).status_code == 201
        folder = snapshot_dir(app_client.app.state.runtime)
        deadline = dt.datetime.now() + dt.timedelta(seconds=20)
        while not list(folder.glob("*.manifest.jws")) and dt.datetime.now() < deadline:
            app_client.get("/healthz")  # let the loop run the schedule
            time.sleep(0.1)
    manifests = sorted(folder.glob("*.manifest.jws"))
    assert manifests, "no scheduled snapshot was written"
    claims = json.loads(jws.parse_compact(manifests[-1].read_text().strip()).payload)
    assert claims["records"] >= 0
    assert (folder / claims["file"]).is_file()
