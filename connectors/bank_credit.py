"""For banks: a credit signal — the grade's credit factor, and the restrictions a revocation
or a black-list entry brings, each with its term (issue 5 §3, domain.md §5)."""

from __future__ import annotations

from typing import Any

from connectors.base import Connector, Context, decided_on, iso
from contracts.dates import add_months

TYPES = frozenset(
    {
        "grade.awarded",
        "grade.renewed",
        "grade.downgraded",
        "grade.revoked",
        "grade.expired",
        "listing.added",
        "listing.removed",
    }
)
RESTRICTING = ("new_loans", "credit_review")


def render(ctx: Context) -> dict[str, Any]:
    bank = ctx.measures_for("bank")
    factor = next(
        (float(m.effect["credit_factor"]) for m in bank if "credit_factor" in m.effect), 1.0
    )
    restrictions = [
        {
            "measure_code": m.code,
            "effect": dict(m.effect),
            "until": iso(add_months(decided_on(ctx), m.term_months)) if m.term_months else None,
            "legal_basis": m.legal_basis,
        }
        for m in bank
        if any(key in m.effect for key in RESTRICTING)
    ]
    active = ctx.standing.grade_status == "active"
    return {
        "signal": "restriction" if restrictions else "credit_factor",
        "uscc": ctx.enterprise.uscc,
        "enterprise_name": ctx.enterprise.name,
        "effective_on": ctx.decision.on.isoformat(),
        "grade": {
            "status": ctx.standing.grade_status,
            "level": ctx.standing.grade_level if active else None,
            "valid_to": iso(ctx.enterprise.grade_valid_to) if active else None,
        },
        "credit_factor": factor,
        "restrictions": restrictions,
        "priority": any(m.effect.get("priority") for m in bank),
        "source": ctx.source(),
    }


CONNECTOR = Connector(
    name="bank_credit", role="bank", types=TYPES, render=render, title="Credit signal"
)
