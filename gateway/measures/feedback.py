"""Initiate → respond → feed back (发起—响应—反馈): for one decision, which subscribed agencies
reported the measure they applied, when, and which are overdue.

The deadline counts working days (Monday to Friday) after the decision was accepted; public
holidays are not modelled.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts.dates import local_date
from gateway.errors import NotFound
from gateway.models import Delivery, LogEntry, MeasureApplied, Subscription


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
