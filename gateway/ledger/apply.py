"""Apply an accepted message to enterprise state and ledgers, inside the publish transaction.

Each handler checks every rule before it changes anything, so a refused message in a batch
leaves no trace. Ledger statuses follow domain.md §4: 新增 on registration, 达标 while a grade
is held, 未达标 after revocation or expiry.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from contracts.accidents import classify_accident
from contracts.grades import GradeState, GradeStatus, TransitionError, apply_grade_event
from contracts.listings import ListingRuleError, check_listing_added, check_listing_removed
from contracts.measures import shipped_catalog
from contracts.policy import Policy, policy_for
from contracts.rectifications import RectificationRuleError, check_overdue
from contracts.registry import MESSAGE_TYPES
from gateway.bulk import BulkInsert, BulkUpdate
from gateway.errors import Unprocessable
from gateway.measures.catalog import active_catalog
from gateway.models import (
    Accident,
    Agency,
    Enterprise,
    Listing,
    LogEntry,
    MeasureApplied,
    Rectification,
    table_of,
)

NEW, ACHIEVED, NOT_ACHIEVED = "新增", "达标", "未达标"
EVENT_DATE_FIELD = {
    "grade.awarded": "announced_on",
    "grade.renewed": "announced_on",
    "grade.downgraded": "decided_on",
    "grade.revoked": "decided_on",
    "grade.expired": "expired_on",
}


class BatchMessage(NamedTuple):
    """A message accepted earlier in the same transaction, as a measure.applied reads it."""

    subject: str | None
    type: str
    issued_at: dt.datetime


@dataclass(frozen=True)
class Applied:
    """What the caller needs to record about one accepted message.

    Ledger changes are collected as rows in `ledger_changes` and bulk-inserted by the caller
    after the ORM flush (Core executemany: the ORM unit of work was most of a batch's cost).
    `batch_messages` holds the messages accepted earlier in the same transaction, by id (not
    yet in the log table: a measure.applied may answer a decision published beside it).
    """

    envelope: Mapping[str, Any]
    index: int
    now: dt.datetime
    enterprises: dict[str, EnterpriseState]  # the batch's enterprises, see prefetch_enterprises
    ledger_changes: list[dict[str, Any]]
    batch_messages: Mapping[str, BatchMessage]

    @property
    def data(self) -> Mapping[str, Any]:
        return self.envelope["data"]  # type: ignore[no-any-return]

    @property
    def subject(self) -> str:
        return str(self.envelope["subject"])


_COLUMNS = tuple(column.key for column in table_of(Enterprise).columns)


class EnterpriseState:
    """An enterprise row as publishing reads and changes it: plain attributes, no ORM.

    Building and flushing ORM objects was a fifth of a single publish's thread time
    (bench/profile_single_publish.py); `write_enterprises` inserts the new rows and updates
    the changed ones with one executemany each.
    """

    __slots__ = (*_COLUMNS, "stored", "changed")

    uscc: str
    name: str
    region_code: str
    industry_section: str
    scheme: str
    required: bool
    ledger_status: str
    registered_on: dt.date
    grade_status: str
    grade_level: str | None
    grade_scheme: str | None
    grade_authority: str | None
    grade_valid_from: dt.date | None
    grade_valid_to: dt.date | None
    grade_held_since: dt.date | None
    reapply_after: dt.date | None
    certificate_no: str | None
    announcement_no: str | None
    self_assessment_year: int | None
    updated_at: dt.datetime
    last_index: int

    def __init__(self, stored: bool, **columns: Any) -> None:
        for name in _COLUMNS:
            setattr(self, name, columns.get(name))
        self.stored = stored  # the row exists in the database (or was inserted in this batch)
        self.changed = False

    def row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _COLUMNS}


_ENTERPRISES = select(*(table_of(Enterprise).c[name] for name in _COLUMNS)).where(
    table_of(Enterprise).c.uscc.in_(bindparam("codes", expanding=True))
)
_INSERT_ENTERPRISES = BulkInsert(table_of(Enterprise))
_UPDATE_ENTERPRISES = BulkUpdate(table_of(Enterprise), "uscc")


def prefetch_enterprises(session: Session, subjects: set[str]) -> dict[str, EnterpriseState]:
    """Load a batch's enterprises in one query; handlers then look them up without SQL.

    Registrations in the batch add to the same dict, so a later item sees them unwritten.
    """
    found: dict[str, EnterpriseState] = {}
    items = sorted(subjects)
    connection = session.connection()
    for start in range(0, len(items), 500):
        chunk = items[start : start + 500]
        for row in connection.execute(_ENTERPRISES, {"codes": chunk}).mappings():
            found[row["uscc"]] = EnterpriseState(True, **row)
    return found


def write_enterprises(session: Session, enterprises: Mapping[str, EnterpriseState]) -> None:
    """Insert the batch's new enterprises and update the changed ones (Core executemany)."""
    new = [ent.row() for ent in enterprises.values() if not ent.stored]
    changed = [ent.row() for ent in enterprises.values() if ent.stored and ent.changed]
    connection = session.connection()
    if new:
        _INSERT_ENTERPRISES(connection, new)
    if changed:
        _UPDATE_ENTERPRISES(connection, changed)
    for ent in enterprises.values():
        ent.stored, ent.changed = True, False


def _stored(session: Session, ent: EnterpriseState) -> None:
    """Write a new enterprise now: a row about to be added through the ORM refers to it, and
    the ORM may flush that row (autoflush) before the batch's enterprises are written."""
    if not ent.stored:
        _INSERT_ENTERPRISES(session.connection(), [ent.row()])
        ent.stored = True


def apply_message(session: Session, applied: Applied) -> None:
    handler = HANDLERS[str(applied.envelope["type"])]
    handler(session, applied)


def _enterprise(session: Session, applied: Applied) -> EnterpriseState:
    found = applied.enterprises.get(applied.subject)
    if found is None:
        raise Unprocessable(
            "unknown_enterprise",
            f"enterprise {applied.subject} is not in the basic ledger; "
            "publish enterprise.registered first",
            pointer="/subject",
        )
    return found


def _record(session: Session, ent: EnterpriseState, applied: Applied, **change: Any) -> None:
    # every row has every column: the caller inserts them in one executemany
    row = dict.fromkeys(("from_status", "to_status", "from_level", "to_level", "reason"))
    row.update(
        uscc=ent.uscc,
        actor=str(applied.envelope["issuer"]),
        at=applied.now,
        message_id=str(applied.envelope["id"]).lower(),
        log_index=applied.index,
        **change,
    )
    applied.ledger_changes.append(row)


def _touch(ent: EnterpriseState, applied: Applied) -> None:
    ent.updated_at = applied.now
    ent.last_index = applied.index
    ent.changed = True


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
    _record(session, ent, applied, ledger="basic", change="entered", to_status=NEW, reason=reason)
    if ent.required:
        _record(
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


def _policy(region_code: str, on: dt.date) -> Policy:
    """The grade and list rules in force for the region on the day of the decision; a day the
    policy records do not cover (before they begin) is refused, not guessed."""
    try:
        return policy_for(region_code, on)
    except LookupError as exc:
        raise Unprocessable(
            "rule_violation",
            f"no grade and list rules are recorded for region {region_code} on {on}: {exc}",
        ) from exc


def change_grade(session: Session, applied: Applied) -> None:
    ent = _enterprise(session, applied)
    message_type = str(applied.envelope["type"])
    on = dt.date.fromisoformat(applied.data[EVENT_DATE_FIELD[message_type]])
    before = _grade_state(ent)
    try:
        after = apply_grade_event(before, message_type, applied.data, _policy(ent.region_code, on))
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
    _record(
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
    _touch(ent, applied)


def publish_self_assessment(session: Session, applied: Applied) -> None:
    ent = _enterprise(session, applied)
    year = int(applied.data["year"])
    ent.self_assessment_year = max(year, ent.self_assessment_year or year)
    _touch(ent, applied)


def order_rectification(session: Session, applied: Applied) -> None:
    ent = _enterprise(session, applied)
    data = applied.data
    if session.get(Rectification, (ent.uscc, data["rectification_id"])) is not None:
        raise Unprocessable(
            "invalid_transition", f"rectification {data['rectification_id']} was already ordered"
        )
    ordered_on, deadline = (dt.date.fromisoformat(data[k]) for k in ("ordered_on", "deadline"))
    if deadline < ordered_on:
        raise Unprocessable(
            "rule_violation",
            "the rectification deadline is before the order date",
            pointer="/data/deadline",
        )
    _stored(session, ent)
    session.add(
        Rectification(
            uscc=ent.uscc,
            rectification_id=data["rectification_id"],
            hazard_level=data["hazard_level"],
            ordered_on=ordered_on,
            deadline=deadline,
            status="ordered",
            data=dict(data),
            message_id=str(applied.envelope["id"]).lower(),
        )
    )
    _touch(ent, applied)


def mark_rectification_overdue(session: Session, applied: Applied) -> None:
    ent = _enterprise(session, applied)
    order = session.get(Rectification, (ent.uscc, applied.data["rectification_id"]))
    if order is None:
        raise Unprocessable(
            "unknown_reference",
            f"no rectification {applied.data['rectification_id']} was ordered for {ent.uscc}",
            pointer="/data/rectification_id",
        )
    if order.status == "overdue":
        raise Unprocessable("invalid_transition", "this rectification is already overdue")
    try:
        check_overdue(order.data, applied.data)
    except RectificationRuleError as exc:
        raise Unprocessable("rule_violation", exc.message) from exc
    order.status = "overdue"
    _touch(ent, applied)


# What the accidents table holds (32-bit counts, NUMERIC(18, 2) yuan); larger figures are not
# a credible report and would fail the whole transaction on PostgreSQL.
MAX_COUNT = 2**31 - 1
MAX_LOSS_CNY = 10**16


def report_accident(session: Session, applied: Applied) -> None:
    ent = _enterprise(session, applied)
    data = applied.data
    for field, limit in (
        ("deaths", MAX_COUNT),
        ("serious_injuries", MAX_COUNT),
        ("direct_loss_cny", MAX_LOSS_CNY),
    ):
        if float(data[field]) >= limit:
            raise Unprocessable(
                "implausible_figure",
                f"{field} {data[field]} is beyond any accident report (limit {limit})",
                pointer=f"/data/{field}",
            )
    computed = classify_accident(
        int(data["deaths"]), int(data["serious_injuries"]), float(data["direct_loss_cny"])
    )
    if computed.value != data["accident_class"]:
        raise Unprocessable(
            "accident_class_mismatch",
            f"an accident with {data['deaths']} deaths, {data['serious_injuries']} serious "
            f"injuries and a loss of {data['direct_loss_cny']} CNY is {computed.value} under "
            f"State Council Order 493, not {data['accident_class']}",
            pointer="/data/accident_class",
        )
    if session.get(Accident, (ent.uscc, data["accident_id"])) is not None:
        raise Unprocessable(
            "invalid_transition", f"accident {data['accident_id']} was already reported"
        )
    _stored(session, ent)
    session.add(
        Accident(
            uscc=ent.uscc,
            accident_id=data["accident_id"],
            occurred_on=dt.date.fromisoformat(data["occurred_on"]),
            accident_class=computed.value,
            deaths=int(data["deaths"]),
            serious_injuries=int(data["serious_injuries"]),
            direct_loss_cny=Decimal(str(data["direct_loss_cny"])),
            message_id=str(applied.envelope["id"]).lower(),
        )
    )
    _touch(ent, applied)


def add_listing(session: Session, applied: Applied) -> None:
    ent = _enterprise(session, applied)
    data = applied.data
    if session.get(Listing, (ent.uscc, data["listing_id"])) is not None:
        raise Unprocessable("invalid_transition", f"listing {data['listing_id']} already exists")
    term_start = dt.date.fromisoformat(data["term_start"])
    try:
        check_listing_added(data, _policy(ent.region_code, term_start))
    except ListingRuleError as exc:
        raise Unprocessable("list_term_invalid", exc.message) from exc
    _stored(session, ent)
    session.add(
        Listing(
            uscc=ent.uscc,
            listing_id=data["listing_id"],
            list_type=data["list_type"],
            deciding_agency=data["deciding_agency"],
            term_start=term_start,
            term_end=dt.date.fromisoformat(data["term_end"]),
            status="active",
            data=dict(data),
            message_id=str(applied.envelope["id"]).lower(),
        )
    )
    _touch(ent, applied)


def remove_listing(session: Session, applied: Applied) -> None:
    ent = _enterprise(session, applied)
    listing = session.get(Listing, (ent.uscc, applied.data["listing_id"]))
    if listing is None:
        raise Unprocessable(
            "unknown_reference",
            f"no listing {applied.data['listing_id']} exists for {ent.uscc}",
            pointer="/data/listing_id",
        )
    if listing.status != "active":
        raise Unprocessable(
            "invalid_transition", f"listing {listing.listing_id} was already removed"
        )
    removed_on = dt.date.fromisoformat(applied.data["removed_on"])
    try:
        check_listing_removed(listing.data, applied.data, _policy(ent.region_code, removed_on))
    except ListingRuleError as exc:
        raise Unprocessable("list_term_invalid", exc.message) from exc
    listing.status, listing.removed_on = "removed", removed_on
    _touch(ent, applied)


# What a measure can answer: a decision about an enterprise's standing. Not a registration,
# a self-assessment (the enterprise's own) or another agency's feedback.
MEASURE_DECISIONS = frozenset(MESSAGE_TYPES) - {
    "enterprise.registered",
    "self_assessment.published",
    "measure.applied",
}
_DECISION = select(LogEntry.subject, LogEntry.type, LogEntry.issued_at).where(
    LogEntry.message_id == bindparam("id"), LogEntry.kind == "message"
)


def record_measure(session: Session, applied: Applied) -> None:
    """Feedback (domain.md §5, 发起—响应—反馈): the measure must be one of the catalog in force
    that the reporting agency's role applies, answer a decision about this enterprise, and
    have taken effect, on or after the decision's day and by the day it is reported. The same
    measure reported twice for one decision by one agency on the same day is refused."""
    decision_id = str(applied.data["decision_message_id"]).lower()
    decision = applied.batch_messages.get(decision_id)
    if decision is None:
        row = session.connection().execute(_DECISION, {"id": decision_id}).first()
        if row is None:
            raise Unprocessable(
                "unknown_reference",
                f"no published decision has id {decision_id}",
                pointer="/data/decision_message_id",
            )
        decision = BatchMessage(row[0], row[1], row[2])
    if decision.type not in MEASURE_DECISIONS:
        raise Unprocessable(
            "rule_violation",
            f"message {decision_id} is a {decision.type}, not a decision a measure answers "
            f"({', '.join(sorted(MEASURE_DECISIONS))})",
            pointer="/data/decision_message_id",
        )
    if decision.subject != applied.subject:
        raise Unprocessable(
            "rule_violation",
            f"decision {decision_id} is about {decision.subject}, not {applied.subject}",
            pointer="/subject",
        )
    issuer, code = str(applied.envelope["issuer"]), str(applied.data["measure_code"])
    _check_measure_code(session, issuer, code)
    applied_on = dt.date.fromisoformat(applied.data["applied_on"])
    # Dates are the agencies' local dates (UTC+8), a day ahead of UTC at most: compared with
    # UTC days, a measure applied on the decision's local day is never refused.
    if applied_on < decision.issued_at.astimezone(dt.UTC).date():
        raise Unprocessable(
            "rule_violation",
            f"applied_on {applied_on} is before the decision it answers "
            f"(issued {decision.issued_at.date()})",
            pointer="/data/applied_on",
        )
    if applied_on > applied.now.date() + dt.timedelta(days=1):
        raise Unprocessable(
            "rule_violation",
            f"applied_on {applied_on} is in the future: report a measure once it has taken effect",
            pointer="/data/applied_on",
        )
    repeated = session.scalar(
        select(MeasureApplied.message_id).where(
            MeasureApplied.decision_message_id == decision_id,
            MeasureApplied.agency_id == issuer,
            MeasureApplied.measure_code == code,
            MeasureApplied.applied_on == applied_on,
        )
    )
    if repeated is not None:
        raise Unprocessable(
            "duplicate_report",
            f"{issuer} already reported {code} applied on {applied_on} for decision "
            f"{decision_id} (message {repeated})",
            pointer="/data/measure_code",
        )
    session.add(
        MeasureApplied(
            decision_message_id=decision_id,
            agency_id=issuer,
            uscc=applied.subject,
            measure_code=code,
            applied_on=applied_on,
            message_id=str(applied.envelope["id"]).lower(),
        )
    )


def _check_measure_code(session: Session, issuer: str, code: str) -> None:
    """`code` names a measure of the catalog in force, for a role the issuer holds."""
    catalog = active_catalog(session) or shipped_catalog()
    roles = {measure.role for measure in catalog if measure.code == code}
    if not roles:
        raise Unprocessable(
            "unknown_measure",
            f"the measure catalog in force has no measure {code!r} (GET /v1/measures/catalog)",
            pointer="/data/measure_code",
        )
    held = session.scalar(select(Agency.roles).where(Agency.id == issuer)) or []
    if not roles & set(held):
        raise Unprocessable(
            "rule_violation",
            f"{code} is a measure of the {', '.join(sorted(roles))} role; {issuer} holds "
            f"{', '.join(sorted(held)) or 'no role'}",
            pointer="/data/measure_code",
        )


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
