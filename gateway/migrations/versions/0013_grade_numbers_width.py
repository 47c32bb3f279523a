"""enterprises: certificate and announcement numbers as wide as their contracts allow

The grade.awarded and grade.renewed contracts admit numbers of up to 100 characters; the
columns held 64, so on PostgreSQL a longer (valid) number failed the publish that carried it.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("certificate_no", "announcement_no")


def upgrade() -> None:
    with op.batch_alter_table("enterprises") as table:
        for name in COLUMNS:
            table.alter_column(
                name,
                existing_type=sa.String(length=64),
                type_=sa.String(length=100),
                existing_nullable=True,
            )


def downgrade() -> None:
    longer = op.get_bind().scalar(
        sa.text(
            "SELECT count(*) FROM enterprises"
            " WHERE length(certificate_no) > 64 OR length(announcement_no) > 64"
        )
    )
    if longer:
        raise RuntimeError(
            f"{longer} enterprises hold a certificate or announcement number longer than 64 "
            "characters, which the narrower columns cannot keep; not downgraded"
        )
    with op.batch_alter_table("enterprises") as table:
        for name in COLUMNS:
            table.alter_column(
                name,
                existing_type=sa.String(length=100),
                type_=sa.String(length=64),
                existing_nullable=True,
            )
