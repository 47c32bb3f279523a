"""measure_catalogs: the log index of each version's gateway.catalog.published entry

A message's connector documents read the catalog in force at the message's own log index
(protocol.md §4, §5: the view of the message), so each version keeps the index of the entry
that published it. Existing versions are backfilled from those entries, read once here: the
log's `type` column has no index, so nothing reads them per delivery.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30
"""

import base64
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here rather than imported from gateway.models: the migration must keep meaning what
# it meant when written.
LOG_ENTRIES = sa.table(
    "log_entries",
    sa.column("idx", sa.BigInteger()),
    sa.column("type", sa.String()),
    sa.column("jws", sa.LargeBinary()),
)
MEASURE_CATALOGS = sa.table(
    "measure_catalogs",
    sa.column("version", sa.Integer()),
    sa.column("log_index", sa.BigInteger()),
)


def upgrade() -> None:
    with op.batch_alter_table("measure_catalogs") as table:
        table.add_column(sa.Column("log_index", sa.BigInteger(), nullable=True))
    backfill(op.get_bind())


def downgrade() -> None:
    with op.batch_alter_table("measure_catalogs") as table:
        table.drop_column("log_index")


def backfill(connection: sa.Connection) -> None:
    """Set each version's log_index from its gateway.catalog.published entry (the payload's
    data.version); a version published twice, which publish_catalog never does, keeps the
    first."""
    published = connection.execute(
        sa.select(LOG_ENTRIES.c.idx, LOG_ENTRIES.c.jws)
        .where(LOG_ENTRIES.c.type == "gateway.catalog.published")
        .order_by(LOG_ENTRIES.c.idx)
    )
    found: dict[int, int] = {}
    for index, token in published:
        found.setdefault(int(_payload(bytes(token))["data"]["version"]), int(index))
    if not found:
        return
    connection.execute(
        sa.update(MEASURE_CATALOGS)
        .where(MEASURE_CATALOGS.c.version == sa.bindparam("v"))
        .values(log_index=sa.bindparam("i")),
        [{"v": version, "i": index} for version, index in found.items()],
    )


def _payload(token: bytes) -> dict[str, Any]:
    """The claims of a compact JWS (RFC 7515 §7.1): its middle segment, base64url without
    padding. The gateway signed these entries itself; nothing here is trusted further."""
    segment = token.split(b".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))
    )
    return claims
