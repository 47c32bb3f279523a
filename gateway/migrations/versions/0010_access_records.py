"""access records: every query, refused ones included

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "access_records",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("agency_id", sa.String(length=64), nullable=True),
        sa.Column("uscc", sa.String(length=18), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("purpose", sa.String(length=200), nullable=True),
        sa.Column("result", sa.String(length=48), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_records")),
    )
    op.create_index("ix_access_records_uscc_at", "access_records", ["uscc", "at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_access_records_uscc_at", table_name="access_records")
    op.drop_table("access_records")
