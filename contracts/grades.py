"""The grade state machine of domain.md §3: none → active; active → active (renewed, downgraded),
revoked or expired; revoked/expired → active only by a new award (a revoked one after its
re-apply date). Everything else is refused with a TransitionError."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

from contracts.dates import add_months, date_field
from contracts.errors import TransitionError
from contracts.policy import Policy

__all__ = [
    "EVENT_DATE_FIELD",
    "GradeState",
    "GradeStatus",
    "TransitionError",
    "apply_grade_event",
    "decision_facts",
    "level_rank",
]

SMALL_MICRO = "small_micro"
_ONE_DAY = timedelta(days=1)
# A grade lapses at valid_to but stays active here until its expiry is published (domain.md
# §3: expired → active only by a new award), so a refusal after the lapse says what to do.
_RECORD_EXPIRY = "publish its grade.expired first, then a new grade.awarded"
_LADDER = {"1": 1, "2": 2, "3": 3}  # 一级 > 二级 > 三级
# The date a grade event speaks for: an award or renewal from its announcement, a downgrade
# or revocation from its decision, an expiry from the day it is found.
EVENT_DATE_FIELD = {
    "grade.awarded": "announced_on",
    "grade.renewed": "announced_on",
    "grade.downgraded": "decided_on",
    "grade.revoked": "decided_on",
    "grade.expired": "expired_on",
}


class GradeStatus(StrEnum):
    NONE = "none"
    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True)
class GradeState:
    """An enterprise's grade. Level, scheme, authority and validity describe the grade held now,
    so they are None unless the status is active; a revoked grade keeps its re-apply date."""

    status: GradeStatus
    level: str | None = None
    scheme: str | None = None
    authority_level: str | None = None
    valid_from: date | None = None
    valid_to: date | None = None
    reapply_after: date | None = None
    held_since: date | None = None  # the award's start: a renewal moves valid_from, not this

    @classmethod
    def none(cls) -> GradeState:
        return cls(status=GradeStatus.NONE)

    def describe(self) -> str:
        if self.status is GradeStatus.ACTIVE:
            return (
                f"holds an active level {self.level} grade valid "
                f"{self.valid_from} to {self.valid_to}"
            )
        if self.status is GradeStatus.REVOKED:
            return f"has a revoked grade (re-apply from {self.reapply_after})"
        if self.status is GradeStatus.EXPIRED:
            return "has an expired grade"
        return "holds no grade"


def level_rank(level: str) -> int:
    """Rank on the level ladder, 1 being the highest (一级). ValueError for small_micro, which is
    a separate simplified scheme (小微企业) and no rung of the ladder, and for unknown levels."""
    rank = _LADDER.get(level)
    if rank is None:
        raise ValueError(f"level {level!r} has no rank on the 1 > 2 > 3 ladder")
    return rank


def apply_grade_event(
    state: GradeState, message_type: str, data: Mapping[str, object], policy: Policy
) -> GradeState:
    """The state after a grade.* message whose data passed its schema; TransitionError if the
    event is not allowed from `state` or breaks a policy bound. Pure: `state` is not changed."""
    handler = _HANDLERS.get(message_type)
    if handler is None:
        raise ValueError(f"{message_type!r} is not a grade event")
    return handler(state, data, policy)


def _refuse(state: GradeState, event: str, why: str) -> TransitionError:
    return TransitionError(f"{event} refused: the enterprise {state.describe()}; {why}")


def _check_validity(
    state: GradeState,
    event: str,
    valid_from: date,
    valid_to: date,
    policy: Policy,
    announced_on: date | None = None,
) -> None:
    """domain.md §3: a grade is valid N years (configurable, policy grade_validity_years) from
    its announcement: counted from `announced_on` when given (an award) and never more than N
    years from its own start either (a renewal's validity continues the current one)."""
    years = policy.grade_validity_years
    anchors = [valid_from] if announced_on is None else [announced_on, valid_from]
    latest = min(add_months(anchor, 12 * years) for anchor in anchors)
    if valid_to <= valid_from:
        raise _refuse(state, event, f"valid_to {valid_to} must be after valid_from {valid_from}")
    if valid_to > latest:
        start = "announcement" if latest != add_months(valid_from, 12 * years) else "start"
        raise _refuse(
            state,
            event,
            f"valid_to {valid_to} exceeds the {years}-year validity from its {start} "
            f"(latest {latest})",
        )


def _award(state: GradeState, data: Mapping[str, object], policy: Policy) -> GradeState:
    event = "grade.awarded"
    announced_on, valid_from = date_field(data, "announced_on"), date_field(data, "valid_from")
    if state.status is GradeStatus.ACTIVE:
        if state.valid_to is not None and announced_on > state.valid_to:
            raise _refuse(state, event, f"it lapsed at {state.valid_to}: {_RECORD_EXPIRY}")
        raise _refuse(state, event, "an active grade changes by grade.renewed or grade.downgraded")
    valid_to = date_field(data, "valid_to")
    if state.status is GradeStatus.REVOKED and state.reapply_after is not None:
        earliest = min(announced_on, valid_from)
        if earliest < state.reapply_after:
            raise _refuse(
                state,
                event,
                f"re-apply wait until {state.reapply_after}; the new grade starts {earliest}",
            )
    if valid_from < announced_on:
        # domain.md §3: valid from the announcement; a backdated start would also date the
        # holding (held_since) before the grade existed
        raise _refuse(
            state, event, f"valid_from {valid_from} is before the announcement ({announced_on})"
        )
    level, scheme = str(data["level"]), str(data["scheme"])
    if (level == SMALL_MICRO) != (scheme == SMALL_MICRO):
        raise _refuse(
            state,
            event,
            f"level {level} and scheme {scheme} disagree: the small/micro level is the "
            "small/micro scheme's, and that scheme has no other level",
        )
    _check_validity(state, event, valid_from, valid_to, policy, announced_on)
    return GradeState(
        status=GradeStatus.ACTIVE,
        level=str(data["level"]),
        scheme=str(data["scheme"]),
        authority_level=str(data["authority_level"]),
        valid_from=valid_from,
        valid_to=valid_to,
        held_since=valid_from,
    )


def _renew(state: GradeState, data: Mapping[str, object], policy: Policy) -> GradeState:
    event = "grade.renewed"
    if state.status is not GradeStatus.ACTIVE or state.valid_from is None:
        raise _refuse(
            state, event, "only an active grade is renewed; an ended grade needs a new award"
        )
    level = str(data["level"])
    if level != state.level:
        raise _refuse(
            state, event, f"a renewal keeps the level, but the message names level {level}"
        )
    valid_from, valid_to = date_field(data, "valid_from"), date_field(data, "valid_to")
    announced_on = date_field(data, "announced_on")
    if valid_from < state.valid_from:
        raise _refuse(
            state, event, f"the renewed validity cannot start ({valid_from}) before the current"
        )
    assert state.valid_to is not None  # an active grade has its validity
    if valid_to < state.valid_to:
        raise _refuse(
            state,
            event,
            f"valid_to {valid_to} would shorten the current validity (to {state.valid_to})",
        )
    # domain.md §3: a grade not renewed lapses at valid_to; after that only a new award.
    assert state.valid_to is not None  # an active grade has its validity
    if announced_on > state.valid_to or valid_from > state.valid_to + _ONE_DAY:
        raise _refuse(
            state,
            event,
            f"the grade lapsed at {state.valid_to}, before this renewal (announced "
            f"{announced_on}, valid from {valid_from}); a lapsed grade needs a new award: "
            + _RECORD_EXPIRY,
        )
    _check_validity(state, event, valid_from, valid_to, policy)
    return replace(state, valid_from=valid_from, valid_to=valid_to)


def _check_decided_within(state: GradeState, event: str, decided_on: date) -> None:
    """A downgrade or revocation is decided while the grade it changes is held: not before the
    award it holds took effect (`held_since`; renewals keep it: a decision of the previous
    term may be published after the renewal; not known: no lower bound), nor after it
    lapsed. A decision dated earlier would reach back over the grade's history (a revocation
    backdated to before the award let the enterprise out of its re-apply wait at once)."""
    assert state.valid_from is not None  # an active grade has its validity
    assert state.valid_to is not None
    since = state.held_since  # None: not known (rows written before 0015 could not tell)
    if since is not None and decided_on < since:
        raise _refuse(
            state, event, f"decided_on {decided_on} is before the grade was held (from {since})"
        )
    if decided_on > state.valid_to:
        raise _refuse(
            state,
            event,
            f"it lapsed at {state.valid_to}, before {decided_on}: publish its grade.expired first",
        )


def _downgrade(state: GradeState, data: Mapping[str, object], policy: Policy) -> GradeState:
    event = "grade.downgraded"
    if state.status is not GradeStatus.ACTIVE:
        raise _refuse(state, event, "only an active grade can be downgraded")
    _check_decided_within(state, event, date_field(data, "decided_on"))
    from_level, to_level = str(data["from_level"]), str(data["to_level"])
    if from_level != state.level:
        raise _refuse(state, event, f"from_level {from_level} is not the current level")
    if SMALL_MICRO in (from_level, to_level):
        raise _refuse(
            state, event, "small_micro is a separate scheme with no level above or below it"
        )
    if level_rank(to_level) <= level_rank(from_level):
        raise _refuse(
            state, event, f"level {to_level} is not lower than level {from_level} (1 > 2 > 3)"
        )
    if level_rank(to_level) != level_rank(from_level) + 1:
        # domain.md §3: "downgraded by one level"; a graver case is a revocation.
        raise _refuse(
            state, event, f"a downgrade moves one level (from {from_level} to the next below)"
        )
    return replace(state, level=to_level)


def _revoke(state: GradeState, data: Mapping[str, object], policy: Policy) -> GradeState:
    event = "grade.revoked"
    if state.status is not GradeStatus.ACTIVE:
        raise _refuse(state, event, "only an active grade can be revoked")
    decided_on, reapply_after = date_field(data, "decided_on"), date_field(data, "reapply_after")
    _check_decided_within(state, event, decided_on)
    # domain.md §3: re-application only after a configurable wait (policy reapply_wait_months).
    earliest = add_months(decided_on, policy.reapply_wait_months)
    if reapply_after < earliest:
        raise _refuse(
            state,
            event,
            f"reapply_after {reapply_after} is before {earliest}, "
            f"{policy.reapply_wait_months} months after the decision",
        )
    return GradeState(status=GradeStatus.REVOKED, reapply_after=reapply_after)


def _expire(state: GradeState, data: Mapping[str, object], policy: Policy) -> GradeState:
    event = "grade.expired"
    if state.status is not GradeStatus.ACTIVE:
        raise _refuse(state, event, "only an active grade can lapse")
    valid_to, expired_on = date_field(data, "valid_to"), date_field(data, "expired_on")
    if valid_to != state.valid_to:
        raise _refuse(state, event, f"valid_to {valid_to} is not the grade's end of validity")
    if expired_on < valid_to:
        raise _refuse(state, event, f"expired_on {expired_on} is before the end of validity")
    return GradeState(status=GradeStatus.EXPIRED)


_HANDLERS: dict[str, Callable[[GradeState, Mapping[str, object], Policy], GradeState]] = {
    "grade.awarded": _award,
    "grade.renewed": _renew,
    "grade.downgraded": _downgrade,
    "grade.revoked": _revoke,
    "grade.expired": _expire,
}


_DECISION_FIELDS = (
    "announcement_no",
    "announced_on",
    "decision_no",
    "decided_on",
    "reason_code",
    "reapply_after",
    "expired_on",
    "related_message_ids",
)


def decision_facts(envelope: Mapping[str, Any]) -> dict[str, Any]:
    """What documents show of a grade's last decision (its number, date, reason), from the
    message's envelope: kept on the enterprise row (`grade_decision`)."""
    data = envelope["data"]
    facts: dict[str, Any] = {
        "type": str(envelope["type"]),
        "message_id": str(envelope["id"]).lower(),
        "issuer": str(envelope["issuer"]),
    }
    facts.update({name: data[name] for name in _DECISION_FIELDS if name in data})
    return facts
