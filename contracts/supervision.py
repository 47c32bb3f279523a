"""Classified supervision (闽安委〔2017〕1号 四（一）): what the work-safety supervisor's catalog
measures say for one enterprise on one day — inspection frequency (a minimum, and a cap where a
rule gives one), penalty scale, key supervision — with the measures that said it. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from contracts.measures import Measure

__all__ = ["ROLE", "Supervision", "supervision_of"]

ROLE = "work_safety_supervisor"


@dataclass(frozen=True)
class Supervision:
    inspections_min: int  # per year; 0 when no measure sets one
    inspections_max: int | None  # a cap, where a rule gives one and no minimum outranks it
    penalty_scale: str  # standard | upper_limit (一律依法按规定上限处罚)
    key_supervision: bool  # 重点监管
    fewer_inspections: bool
    reasons: tuple[Measure, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "inspections_per_year_min": self.inspections_min,
            "inspections_per_year_max": self.inspections_max,
            "penalty_scale": self.penalty_scale,
            "key_supervision": self.key_supervision,
            "fewer_inspections": self.fewer_inspections,
            "reasons": [
                {
                    "measure_code": m.code,
                    "trigger": dict(m.trigger),
                    "effect": dict(m.effect),
                    "source": {"title": m.source.title, "kind": m.source.kind},
                }
                for m in self.reasons
            ],
        }


def supervision_of(measures: Sequence[Measure]) -> Supervision:
    """Combine the supervisor's measures: the highest minimum (a penalty's minimum is never
    lowered by an incentive), the lowest cap unless a minimum is above it, the upper-limit
    penalty scale if any measure says so, key supervision if any does."""
    mine = [m for m in measures if m.role == ROLE]
    mins = [
        int(m.effect["inspections_per_year_min"])
        for m in mine
        if "inspections_per_year_min" in m.effect
    ]
    caps = [
        int(m.effect["inspections_per_year_max"])
        for m in mine
        if "inspections_per_year_max" in m.effect
    ]
    low = max(mins, default=0)
    cap = min(caps) if caps else None
    if cap is not None and cap < low:
        cap = None
    return Supervision(
        inspections_min=low,
        inspections_max=cap,
        penalty_scale="upper_limit"
        if any(m.effect.get("penalty_scale") == "upper_limit" for m in mine)
        else "standard",
        key_supervision=any(m.effect.get("key_supervision") for m in mine),
        fewer_inspections=any(m.effect.get("fewer_inspections") for m in mine),
        reasons=tuple(mine),
    )
