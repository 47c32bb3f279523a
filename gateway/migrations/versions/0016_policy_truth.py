"""enterprises: legal representative, address, how long 新增 lasts, closure; rectifications:
their kind and re-check; listings: how they were removed

domain.md §3-4 as corrected: a required enterprise without a grade is 新增 only for a while
(new_until: registration + 12 months, the shipped policy's new_status_months, for the rows
already there); enterprises change and close (定期核实); a rectification order may be of
degraded safety conditions or a system not running, and its re-check passes or fails; a
removal keeps its reason and its credit-repair facts. Existing orders are hazards (the only
kind before), existing removals' reasons are read back from their listing.removed entries.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

import base64
import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here rather than imported from gateway.models: the migration must keep meaning what
# it meant when written.
ENTERPRISES = sa.table(
    "enterprises",
    sa.column("uscc", sa.String()),
    sa.column("registered_on", sa.Date()),
    sa.column("new_until", sa.Date()),
    sa.column("grade_awarded_by", sa.String()),
    sa.column("grade_decision", sa.JSON()),
)
GRADE_TYPES = (
    "grade.awarded",
    "grade.renewed",
    "grade.downgraded",
    "grade.revoked",
    "grade.expired",
)
DECISION_FIELDS = (
    "announcement_no",
    "announced_on",
    "decision_no",
    "decided_on",
    "reason_code",
    "reapply_after",
    "expired_on",
    "related_message_ids",
)
LISTINGS = sa.table(
    "listings",
    sa.column("uscc", sa.String()),
    sa.column("listing_id", sa.String()),
    sa.column("status", sa.String()),
    sa.column("removal_reason", sa.String()),
    sa.column("removal", sa.JSON()),
)
LOG_ENTRIES = sa.table(
    "log_entries",
    sa.column("idx", sa.BigInteger()),
    sa.column("type", sa.String()),
    sa.column("subject", sa.String()),
    sa.column("issuer", sa.String()),
    sa.column("message_id", sa.String()),
    sa.column("jws", sa.LargeBinary()),
)
NEW_STATUS_MONTHS = 12  # contracts/data/policy.json's nationwide new_status_months


def upgrade() -> None:
    with op.batch_alter_table("enterprises") as table:
        table.add_column(sa.Column("legal_representative", sa.String(100), nullable=True))
        table.add_column(sa.Column("address", sa.String(300), nullable=True))
        table.add_column(sa.Column("new_until", sa.Date(), nullable=True))
        table.add_column(sa.Column("closed_on", sa.Date(), nullable=True))
        table.add_column(sa.Column("closure", sa.String(32), nullable=True))
        table.add_column(sa.Column("grade_awarded_by", sa.String(64), nullable=True))
        table.add_column(sa.Column("grade_decision", sa.JSON(), nullable=True))
    with op.batch_alter_table("rectifications") as table:
        table.add_column(sa.Column("kind", sa.String(32), nullable=False, server_default="hazard"))
        table.alter_column("hazard_level", existing_type=sa.String(16), nullable=True)
        table.add_column(sa.Column("verified_on", sa.Date(), nullable=True))
        table.add_column(sa.Column("verification_message_id", sa.String(36), nullable=True))
    with op.batch_alter_table("rectifications") as table:
        table.alter_column("kind", existing_type=sa.String(32), server_default=None)
    with op.batch_alter_table("listings") as table:
        table.add_column(sa.Column("removal_reason", sa.String(16), nullable=True))
        table.add_column(sa.Column("removal", sa.JSON(), nullable=True))
    backfill(op.get_bind())


def downgrade() -> None:
    with op.batch_alter_table("listings") as table:
        table.drop_column("removal")
        table.drop_column("removal_reason")
    with op.batch_alter_table("rectifications") as table:
        table.drop_column("verification_message_id")
        table.drop_column("verified_on")
        table.drop_column("kind")
    with op.batch_alter_table("enterprises") as table:
        table.drop_column("grade_decision")
        table.drop_column("grade_awarded_by")
        table.drop_column("closure")
        table.drop_column("closed_on")
        table.drop_column("new_until")
        table.drop_column("address")
        table.drop_column("legal_representative")


def _add_months(start: dt.date, months: int) -> dt.date:
    index = start.year * 12 + start.month - 1 + months
    year, month0 = divmod(index, 12)
    for day in (start.day, 30, 29, 28):
        try:
            return dt.date(year, month0 + 1, day)
        except ValueError:
            continue
    raise ValueError(start)


def _payload(token: bytes) -> dict[str, Any]:
    segment = token.split(b".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))
    )
    return decoded


def backfill(connection: sa.Connection) -> None:
    rows = connection.execute(sa.select(ENTERPRISES.c.uscc, ENTERPRISES.c.registered_on))
    for uscc, registered_on in list(rows):
        if isinstance(registered_on, str):
            registered_on = dt.date.fromisoformat(registered_on)
        connection.execute(
            ENTERPRISES.update()
            .where(ENTERPRISES.c.uscc == uscc)
            .values(new_until=_add_months(registered_on, NEW_STATUS_MONTHS))
        )
    # The grade's last decision and its awarding agency, read back from the log in order.
    decisions: dict[str, dict[str, Any]] = {}
    awarded_by: dict[str, str] = {}
    grades = connection.execute(
        sa.select(
            LOG_ENTRIES.c.subject,
            LOG_ENTRIES.c.type,
            LOG_ENTRIES.c.issuer,
            LOG_ENTRIES.c.message_id,
            LOG_ENTRIES.c.jws,
        )
        .where(LOG_ENTRIES.c.type.in_(GRADE_TYPES))
        .order_by(LOG_ENTRIES.c.idx)
    )
    for subject, entry_type, issuer, message_id, token in list(grades):
        data = _payload(bytes(token))["data"]
        facts = {"type": entry_type, "message_id": message_id, "issuer": issuer}
        facts.update({name: data[name] for name in DECISION_FIELDS if name in data})
        decisions[subject] = facts
        if entry_type in ("grade.awarded", "grade.renewed"):
            awarded_by[subject] = issuer
    for subject, facts in decisions.items():
        connection.execute(
            ENTERPRISES.update()
            .where(ENTERPRISES.c.uscc == subject)
            .values(grade_decision=facts, grade_awarded_by=awarded_by.get(subject))
        )
    removals = connection.execute(
        sa.select(
            LOG_ENTRIES.c.idx, LOG_ENTRIES.c.message_id, LOG_ENTRIES.c.subject, LOG_ENTRIES.c.jws
        ).where(LOG_ENTRIES.c.type == "listing.removed")
    )
    for idx, message_id, subject, token in list(removals):
        data = _payload(bytes(token))["data"]
        removal = {"message_id": message_id, "log_index": idx, "data": data}
        connection.execute(
            LISTINGS.update()
            .where(LISTINGS.c.uscc == subject, LISTINGS.c.listing_id == data["listing_id"])
            .values(removal_reason=data["removal_reason"], removal=removal)
        )
