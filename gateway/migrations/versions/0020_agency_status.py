"""agencies: a status (active | disabled) with when and why it last changed; access records:
the client address, and a count with the last time for refusals folded into one record

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-09
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("agencies") as table:
        table.add_column(
            sa.Column("status", sa.String(length=16), nullable=False, server_default="active")
        )
        table.add_column(sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=True))
        table.add_column(sa.Column("status_reason", sa.String(length=500), nullable=True))
    with op.batch_alter_table("access_records") as table:
        table.add_column(sa.Column("address", sa.String(length=64), nullable=True))
        table.add_column(sa.Column("count", sa.Integer(), nullable=False, server_default="1"))
        table.add_column(sa.Column("last_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("access_records") as table:
        table.drop_column("last_at")
        table.drop_column("count")
        table.drop_column("address")
    with op.batch_alter_table("agencies") as table:
        table.drop_column("status_reason")
        table.drop_column("status_changed_at")
        table.drop_column("status")
