"""For insurers: the premium float for an enterprise, per the measure catalog, from its grade,
its accidents in the prior year and its list status, with the reasons; pushed as an
adjustment instruction (issue 5 §3, domain.md §5)."""

from __future__ import annotations

from typing import Any

from connectors.base import Connector, Context

# The catalog's insurer measures by product: liability insurance (安全生产责任保险) and
# work-injury insurance (工伤保险); a product's factor is 1 + the sum of its floats.
PRODUCTS = {"liability": "insurance.premium.", "work_injury": "insurance.work_injury."}
TYPES = frozenset(
    {
        "grade.awarded",
        "grade.renewed",
        "grade.downgraded",
        "grade.revoked",
        "grade.expired",
        "accident.reported",
        "listing.added",
        "listing.removed",
    }
)


def render(ctx: Context) -> dict[str, Any]:
    insurer = ctx.measures_for("insurer")
    adjustments = []
    for product, prefix in PRODUCTS.items():
        chosen = [m for m in insurer if m.code.startswith(prefix)]
        floats = sum(float(m.effect.get("premium_float", 0)) for m in chosen)
        adjustments.append(
            {
                "product": product,
                "premium_factor": round(1 + floats, 4),
                "reasons": [
                    {
                        "measure_code": m.code,
                        "premium_float": m.effect["premium_float"],
                        "legal_basis": m.legal_basis,
                        "term_months": m.term_months,
                    }
                    for m in chosen
                ],
            }
        )
    return {
        "instruction": "adjust_premium",
        "uscc": ctx.enterprise.uscc,
        "enterprise_name": ctx.enterprise.name,
        "effective_on": ctx.decision.on.isoformat(),
        "grade": {"status": ctx.standing.grade_status, "level": _level(ctx)},
        "accidents_prior_year": list(ctx.standing.accident_classes),
        "lists": sorted(set(ctx.standing.list_types)),
        "adjustments": adjustments,
        "source": ctx.source(),
    }


def _level(ctx: Context) -> str | None:
    return ctx.standing.grade_level if ctx.standing.grade_status == "active" else None


CONNECTOR = Connector(
    name="insurance_premium",
    role="insurer",
    types=TYPES,
    render=render,
    title="Premium adjustment instruction",
)
