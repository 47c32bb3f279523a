"""subscriptions: HMAC secret rotation overlap and a shared circuit breaker

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("subscriptions") as table:
        table.add_column(sa.Column("previous_hmac_secret", sa.String(length=100), nullable=True))
        table.add_column(
            sa.Column("previous_valid_until", sa.DateTime(timezone=True), nullable=True)
        )
        table.add_column(
            sa.Column("consecutive_failures", sa.Integer(), nullable=False, server_default="0")
        )
        table.add_column(sa.Column("breaker_open_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subscriptions") as table:
        table.drop_column("breaker_open_until")
        table.drop_column("consecutive_failures")
        table.drop_column("previous_valid_until")
        table.drop_column("previous_hmac_secret")
