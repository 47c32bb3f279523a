"""delivery queue heads: one row per (subscription, enterprise) queue with anything pending,
dead or parked, pointing at its earliest such delivery, with when it is due

The claim grouped every pending delivery by queue to find the heads (659 ms for one claim at
100,000 pending on PostgreSQL); it now walks these rows by due time (gateway.delivery.heads).
The heads of the deliveries already queued are filled here, as the code keeps them: no due
time for a dead or parked head, nor for one whose subscription cannot be pushed to now.
A partial index finds a queue's first dead or parked delivery when its head moves.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STUCK = "status IN ('dead', 'parked')"

BACKFILL = """
INSERT INTO delivery_heads (subscription_id, uscc, log_index, due_at)
SELECT d.subscription_id, d.uscc, d.log_index,
       CASE WHEN d.status = 'pending' AND s.status = 'active' AND s.url IS NOT NULL
            THEN CASE WHEN d.claimed_until IS NOT NULL AND d.claimed_until > d.next_attempt_at
                      THEN d.claimed_until ELSE d.next_attempt_at END
       END
FROM deliveries AS d
JOIN (SELECT subscription_id, uscc, min(log_index) AS first FROM deliveries
      WHERE status IN ('pending', 'dead', 'parked') GROUP BY subscription_id, uscc) AS f
  ON f.subscription_id = d.subscription_id AND f.uscc = d.uscc AND f.first = d.log_index
JOIN subscriptions AS s ON s.id = d.subscription_id
"""


def upgrade() -> None:
    op.create_table(
        "delivery_heads",
        sa.Column("subscription_id", sa.String(length=36), nullable=False),
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name="fk_delivery_heads_subscription_id_subscriptions",
        ),
        sa.PrimaryKeyConstraint("subscription_id", "uscc", name="pk_delivery_heads"),
    )
    op.create_index("ix_delivery_heads_due", "delivery_heads", ["due_at", "log_index"])
    op.create_index(
        "ix_deliveries_stuck_order",
        "deliveries",
        ["subscription_id", "uscc", "log_index"],
        postgresql_where=sa.text(STUCK),
        sqlite_where=sa.text(STUCK),
    )
    op.execute(BACKFILL)


def downgrade() -> None:
    op.drop_index("ix_deliveries_stuck_order", table_name="deliveries")
    op.drop_index("ix_delivery_heads_due", table_name="delivery_heads")
    op.drop_table("delivery_heads")
