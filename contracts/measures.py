"""The measure catalog (domain.md §4–5): which measure each agency role applies to an
enterprise's standing on a date, effective-dated and per region. Pure: no I/O but reading the
shipped data file."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from importlib import resources
from typing import Any

TRIGGER_KEYS = frozenset(
    {
        "grade_level",
        "grade_status",
        "ungraded",
        "scheme",
        "scheme_not",
        "accident_class",
        "accident_free_prior_year",
        "list_type",
    }
)


@dataclass(frozen=True)
class Measure:
    code: str
    role: str
    trigger: Mapping[str, Any]
    effect: Mapping[str, Any]
    legal_basis: str
    term_months: int | None
    region_prefix: str
    valid_from: date
    valid_to: date | None
    source: str

    def in_force(self, region_code: str, on: date) -> bool:
        return (
            region_code.startswith(self.region_prefix)
            and self.valid_from <= on
            and (self.valid_to is None or on < self.valid_to)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "role": self.role,
            "trigger": dict(self.trigger),
            "effect": dict(self.effect),
            "legal_basis": self.legal_basis,
            "term_months": self.term_months,
            "region_prefix": self.region_prefix,
            "valid_from": self.valid_from.isoformat(),
            "valid_to": self.valid_to.isoformat() if self.valid_to else None,
            "source": self.source,
        }


@dataclass(frozen=True)
class Standing:
    """What the triggers look at, as of one date."""

    grade_status: str  # none | active | revoked | expired
    grade_level: str | None
    scheme: str
    accident_classes: Sequence[str] = field(default_factory=tuple)  # in the prior 12 months
    list_types: Sequence[str] = field(default_factory=tuple)  # active entries


def parse_measure(record: Mapping[str, Any]) -> Measure:
    trigger = dict(record["trigger"])
    unknown = set(trigger) - TRIGGER_KEYS
    if unknown or not trigger:
        raise ValueError(f"measure {record.get('code')}: unknown trigger keys {sorted(unknown)}")
    return Measure(
        code=str(record["code"]),
        role=str(record["role"]),
        trigger=trigger,
        effect=dict(record["effect"]),
        legal_basis=str(record["legal_basis"]),
        term_months=record.get("term_months"),
        region_prefix=str(record.get("region_prefix", "")),
        valid_from=date.fromisoformat(record["valid_from"]),
        valid_to=date.fromisoformat(record["valid_to"]) if record.get("valid_to") else None,
        source=str(record["source"]),
    )


@cache
def shipped_catalog() -> tuple[Measure, ...]:
    text = resources.files("contracts").joinpath("data/measures.json").read_text("utf-8")
    return tuple(parse_measure(r) for r in json.loads(text)["records"])


def in_force(region_code: str, on: date, catalog: Sequence[Measure] | None = None) -> list[Measure]:
    """Measures in force for a region on a date; per code, the longest region prefix wins."""
    chosen: dict[str, Measure] = {}
    for measure in catalog if catalog is not None else shipped_catalog():
        if not measure.in_force(region_code, on):
            continue
        current = chosen.get(measure.code)
        if current is None or len(measure.region_prefix) > len(current.region_prefix):
            chosen[measure.code] = measure
    return sorted(chosen.values(), key=lambda m: (m.role, m.code))


def triggered(trigger: Mapping[str, Any], standing: Standing) -> bool:
    active = standing.grade_status == "active"
    checks = {
        "grade_level": lambda v: active and standing.grade_level in v,
        "grade_status": lambda v: standing.grade_status in v,
        "ungraded": lambda v: (not active) is bool(v),
        "scheme": lambda v: standing.scheme in v,
        "scheme_not": lambda v: standing.scheme not in v,
        "accident_class": lambda v: any(c in v for c in standing.accident_classes),
        "accident_free_prior_year": lambda v: (not standing.accident_classes) is bool(v),
        "list_type": lambda v: any(t in v for t in standing.list_types),
    }
    return all(checks[key](value) for key, value in trigger.items())


def applicable(
    standing: Standing,
    region_code: str,
    on: date,
    catalog: Sequence[Measure] | None = None,
    role: str | None = None,
) -> dict[str, list[Measure]]:
    """The measures that apply to this standing, grouped by implementing role."""
    result: dict[str, list[Measure]] = {}
    for measure in in_force(region_code, on, catalog):
        if role is not None and measure.role != role:
            continue
        if triggered(measure.trigger, standing):
            result.setdefault(measure.role, []).append(measure)
    return result
