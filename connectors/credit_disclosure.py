"""For the credit disclosure systems (信用中国 and the enterprise credit disclosure system,
闽安委〔2017〕1号 五（五）): public records of grade awards, renewals, downgrades, revocations and
expiries and of list entries and removals, in the fields those systems record: the party's
name, code and legal representative, the decision number, deciding body and date, validity,
the data source unit, information category, current status and the publication term with its
source.

Public fields only: codes, numbers, dates, agencies and reasons as coded (in Chinese); free
text of a decision (which may name people) and internal identifiers stay out."""

from __future__ import annotations

from typing import Any

from connectors.base import Connector, iso
from connectors.facts import DocumentFacts
from connectors.labels import (
    GRADE_CATEGORY,
    INSPECTION_CATEGORY,
    INSPECTION_KINDS,
    LEVELS,
    LISTS,
    REMOVAL_REASONS,
    REVOCATION_REASONS,
)

RECORD_TYPES = {
    "grade.awarded": "grade_award",
    "grade.renewed": "grade_renewal",
    "grade.downgraded": "grade_downgrade",
    "grade.revoked": "grade_revocation",
    "grade.expired": "grade_expiry",
    "listing.added": "list_entry",
    "listing.removed": "list_removal",
    "inspection.recorded": "inspection_result",
}
GRADE_TERM = "the grade's validity (闽安委〔2017〕1号 五（五）: 纳入企业信用信息公示系统)"
REVOCATION_TERM = "until the enterprise may re-apply (our assumption: no rule fixes it)"
LIST_TERM = {
    "black": "the management term (应急管理部令第11号, 2023)",
    "red": "the incentive term (2017 national joint-incentive rules)",
    "focus": "the focus-list term (our assumption, data/policy.json)",
}


def render(facts: DocumentFacts) -> dict[str, Any]:
    d = facts.decision.data
    kind = RECORD_TYPES[facts.decision.type]
    ent = facts.enterprise
    record: dict[str, Any] = {
        "record_type": kind,
        "information_category": GRADE_CATEGORY,
        "subject_name": ent.name,
        "uscc": ent.uscc,
        "legal_representative": ent.legal_representative,
        "region_code": ent.region_code,
        "data_source": facts.agency(facts.decision.issuer),
    }
    record |= _GRADE.get(kind, _list)(facts, d)
    record["source"] = facts.source()
    return record


def _award(facts: DocumentFacts, d: Any) -> dict[str, Any]:
    scheme = d.get("scheme") or facts.enterprise.grade_scheme or facts.enterprise.scheme
    return {
        "decision_no": d["announcement_no"],
        "deciding_body": facts.agency(facts.decision.issuer),
        "decided_on": d["announced_on"],
        "validity": {"from": d["valid_from"], "to": d["valid_to"]},
        "current_status": "有效",
        "publication": {"from": d["announced_on"], "until": d["valid_to"], "term": GRADE_TERM},
        "content": {
            "grade": {
                "level": d["level"],
                "level_zh": LEVELS[d["level"]],
                "scheme": scheme,
                "certificate_no": d["certificate_no"],
                "authority_level": d.get("authority_level") or facts.enterprise.grade_authority,
            }
        },
    }


def _downgrade(facts: DocumentFacts, d: Any) -> dict[str, Any]:
    until = iso(facts.enterprise.grade_valid_to)
    return {
        "decision_no": d["decision_no"],
        "deciding_body": facts.agency(facts.decision.issuer),
        "decided_on": d["decided_on"],
        "validity": {"from": d["decided_on"], "to": until},
        "current_status": "有效",
        "publication": {"from": d["decided_on"], "until": until, "term": GRADE_TERM},
        "content": {
            "downgrade": {
                "level": d["to_level"],
                "level_zh": LEVELS[d["to_level"]],
                "from_level": d["from_level"],
            }
        },
    }


def _revocation(facts: DocumentFacts, d: Any) -> dict[str, Any]:
    return {
        "decision_no": d["decision_no"],
        "deciding_body": facts.agency(facts.decision.issuer),
        "decided_on": d["decided_on"],
        "validity": {"from": d["decided_on"], "to": None},
        "current_status": "已撤销",
        "publication": {
            "from": d["decided_on"],
            "until": d["reapply_after"],
            "term": REVOCATION_TERM,
        },
        "content": {
            "revocation": {
                "reason_code": d["reason_code"],
                "reason": REVOCATION_REASONS[d["reason_code"]],
                "reapply_after": d["reapply_after"],
            }
        },
    }


def _expiry(facts: DocumentFacts, d: Any) -> dict[str, Any]:
    ent = facts.enterprise
    return {
        "decision_no": ent.announcement_no or ent.certificate_no or facts.decision.message_id,
        "deciding_body": facts.agency(ent.grade_awarded_by or facts.decision.issuer),
        "decided_on": d["expired_on"],
        "validity": {"from": iso(ent.grade_valid_from), "to": d["valid_to"]},
        "current_status": "已过期",
        "publication": {"from": d["expired_on"], "until": d["expired_on"], "term": GRADE_TERM},
        "content": {
            "expiry": {
                "valid_to": d["valid_to"],
                "expired_on": d["expired_on"],
                "certificate_no": ent.certificate_no,
            }
        },
    }


def _list(facts: DocumentFacts, d: Any) -> dict[str, Any]:
    entry = facts.listings.get(str(d["listing_id"]))
    list_type = str(d["list_type"])
    base = {"information_category": LISTS[list_type]}
    if facts.decision.type == "listing.added":
        return base | {
            "decision_no": d["decision_no"],
            "deciding_body": facts.agency(str(d["deciding_agency"])),
            "decided_on": d["decided_on"],
            "validity": {"from": d["term_start"], "to": d["term_end"]},
            "current_status": "有效",
            "publication": {
                "from": d["term_start"],
                "until": d["term_end"],
                "term": LIST_TERM[list_type],
            },
            "content": {
                "list": {
                    "list_type": list_type,
                    "list_name": LISTS[list_type],
                    "term_start": d["term_start"],
                    "term_end": d["term_end"],
                    "legal_basis": d.get("legal_basis"),
                }
            },
        }
    term_start = iso(entry.term_start) if entry else None
    term_end = iso(entry.term_end) if entry else None
    return base | {
        "decision_no": d["decision_no"],
        "deciding_body": facts.agency(entry.deciding_agency if entry else facts.decision.issuer),
        "decided_on": d["removed_on"],
        "validity": {"from": term_start, "to": d["removed_on"]},
        "current_status": "已移出",
        "publication": {
            "from": d["removed_on"],
            "until": d["removed_on"],
            "term": LIST_TERM[list_type],
        },
        "content": {
            "removal": {
                "list_type": list_type,
                "list_name": LISTS[list_type],
                "term_start": term_start,
                "term_end": term_end,
                "removed_on": d["removed_on"],
                "removal_reason": d["removal_reason"],
                "removal_reason_zh": REMOVAL_REASONS[d["removal_reason"]],
                "credit_repair": d.get("credit_repair"),
            }
        },
    }


def _inspection(facts: DocumentFacts, d: Any) -> dict[str, Any]:
    """双随机一公开 (国办发〔2015〕58号): the inspection and what it found are made public."""
    findings = d["findings"]
    return {
        "information_category": INSPECTION_CATEGORY,
        "decision_no": str(d["inspection_id"]),
        "deciding_body": facts.agency(facts.decision.issuer),
        "decided_on": d["inspected_on"],
        "validity": {"from": d["inspected_on"], "to": None},
        "current_status": "已检查",
        "publication": {"from": d["inspected_on"], "until": None, "term": INSPECTION_TERM},
        "content": {
            "inspection": {
                "kind": d["kind"],
                "kind_zh": INSPECTION_KINDS[d["kind"]],
                "inspected_on": d["inspected_on"],
                "draw_id": d.get("draw_id"),
                "system_running": findings["system_running"],
                "safety_conditions_degraded": findings["safety_conditions_degraded"],
                "hazards_found": findings["hazards_found"],
                "penalties": list(d.get("penalties") or []),
            }
        },
    }


INSPECTION_TERM = "国办发〔2015〕58号: 抽查情况及查处结果及时向社会公开 (no end set)"

_GRADE = {
    "grade_award": _award,
    "grade_renewal": _award,
    "grade_downgrade": _downgrade,
    "grade_revocation": _revocation,
    "grade_expiry": _expiry,
    "inspection_result": _inspection,
}

CONNECTOR = Connector(
    name="credit_disclosure",
    role="credit_disclosure",
    types=frozenset(RECORD_TYPES),
    render=render,
    title="Public credit record",
    major=2,
)
