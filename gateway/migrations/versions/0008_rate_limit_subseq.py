"""subscriptions: rate limit (shared token bucket) and a per-subscription delivery counter

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("subscriptions") as table:
        table.add_column(sa.Column("rate_limit", sa.Float(), nullable=True))
        table.add_column(sa.Column("rate_tokens", sa.Float(), nullable=True))
        table.add_column(sa.Column("rate_tokens_at", sa.DateTime(timezone=True), nullable=True))
        table.add_column(sa.Column("queued", sa.BigInteger(), nullable=False, server_default="0"))
    with op.batch_alter_table("deliveries") as table:
        table.add_column(sa.Column("subseq", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as table:
        table.drop_column("subseq")
    with op.batch_alter_table("subscriptions") as table:
        table.drop_column("queued")
        table.drop_column("rate_tokens_at")
        table.drop_column("rate_tokens")
        table.drop_column("rate_limit")
