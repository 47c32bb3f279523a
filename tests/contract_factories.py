"""Keyword-only factories for the contract tests: a valid data body of every message type, an
envelope around one, grade states and policies. Each takes overrides for the fields a test varies.

(Named contract_factories, not factories: tests/ has no __init__.py, so test helper modules are
imported by bare name and must not collide with another package's factories.)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from contracts.grades import GradeState, GradeStatus
from contracts.policy import Policy
from contracts.registry import SERVED_MAJORS, latest_major

USCC = "91350900587527783P"  # a real code (domain.md §7), registered in Ningde 350900
MESSAGE_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"


def make_envelope(*, message_type: str = "grade.awarded", **overrides: Any) -> dict[str, Any]:
    """An envelope of the newest major served of `message_type` (override `contract` and
    `data` together for another: see data_for)."""
    envelope: dict[str, Any] = {
        "id": MESSAGE_ID,
        "type": message_type,
        "contract": latest_major(message_type) if message_type in SERVED_MAJORS else 1,
        "issuer": "fj.yjt",
        "issued_at": "2024-01-10T09:30:00+08:00",
        "subject": USCC,
        "data": VALID_DATA[message_type]() if message_type in VALID_DATA else {},
    }
    return envelope | overrides


def make_registration(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "宁德某某化工有限公司",
        "legal_representative": "林某某",
        "region_code": "350900",
        "industry_section": "C",
        "scheme": "hazardous_chemicals",
        "required": True,
        "registered_on": "2023-05-04",
    } | overrides


def make_award(**overrides: Any) -> dict[str, Any]:
    return {
        "level": "2",
        "scheme": "hazardous_chemicals",
        "authority_level": "provincial",
        "announcement_no": "闽应急公告〔2024〕3号",
        "certificate_no": "闽AQBWHⅡ202400017",
        "announced_on": "2024-01-10",
        "valid_from": "2024-01-10",
        "valid_to": "2027-01-09",
    } | overrides


def make_renewal(**overrides: Any) -> dict[str, Any]:
    return {
        "level": "2",
        "certificate_no": "闽AQBWHⅡ202700021",
        "announcement_no": "闽应急公告〔2027〕1号",
        "announced_on": "2027-01-05",
        "valid_from": "2027-01-10",
        "valid_to": "2030-01-09",
    } | overrides


def make_downgrade(**overrides: Any) -> dict[str, Any]:
    return {
        "from_level": "2",
        "to_level": "3",
        "decision_no": "闽应急决〔2025〕8号",
        "decided_on": "2025-03-01",
        "reason": "复核发现安全生产标准化管理体系运行不符合二级要求",
    } | overrides


def make_revocation(**overrides: Any) -> dict[str, Any]:
    return {
        "reason_code": "fraudulent_application",  # its evidence is outside the log: no cause
        "reason": "申请定级材料弄虚作假",
        "decision_no": "闽应急撤〔2025〕2号",
        "decided_on": "2025-06-15",
        "reapply_after": "2026-06-15",
    } | overrides


def make_expiry(**overrides: Any) -> dict[str, Any]:
    return {"valid_to": "2027-01-09", "expired_on": "2027-01-10"} | overrides


def make_self_assessment(**overrides: Any) -> dict[str, Any]:
    return {
        "year": 2024,
        "report_uri": "https://yjt.fujian.example/zp/2024/91350900587527783P.pdf",
        "published_on": "2025-01-20",
    } | overrides


def make_rectification_order(**overrides: Any) -> dict[str, Any]:
    return {
        "rectification_id": "ND-2025-0042",
        "order_no": "(宁)应急责改〔2025〕42号",
        "kind": "hazard",
        "hazard_level": "major",
        "description": "液氯储罐区未设置气体泄漏报警装置",
        "ordered_on": "2025-02-01",
        "deadline": "2025-03-31",
    } | overrides


def make_verification(**overrides: Any) -> dict[str, Any]:
    return {
        "rectification_id": "ND-2025-0042",
        "verified_on": "2025-04-02",
        "result": "failed",
        "verified_by": ["ND-INSP-007", "ND-INSP-011"],
    } | overrides


def make_inspection(**overrides: Any) -> dict[str, Any]:
    return {
        "inspection_id": "ND-JC-2025-0031",
        "kind": "unannounced",
        "inspected_on": "2025-02-28",
        "inspectors": ["ND-INSP-007", "ND-INSP-011"],
        "findings": {
            "deducted_items": ["gbt33000.5.5"],
            "system_running": False,
            "safety_conditions_degraded": False,
            "hazards_found": 2,
        },
    } | overrides


def make_update(**overrides: Any) -> dict[str, Any]:
    return {
        "changed_on": "2025-08-01",
        "basis": "periodic_verification",
        "changes": {"name": "宁德某某新材料有限公司"},
    } | overrides


def make_closure(**overrides: Any) -> dict[str, Any]:
    return {
        "closed_on": "2026-03-01",
        "closure": "deregistered",
        "deciding_body": "宁德市市场监督管理局",
    } | overrides


def make_overdue(**overrides: Any) -> dict[str, Any]:
    return {
        "rectification_id": "ND-2025-0042",
        "deadline": "2025-03-31",
        "found_on": "2025-04-02",
    } | overrides


def make_accident(**overrides: Any) -> dict[str, Any]:
    return {
        "accident_id": "ND-ACC-2025-007",
        "occurred_on": "2025-05-20",
        "accident_class": "ordinary",
        "deaths": 1,
        "serious_injuries": 0,
        "direct_loss_cny": 1_250_000,
    } | overrides


def make_listing(**overrides: Any) -> dict[str, Any]:
    return {
        "listing_id": "FJ-SX-2025-0003",
        "list_type": "black",
        "deciding_agency": "fj-yjt",  # the listing department of the gateway tests
        "decision_no": "闽应急失信〔2025〕3号",
        "decided_on": "2025-07-01",
        "term_start": "2025-07-01",
        "term_end": "2028-07-01",
        "reason": "瞒报生产安全事故",
    } | overrides


def make_removal(**overrides: Any) -> dict[str, Any]:
    return {
        "listing_id": "FJ-SX-2025-0003",
        "list_type": "black",
        "removed_on": "2028-07-01",
        "removal_reason": "term_ended",
        "decision_no": "闽应急移〔2028〕5号",
    } | overrides


def make_measure(**overrides: Any) -> dict[str, Any]:
    return {
        "decision_message_id": "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
        "measure_code": "insurance.liability.black_list",  # a measure of the shipped catalog
        "applied_on": "2026-11-01",  # the tests' clock starts that day
    } | overrides


VALID_DATA: dict[str, Callable[..., dict[str, Any]]] = {
    "enterprise.registered": make_registration,
    "enterprise.updated": make_update,
    "enterprise.closed": make_closure,
    "grade.awarded": make_award,
    "grade.renewed": make_renewal,
    "grade.downgraded": make_downgrade,
    "grade.revoked": make_revocation,
    "grade.expired": make_expiry,
    "self_assessment.published": make_self_assessment,
    "inspection.recorded": make_inspection,
    "rectification.ordered": make_rectification_order,
    "rectification.overdue": make_overdue,
    "rectification.verified": make_verification,
    "accident.reported": make_accident,
    "listing.added": make_listing,
    "listing.removed": make_removal,
    "measure.applied": make_measure,
}

# Every optional field of a type's newest major, with a valid value.
OPTIONAL_FIELDS: dict[str, dict[str, Any]] = {
    "enterprise.registered": {"address": "福建省宁德市蕉城区漳湾镇"},
    "enterprise.updated": {"note": "定期核实发现企业名称变更"},
    "enterprise.closed": {
        "deciding_body_uscc": "11350900MB00000195",
        "decision_no": "宁市监注〔2026〕12号",
    },
    "grade.revoked": {"related_message_ids": [MESSAGE_ID.upper()]},
    "self_assessment.published": {"report_sha256": "ab" * 32, "score": 87.5},
    "rectification.ordered": {"inspection_message_id": MESSAGE_ID},
    "inspection.recorded": {
        "draw_id": "FJ-2025-Q1-01",
        "penalties": [
            {"decision_no": "罚〔2025〕1号", "amount_cny": 30000, "at_upper_limit": True}
        ],
        "note": "四不两直",
    },
    "rectification.verified": {"inspection_message_id": MESSAGE_ID, "findings": "体系仍未运行"},
    "accident.reported": {"description": "检修作业时发生高处坠落"},
    "listing.added": {"legal_basis": "安全生产严重失信主体名单管理办法 第六条"},
    "listing.removed": {
        "credit_repair": {
            "applied_on": "2026-08-01",
            "completed_on": "2026-09-01",
            "measures": ["纠正失信行为", "信用承诺"],
        }
    },
    "measure.applied": {"effect": {"premium_float": 0.3}, "note": "次年保费上浮30%"},
}
# Where an older major differs: its fields dropped (required in no older major) and renamed.
_OLDER: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {
    ("enterprise.registered", 1): lambda d: {
        k: v for k, v in d.items() if k != "legal_representative"
    },
    ("rectification.ordered", 1): lambda d: {
        k: v for k, v in d.items() if k not in ("kind", "inspection_message_id")
    },
}
OLDER_OPTIONAL: dict[tuple[str, int], dict[str, Any]] = {
    ("enterprise.registered", 1): {
        "address": "福建省宁德市蕉城区漳湾镇",
        "legal_representative": "林某某",
    },
    ("rectification.ordered", 1): {},
    ("listing.removed", 1): OPTIONAL_FIELDS["listing.removed"],
}


def data_for(message_type: str, major: int, **overrides: Any) -> dict[str, Any]:
    """A valid data body of `message_type` at contract major `major`."""
    data = VALID_DATA[message_type](**overrides)
    shape = _OLDER.get((message_type, major))
    return shape(data) if shape is not None else data


def optional_for(message_type: str, major: int) -> dict[str, Any]:
    if major == latest_major(message_type):
        return OPTIONAL_FIELDS.get(message_type, {})
    return OLDER_OPTIONAL.get((message_type, major), OPTIONAL_FIELDS.get(message_type, {}))


def make_policy(**overrides: Any) -> Policy:
    values: dict[str, Any] = {
        "grade_validity_years": 3,
        "reapply_wait_months": 12,
        "black_list_max_term_months": 36,
        "black_list_early_removal_min_months": 12,
        "red_list_term_months": 36,
        "focus_list_max_term_months": 24,
        "new_status_months": 12,
    }
    return Policy(**(values | overrides))


def make_active(**overrides: Any) -> GradeState:
    """The state make_award() leads to."""
    values: dict[str, Any] = {
        "status": GradeStatus.ACTIVE,
        "level": "2",
        "scheme": "hazardous_chemicals",
        "authority_level": "provincial",
        "valid_from": date(2024, 1, 10),
        "valid_to": date(2027, 1, 9),
    }
    values["held_since"] = overrides.get("valid_from", values["valid_from"])
    return GradeState(**(values | overrides))


def make_revoked(**overrides: Any) -> GradeState:
    values: dict[str, Any] = {"status": GradeStatus.REVOKED, "reapply_after": date(2026, 6, 15)}
    return GradeState(**(values | overrides))
