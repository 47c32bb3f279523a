"""For any implementing agency (tax, customs, finance, human resources …): a plain notice that a
grade was revoked, and the measures the catalog expects of the agencies acting on it."""

from __future__ import annotations

from typing import Any

from connectors.base import Connector
from connectors.facts import DocumentFacts

TITLE = "安全生产标准化等级撤销通知 (notice of revocation of a work-safety standardization grade)"


def render(facts: DocumentFacts) -> dict[str, Any]:
    d = facts.decision.data
    return {
        "notice_type": "grade_revocation",
        "title": TITLE,
        "uscc": facts.enterprise.uscc,
        "enterprise_name": facts.enterprise.name,
        "region_code": facts.enterprise.region_code,
        "revoked_on": d["decided_on"],
        "decision_no": d["decision_no"],
        "deciding_agency": facts.decision.issuer,
        "reapply_after": d["reapply_after"],
        "expected_measures": [
            {"role": role, "measure_code": m.code, "effect": dict(m.effect)}
            for role, measures in sorted(facts.measures.items())
            for m in measures
        ],
        "source": facts.source(),
    }


CONNECTOR = Connector(
    name="revocation_notice",
    role="implementing_agency",
    types=frozenset({"grade.revoked"}),
    render=render,
    title="Revocation notice",
)
