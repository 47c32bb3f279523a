"""The grade state machine (domain.md §3) under hypothesis: random histories of grade events
checked against a model of the domain rules, and the promises the machine makes at every step."""

from __future__ import annotations

import contextlib
import re
from dataclasses import replace
from datetime import date, timedelta

import pytest
from contract_factories import (
    make_award,
    make_downgrade,
    make_expiry,
    make_policy,
    make_renewal,
    make_revocation,
)
from hypothesis import event, given, settings
from hypothesis import strategies as st

from contracts.grades import GradeState, GradeStatus, TransitionError, apply_grade_event
from contracts.policy import Policy

NONE, ACTIVE, REVOKED, EXPIRED = (
    GradeStatus.NONE,
    GradeStatus.ACTIVE,
    GradeStatus.REVOKED,
    GradeStatus.EXPIRED,
)
AWARDED, RENEWED, DOWNGRADED = "grade.awarded", "grade.renewed", "grade.downgraded"
REVOKED_EVENT, EXPIRED_EVENT = "grade.revoked", "grade.expired"
EVENTS = (AWARDED, RENEWED, DOWNGRADED, REVOKED_EVENT, EXPIRED_EVENT)
LEVELS = ("1", "2", "3", "small_micro")  # the schemas' enum
LADDER = {"1": 1, "2": 2, "3": 3}  # 一级 > 二级 > 三级; small_micro is no rung (domain.md §3)
SCHEMES = ("industry_trade", "hazardous_chemicals", "fireworks", "small_micro")
AUTHORITIES = ("national", "provincial", "city")
# domain.md §3: none → active; active → active (renewed, downgraded), revoked, expired;
# revoked/expired → active only through a new award. Nothing else.
ALLOWED = {
    (NONE, AWARDED, ACTIVE),
    (EXPIRED, AWARDED, ACTIVE),
    (REVOKED, AWARDED, ACTIVE),
    (ACTIVE, RENEWED, ACTIVE),
    (ACTIVE, DOWNGRADED, ACTIVE),
    (ACTIVE, REVOKED_EVENT, REVOKED),
    (ACTIVE, EXPIRED_EVENT, EXPIRED),
}

# --- the domain rules, written from domain.md §3 and the grade.* schema descriptions ----------


def months_later(day: date, months: int) -> date:
    """A term of N months; a day past the month's end is its last day (2024-02-29 + 12 → 02-28)."""
    years, month0 = divmod(day.month - 1 + months, 12)
    year, month = day.year + years, month0 + 1
    first_of_next = date(year + month // 12, month % 12 + 1, 1)
    return date(year, month, min(day.day, (first_of_next - timedelta(days=1)).day))


def validity_ok(valid_from: date, valid_to: date, policy: Policy) -> bool:
    # "valid N years" (configurable): a non-empty window of at most grade_validity_years.
    return valid_from < valid_to <= months_later(valid_from, 12 * policy.grade_validity_years)


def day(body: dict[str, str], name: str) -> date:
    return date.fromisoformat(body[name])


def domain_next(
    state: GradeState, kind: str, body: dict[str, str], policy: Policy
) -> GradeState | None:
    """The state the domain rules lead to, or None when they refuse the event."""
    if kind == AWARDED:
        if state.status is ACTIVE:
            return None  # an active grade changes by renewal or downgrade only
        # revoked → active only from the re-apply date ("first day on which it may apply again").
        starts = min(day(body, "announced_on"), day(body, "valid_from"))
        if state.status is REVOKED and state.reapply_after and starts < state.reapply_after:
            return None
        # valid from the announcement, never before it (domain.md §3)
        if day(body, "valid_from") < day(body, "announced_on"):
            return None
        # the small/micro level belongs to the small/micro scheme, and only it
        if (body["level"] == "small_micro") != (body["scheme"] == "small_micro"):
            return None
        if not validity_ok(day(body, "valid_from"), day(body, "valid_to"), policy):
            return None
        # valid N years from the announcement (domain.md §3)
        if day(body, "valid_to") > months_later(
            day(body, "announced_on"), 12 * policy.grade_validity_years
        ):
            return None
        return GradeState(
            ACTIVE,
            body["level"],
            body["scheme"],
            body["authority_level"],
            day(body, "valid_from"),
            day(body, "valid_to"),
            held_since=day(body, "valid_from"),
        )
    if state.status is not ACTIVE or state.valid_from is None:
        return None  # every other event changes an active grade
    if kind == RENEWED:
        valid_from, valid_to = day(body, "valid_from"), day(body, "valid_to")
        if body["level"] != state.level or valid_from < state.valid_from:
            return None
        # a grade not renewed lapses at valid_to: a renewal after that is refused
        assert state.valid_to is not None
        if day(body, "announced_on") > state.valid_to or valid_from > state.valid_to + ONE_DAY:
            return None
        if valid_to < state.valid_to:  # a renewal never shortens the validity
            return None
        if not validity_ok(valid_from, valid_to, policy):
            return None
        return replace(state, valid_from=valid_from, valid_to=valid_to)
    if kind in (DOWNGRADED, REVOKED_EVENT):
        # decided while the grade is held: from its award's start to its last day
        assert state.valid_from is not None
        assert state.valid_to is not None
        decided = day(body, "decided_on")
        if state.held_since is not None and decided < state.held_since:
            return None  # before the award it holds (None: not known, no lower bound)
        if decided > state.valid_to:
            return None
    if kind == DOWNGRADED:
        held, lower = body["from_level"], body["to_level"]
        if held != state.level or held not in LADDER or lower not in LADDER:
            return None
        return replace(state, level=lower) if LADDER[lower] == LADDER[held] + 1 else None
    if kind == REVOKED_EVENT:
        earliest = months_later(day(body, "decided_on"), policy.reapply_wait_months)
        if day(body, "reapply_after") < earliest:
            return None
        return GradeState(REVOKED, reapply_after=day(body, "reapply_after"))
    # grade.expired: the grade's own valid_to, recorded on or after it.
    if day(body, "valid_to") != state.valid_to or day(body, "expired_on") < day(body, "valid_to"):
        return None
    return GradeState(EXPIRED)


def assert_state_is_coherent(state: GradeState, policy: Policy) -> None:
    """What every reachable state promises (GradeState docstring, domain.md §3)."""
    held = (state.level, state.scheme, state.authority_level, state.valid_from, state.valid_to)
    if state.status is ACTIVE:
        assert None not in held
        assert state.valid_from is not None
        assert state.valid_to is not None
        assert validity_ok(state.valid_from, state.valid_to, policy)
        assert state.reapply_after is None
    else:
        assert held == (None,) * 5
        assert (state.reapply_after is not None) == (state.status is REVOKED)


# --- random events, their dates built around the state's own ----------------------------------

policies = st.builds(
    lambda years, wait: make_policy(grade_validity_years=years, reapply_wait_months=wait),
    st.integers(1, 5),
    st.integers(0, 36),
)
# Mostly a day or two either side of a date where a rule changes, sometimes far off.
offsets = st.integers(-2, 2) | st.integers(-1200, 1200)
any_day = st.dates(date(2000, 1, 1), date(2080, 12, 31))
ONE_DAY = timedelta(days=1)


def around(start: date, *exact: date) -> st.SearchStrategy[date]:
    """`start` moved by an offset, or one of the `exact` boundary dates."""
    moved = offsets.map(lambda days: start + timedelta(days=days))
    return st.sampled_from(exact) | moved if exact else moved


def iso(value: date) -> str:
    return value.isoformat()


@st.composite
def grade_events(
    draw: st.DrawFn, state: GradeState, policy: Policy, kinds: tuple[str, ...] = EVENTS
) -> tuple[str, dict[str, str]]:
    """One schema-valid grade.* event of one of `kinds`, whatever the state; its dates near the
    state's own dates and the rule boundaries they imply."""
    kind = draw(st.sampled_from(kinds))
    own = [d for d in (state.valid_from, state.valid_to, state.reapply_after) if d is not None]
    anchor = draw(st.sampled_from(own) | any_day if own else any_day)
    # Half the time the level the state holds, so that renewals and downgrades can fit.
    levels = st.sampled_from(LEVELS)
    level = draw(levels if state.level is None else st.just(state.level) | levels)
    if kind in (AWARDED, RENEWED):
        valid_from = draw(around(anchor, anchor))
        full = months_later(valid_from, 12 * policy.grade_validity_years)
        ends = (full, full + ONE_DAY, valid_from, valid_from + ONE_DAY)  # the validity bounds
        dates = {
            "announced_on": iso(draw(around(valid_from, valid_from, anchor))),
            "valid_from": iso(valid_from),
            "valid_to": iso(draw(around(full, *ends))),
        }
        if kind == RENEWED:
            return kind, make_renewal(level=level, **dates)
        scheme, authority = draw(st.sampled_from(SCHEMES)), draw(st.sampled_from(AUTHORITIES))
        return kind, make_award(level=level, scheme=scheme, authority_level=authority, **dates)
    if kind == DOWNGRADED:
        lower = [name for name, rank in LADDER.items() if rank > LADDER.get(level, 3)]
        to_level = draw(st.sampled_from([level, *lower]) | levels)
        decided = iso(draw(around(anchor)))
        return kind, make_downgrade(from_level=level, to_level=to_level, decided_on=decided)
    if kind == REVOKED_EVENT:
        decided_on = draw(around(anchor))
        earliest = months_later(decided_on, policy.reapply_wait_months)
        reapply_after = draw(around(earliest, earliest, earliest - ONE_DAY))
        return kind, make_revocation(decided_on=iso(decided_on), reapply_after=iso(reapply_after))
    valid_to = draw(around(anchor, *own) if own else around(anchor))
    if state.valid_to is not None:
        valid_to = draw(st.just(state.valid_to) | st.just(valid_to))
    expired_on = draw(around(valid_to, valid_to, valid_to - ONE_DAY))
    return kind, make_expiry(valid_to=iso(valid_to), expired_on=iso(expired_on))


def apply_checked(
    state: GradeState, kind: str, body: dict[str, str], policy: Policy
) -> GradeState | None:
    """apply_grade_event, checked for purity and determinism; None when it refused the event."""
    state_before, body_before = replace(state), dict(body)
    message = ""
    try:
        after: GradeState | None = apply_grade_event(state, kind, body, policy)
    except TransitionError as refusal:
        message, after = refusal.message, None
    if after is None:
        # A refusal names the event and the state it was refused in, and is reproducible.
        assert message.startswith(f"{kind} refused: the enterprise {state.describe()}")
        with pytest.raises(TransitionError, match=f"^{re.escape(message)}$"):
            apply_grade_event(state, kind, body, policy)
    else:
        assert apply_grade_event(state, kind, body, policy) == after
    assert state == state_before  # refused or not, the input state is left as it was
    assert body == body_before
    return after


# --- properties --------------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(policy=policies, data=st.data())
def test_random_histories_follow_the_domain_rules(policy: Policy, data: st.DataObject) -> None:
    state = GradeState.none()
    for _ in range(data.draw(st.integers(1, 15), label="length")):
        kind, body = data.draw(grade_events(state, policy), label="event")
        after = apply_checked(state, kind, body, policy)
        event(f"{kind} {'accepted' if after else 'refused'} from {state.status}")
        assert after == domain_next(state, kind, body, policy)
        if after is not None:
            assert (state.status, kind, after.status) in ALLOWED
            assert_state_is_coherent(after, policy)
            state = after


@st.composite
def histories(draw: st.DrawFn, policy: Policy, length: int = 8) -> GradeState:
    """A state reached by a random history of events (refused ones skipped)."""
    state = GradeState.none()
    for _ in range(draw(st.integers(0, length))):
        kind, body = draw(grade_events(state, policy))
        with contextlib.suppress(TransitionError):
            state = apply_grade_event(state, kind, body, policy)
    return state


@st.composite
def active_grades(draw: st.DrawFn, policy: Policy) -> GradeState:
    """A reached state that holds an active grade: a history, then a fitting award if needed."""
    state = draw(histories(policy))
    if state.status is ACTIVE:
        return state
    valid_from = draw(st.sampled_from([state.reapply_after]) if state.reapply_after else any_day)
    full = months_later(valid_from, 12 * policy.grade_validity_years)
    valid_to = valid_from + timedelta(days=draw(st.integers(1, (full - valid_from).days)))
    level = draw(st.sampled_from(LEVELS))
    award = make_award(
        level=level,
        scheme="small_micro" if level == "small_micro" else "hazardous_chemicals",
        valid_from=iso(valid_from),
        valid_to=iso(valid_to),
    )
    return apply_grade_event(state, AWARDED, award | {"announced_on": iso(valid_from)}, policy)


@settings(max_examples=60, deadline=None)
@given(policy=policies, data=st.data())
def test_no_award_is_accepted_while_a_grade_is_active(policy: Policy, data: st.DataObject) -> None:
    state = data.draw(active_grades(policy), label="active")
    kind, body = data.draw(grade_events(state, policy, (AWARDED,)), label="award")
    assert apply_checked(state, kind, body, policy) is None


@settings(max_examples=60, deadline=None)
@given(policy=policies, data=st.data())
def test_no_award_before_the_reapply_date_and_every_fitting_one_from_it(
    policy: Policy, data: st.DataObject
) -> None:
    active = data.draw(active_grades(policy), label="active")
    assert active.valid_from is not None
    decided_on = data.draw(around(active.valid_from), label="decided_on")
    earliest = months_later(decided_on, policy.reapply_wait_months)
    reapply_after = earliest + timedelta(days=data.draw(st.integers(0, 400), label="longer"))
    revocation = make_revocation(decided_on=iso(decided_on), reapply_after=iso(reapply_after))
    # A wait at least the policy's is accepted, and the state keeps only the re-apply date.
    revoked = apply_checked(active, REVOKED_EVENT, revocation, policy)
    assert active.valid_to is not None
    too_early = active.held_since is not None and decided_on < active.held_since
    if too_early or decided_on > active.valid_to:
        assert revoked is None  # decided while the grade was not held
        return
    assert revoked == GradeState(REVOKED, reapply_after=reapply_after)

    _, award = data.draw(grade_events(revoked, policy, (AWARDED,)), label="award")
    after = apply_checked(revoked, AWARDED, award, policy)
    starts = min(day(award, "announced_on"), day(award, "valid_from"))
    fits = (
        validity_ok(day(award, "valid_from"), day(award, "valid_to"), policy)
        and day(award, "valid_to")
        <= months_later(day(award, "announced_on"), 12 * policy.grade_validity_years)
        and day(award, "valid_from") >= day(award, "announced_on")
        and (award["level"] == "small_micro") == (award["scheme"] == "small_micro")
    )
    assert (after is not None) == (starts >= reapply_after and fits)
    event(f"award {'on/after' if starts >= reapply_after else 'before'} the re-apply date")
