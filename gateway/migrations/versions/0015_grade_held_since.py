"""enterprises: since when the grade has been held without a break

A downgrade or revocation must be decided while the grade it changes was held; a renewal
moves the recorded validity (valid_from) to its own start, so the start of the unbroken
holding (its award's valid_from) is kept beside it. Grades held now are backfilled from the
log: each enterprise's grade messages folded in log order (an award starts the holding, a
revocation or expiry ends it), read once here.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29
"""

import base64
import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here rather than imported from gateway.models: the migration must keep meaning what
# it meant when written.
LOG_ENTRIES = sa.table(
    "log_entries",
    sa.column("idx", sa.BigInteger()),
    sa.column("kind", sa.String()),
    sa.column("type", sa.String()),
    sa.column("subject", sa.String()),
    sa.column("jws", sa.LargeBinary()),
)
ENTERPRISES = sa.table(
    "enterprises",
    sa.column("uscc", sa.String()),
    sa.column("grade_status", sa.String()),
    sa.column("grade_held_since", sa.Date()),
)
ENDS = ("grade.revoked", "grade.expired")


def upgrade() -> None:
    op.add_column("enterprises", sa.Column("grade_held_since", sa.Date(), nullable=True))
    connection = op.get_bind()
    held = {
        uscc
        for (uscc,) in connection.execute(
            sa.select(ENTERPRISES.c.uscc).where(ENTERPRISES.c.grade_status == "active")
        )
    }
    if not held:
        return
    since: dict[str, str | None] = {}
    events = connection.execute(
        sa.select(LOG_ENTRIES.c.subject, LOG_ENTRIES.c.type, LOG_ENTRIES.c.jws)
        .where(
            LOG_ENTRIES.c.kind == "message",
            LOG_ENTRIES.c.type.in_(("grade.awarded", *ENDS)),
        )
        .order_by(LOG_ENTRIES.c.idx)
    )
    for subject, message_type, token in events:
        if subject not in held:
            continue
        if message_type == "grade.awarded":
            since[subject] = str(_payload(bytes(token))["data"]["valid_from"])
        else:
            since[subject] = None
    rows = [{"u": uscc, "s": _date(day)} for uscc, day in since.items() if day is not None]
    if rows:
        connection.execute(
            sa.update(ENTERPRISES)
            .where(ENTERPRISES.c.uscc == sa.bindparam("u"))
            .values(grade_held_since=sa.bindparam("s")),
            rows,
        )


def downgrade() -> None:
    with op.batch_alter_table("enterprises") as table:
        table.drop_column("grade_held_since")


def _date(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def _payload(token: bytes) -> dict[str, Any]:
    """The claims of a compact JWS (RFC 7515 §7.1): its middle segment, base64url without
    padding. The publishers signed these messages; the gateway verified them on arrival."""
    segment = token.split(b".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))
    )
    return claims
