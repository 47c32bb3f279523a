"""measure.applied: an implementing agency's report of the measure it applied to a decision
(domain.md §5, 发起—响应—反馈), checked against the catalog, the decision and the calendar."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from contracts.catalog import shipped_document
from contracts.dates import local_date
from gateway.errors import Unprocessable
from gateway.ledger.state import Applied, BatchMessage
from gateway.measures.catalog import active_catalog
from gateway.measures.feedback import MEASURE_DECISIONS
from gateway.models import Agency, LogEntry, MeasureApplied

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
        decision = BatchMessage(row[0], row[1], row[2], {})
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
    # applied_on is a day in Fujian (UTC+8): compared with the local days of the decision's
    # issue and of this report's arrival
    decided = local_date(decision.issued_at)
    if applied_on < decided:
        raise Unprocessable(
            "rule_violation",
            f"applied_on {applied_on} is before the decision it answers (issued {decided}, UTC+8)",
            pointer="/data/applied_on",
        )
    if applied_on > local_date(applied.now):
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
    catalog = active_catalog(session) or shipped_document()
    roles = {measure.role for measure in catalog.measures if measure.code == code}
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
