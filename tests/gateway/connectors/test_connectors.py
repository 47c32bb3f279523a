"""Connectors: one enterprise's story told to six consumer kinds, on the seed's own path.

Award level 2 → inspection finds the system not running → rectification ordered → failed
re-check → revocation citing it → black-listing → early removal after 12 months with credit
repair → closure; and a second enterprise whose grade lapses with nobody publishing its expiry.
At each step, on its date, the test reads every connector's newest document from its agency's
feed and asserts what each agency acts on: the insurer's liability factor by grade, accidents
and lists (闽安委〔2017〕1号 五（五）), the work-injury factor for social insurance only, the
bank's restrictions with the terms of their own decisions, the public record in the credit
disclosure systems' fields, the market regulator's credit record. Then: a document failing its
view contract is parked, never sent; the market regulator's snapshot verifies against its
signed manifest.
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
    make_award,
    make_closure,
    make_listing,
    make_rectification_order,
    make_registration,
    make_removal,
    make_revocation,
    make_self_assessment,
    make_verification,
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
from gateway.transparency.tlog import root_hash
from keys import jws
from keys.jwks import key_from_jwks

# agency, role, connector
CONSUMERS = (
    ("fj-picc", "insurer", "insurance_premium"),
    ("fj-rsj", "social_insurance", "work_injury_premium"),
    ("fj-cib", "bank", "bank_credit"),
    ("fj-xyb", "credit_disclosure", "credit_disclosure"),
    ("fj-scjg", "market_regulator", "market_regulator"),
    ("fj-sw", "implementing_agency", "revocation_notice"),
)
NAME = make_registration()["name"]
AUTHORITY = {"id": "fj-yjt", "name": "agency fj-yjt", "uscc": "11350000MB0000019N"}
OTHER = complete_uscc("91350100MA000077")  # the enterprise whose grade lapses


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

    def send(
        self,
        message_type: str,
        data: dict[str, Any],
        subject: str = USCC,
        by: Publisher | None = None,
    ) -> Any:
        publisher = by or self.authority
        return publish(self.client, publisher.message(message_type, data, subject=subject))

    def publish(
        self,
        message_type: str,
        data: dict[str, Any],
        subject: str = USCC,
        by: Publisher | None = None,
    ) -> int:
        response = self.send(message_type, data, subject, by)
        assert response.status_code == 201, response.text
        return int(response.json()["index"])

    def message_id(self, index: int) -> str:
        entries = self.client.get(f"/v1/log/entries?start={index}&end={index + 1}").json()
        return str(entries["entries"][0]["message_id"])  # every view names it

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

    def measures(self, uscc: str = USCC) -> dict[str, set[str]]:
        day = self.runtime.clock.now().date().isoformat()
        body = self.client.get(f"/v1/enterprises/{uscc}/measures?on={day}&purpose=review").json()
        return {role: {m["code"] for m in ms} for role, ms in body["measures"].items()}


def factor(document: dict[str, Any]) -> float:
    return float(document["premium_factor"])


def floats(document: dict[str, Any]) -> dict[str, tuple[float, bool]]:
    return {f["measure_code"]: (f["premium_float"], f["applied"]) for f in document["floats"]}


def source(index: int, message_type: str, document: dict[str, Any]) -> dict[str, Any]:
    assert document["source"]["message_id"]
    return {
        "log_index": index,
        "message_id": document["source"]["message_id"],
        "type": message_type,
    }


GRADED_SUPERVISION = {
    "supervision.frequency.hazardous.level2",
    "supervision.penalties.graded",
}
UNGRADED_SUPERVISION = {
    "supervision.frequency.hazardous.ungraded",
    "supervision.key_supervision.ungraded",
}


def test_the_seed_s_revocation_path_told_to_every_agency(
    client: TestClient, runtime: Runtime, authority: Publisher, feeds: dict[str, str]
) -> None:
    story = Story(client, runtime, authority, feeds)

    # 1. Registered (with its legal representative), last year's self-assessment report
    # published, then awarded level 2 (hazardous chemicals, Ningde).
    story.on("2026-11-02")
    story.publish("enterprise.registered", make_registration())
    story.publish(
        "self_assessment.published", make_self_assessment(year=2025, published_on="2026-01-20")
    )
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
        "product": "liability",
        "product_title": "安全生产责任保险 (work-safety liability insurance)",
        "uscc": USCC,
        "enterprise_name": NAME,
        "as_of": "2026-11-02",
        "applies": {
            "at": "policy_renewal",
            "from_period_starting_on_or_after": "2026-11-02",
            "record_period": {"from": "2025-11-02", "to": "2026-11-02"},
        },
        "grade": {
            "status": "active",
            "level": "2",
            "scheme": "hazardous_chemicals",
            "valid_to": "2029-10-31",
        },
        "accidents_in_record_period": [],
        "lists": [],
        "premium_factor": 0.8,
        "floats": insurer["floats"],
        "combination": insurer["combination"],
        "source": source(at, "grade.awarded", insurer),
    }
    assert floats(insurer) == {
        "insurance.liability.grade_2": (-0.1, True),
        "insurance.liability.no_accident": (-0.1, True),
    }
    assert insurer["combination"] | {"source": None} == {
        "rule": "sum",
        "floor": -0.3,
        "ceiling": 0.3,
        "penalty_blocks_discounts": True,
        "total": -0.2,
        "bounded": -0.2,
        "source": None,
    }
    assert {f["source"]["kind"] for f in insurer["floats"]} == {"assumption"}
    social = story.last("work_injury_premium")
    assert (social["product"], factor(social), social["applies"]["at"]) == (
        "work_injury",
        0.85,
        "contribution_year",
    )
    assert floats(social) == {"social_insurance.work_injury.grade_2": (-0.15, True)}
    bank = story.last("bank_credit")
    assert bank == {
        "signal": "grade",
        "uscc": USCC,
        "enterprise_name": NAME,
        "legal_representative": "林某某",
        "as_of": "2026-11-02",
        "closed_on": None,
        "grade": {
            "status": "active",
            "level": "2",
            "scheme": "hazardous_chemicals",
            "awarding_authority": AUTHORITY | {"level": "provincial"},
            "certificate_no": "闽AQBWHⅡ202600031",
            "announcement_no": "闽应急公告〔2026〕9号",
            "valid_from": "2026-11-01",
            "valid_to": "2029-10-31",
            "reapply_after": None,
        },
        "decision": {
            "type": "grade.awarded",
            "number": "闽应急公告〔2026〕9号",
            "decided_on": "2026-11-01",
            "reason_code": None,
        },
        "restrictions": [],
        "incentives": [],
        "credit_factor_option": bank["credit_factor_option"],
        "source": source(at, "grade.awarded", bank),
    }
    assert bank["credit_factor_option"]["value"] == 1.1
    assert bank["credit_factor_option"]["source"]["kind"] == "assumption"
    disclosure = story.last("credit_disclosure")
    assert disclosure == {
        "record_type": "grade_award",
        "information_category": "安全生产标准化等级",
        "subject_name": NAME,
        "uscc": USCC,
        "legal_representative": "林某某",
        "region_code": "350900",
        "data_source": AUTHORITY,
        "decision_no": "闽应急公告〔2026〕9号",
        "deciding_body": AUTHORITY,
        "decided_on": "2026-11-01",
        "validity": {"from": "2026-11-01", "to": "2029-10-31"},
        "current_status": "有效",
        "publication": {
            "from": "2026-11-01",
            "until": "2029-10-31",
            "term": disclosure["publication"]["term"],
        },
        "content": {
            "grade": {
                "level": "2",
                "level_zh": "二级",
                "scheme": "hazardous_chemicals",
                "certificate_no": "闽AQBWHⅡ202600031",
                "authority_level": "provincial",
            }
        },
        "source": source(at, "grade.awarded", disclosure),
    }
    assert "五（五）" in disclosure["publication"]["term"]
    regulator = story.new("market_regulator")
    assert [d["source"]["type"] for d in regulator] == [
        "enterprise.registered",
        "self_assessment.published",
        "grade.awarded",
    ]
    assert regulator[-1] == {
        "record_type": "enterprise_sync",
        "uscc": USCC,
        "name": NAME,
        "legal_representative": "林某某",
        "region_code": "350900",
        "industry_section": "C",
        "scheme": "hazardous_chemicals",
        "registered_on": "2023-05-04",
        "ledger_status": "达标",
        "closure": None,
        "grade": {
            "status": "active",
            "level": "2",
            "valid_from": "2026-11-01",
            "valid_to": "2029-10-31",
            "certificate_no": "闽AQBWHⅡ202600031",
            "announcement_no": "闽应急公告〔2026〕9号",
            "awarding_authority": AUTHORITY | {"level": "provincial"},
        },
        "revocation": None,
        "lists": [],
        "as_of_log_index": at,
        "source": source(at, "grade.awarded", regulator[-1]),
    }
    assert story.new("revocation_notice") == []
    assert story.measures() == {
        "insurer": {"insurance.liability.grade_2", "insurance.liability.no_accident"},
        "social_insurance": {"social_insurance.work_injury.grade_2"},
        "bank": {"bank.grade_factor.level2"},
        "market_regulator": {"regulator.record_grade"},
        "credit_disclosure": {"disclosure.publish_grade"},
        "work_safety_supervisor": GRADED_SUPERVISION,
    }

    # 2. Periodic verification finds a new name (定期核实): the register changes, with its
    # history; the credit record follows.
    story.on("2026-12-02")
    story.publish(
        "enterprise.updated",
        {
            "changed_on": "2026-12-01",
            "basis": "periodic_verification",
            "changes": {"name": "宁德某某新材料有限公司"},
        },
    )
    assert story.last("market_regulator")["name"] == "宁德某某新材料有限公司"
    history = client.get(f"/v1/enterprises/{USCC}/ledger-history").json()["changes"]
    assert history[-1]["ledger"] == "basic"
    assert "宁德某某新材料有限公司" in history[-1]["reason"]
    name = "宁德某某新材料有限公司"

    # 3. An unannounced inspection (四不两直) finds the standardization system not running:
    # ordered to rectify, citing it.
    story.on("2027-03-02")
    supervisor = register(
        runtime,
        "fj-yjt-zf",
        ["inspection.recorded", "rectification.ordered", "rectification.verified"],
        roles=["work_safety_supervisor"],
    )
    inspected = story.publish(
        "inspection.recorded",
        {
            "inspection_id": "ND-JC-2027-0031",
            "kind": "unannounced",
            "inspected_on": "2027-02-28",
            "inspectors": ["ND-INSP-007", "ND-INSP-011"],
            "findings": {
                "deducted_items": ["gbt33000.5.5", "gbt33000.5.8"],
                "system_running": False,
                "safety_conditions_degraded": False,
                "hazards_found": 3,
            },
        },
        by=supervisor,
    )
    order = make_rectification_order(
        rectification_id="ND-2027-0007",
        kind="system_not_running",
        ordered_on="2027-03-01",
        deadline="2027-04-30",
        description="标准化管理体系未有效运行：隐患排查制度未执行",
    )
    del order["hazard_level"]  # the level of a hazard; this order is of a system not running
    refused = story.send("rectification.ordered", order, by=supervisor)
    assert (refused.status_code, refused.json()["code"]) == (422, "finding_missing")
    order["inspection_message_id"] = story.message_id(inspected)
    ordered = story.publish("rectification.ordered", order, by=supervisor)
    public = story.last("credit_disclosure")  # 双随机一公开: the inspection result is public
    assert (public["record_type"], public["information_category"]) == (
        "inspection_result",
        "安全生产执法检查结果",
    )
    assert public["content"]["inspection"]["kind_zh"] == "四不两直检查"
    assert public["content"]["inspection"]["system_running"] is False
    for connector in ("insurance_premium", "bank_credit", "credit_disclosure", "market_regulator"):
        assert story.new(connector) == []  # an order changes no one's standing yet

    # 4. The re-check fails (整改仍达不到要求).
    story.on("2027-05-06")
    failed = story.publish(
        "rectification.verified",
        make_verification(
            rectification_id="ND-2027-0007", verified_on="2027-05-05", result="failed"
        ),
        by=supervisor,
    )

    # 5. Revocation: refused without its cause, with a cause not in the log, with the order
    # instead of the failed re-check; accepted citing the failed re-check.
    story.on("2027-05-11")
    revocation = make_revocation(
        reason_code="system_not_running",
        reason="体系未有效运行，整改复查仍不合格",
        decided_on="2027-05-10",
        reapply_after="2028-05-10",
        decision_no="闽应急撤〔2027〕4号",
    )
    for cited, code in (
        ([], "cause_missing"),
        (["6ba7b810-9dad-11d1-80b4-00c04fd430c8"], "cause_not_in_log"),
        ([story.message_id(ordered)], "cause_mismatch"),
    ):
        refused = story.send(
            "grade.revoked", revocation | ({"related_message_ids": cited} if cited else {})
        )
        assert (refused.status_code, refused.json()["code"]) == (422, code), refused.text
    at = story.publish(
        "grade.revoked", revocation | {"related_message_ids": [story.message_id(failed)]}
    )
    insurer = story.last("insurance_premium")
    assert factor(insurer) == 1.0  # no grade discount, and no no-accident discount when revoked
    assert floats(insurer) == {"insurance.liability.no_accident": (-0.1, False)}
    assert "revoked" in insurer["floats"][0]["withheld_because"]
    assert factor(story.last("work_injury_premium")) == 1.0
    bank = story.last("bank_credit")
    assert bank["signal"] == "restriction"
    assert bank["grade"]["status"] == "revoked"
    assert bank["grade"]["reapply_after"] == "2028-05-10"
    assert bank["decision"] == {
        "type": "grade.revoked",
        "number": "闽应急撤〔2027〕4号",
        "decided_on": "2027-05-10",
        "reason_code": "system_not_running",
    }
    assert [
        (r["measure_code"], r["from"], r["until"], r["because"]["type"])
        for r in bank["restrictions"]
    ] == [("bank.credit_review", "2027-05-10", None, "grade.revoked")]
    assert bank["credit_factor_option"] is None
    disclosure = story.last("credit_disclosure")
    assert disclosure["record_type"] == "grade_revocation"
    assert disclosure["subject_name"] == name
    assert (disclosure["current_status"], disclosure["decision_no"]) == (
        "已撤销",
        "闽应急撤〔2027〕4号",
    )
    assert disclosure["publication"]["from"] == "2027-05-10"
    assert disclosure["publication"]["until"] == "2028-05-10"
    assert disclosure["content"] == {
        "revocation": {
            "reason_code": "system_not_running",
            "reason": "安全生产标准化管理体系未有效运行，经整改仍达不到要求",
            "reapply_after": "2028-05-10",
        }
    }
    assert "整改复查" not in json.dumps(disclosure, ensure_ascii=False)  # no free text
    regulator = story.last("market_regulator")
    assert regulator["ledger_status"] == "未达标"
    assert regulator["revocation"] == {
        "decision_no": "闽应急撤〔2027〕4号",
        "decided_on": "2027-05-10",
        "reason_code": "system_not_running",
        "reason": "安全生产标准化管理体系未有效运行，经整改仍达不到要求",
        "reapply_after": "2028-05-10",
    }
    notice = story.last("revocation_notice")
    assert (notice["revoked_on"], notice["deciding_agency"]) == ("2027-05-10", "fj-yjt")
    assert "撤销" in notice["title"]
    assert story.measures() == {
        "insurer": {"insurance.liability.no_accident"},
        "bank": {"bank.credit_review"},
        "market_regulator": {"regulator.record_grade"},
        "credit_disclosure": {"disclosure.publish_grade"},
        "work_safety_supervisor": UNGRADED_SUPERVISION,
    }
    assert {(m["role"], m["measure_code"]) for m in notice["expected_measures"]} == {
        (role, code) for role, codes in story.measures().items() for code in codes
    }

    # 6. Black-listed for three years: a penalty, and no discount set against it.
    story.on("2027-06-02")
    listing = make_listing(
        listing_id="FJ-SX-2027-0011",
        decided_on="2027-06-01",
        term_start="2027-06-01",
        term_end="2030-06-01",
        decision_no="闽应急失信〔2027〕11号",
    )
    refused = story.send("listing.added", listing | {"deciding_agency": "fj-cib"})
    assert (refused.status_code, refused.json()["code"]) == (422, "unknown_decider")
    story.publish("listing.added", listing)
    insurer = story.last("insurance_premium")
    assert factor(insurer) == 1.1
    assert floats(insurer) == {
        "insurance.liability.black_list": (0.1, True),
        "insurance.liability.no_accident": (-0.1, False),
    }
    assert factor(story.last("work_injury_premium")) == 1.1
    bank = story.last("bank_credit")
    black_term = [
        ("bank.credit_review", "2027-05-10", None),
        ("bank.no_new_loans", "2027-06-01", "2028-06-01"),
    ]
    assert (
        sorted((r["measure_code"], r["from"], r["until"]) for r in bank["restrictions"])
        == black_term
    )
    disclosure = story.last("credit_disclosure")
    assert (disclosure["record_type"], disclosure["information_category"]) == (
        "list_entry",
        "安全生产严重失信主体名单",
    )
    assert disclosure["deciding_body"] == AUTHORITY
    assert disclosure["publication"]["until"] == "2030-06-01"
    assert "11号" in disclosure["publication"]["term"]
    assert story.last("market_regulator")["lists"] == [
        {
            "list_type": "black",
            "deciding_agency": "fj-yjt",
            "term_start": "2027-06-01",
            "term_end": "2030-06-01",
        }
    ]
    measures = story.measures()
    assert measures["insurer"] == {
        "insurance.liability.black_list",
        "insurance.liability.no_accident",
    }
    assert measures["bank"] == {"bank.no_new_loans", "bank.credit_review"}
    assert "supervision.black_list" in measures["work_safety_supervisor"]
    assert measures["implementing_agency"] == {"honours.no_awards"}

    # 7. A later, unrelated list decision: the black-listing's terms stay its own.
    story.on("2027-09-02")
    story.publish(
        "listing.added",
        make_listing(
            listing_id="FJ-ZD-2027-0003",
            list_type="focus",
            decided_on="2027-09-01",
            term_start="2027-09-01",
            term_end="2028-09-01",
            decision_no="闽应急关注〔2027〕3号",
        ),
    )
    bank = story.last("bank_credit")
    assert (
        sorted((r["measure_code"], r["from"], r["until"]) for r in bank["restrictions"])
        == black_term
    )

    # 8. Removed early, after twelve months, on its credit repair; the term start is kept.
    story.on("2028-06-03")
    removal = make_removal(
        listing_id="FJ-SX-2027-0011",
        removed_on="2028-06-02",
        removal_reason="early_removal",
        decision_no="闽应急移〔2028〕2号",
    )
    refused = story.send("listing.removed", removal)
    assert (refused.status_code, refused.json()["code"]) == (422, "rule_violation")
    repair = {
        "applied_on": "2028-05-01",
        "completed_on": "2028-05-30",
        "measures": ["纠正失信行为", "信用承诺"],
    }
    story.publish("listing.removed", removal | {"credit_repair": repair})
    disclosure = story.last("credit_disclosure")
    assert (disclosure["record_type"], disclosure["current_status"]) == ("list_removal", "已移出")
    assert disclosure["content"]["removal"] == {
        "list_type": "black",
        "list_name": "安全生产严重失信主体名单",
        "term_start": "2027-06-01",
        "term_end": "2030-06-01",
        "removed_on": "2028-06-02",
        "removal_reason": "early_removal",
        "removal_reason_zh": "信用修复提前移出",
        "credit_repair": repair,
    }
    insurer = story.last("insurance_premium")
    assert (factor(insurer), insurer["lists"]) == (1.0, ["focus"])  # revoked: no discount
    bank = story.last("bank_credit")
    assert [r["measure_code"] for r in bank["restrictions"]] == ["bank.credit_review"]
    assert [e["list_type"] for e in story.last("market_regulator")["lists"]] == ["focus"]

    # 9. Closed (注销): it leaves the required ledger, gets no measures, takes no new grade.
    story.on("2028-12-02")
    story.publish("enterprise.closed", make_closure(closed_on="2028-12-01"))
    regulator = story.last("market_regulator")
    assert regulator["closure"] == {
        "closed_on": "2028-12-01",
        "closure": "deregistered",
        "closure_zh": "注销",
    }
    assert story.measures() == {}
    required = client.get("/v1/ledgers/required").json()["items"]
    assert USCC not in {item["uscc"] for item in required}
    basic = client.get("/v1/ledgers/basic").json()["items"]
    assert next(i for i in basic if i["uscc"] == USCC)["closed_on"] == "2028-12-01"
    refused = story.send(
        "grade.awarded",
        make_award(announced_on="2028-12-05", valid_from="2028-12-05", valid_to="2031-12-04"),
    )
    assert (refused.status_code, refused.json()["code"]) == (422, "enterprise_closed")


def test_a_lapse_ends_the_grade_s_links_whether_or_not_its_expiry_is_published(
    client: TestClient, runtime: Runtime, authority: Publisher, feeds: dict[str, str]
) -> None:
    story = Story(client, runtime, authority, feeds)
    story.on("2026-11-02")
    story.publish("enterprise.registered", make_registration(region_code="350100"), OTHER)
    story.publish(
        "grade.awarded",
        make_award(
            level="1", announced_on="2026-11-01", valid_from="2026-11-01", valid_to="2027-10-31"
        ),
        OTHER,
    )
    assert factor(story.last("insurance_premium")) == 0.75  # level 1 −15 %, no accident −10 %
    story.on("2027-11-02")  # lapsed on 2027-11-01; nobody publishes grade.expired
    story.publish(
        "listing.added",
        make_listing(
            list_type="red",
            listing_id="FJ-HM-2027-0002",
            decided_on="2027-11-01",
            term_start="2027-11-01",
            term_end="2030-11-01",
        ),
        OTHER,
    )
    insurer = story.last("insurance_premium")
    assert insurer["grade"] == {
        "status": "expired",
        "level": None,
        "scheme": None,
        "valid_to": None,
    }
    assert factor(insurer) == 0.9  # the no-accident discount only
    regulator = story.last("market_regulator")
    assert (regulator["ledger_status"], regulator["grade"]["status"]) == ("未达标", "expired")
    assert OTHER not in {i["uscc"] for i in client.get("/v1/ledgers/achieved").json()["items"]}
    snapshot = client.post("/v1/connectors/market_regulator/snapshots").json()
    data = client.get(f"/v1/connectors/market_regulator/snapshots/{snapshot['file']}")
    record = next(json.loads(line) for line in data.content.splitlines() if OTHER in line.decode())
    assert (record["ledger_status"], record["grade"]["status"]) == ("未达标", "expired")
    # its expiry, published later, is a public record too
    story.publish("grade.expired", {"valid_to": "2027-10-31", "expired_on": "2027-11-01"}, OTHER)
    disclosure = story.new("credit_disclosure")[-1]
    assert (disclosure["record_type"], disclosure["current_status"]) == ("grade_expiry", "已过期")


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

    def leaky(facts: Any) -> dict[str, Any]:  # a bug that would leak a field outside the view
        document = real.render(facts)
        if facts.decision.type == "grade.awarded":
            document["certificate_no"] = facts.decision.data["certificate_no"]
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
            assert "bank_credit view contract v2" in str(parked.last_error)
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
    allow_subscribe(runtime, "fj-scjg", sorted(CONNECTORS["market_regulator"].types))
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
    assert (graded["grade"]["level"], graded["ledger_status"]) == ("2", "达标")
    assert "inspection_cap_per_year" not in graded  # the supervisor's, not the regulator's
    bad = client.get("/v1/connectors/market_regulator/snapshots/..%2Fkeys")
    assert bad.status_code == 404


def test_snapshots_are_also_taken_on_a_schedule(
    settings: Any, clock: FixedClock, authority: Publisher, runtime: Runtime
) -> None:
    from gateway.app import create_app
    from gateway.connectors.routes import snapshot_dir

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
