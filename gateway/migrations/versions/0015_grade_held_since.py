"""enterprises: since when the grade has been held without a break

A downgrade or revocation must be decided while the grade it changes was held; a renewal
moves the recorded validity (valid_from) to its own start, so the start of the unbroken
holding (the award's valid_from) is kept beside it. Grades held now are backfilled with
their current valid_from, the best the table knows: a grade renewed before this migration
counts from its renewal.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("enterprises", sa.Column("grade_held_since", sa.Date(), nullable=True))
    op.execute(
        "UPDATE enterprises SET grade_held_since = grade_valid_from WHERE grade_status = 'active'"
    )


def downgrade() -> None:
    with op.batch_alter_table("enterprises") as table:
        table.drop_column("grade_held_since")
