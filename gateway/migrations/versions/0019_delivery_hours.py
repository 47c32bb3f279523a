"""delivery attempts counted per hour, and the indexes the console's overviews read

The operator's overview and the deliveries page read each subscription's last 24 hours: with
every attempt a row, that was a scan of every attempt of the day joined to its delivery (1.2 s
at 4 × 10^5 attempts, bench/console.py). The workers now add each round's attempts to an
hourly row per subscription; this migration fills those rows from the attempts of the last
25 hours (older ones are outside any window read). The feedback owed starts from the decisions
(an index on the log entries' type) and reaches their deliveries by message id; the delivery
counts per subscription and status come from an index alone.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPERATOR_ACTIONS = ("replay", "skipped")  # attempt rows that record an operator, not a POST


def upgrade() -> None:
    op.create_table(
        "delivery_hours",
        sa.Column("subscription_id", sa.String(length=36), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("succeeded", sa.Integer(), nullable=False),
        sa.Column("latency_ms_sum", sa.Float(), nullable=False),
        sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name="fk_delivery_hours_subscription_id_subscriptions",
        ),
        sa.PrimaryKeyConstraint("subscription_id", "hour", name="pk_delivery_hours"),
    )
    op.create_index("ix_log_entries_type", "log_entries", ["type"])
    op.create_index("ix_deliveries_message_id", "deliveries", ["message_id"])
    op.create_index(
        "ix_deliveries_subscription_status", "deliveries", ["subscription_id", "status"]
    )
    _count_recent_attempts()


def _aware(value: dt.datetime | str) -> dt.datetime:
    if isinstance(value, str):  # SQLite hands back text
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _count_recent_attempts() -> None:
    bind = op.get_bind()
    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=25)
    attempts = sa.table(
        "delivery_attempts",
        sa.column("delivery_id"),
        sa.column("at"),
        sa.column("status_code"),
        sa.column("latency_ms"),
        sa.column("error_class"),
        sa.column("response_excerpt"),
    )
    deliveries = sa.table("deliveries", sa.column("id"), sa.column("subscription_id"))
    stamp = since if bind.dialect.name != "sqlite" else since.replace(tzinfo=None)
    rows = bind.execute(
        sa.select(
            deliveries.c.subscription_id,
            attempts.c.at,
            attempts.c.status_code,
            attempts.c.latency_ms,
            attempts.c.error_class,
            attempts.c.response_excerpt,
        )
        .join(deliveries, deliveries.c.id == attempts.c.delivery_id)
        .where(
            attempts.c.at >= stamp,
            sa.or_(
                attempts.c.error_class.is_(None), attempts.c.error_class.not_in(OPERATOR_ACTIONS)
            ),
        )
        .order_by(attempts.c.at)
    )
    hours: dict[tuple[str, dt.datetime], _Hour] = {}
    for sub, at, status, latency, error_class, excerpt in rows:
        at = _aware(at)
        row = hours.setdefault((sub, at.replace(minute=0, second=0, microsecond=0)), _Hour())
        row.attempts += 1
        row.latency_ms_sum += float(latency or 0)
        if status is not None and 200 <= status < 300:
            row.succeeded += 1
        else:
            text = error_class or f"http_{status}"
            row.last_failed_at = at
            row.last_error = (text + (": " + excerpt.strip()[:120] if excerpt else ""))[:500]
    naive = bind.dialect.name == "sqlite"

    def stored(value: dt.datetime | None) -> dt.datetime | None:
        return value.replace(tzinfo=None) if value is not None and naive else value

    table = sa.table(
        "delivery_hours",
        *(sa.column(name) for name in ("subscription_id", "hour", *_Hour.__annotations__)),
    )
    if hours:
        op.bulk_insert(
            table,
            [
                {
                    "subscription_id": sub,
                    "hour": stored(hour),
                    "attempts": row.attempts,
                    "succeeded": row.succeeded,
                    "latency_ms_sum": row.latency_ms_sum,
                    "last_failed_at": stored(row.last_failed_at),
                    "last_error": row.last_error,
                }
                for (sub, hour), row in hours.items()
            ],
        )


@dataclass
class _Hour:
    attempts: int = 0
    succeeded: int = 0
    latency_ms_sum: float = 0.0
    last_failed_at: dt.datetime | None = None
    last_error: str | None = None


def downgrade() -> None:
    op.drop_index("ix_deliveries_subscription_status", table_name="deliveries")
    op.drop_index("ix_deliveries_message_id", table_name="deliveries")
    op.drop_index("ix_log_entries_type", table_name="log_entries")
    op.drop_table("delivery_hours")
