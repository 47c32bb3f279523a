"""console sessions (issue 23 §2) and indexes on when log entries were
accepted and attempts made

A console session is opened by a one-time login link: the link's id is kept with the session
it opened (unique), so a link opens one session only, even after that session has ended. The
indexes serve "publishes today", replays by time window and the last 24 hours' delivery health.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("agency_id", sa.String(length=64), nullable=False),
        sa.Column("link_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name="fk_console_sessions_agency_id_agencies"
        ),
        sa.PrimaryKeyConstraint("token_hash", name="pk_console_sessions"),
        sa.UniqueConstraint("link_id", name="uq_console_sessions_link_id"),
    )
    op.create_index("ix_log_entries_accepted_at", "log_entries", ["accepted_at"])
    op.create_index("ix_delivery_attempts_at", "delivery_attempts", ["at"])


def downgrade() -> None:
    op.drop_index("ix_delivery_attempts_at", table_name="delivery_attempts")
    op.drop_index("ix_log_entries_accepted_at", table_name="log_entries")
    op.drop_table("console_sessions")
