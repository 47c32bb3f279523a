"""initial schema: registry, log, enterprises, ledgers

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agencies",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agencies")),
    )
    op.create_table(
        "enterprises",
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("region_code", sa.String(length=6), nullable=False),
        sa.Column("industry_section", sa.String(length=1), nullable=False),
        sa.Column("scheme", sa.String(length=32), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("ledger_status", sa.String(length=8), nullable=False),
        sa.Column("registered_on", sa.Date(), nullable=False),
        sa.Column("grade_status", sa.String(length=8), nullable=False),
        sa.Column("grade_level", sa.String(length=16), nullable=True),
        sa.Column("grade_scheme", sa.String(length=32), nullable=True),
        sa.Column("grade_authority", sa.String(length=16), nullable=True),
        sa.Column("grade_valid_from", sa.Date(), nullable=True),
        sa.Column("grade_valid_to", sa.Date(), nullable=True),
        sa.Column("reapply_after", sa.Date(), nullable=True),
        sa.Column("certificate_no", sa.String(length=64), nullable=True),
        sa.Column("announcement_no", sa.String(length=64), nullable=True),
        sa.Column("self_assessment_year", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_index", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("uscc", name=op.f("pk_enterprises")),
    )
    op.create_index(
        "ix_enterprises_grade", "enterprises", ["grade_status", "grade_level"], unique=False
    )
    op.create_index("ix_enterprises_region_code", "enterprises", ["region_code"], unique=False)
    op.create_table(
        "log_entries",
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("issuer", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=18), nullable=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("jws", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("receipt", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("idx", name=op.f("pk_log_entries")),
        sa.UniqueConstraint("message_id", name=op.f("uq_log_entries_message_id")),
    )
    op.create_index(op.f("ix_log_entries_subject"), "log_entries", ["subject"], unique=False)
    op.create_table(
        "log_head",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log_head")),
    )
    op.create_table(
        "measures_applied",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("decision_message_id", sa.String(length=36), nullable=False),
        sa.Column("agency_id", sa.String(length=64), nullable=False),
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("measure_code", sa.String(length=64), nullable=False),
        sa.Column("applied_on", sa.Date(), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_measures_applied")),
        sa.UniqueConstraint("message_id", name=op.f("uq_measures_applied_message_id")),
    )
    op.create_index(
        op.f("ix_measures_applied_decision_message_id"),
        "measures_applied",
        ["decision_message_id"],
        unique=False,
    )
    op.create_table(
        "tree_nodes",
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name=op.f("pk_tree_nodes")),
    )
    op.create_table(
        "accidents",
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("accident_id", sa.String(length=64), nullable=False),
        sa.Column("occurred_on", sa.Date(), nullable=False),
        sa.Column("accident_class", sa.String(length=20), nullable=False),
        sa.Column("deaths", sa.Integer(), nullable=False),
        sa.Column("serious_injuries", sa.Integer(), nullable=False),
        sa.Column("direct_loss_cny", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["uscc"], ["enterprises.uscc"], name=op.f("fk_accidents_uscc_enterprises")
        ),
        sa.PrimaryKeyConstraint("uscc", "accident_id", name=op.f("pk_accidents")),
    )
    op.create_table(
        "agency_keys",
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("agency_id", sa.String(length=64), nullable=False),
        sa.Column("suite", sa.String(length=16), nullable=False),
        sa.Column("jwk", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revocation_reason", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_agency_keys_agency_id_agencies")
        ),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_agency_keys")),
    )
    op.create_index(op.f("ix_agency_keys_agency_id"), "agency_keys", ["agency_id"], unique=False)
    op.create_table(
        "ledger_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("ledger", sa.String(length=16), nullable=False),
        sa.Column("change", sa.String(length=16), nullable=False),
        sa.Column("from_status", sa.String(length=8), nullable=True),
        sa.Column("to_status", sa.String(length=8), nullable=True),
        sa.Column("from_level", sa.String(length=16), nullable=True),
        sa.Column("to_level", sa.String(length=16), nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(
            ["uscc"], ["enterprises.uscc"], name=op.f("fk_ledger_changes_uscc_enterprises")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_changes")),
    )
    op.create_index(op.f("ix_ledger_changes_uscc"), "ledger_changes", ["uscc"], unique=False)
    op.create_table(
        "listings",
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("listing_id", sa.String(length=64), nullable=False),
        sa.Column("list_type", sa.String(length=8), nullable=False),
        sa.Column("deciding_agency", sa.String(length=64), nullable=False),
        sa.Column("term_start", sa.Date(), nullable=False),
        sa.Column("term_end", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("removed_on", sa.Date(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["uscc"], ["enterprises.uscc"], name=op.f("fk_listings_uscc_enterprises")
        ),
        sa.PrimaryKeyConstraint("uscc", "listing_id", name=op.f("pk_listings")),
    )
    op.create_table(
        "publish_rights",
        sa.Column("agency_id", sa.String(length=64), nullable=False),
        sa.Column("message_type", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_publish_rights_agency_id_agencies")
        ),
        sa.PrimaryKeyConstraint("agency_id", "message_type", name=op.f("pk_publish_rights")),
    )
    op.create_table(
        "rectifications",
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("rectification_id", sa.String(length=64), nullable=False),
        sa.Column("hazard_level", sa.String(length=16), nullable=False),
        sa.Column("ordered_on", sa.Date(), nullable=False),
        sa.Column("deadline", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["uscc"], ["enterprises.uscc"], name=op.f("fk_rectifications_uscc_enterprises")
        ),
        sa.PrimaryKeyConstraint("uscc", "rectification_id", name=op.f("pk_rectifications")),
    )

    # The log head row exists from the start: appends lock it instead of racing on max(idx).
    op.bulk_insert(sa.table("log_head", sa.column("id"), sa.column("size")), [{"id": 1, "size": 0}])


def downgrade() -> None:
    op.drop_table("rectifications")
    op.drop_table("publish_rights")
    op.drop_table("listings")
    op.drop_index(op.f("ix_ledger_changes_uscc"), table_name="ledger_changes")
    op.drop_table("ledger_changes")
    op.drop_index(op.f("ix_agency_keys_agency_id"), table_name="agency_keys")
    op.drop_table("agency_keys")
    op.drop_table("accidents")
    op.drop_table("tree_nodes")
    op.drop_index(op.f("ix_measures_applied_decision_message_id"), table_name="measures_applied")
    op.drop_table("measures_applied")
    op.drop_table("log_head")
    op.drop_index(op.f("ix_log_entries_subject"), table_name="log_entries")
    op.drop_table("log_entries")
    op.drop_index("ix_enterprises_region_code", table_name="enterprises")
    op.drop_index("ix_enterprises_grade", table_name="enterprises")
    op.drop_table("enterprises")
    op.drop_table("agencies")
