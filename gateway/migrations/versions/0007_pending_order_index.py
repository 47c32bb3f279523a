"""deliveries: partial index for the per-enterprise ordering probe of the claim

The claim looks for the earliest pending delivery per (subscription, enterprise); only
pending rows matter to it, so the index holds only those and stays small as deliveries
complete.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.drop_index("ix_deliveries_order", table_name="deliveries")
    op.create_index(
        "ix_deliveries_pending_order",
        "deliveries",
        ["subscription_id", "uscc", "log_index"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_pending_order", table_name="deliveries")
    op.create_index("ix_deliveries_order", "deliveries", ["subscription_id", "uscc", "log_index"])
