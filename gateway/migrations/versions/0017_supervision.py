"""inspections and random draws (classified supervision and dynamic management, 四（一）（二）)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inspections",
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("inspection_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("inspected_on", sa.Date(), nullable=False),
        sa.Column("draw_id", sa.String(length=64), nullable=True),
        sa.Column("inspectors", sa.JSON(), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["uscc"], ["enterprises.uscc"], name="fk_inspections_uscc_enterprises"
        ),
        sa.PrimaryKeyConstraint("uscc", "inspection_id", name="pk_inspections"),
    )
    op.create_index("ix_inspections_inspected_on", "inspections", ["inspected_on"])
    op.create_table(
        "draws",
        sa.Column("draw_id", sa.String(length=64), nullable=False),
        sa.Column("requester", sa.String(length=64), nullable=False),
        sa.Column("request_index", sa.BigInteger(), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("candidates", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seed_checkpoint_size", sa.BigInteger(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("result_index", sa.BigInteger(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("draw_id", name="pk_draws"),
    )


def downgrade() -> None:
    op.drop_table("draws")
    op.drop_index("ix_inspections_inspected_on", table_name="inspections")
    op.drop_table("inspections")
