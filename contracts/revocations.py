"""A revocation cites its cause, and the cause is on record about the same enterprise
(domain.md §3; 闽安委〔2017〕1号 四（二）: inspection → rectification order → failed re-check →
revocation; 应急〔2021〕83号: a fatal accident, a major hazard not rectified by its deadline).

Pure: the caller looks up each cited message and hands over what it found.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from contracts.errors import RuleError

__all__ = ["CAUSES", "Cause", "CauseError", "CauseRule", "check_causes"]


class CauseError(RuleError):
    """A revocation's cause is missing or wrong; `code` is stable for clients."""

    def __init__(self, code: str, message: str, needs: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.needs = needs


@dataclass(frozen=True)
class Cause:
    """A cited message as found: None for `type` when it is not in the log. `order` is the
    rectification order an overdue report or a re-check is about (its kind, hazard_level)."""

    message_id: str
    type: str | None
    subject: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    order: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class CauseRule:
    needs: str  # the cause in words, for the refusal
    types: frozenset[str]
    fits: Callable[[Cause, date], bool]


def _fatal(cause: Cause, decided_on: date) -> bool:
    occurred = cause.data.get("occurred_on")
    return int(cause.data.get("deaths", 0)) >= 1 and (
        not isinstance(occurred, str) or date.fromisoformat(occurred) <= decided_on
    )


def _failed_recheck(kind: str) -> Callable[[Cause, date], bool]:
    def fits(cause: Cause, decided_on: date) -> bool:
        verified = cause.data.get("verified_on")
        return (
            cause.data.get("result") == "failed"
            and cause.order is not None
            and cause.order.get("kind") == kind
            and (not isinstance(verified, str) or date.fromisoformat(verified) <= decided_on)
        )

    return fits


def _major_overdue(cause: Cause, decided_on: date) -> bool:
    order = cause.order or {}
    return order.get("kind", "hazard") == "hazard" and order.get("hazard_level") == "major"


CAUSES: dict[str, CauseRule] = {
    "fatal_accident": CauseRule(
        "an accident.reported with at least one death, on or before the decision",
        frozenset({"accident.reported"}),
        _fatal,
    ),
    "concealed_accident": CauseRule(
        "the accident.reported of the concealed accident",
        frozenset({"accident.reported"}),
        lambda cause, decided_on: True,
    ),
    "major_hazard_unrectified": CauseRule(
        "a rectification.overdue of a major-hazard order",
        frozenset({"rectification.overdue"}),
        _major_overdue,
    ),
    "safety_conditions_degraded": CauseRule(
        "a failed rectification.verified of an order for degraded safety conditions",
        frozenset({"rectification.verified"}),
        _failed_recheck("safety_conditions_degraded"),
    ),
    "system_not_running": CauseRule(
        "a failed rectification.verified of an order for a system not running",
        frozenset({"rectification.verified"}),
        _failed_recheck("system_not_running"),
    ),
    "serious_dishonesty": CauseRule(
        "the listing.added that put the enterprise on the black list",
        frozenset({"listing.added"}),
        lambda cause, decided_on: cause.data.get("list_type") == "black",
    ),
}


def check_causes(reason_code: str, subject: str, decided_on: date, causes: Sequence[Cause]) -> None:
    """Refuse (CauseError) a revocation whose cited messages are not in the log
    (`cause_not_in_log`), are about another enterprise (`cause_other_enterprise`), or of which
    none is the cause its reason needs (`cause_missing` when none is cited, `cause_mismatch`
    when those cited are not it). Reasons whose evidence lies outside the gateway
    (fraudulent_application, licence_revoked, other) need none, but what they cite must
    still be in the log and about the enterprise."""
    for cause in causes:
        if cause.type is None:
            raise CauseError(
                "cause_not_in_log",
                f"related message {cause.message_id} is not in the log: a revocation cites "
                "messages already accepted",
            )
        if cause.subject != subject:
            raise CauseError(
                "cause_other_enterprise",
                f"related message {cause.message_id} ({cause.type}) is about {cause.subject}, "
                f"not {subject}",
            )
    rule = CAUSES.get(reason_code)
    if rule is None:
        return
    if not causes:
        raise CauseError(
            "cause_missing",
            f"a revocation for {reason_code} cites its cause in related_message_ids: "
            f"{rule.needs}, about this enterprise",
            needs=rule.needs,
        )
    if not any(c.type in rule.types and rule.fits(c, decided_on) for c in causes):
        cited = ", ".join(f"{c.message_id} ({c.type})" for c in causes)
        raise CauseError(
            "cause_mismatch",
            f"none of the cited messages ({cited}) is the cause {reason_code} needs: {rule.needs}",
            needs=rule.needs,
        )
