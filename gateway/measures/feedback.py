"""Initiate → respond → feed back (发起—响应—反馈): for one decision, which subscribed agencies
reported the measure they applied, when, and which are overdue.

The deadline counts working days (Monday to Friday) after the decision was accepted; public
holidays are not modelled. An agency owes feedback on a decision once it was sent the decision
(a delivery of it to one of its subscriptions), until it reports a measure applied.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from contracts.dates import LOCAL, local_date
from contracts.registry import MESSAGE_TYPES
from gateway.errors import NotFound
from gateway.models import Delivery, LogEntry, MeasureApplied, Subscription

# What a measure can answer: a decision about an enterprise's standing. Not the register's
# own entries (registration, change, closure), a self-assessment (the enterprise's own) or
# another agency's feedback.
MEASURE_DECISIONS = frozenset(MESSAGE_TYPES) - {
    "enterprise.registered",
    "enterprise.updated",
    "enterprise.closed",
    "self_assessment.published",
    "measure.applied",
}


def add_working_days(start: dt.date, days: int) -> dt.date:
    current = start
    while days > 0:
        current += dt.timedelta(days=1)
        if current.weekday() < 5:
            days -= 1
    return current


def feedback_for(
    session: Session, decision_id: str, today: dt.date, deadline_working_days: int
) -> dict[str, Any]:
    decision = session.scalar(
        select(LogEntry).where(
            LogEntry.message_id == decision_id.lower(), LogEntry.kind == "message"
        )
    )
    if decision is None:
        raise NotFound("not_found", f"no message {decision_id} is in the log")
    deadline = add_working_days(local_date(decision.accepted_at), deadline_working_days)
    deliveries = session.execute(
        select(Subscription.agency_id, Delivery.status, Delivery.delivered_at)
        .join(Subscription, Subscription.id == Delivery.subscription_id)
        .where(Delivery.message_id == decision.message_id)
    ).all()
    reported = list(
        session.scalars(
            select(MeasureApplied)
            .where(MeasureApplied.decision_message_id == decision.message_id)
            .order_by(MeasureApplied.id)
        )
    )
    agencies: dict[str, dict[str, Any]] = {}
    for agency_id, status, delivered_at in deliveries:
        entry = agencies.setdefault(agency_id, {"agency_id": agency_id, "delivered_at": None})
        if status == "delivered" and delivered_at is not None:
            entry["delivered_at"] = delivered_at.isoformat()
    for measure in reported:
        entry = agencies.setdefault(
            measure.agency_id, {"agency_id": measure.agency_id, "delivered_at": None}
        )
        entry.setdefault("measures", []).append(
            {
                "measure_code": measure.measure_code,
                "applied_on": measure.applied_on.isoformat(),
                "message_id": measure.message_id,
            }
        )
    for entry in agencies.values():
        entry.setdefault("measures", [])
        if entry["measures"]:
            entry["state"] = "applied"
        else:
            entry["state"] = "overdue" if today > deadline else "awaiting"
    return {
        "decision": {
            "message_id": decision.message_id,
            "type": decision.type,
            "issuer": decision.issuer,
            "subject": decision.subject,
            "accepted_at": decision.accepted_at.isoformat(),
        },
        "deadline": deadline.isoformat(),
        "agencies": sorted(agencies.values(), key=lambda e: e["agency_id"]),
        "overdue": sorted(e["agency_id"] for e in agencies.values() if e["state"] == "overdue"),
    }


def overdue_before(today: dt.date, deadline_working_days: int) -> dt.datetime:
    """The instant before which an accepted decision's feedback is overdue on `today`: a
    decision accepted on day d is overdue once today is past d + the working days, so those
    accepted up to the last such d (in Fujian) are."""
    day = today
    while add_working_days(day, deadline_working_days) >= today:
        day -= dt.timedelta(days=1)
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), LOCAL).astimezone(dt.UTC)


def feedback_owed(
    session: Session,
    today: dt.date,
    deadline_working_days: int,
    *,
    agency_id: str | None = None,
    overdue_only: bool = False,
    limit: int = 500,
) -> dict[str, Any]:
    """Across all decisions: per agency how many it owes (awaiting, overdue) and has answered,
    and the owed (decision, agency) pairs themselves, oldest first, at most `limit` — what
    `feedback_for` says of one decision, for every decision sent to an agency."""
    cutoff = overdue_before(today, deadline_working_days)
    # From the decisions (by type) to their deliveries (by message id), never the other way:
    # the deliveries of every other message are never read.
    sent = (
        select(LogEntry.message_id, Subscription.agency_id, LogEntry.idx.label("idx"))
        .select_from(LogEntry)
        .join(Delivery, Delivery.message_id == LogEntry.message_id)
        .join(Subscription, Subscription.id == Delivery.subscription_id)
        .where(LogEntry.type.in_(MEASURE_DECISIONS), LogEntry.kind == "message")
        .group_by(LogEntry.message_id, Subscription.agency_id, LogEntry.idx)
    )
    if agency_id:
        sent = sent.where(Subscription.agency_id == agency_id)
    pairs = sent.subquery()
    answered = (
        select(MeasureApplied.decision_message_id, MeasureApplied.agency_id)
        .group_by(MeasureApplied.decision_message_id, MeasureApplied.agency_id)
        .subquery()
    )
    owed = answered.c.agency_id.is_(None)
    late = LogEntry.accepted_at < cutoff
    base = (
        select(pairs.c.agency_id)
        .join(LogEntry, LogEntry.idx == pairs.c.idx)
        .outerjoin(
            answered,
            and_(
                answered.c.decision_message_id == pairs.c.message_id,
                answered.c.agency_id == pairs.c.agency_id,
            ),
        )
    )
    per_agency: dict[str, dict[str, int]] = {}
    for agency, is_owed, is_late, n in session.execute(
        base.add_columns(owed.label("owed"), late.label("late"), func.count()).group_by(
            pairs.c.agency_id, owed, late
        )
    ):
        counts = per_agency.setdefault(agency, {"awaiting": 0, "overdue": 0, "applied": 0})
        key = ("overdue" if is_late else "awaiting") if is_owed else "applied"
        counts[key] += n
    rows = session.execute(
        base.add_columns(
            LogEntry.message_id,
            LogEntry.type,
            LogEntry.subject,
            LogEntry.issuer,
            LogEntry.accepted_at,
        )
        .where(owed, late if overdue_only else LogEntry.accepted_at.is_not(None))
        .order_by(LogEntry.idx, pairs.c.agency_id)
        .limit(limit)
    )
    items = [
        {
            "agency_id": agency,
            "message_id": message_id,
            "type": message_type,
            "subject": subject,
            "issuer": issuer,
            "accepted_at": accepted.isoformat(),
            "deadline": add_working_days(local_date(accepted), deadline_working_days).isoformat(),
            "state": "overdue" if accepted < cutoff else "awaiting",
        }
        for agency, message_id, message_type, subject, issuer, accepted in rows
    ]
    return {
        "today": today.isoformat(),
        "deadline_working_days": deadline_working_days,
        "agencies": [{"agency_id": a, **c} for a, c in sorted(per_agency.items())],
        "items": items,
    }
