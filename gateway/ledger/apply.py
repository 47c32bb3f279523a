"""Apply an accepted message to enterprise state and ledgers, inside the publish transaction.

Each handler checks every rule before it changes anything, so a refused message in a batch
leaves no trace. Ledger statuses follow domain.md §4: 新增 on registration (for the policy's
new_status_months), 达标 while a grade is held, 未达标 after revocation or expiry; the stored
status is the one after the last message, and readers compute it for the day they ask
(contracts.ledgers). The register (registrations, changes, closures), grades and
self-assessments are handled here; rectifications, accidents and listings in
gateway.ledger.records, agencies' feedback in gateway.ledger.feedback.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy.orm import Session

from contracts.dates import add_months
from contracts.grades import GradeState, GradeStatus, TransitionError, apply_grade_event
from contracts.revocations import CauseError, check_causes
from gateway.errors import Unprocessable
from gateway.ledger.causes import cited_causes
from gateway.ledger.feedback import record_measure
from gateway.ledger.inspections import record_inspection
from gateway.ledger.records import (
    add_listing,
    mark_rectification_overdue,
    order_rectification,
    remove_listing,
    report_accident,
    verify_rectification,
)
from gateway.ledger.state import (
    ACHIEVED,
    EVENT_DATE_FIELD,
    NEW,
    NOT_ACHIEVED,
    Applied,
    EnterpriseState,
    check_open,
    check_scheme,
    decision_facts,
    enterprise_of,
    record_change,
    rules_on,
    touch,
)


def apply_message(session: Session, applied: Applied) -> None:
    message_type = str(applied.envelope["type"])
    if message_type != "enterprise.registered":
        check_open(enterprise_of(session, applied), applied)
    HANDLERS[message_type](session, applied)


def register_enterprise(session: Session, applied: Applied) -> None:
    if applied.subject in applied.enterprises:
        raise Unprocessable(
            "invalid_transition", f"enterprise {applied.subject} is already registered"
        )
    data = applied.data
    check_scheme(session, data["scheme"], "/data/scheme")
    registered_on = dt.date.fromisoformat(data["registered_on"])
    ent = EnterpriseState(
        False,
        uscc=applied.subject,
        name=data["name"],
        legal_representative=data.get("legal_representative"),
        address=data.get("address"),
        region_code=data["region_code"],
        industry_section=data["industry_section"],
        scheme=data["scheme"],
        required=bool(data["required"]),
        ledger_status=NEW,
        registered_on=registered_on,
        new_until=_new_until(data["region_code"], registered_on),
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


def _new_until(region_code: str, since: dt.date) -> dt.date:
    """The first day an enterprise registered or included on `since` is no longer 新增
    without a grade (domain.md §4: a transitional class, policy new_status_months)."""
    return add_months(since, rules_on(region_code, since).new_status_months)


# What enterprise.updated may change, and the ledger each change concerns.
_UPDATABLE = (
    "name",
    "legal_representative",
    "address",
    "region_code",
    "industry_section",
    "scheme",
    "required",
)


def update_enterprise(session: Session, applied: Applied) -> None:
    """定期核实 (四（二）): a registered enterprise's basic facts change as the message says; a
    change into the required ledger starts its 新增 period anew (newly included)."""
    ent = enterprise_of(session, applied)
    changes = applied.data["changes"]
    changed_on = dt.date.fromisoformat(applied.data["changed_on"])
    if changed_on < ent.registered_on:
        raise Unprocessable(
            "rule_violation",
            f"changed_on {changed_on} is before the enterprise was registered "
            f"({ent.registered_on})",
            pointer="/data/changed_on",
        )
    if "scheme" in changes:
        check_scheme(session, changes["scheme"], "/data/changes/scheme")
    same = [name for name in changes if getattr(ent, name) == changes[name]]
    if len(same) == len(changes):
        raise Unprocessable(
            "rule_violation",
            f"nothing changes: {', '.join(same)} already as given",
            pointer="/data/changes",
        )
    reason = f"{applied.data['basis']}: " + ", ".join(
        f"{name} {getattr(ent, name)!r} → {changes[name]!r}" for name in changes
    )
    was_required = ent.required
    for name in _UPDATABLE:
        if name in changes:
            setattr(ent, name, changes[name])
    record_change(session, ent, applied, ledger="basic", change="updated", reason=reason[:500])
    if ent.required != was_required:
        if ent.required and ent.grade_status == GradeStatus.NONE.value:
            ent.new_until = _new_until(ent.region_code, changed_on)  # newly included: 新增
        record_change(
            session,
            ent,
            applied,
            ledger="required",
            change="entered" if ent.required else "left",
            to_status=ent.ledger_status,
            reason=reason[:500],
        )
    touch(ent, applied)


def close_enterprise(session: Session, applied: Applied) -> None:
    """注销 / 吊销: the enterprise leaves the required and achieved ledgers and holds no grade
    from `closed_on`; the basic ledger keeps it, marked closed."""
    ent = enterprise_of(session, applied)
    closed_on = dt.date.fromisoformat(applied.data["closed_on"])
    if closed_on < ent.registered_on:
        raise Unprocessable(
            "rule_violation",
            f"closed_on {closed_on} is before the enterprise was registered ({ent.registered_on})",
            pointer="/data/closed_on",
        )
    reason = (
        f"{'注销' if applied.data['closure'] == 'deregistered' else '吊销营业执照'} "
        f"({applied.data['deciding_body']})"
    )[:500]
    old_status = ent.ledger_status
    ent.closed_on, ent.closure = closed_on, applied.data["closure"]
    if ent.grade_status == GradeStatus.ACTIVE.value:
        record_change(
            session,
            ent,
            applied,
            ledger="achieved",
            change="left",
            from_status=old_status,
            to_status=NOT_ACHIEVED,
            from_level=ent.grade_level,
            reason=reason,
        )
        # the grade ends with the enterprise, as a grade.expired would end it
        _set_grade(ent, GradeState(status=GradeStatus.EXPIRED))
    ent.ledger_status = NOT_ACHIEVED
    if ent.required:
        record_change(
            session,
            ent,
            applied,
            ledger="required",
            change="left",
            to_status=NOT_ACHIEVED,
            reason=reason,
        )
    record_change(session, ent, applied, ledger="basic", change="updated", reason=reason)
    touch(ent, applied)


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
    if message_type == "grade.awarded":
        check_scheme(session, applied.data["scheme"], "/data/scheme")
    try:
        after = apply_grade_event(before, message_type, applied.data, rules_on(ent.region_code, on))
    except TransitionError as exc:
        raise Unprocessable("invalid_transition", exc.message) from exc
    if message_type == "grade.revoked":
        _check_cause(session, applied, on)
    _set_grade(ent, after)
    if message_type in ("grade.awarded", "grade.renewed"):
        ent.certificate_no = applied.data["certificate_no"]
        ent.announcement_no = applied.data["announcement_no"]
        ent.grade_awarded_by = str(applied.envelope["issuer"])
    ent.grade_decision = decision_facts(applied.envelope)
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


def _set_grade(ent: EnterpriseState, after: GradeState) -> None:
    ent.grade_status = after.status.value
    ent.grade_level, ent.grade_scheme = after.level, after.scheme
    ent.grade_authority = after.authority_level
    ent.grade_valid_from, ent.grade_valid_to = after.valid_from, after.valid_to
    ent.grade_held_since = after.held_since
    ent.reapply_after = after.reapply_after


def _check_cause(session: Session, applied: Applied, decided_on: dt.date) -> None:
    ids = [str(i).lower() for i in applied.data.get("related_message_ids", [])]
    causes = cited_causes(session, applied, ids)
    try:
        check_causes(str(applied.data["reason_code"]), applied.subject, decided_on, causes)
    except CauseError as exc:
        raise Unprocessable(
            exc.code, exc.message, pointer="/data/related_message_ids", needs=exc.needs
        ) from exc


HANDLERS: dict[str, Callable[[Session, Applied], None]] = {
    "enterprise.registered": register_enterprise,
    "enterprise.updated": update_enterprise,
    "enterprise.closed": close_enterprise,
    "grade.awarded": change_grade,
    "grade.renewed": change_grade,
    "grade.downgraded": change_grade,
    "grade.revoked": change_grade,
    "grade.expired": change_grade,
    "self_assessment.published": publish_self_assessment,
    "inspection.recorded": record_inspection,
    "rectification.ordered": order_rectification,
    "rectification.overdue": mark_rectification_overdue,
    "rectification.verified": verify_rectification,
    "accident.reported": report_accident,
    "listing.added": add_listing,
    "listing.removed": remove_listing,
    "measure.applied": record_measure,
}
