"""What the console's pages show, read through the feature services in one transaction:
the operator's overview, and the small shapes the templates iterate over."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from contracts.dates import LOCAL, local_date
from gateway.delivery import health
from gateway.measures.feedback import feedback_owed
from gateway.models import Checkpoint, Cosignature, LogEntry, LogHead
from gateway.observability.metrics import outbox_lag_seconds
from gateway.settings import Settings

FEEDBACK_DAYS = 5  # the working days the API's feedback routes default to
STATUSES = ("新增", "达标", "未达标")  # contracts.ledgers: NEW, ACHIEVED, NOT_ACHIEVED
DELIVERY_STATUSES = ("pending", "delivered", "dead", "parked", "skipped")


def start_of_day(day: dt.date) -> dt.datetime:
    """Midnight in Fujian starting `day`, in UTC."""
    return dt.datetime.combine(day, dt.time(), LOCAL).astimezone(dt.UTC)


def overview(session: Session, now: dt.datetime, settings: Settings) -> dict[str, Any]:
    """The operator's overview: the log and its checkpoints, today's publishes, deliveries,
    failing endpoints, stuck deliveries, the outbox lag and the feedback owed."""
    today = local_date(now)
    size = session.scalar(select(LogHead.size)) or 0
    checkpoint = session.scalars(
        select(Checkpoint).order_by(Checkpoint.size.desc()).limit(1)
    ).first()
    cosigned = session.scalar(select(func.max(Cosignature.signed_at)))
    published = session.execute(
        select(LogEntry.type, func.count())
        .where(LogEntry.accepted_at >= start_of_day(today), LogEntry.kind == "message")
        .group_by(LogEntry.type)
        .order_by(LogEntry.type)
    ).all()
    subscriptions = health.subscription_health(session, now)
    counts: dict[str, int] = {}  # by status: the subscriptions' own counts added up
    for sub in subscriptions:
        for status, n in sub.counts.items():
            counts[status] = counts.get(status, 0) + n
    owed = feedback_owed(session, today, FEEDBACK_DAYS, overdue_only=True, limit=1)
    return {
        "log_size": size,
        "checkpoint": checkpoint,
        "checkpoint_age": (now - checkpoint.created_at).total_seconds() if checkpoint else None,
        "cosignature_age": (now - cosigned).total_seconds() if cosigned else None,
        "witnesses": len(settings.witnesses.endpoints),
        "published": [(t, n) for t, n in published],
        "published_total": sum(n for _, n in published),
        "deliveries": [(s, counts.get(s, 0)) for s in DELIVERY_STATUSES],
        "failing": [h for h in subscriptions if h.failing],
        "dead": counts.get("dead", 0),
        "parked": counts.get("parked", 0),
        "outbox_lag": outbox_lag_seconds(session, now),
        "feedback_overdue": sum(a["overdue"] for a in owed["agencies"]),
        "feedback_awaiting": sum(a["awaiting"] for a in owed["agencies"]),
    }


def status_table(rows: list[tuple[str, str, int]]) -> list[dict[str, Any]]:
    """A ledger summary's (key, status, count) rows as one row per key with each status's
    count and the total, for a table and the chart beside it."""
    by_key: dict[str, dict[str, int]] = {}
    for key, status, n in rows:
        by_key.setdefault(key, {})[status] = n
    largest = max((sum(c.values()) for c in by_key.values()), default=0) or 1
    table = []
    for key, counts in sorted(by_key.items()):
        total = sum(counts.values())
        bars, x = [], 0.0
        for status in STATUSES:
            width = 100.0 * counts.get(status, 0) / largest
            bars.append({"status": status, "x": round(x, 2), "width": round(width, 2)})
            x += width
        table.append(
            {
                "key": key,
                "counts": [counts.get(s, 0) for s in STATUSES],
                "total": total,
                "bars": bars,
            }
        )
    return table
