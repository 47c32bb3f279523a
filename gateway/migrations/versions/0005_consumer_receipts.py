"""consumer receipts: receivers' signed acknowledgements

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "consumer_receipts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "delivery_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("agency_id", sa.String(length=64), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("jws", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_consumer_receipts_delivery_id_deliveries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consumer_receipts")),
    )
    op.create_index(
        op.f("ix_consumer_receipts_message_id"), "consumer_receipts", ["message_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_consumer_receipts_message_id"), table_name="consumer_receipts")
    op.drop_table("consumer_receipts")
