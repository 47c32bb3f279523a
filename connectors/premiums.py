"""Premium adjustment documents: liability insurance for insurers (the seed's own link,
闽安委〔2017〕1号 五（五）: the rate follows the grade, the accident record and the lists) and
work-injury insurance for social insurance (人力资源社会保障). One renderer, a product each: the
factor and every float with why it counted, combined by the product's catalog rule (summed,
held between floor and ceiling, a penalty never cancelled by a discount), and when it applies:
at the next policy renewal (or contribution year), from the record of the rule's record period
(the accidents counted are those of that period)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connectors.base import Connector, iso
from connectors.facts import DocumentFacts
from contracts.catalog import premium
from contracts.dates import add_months

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


def renderer(product: str, role: str) -> Callable[[DocumentFacts], dict[str, Any]]:
    def render(facts: DocumentFacts) -> dict[str, Any]:
        on = facts.decision.on
        enterprise, standing = facts.enterprise, facts.standing
        found = premium(standing, enterprise.region_code, on, facts.catalog, product, role)
        rule = found.rule
        active = standing.grade_status == "active"
        return {
            "instruction": "adjust_premium",
            "product": product,
            "product_title": rule.title,
            "uscc": enterprise.uscc,
            "enterprise_name": enterprise.name,
            "as_of": on.isoformat(),
            "applies": {
                "at": rule.applies_at,
                "from_period_starting_on_or_after": on.isoformat(),
                "record_period": {
                    "from": add_months(on, -rule.record_period_months).isoformat(),
                    "to": on.isoformat(),
                },
            },
            "grade": {
                "status": standing.grade_status,
                "level": standing.grade_level if active else None,
                "scheme": enterprise.grade_scheme if active else None,
                "valid_to": iso(enterprise.grade_valid_to) if active else None,
            },
            "accidents_in_record_period": list(found.accidents),
            "lists": sorted(set(standing.list_types)),
            "premium_factor": found.factor,
            "floats": [
                {
                    "measure_code": f.measure.code,
                    "premium_float": f.value,
                    "applied": f.withheld is None,
                    "withheld_because": f.withheld,
                    "legal_basis": f.measure.legal_basis,
                    "term_months": f.measure.term_months,
                    "source": {"title": f.measure.source.title, "kind": f.measure.source.kind},
                }
                for f in found.floats
            ],
            "combination": {
                "rule": rule.combine,
                "floor": rule.floor,
                "ceiling": rule.ceiling,
                "penalty_blocks_discounts": rule.penalty_blocks_discounts,
                "total": found.total,
                "bounded": found.bounded,
                "source": {"title": rule.source.title, "kind": rule.source.kind},
            },
            "source": facts.source(),
        }

    return render


LIABILITY = Connector(
    name="insurance_premium",
    role="insurer",
    types=TYPES,
    render=renderer("liability", "insurer"),
    title="Liability-insurance premium adjustment (安全生产责任保险)",
    major=2,
)
WORK_INJURY = Connector(
    name="work_injury_premium",
    role="social_insurance",
    types=TYPES,
    render=renderer("work_injury", "social_insurance"),
    title="Work-injury insurance rate adjustment (工伤保险)",
)
