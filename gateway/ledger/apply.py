"""Apply an accepted message to enterprise state and ledgers, inside the publish transaction.

Each handler checks every rule before it changes anything, so a refused message in a batch
leaves no trace. Ledger statuses follow domain.md §4: 新增 on registration, 达标 while a grade
is held, 未达标 after revocation or expiry. Registrations, grades and self-assessments are
handled here; rectifications, accidents and listings in gateway.ledger.records, agencies'
feedback in gateway.ledger.feedback.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy.orm import Session

from contracts.grades import GradeState, GradeStatus, TransitionError, apply_grade_event
from gateway.errors import Unprocessable
from gateway.ledger.feedback import record_measure
from gateway.ledger.records import (
    add_listing,
    mark_rectification_overdue,
    order_rectification,
    remove_listing,
    report_accident,
)
from gateway.ledger.state import (
    ACHIEVED,
    EVENT_DATE_FIELD,
    NEW,
    NOT_ACHIEVED,
    Applied,
    EnterpriseState,
    enterprise_of,
    record_change,
    rules_on,
    touch,
)


def apply_message(session: Session, applied: Applied) -> None:
    handler = HANDLERS[str(applied.envelope["type"])]
    handler(session, applied)


def register_enterprise(session: Session, applied: Applied) -> None:
    if applied.subject in applied.enterprises:
        raise Unprocessable(
            "invalid_transition", f"enterprise {applied.subject} is already registered"
        )
    data = applied.data
    ent = EnterpriseState(
        False,
        uscc=applied.subject,
        name=data["name"],
        region_code=data["region_code"],
        industry_section=data["industry_section"],
        scheme=data["scheme"],
        required=bool(data["required"]),
        ledger_status=NEW,
        registered_on=dt.date.fromisoformat(data["registered_on"]),
        grade_status=GradeStatus.NONE.value,
        updated_at=applied.now,
        last_index=applied.index,
    )
    applied.enterprises[ent.uscc] = ent
    reason = "registered by the grading authority"
    record_change(
        session, ent, applied, ledger="basic", change="entered", to_status=NEW, reason=reason
    )
    if ent.required:
        record_change(
            session, ent, applied, ledger="required", change="entered", to_status=NEW, reason=reason
        )


def _grade_state(ent: EnterpriseState) -> GradeState:
    return GradeState(
        status=GradeStatus(ent.grade_status),
        level=ent.grade_level,
        scheme=ent.grade_scheme,
        authority_level=ent.grade_authority,
        valid_from=ent.grade_valid_from,
        valid_to=ent.grade_valid_to,
        reapply_after=ent.reapply_after,
        held_since=ent.grade_held_since,
    )


def change_grade(session: Session, applied: Applied) -> None:
    ent = enterprise_of(session, applied)
    message_type = str(applied.envelope["type"])
    on = dt.date.fromisoformat(applied.data[EVENT_DATE_FIELD[message_type]])
    before = _grade_state(ent)
    try:
        after = apply_grade_event(before, message_type, applied.data, rules_on(ent.region_code, on))
    except TransitionError as exc:
        raise Unprocessable("invalid_transition", exc.message) from exc
    ent.grade_status = after.status.value
    ent.grade_level, ent.grade_scheme = after.level, after.scheme
    ent.grade_authority = after.authority_level
    ent.grade_valid_from, ent.grade_valid_to = after.valid_from, after.valid_to
    ent.grade_held_since = after.held_since
    ent.reapply_after = after.reapply_after
    if message_type in ("grade.awarded", "grade.renewed"):
        ent.certificate_no = applied.data["certificate_no"]
        ent.announcement_no = applied.data["announcement_no"]
    old_status = ent.ledger_status
    ent.ledger_status = ACHIEVED if after.status is GradeStatus.ACTIVE else NOT_ACHIEVED
    change = {
        "grade.awarded": "entered",
        "grade.revoked": "left",
        "grade.expired": "left",
    }.get(message_type, "updated")
    reason = str(applied.data.get("reason") or message_type)
    record_change(
        session,
        ent,
        applied,
        ledger="achieved",
        change=change,
        from_status=old_status,
        to_status=ent.ledger_status,
        from_level=before.level,
        to_level=after.level if after.status is GradeStatus.ACTIVE else None,
        reason=reason[:500],
    )
    touch(ent, applied)


def publish_self_assessment(session: Session, applied: Applied) -> None:
    ent = enterprise_of(session, applied)
    year = int(applied.data["year"])
    published_on = dt.date.fromisoformat(applied.data["published_on"])
    if year > published_on.year:
        raise Unprocessable(
            "rule_violation",
            f"a self-assessment of {year} cannot be published on {published_on}, before its "
            "year began",
            pointer="/data/year",
        )
    ent.self_assessment_year = max(year, ent.self_assessment_year or year)
    touch(ent, applied)


HANDLERS: dict[str, Callable[[Session, Applied], None]] = {
    "enterprise.registered": register_enterprise,
    "grade.awarded": change_grade,
    "grade.renewed": change_grade,
    "grade.downgraded": change_grade,
    "grade.revoked": change_grade,
    "grade.expired": change_grade,
    "self_assessment.published": publish_self_assessment,
    "rectification.ordered": order_rectification,
    "rectification.overdue": mark_rectification_overdue,
    "accident.reported": report_accident,
    "listing.added": add_listing,
    "listing.removed": remove_listing,
    "measure.applied": record_measure,
}
