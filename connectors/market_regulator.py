"""For the market regulator's credit system (闽安委〔2017〕1号 五（五）: 纳入企业信用信息公示系统):
an incremental sync record per accepted message, and the same record per enterprise in the
full snapshots the gateway exports (gateway.connectors.snapshots). The record holds what the
credit record shows: the enterprise as the ledgers hold it on the day, its grade with the
announcement and awarding authority, a revocation's decision, date, reason and re-apply date,
and its list entries. Inspection frequency is the work-safety supervisor's, not here."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from connectors.base import Connector, iso
from connectors.facts import DocumentFacts, EnterpriseFacts, ListEntry
from connectors.labels import CLOSURES, REVOCATION_REASONS
from contracts.measures import Standing

TYPES = frozenset(
    {
        "enterprise.registered",
        "enterprise.updated",
        "enterprise.closed",
        "grade.awarded",
        "grade.renewed",
        "grade.downgraded",
        "grade.revoked",
        "grade.expired",
        "listing.added",
        "listing.removed",
        "self_assessment.published",
    }
)
AgencyOf = Callable[[str], dict[str, Any]]


def record(
    enterprise: EnterpriseFacts,
    standing: Standing,
    lists: Sequence[ListEntry],
    agency: AgencyOf,
    as_of: int,
) -> dict[str, Any]:
    """One enterprise's sync record; `enterprise` is held to its day (as_held_on)."""
    decision = enterprise.grade_decision or {}
    revoked = enterprise.grade_status == "revoked" and decision.get("type") == "grade.revoked"
    active = enterprise.grade_status == "active"
    return {
        "record_type": "enterprise_sync",
        "uscc": enterprise.uscc,
        "name": enterprise.name,
        "legal_representative": enterprise.legal_representative,
        "region_code": enterprise.region_code,
        "industry_section": enterprise.industry_section,
        "scheme": enterprise.grade_scheme or enterprise.scheme,
        "registered_on": enterprise.registered_on.isoformat(),
        "ledger_status": enterprise.ledger_status,
        "closure": (
            {
                "closed_on": enterprise.closed_on.isoformat(),
                "closure": enterprise.closure,
                "closure_zh": CLOSURES.get(enterprise.closure or "", enterprise.closure),
            }
            if enterprise.closed_on is not None
            else None
        ),
        "grade": {
            "status": enterprise.grade_status,
            "level": enterprise.grade_level if active else None,
            "valid_from": iso(enterprise.grade_valid_from),
            "valid_to": iso(enterprise.grade_valid_to),
            "certificate_no": enterprise.certificate_no,
            "announcement_no": enterprise.announcement_no,
            "awarding_authority": (
                agency(enterprise.grade_awarded_by) | {"level": enterprise.grade_authority}
                if enterprise.grade_awarded_by
                else None
            ),
        },
        "revocation": (
            {
                "decision_no": decision.get("decision_no"),
                "decided_on": decision.get("decided_on"),
                "reason_code": decision.get("reason_code"),
                "reason": REVOCATION_REASONS.get(str(decision.get("reason_code")), "其他"),
                "reapply_after": iso(enterprise.reapply_after),
            }
            if revoked
            else None
        ),
        "lists": [
            {
                "list_type": entry.list_type,
                "deciding_agency": entry.deciding_agency,
                "term_start": entry.term_start.isoformat(),
                "term_end": entry.term_end.isoformat(),
            }
            for entry in lists
        ],
        "as_of_log_index": as_of,
    }


def render(facts: DocumentFacts) -> dict[str, Any]:
    doc = record(facts.enterprise, facts.standing, facts.lists, facts.agency, facts.decision.index)
    return doc | {"source": facts.source()}


CONNECTOR = Connector(
    name="market_regulator",
    role="market_regulator",
    types=TYPES,
    render=render,
    title="Credit-system sync record",
    major=2,
)
