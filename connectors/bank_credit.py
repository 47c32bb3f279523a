"""For banks: a credit signal (闽安委〔2017〕1号 五（五）: the grade enters credit ratings) —
the grade as awarded (level, scheme, awarding authority, certificate, validity), the decision
at hand, and the restrictions and incentives the catalog attaches, each with the term of the
decision that brought it (a black-listing's from its own term start, never from an unrelated
message's date). A credit factor is shown only as the catalog-labelled option it is."""

from __future__ import annotations

import datetime as dt
from typing import Any

from connectors.base import Connector, decided_on, iso
from connectors.facts import DocumentFacts
from contracts.dates import add_months
from contracts.measures import Measure

TYPES = frozenset(
    {
        "grade.awarded",
        "grade.renewed",
        "grade.downgraded",
        "grade.revoked",
        "grade.expired",
        "listing.added",
        "listing.removed",
        "enterprise.closed",
    }
)
RESTRICTING = ("new_loans", "credit_review")


def _because(facts: DocumentFacts, measure: Measure) -> tuple[dict[str, Any], dt.date] | None:
    """The decision that brought a measure and the day its term runs from: the list entry
    in force it was triggered by (the earliest), or the grade's revocation."""
    wanted = measure.trigger.get("list_type")
    if wanted:
        entries = sorted(
            (e for e in facts.listings.values() if e.list_type in wanted and e.status == "active"),
            key=lambda e: (e.term_start, e.listing_id),
        )
        if entries:
            entry = entries[0]
            return {
                "type": "listing.added",
                "decision_no": entry.decision_no,
                "decided_on": entry.decided_on.isoformat(),
                "listing_id": entry.listing_id,
                "term_end": entry.term_end.isoformat(),
            }, entry.term_start
    decision = facts.enterprise.grade_decision or {}
    if "grade_status" in measure.trigger and decision.get("type") == "grade.revoked":
        day = dt.date.fromisoformat(str(decision["decided_on"]))
        return {
            "type": "grade.revoked",
            "decision_no": decision.get("decision_no"),
            "decided_on": day.isoformat(),
            "listing_id": None,
            "term_end": None,
        }, day
    return None


def _term(facts: DocumentFacts, measure: Measure) -> dict[str, Any]:
    found = _because(facts, measure)
    if found is None:  # a trigger of no single decision: from the document's own decision
        start = decided_on(facts)
        because = None
    else:
        because, start = found
    until = add_months(start, measure.term_months) if measure.term_months else None
    ends = because.get("term_end") if because else None
    if ends is not None:  # a measure of a list entry ends with the entry at the latest
        until = min(until, dt.date.fromisoformat(ends)) if until else dt.date.fromisoformat(ends)
    return {
        "measure_code": measure.code,
        "effect": dict(measure.effect),
        "from": start.isoformat(),
        "until": iso(until),
        "because": because,
        "legal_basis": measure.legal_basis,
        "source": {"title": measure.source.title, "kind": measure.source.kind},
    }


def render(facts: DocumentFacts) -> dict[str, Any]:
    bank = facts.measures_for("bank")
    restrictions = [_term(facts, m) for m in bank if any(k in m.effect for k in RESTRICTING)]
    incentives = [_term(facts, m) for m in bank if m.effect.get("priority")]
    factor = next((m for m in bank if "credit_factor" in m.effect), None)
    enterprise, standing = facts.enterprise, facts.standing
    active = standing.grade_status == "active"
    data = facts.decision.data
    return {
        "signal": "restriction" if restrictions else "grade",
        "uscc": enterprise.uscc,
        "enterprise_name": enterprise.name,
        "legal_representative": enterprise.legal_representative,
        "as_of": facts.decision.on.isoformat(),
        "closed_on": iso(enterprise.closed_on),
        "grade": {
            "status": standing.grade_status,
            "level": standing.grade_level if active else None,
            "scheme": enterprise.grade_scheme if active else None,
            "awarding_authority": (
                facts.agency(enterprise.grade_awarded_by) | {"level": enterprise.grade_authority}
                if enterprise.grade_awarded_by
                else None
            ),
            "certificate_no": enterprise.certificate_no if active else None,
            "announcement_no": enterprise.announcement_no if active else None,
            "valid_from": iso(enterprise.grade_valid_from) if active else None,
            "valid_to": iso(enterprise.grade_valid_to) if active else None,
            "reapply_after": iso(enterprise.reapply_after),
        },
        "decision": {
            "type": facts.decision.type,
            "number": str(
                data.get("decision_no") or data.get("announcement_no") or facts.decision.message_id
            ),
            "decided_on": decided_on(facts).isoformat(),
            "reason_code": data.get("reason_code"),
        },
        "restrictions": restrictions,
        "incentives": incentives,
        "credit_factor_option": (
            {
                "value": float(factor.effect["credit_factor"]),
                "measure_code": factor.code,
                "source": {"title": factor.source.title, "kind": factor.source.kind},
            }
            if factor is not None
            else None
        ),
        "source": facts.source(),
    }


CONNECTOR = Connector(
    name="bank_credit", role="bank", types=TYPES, render=render, title="Credit signal", major=2
)
