"""The grade state machine (domain.md §3): every allowed transition and each refused one."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from contract_factories import (
    make_active,
    make_award,
    make_downgrade,
    make_expiry,
    make_policy,
    make_renewal,
    make_revocation,
    make_revoked,
)

from contracts.grades import (
    GradeState,
    GradeStatus,
    TransitionError,
    apply_grade_event,
    level_rank,
)

POLICY = make_policy()
EXPIRED = GradeState(status=GradeStatus.EXPIRED)


def apply(state: GradeState, message_type: str, data: dict[str, Any]) -> GradeState:
    return apply_grade_event(state, message_type, data, POLICY)


def refused(state: GradeState, message_type: str, data: dict[str, Any]) -> str:
    with pytest.raises(TransitionError) as caught:
        apply(state, message_type, data)
    assert caught.value.message.startswith(f"{message_type} refused: the enterprise ")
    return caught.value.message


# --- allowed -----------------------------------------------------------------------------------


@pytest.mark.parametrize("state", [GradeState.none(), EXPIRED], ids=["none", "expired"])
def test_award_from_none_or_expired(state: GradeState) -> None:
    assert apply(state, "grade.awarded", make_award()) == make_active()


def test_award_after_revocation_from_the_reapply_date() -> None:
    award = make_award(announced_on="2026-06-15", valid_from="2026-06-15", valid_to="2029-06-14")
    after = apply(make_revoked(), "grade.awarded", award)
    assert after.status is GradeStatus.ACTIVE
    assert (after.valid_from, after.reapply_after) == (date(2026, 6, 15), None)


def test_award_may_use_the_full_validity() -> None:
    after = apply(GradeState.none(), "grade.awarded", make_award(valid_to="2027-01-10"))
    assert after.valid_to == date(2027, 1, 10)


def test_renewal_moves_the_validity_and_keeps_the_grade() -> None:
    after = apply(make_active(), "grade.renewed", make_renewal())
    assert after == make_active(
        valid_from=date(2027, 1, 10), valid_to=date(2030, 1, 9), held_since=date(2024, 1, 10)
    )


@pytest.mark.parametrize(("held", "lower"), [("1", "2"), ("2", "3")])
def test_downgrade_to_a_lower_level(held: str, lower: str) -> None:
    data = make_downgrade(from_level=held, to_level=lower)
    after = apply(make_active(level=held), "grade.downgraded", data)
    assert after == make_active(level=lower)


def test_revocation_sets_the_reapply_date() -> None:
    after = apply(make_active(), "grade.revoked", make_revocation())
    assert after == GradeState(status=GradeStatus.REVOKED, reapply_after=date(2026, 6, 15))


@pytest.mark.parametrize("expired_on", ["2027-01-09", "2027-02-01"])
def test_expiry_on_or_after_valid_to(expired_on: str) -> None:
    after = apply(make_active(), "grade.expired", make_expiry(expired_on=expired_on))
    assert after == EXPIRED


def test_a_whole_life() -> None:
    state = GradeState.none()
    state = apply(state, "grade.awarded", make_award(level="1"))
    state = apply(state, "grade.downgraded", make_downgrade(from_level="1", to_level="2"))
    state = apply(state, "grade.renewed", make_renewal(level="2"))
    state = apply(
        state, "grade.revoked", make_revocation(decided_on="2028-01-01", reapply_after="2029-01-01")
    )
    state = apply(
        state,
        "grade.awarded",
        make_award(
            level="3", announced_on="2029-02-01", valid_from="2029-02-01", valid_to="2032-01-31"
        ),
    )
    assert (state.status, state.level) == (GradeStatus.ACTIVE, "3")


def test_the_input_state_is_not_changed() -> None:
    state = make_active()
    apply(state, "grade.revoked", make_revocation())
    assert state == make_active()


# --- refused -----------------------------------------------------------------------------------


def test_award_while_active_is_refused() -> None:
    message = refused(make_active(), "grade.awarded", make_award())
    assert "holds an active level 2 grade valid 2024-01-10 to 2027-01-09" in message
    assert "grade.renewed" in message


@pytest.mark.parametrize(
    "overrides",
    [
        {"announced_on": "2026-06-14", "valid_from": "2026-06-15", "valid_to": "2029-06-14"},
        {"announced_on": "2026-06-15", "valid_from": "2026-06-14", "valid_to": "2029-06-13"},
    ],
)
def test_award_during_the_reapply_wait_is_refused(overrides: dict[str, str]) -> None:
    message = refused(make_revoked(), "grade.awarded", make_award(**overrides))
    assert "re-apply wait until 2026-06-15" in message


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"valid_to": "2024-01-10"}, "must be after valid_from"),
        ({"valid_to": "2024-01-09"}, "must be after valid_from"),
        ({"valid_to": "2027-01-11"}, "3-year validity"),
    ],
)
def test_award_validity_bounds(overrides: dict[str, str], says: str) -> None:
    assert says in refused(GradeState.none(), "grade.awarded", make_award(**overrides))


def test_validity_bound_comes_from_policy() -> None:
    award = make_award(valid_to="2028-01-10")
    after = apply_grade_event(
        GradeState.none(), "grade.awarded", award, make_policy(grade_validity_years=4)
    )
    assert after.valid_to == date(2028, 1, 10)


@pytest.mark.parametrize(
    "state", [GradeState.none(), EXPIRED, make_revoked()], ids=["none", "expired", "revoked"]
)
def test_renewal_needs_an_active_grade(state: GradeState) -> None:
    assert "new award" in refused(state, "grade.renewed", make_renewal())


def test_renewing_an_expired_grade_names_the_state() -> None:
    assert "has an expired grade" in refused(EXPIRED, "grade.renewed", make_renewal())


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"level": "1"}, "keeps the level"),
        ({"valid_from": "2024-01-09"}, "before the current"),
        ({"valid_to": "2030-01-11"}, "3-year validity"),
        # the current grade is valid to 2027-01-09: after that it has lapsed (domain.md §3)
        ({"announced_on": "2027-01-10"}, "lapsed at 2027-01-09"),
        ({"announced_on": "2027-01-09", "valid_from": "2027-01-11"}, "a new award"),
    ],
)
def test_bad_renewals_are_refused(overrides: dict[str, str], says: str) -> None:
    assert says in refused(make_active(), "grade.renewed", make_renewal(**overrides))


def test_an_awarded_grade_is_valid_three_years_from_its_announcement() -> None:
    """domain.md §3: not three years from a start the message sets later."""
    late_start = make_award(
        announced_on="2024-01-10", valid_from="2026-01-10", valid_to="2029-01-09"
    )
    says = refused(GradeState.none(), "grade.awarded", late_start)
    assert "3-year validity from its announcement (latest 2027-01-10)" in says
    on_time = make_award(announced_on="2024-01-10", valid_from="2024-02-01", valid_to="2027-01-10")
    assert apply(GradeState.none(), "grade.awarded", on_time).valid_to == date(2027, 1, 10)


def test_after_a_lapse_both_refusals_say_to_record_the_expiry_first() -> None:
    """The grade lapsed at 2027-01-09 but its expiry is not published: neither a renewal nor an
    award is accepted, and both say how to go on (grade.expired, then grade.awarded)."""
    late_renewal = make_renewal(announced_on="2027-03-01", valid_from="2027-03-01")
    late_award = make_award(announced_on="2027-03-01", valid_from="2027-03-01")
    for message_type, data in (("grade.renewed", late_renewal), ("grade.awarded", late_award)):
        assert "publish its grade.expired first" in refused(make_active(), message_type, data)
    expired = apply(make_active(), "grade.expired", make_expiry())
    after = apply(
        expired,
        "grade.awarded",
        make_award(announced_on="2027-03-01", valid_from="2027-03-01", valid_to="2030-02-28"),
    )
    assert after.valid_from == date(2027, 3, 1)


def test_renewal_announced_on_the_last_day_continues_the_grade() -> None:
    renewal = make_renewal(announced_on="2027-01-09", valid_from="2027-01-10")
    assert apply(make_active(), "grade.renewed", renewal).valid_from == date(2027, 1, 10)


@pytest.mark.parametrize(
    ("held", "data", "says"),
    [
        ("2", {"from_level": "2", "to_level": "1"}, "not lower"),
        ("2", {"from_level": "2", "to_level": "2"}, "not lower"),
        ("3", {"from_level": "3", "to_level": "1"}, "not lower"),
        ("1", {"from_level": "1", "to_level": "3"}, "moves one level"),
        ("1", {"from_level": "2", "to_level": "3"}, "not the current level"),
        ("small_micro", {"from_level": "small_micro", "to_level": "3"}, "separate scheme"),
        ("3", {"from_level": "3", "to_level": "small_micro"}, "separate scheme"),
    ],
)
def test_bad_downgrades_are_refused(held: str, data: dict[str, str], says: str) -> None:
    state = make_active(level=held)
    assert says in refused(state, "grade.downgraded", make_downgrade(**data))


@pytest.mark.parametrize(
    "state", [GradeState.none(), EXPIRED, make_revoked()], ids=["none", "expired", "revoked"]
)
@pytest.mark.parametrize(
    ("message_type", "data"),
    [
        ("grade.downgraded", make_downgrade()),
        ("grade.revoked", make_revocation()),
        ("grade.expired", make_expiry()),
    ],
)
def test_changes_to_a_grade_need_an_active_grade(
    state: GradeState, message_type: str, data: dict[str, Any]
) -> None:
    assert "only an active grade" in refused(state, message_type, data)


def test_revocation_without_a_grade_names_the_state() -> None:
    assert "holds no grade" in refused(GradeState.none(), "grade.revoked", make_revocation())


def test_revocation_with_a_short_wait_is_refused() -> None:
    data = make_revocation(reapply_after="2026-06-14")
    message = refused(make_active(), "grade.revoked", data)
    assert "before 2026-06-15, 12 months after the decision" in message


def test_reapply_wait_comes_from_policy() -> None:
    data = make_revocation(reapply_after="2025-12-15")
    after = apply_grade_event(
        make_active(), "grade.revoked", data, make_policy(reapply_wait_months=6)
    )
    assert after.reapply_after == date(2025, 12, 15)


def test_early_expiry_is_refused() -> None:
    message = refused(make_active(), "grade.expired", make_expiry(expired_on="2027-01-08"))
    assert "before the end of validity" in message


def test_expiry_of_another_validity_is_refused() -> None:
    data = make_expiry(valid_to="2027-01-10", expired_on="2027-01-10")
    assert "not the grade's end of validity" in refused(make_active(), "grade.expired", data)


def test_non_grade_messages_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="not a grade event"):
        apply(make_active(), "listing.added", {})


def test_level_rank() -> None:
    assert [level_rank(level) for level in ("1", "2", "3")] == [1, 2, 3]
    for outside in ("small_micro", "4", ""):
        with pytest.raises(ValueError, match="ladder"):
            level_rank(outside)


@pytest.mark.parametrize(
    ("message_type", "make"),
    [("grade.downgraded", make_downgrade), ("grade.revoked", make_revocation)],
)
def test_a_decision_is_dated_while_the_grade_is_held(message_type: str, make: Any) -> None:
    """The grade runs 2024-01-10 .. 2027-01-09 (make_active). A decision backdated to before
    it began (a revocation of 2019 let a new award in three weeks later, its re-apply wait
    long over) or dated after it lapsed is refused; its first and last days are in."""
    early = {"decided_on": "2019-06-01", "reapply_after": "2020-06-01"}
    late = {"decided_on": "2027-01-10", "reapply_after": "2028-01-10"}
    if message_type == "grade.downgraded":
        early.pop("reapply_after")
        late.pop("reapply_after")
    assert "before the grade was held (from 2024-01-10)" in refused(
        make_active(), message_type, make(**early)
    )
    assert "lapsed at 2027-01-09, before 2027-01-10: publish its grade.expired" in refused(
        make_active(), message_type, make(**late)
    )
    for day in ("2024-01-10", "2027-01-09"):
        edge = {"decided_on": day}
        if message_type == "grade.revoked":
            edge["reapply_after"] = f"{int(day[:4]) + 1}{day[4:]}"
        assert apply(make_active(), message_type, make(**edge)).status is not GradeStatus.NONE


def test_a_decision_of_the_previous_term_may_follow_the_renewal() -> None:
    """Renewed from 2027-01-10: a revocation decided on 2026-12-20, in the term before,
    published after the renewal, still revokes; one decided before the award does not."""
    renewed = apply(make_active(), "grade.renewed", make_renewal())
    late = make_revocation(decided_on="2026-12-20", reapply_after="2027-12-20")
    assert apply(renewed, "grade.revoked", late).status is GradeStatus.REVOKED
    early = make_revocation(decided_on="2024-01-09", reapply_after="2025-01-09")
    assert "before the grade was held (from 2024-01-10)" in refused(renewed, "grade.revoked", early)


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        (  # backdated: would date the holding before the grade existed
            {"announced_on": "2024-01-10", "valid_from": "2023-01-10", "valid_to": "2026-01-09"},
            "valid_from 2023-01-10 is before the announcement (2024-01-10)",
        ),
        ({"level": "small_micro"}, "level small_micro and scheme hazardous_chemicals disagree"),
        ({"level": "1", "scheme": "small_micro"}, "level 1 and scheme small_micro disagree"),
    ],
)
def test_an_award_starts_at_its_announcement_and_matches_level_and_scheme(
    overrides: dict[str, str], says: str
) -> None:
    assert says in refused(GradeState.none(), "grade.awarded", make_award(**overrides))
    small = make_award(level="small_micro", scheme="small_micro")
    assert apply(GradeState.none(), "grade.awarded", small).level == "small_micro"


def test_a_renewal_never_shortens_the_validity() -> None:
    shorter = make_renewal(
        announced_on="2027-01-05", valid_from="2024-02-01", valid_to="2026-12-31"
    )
    assert "would shorten the current validity (to 2027-01-09)" in refused(
        make_active(), "grade.renewed", shorter
    )
