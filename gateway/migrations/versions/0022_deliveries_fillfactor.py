"""deliveries leave room on each page (PostgreSQL fillfactor 70) so that a claim's lease is a
HOT update

A claim writes `claimed_until` on the rows it leases, a column no index holds. On pages filled
to the brim by the enqueue, PostgreSQL put each new row version on another page and wrote an
entry into every one of the table's seven indexes: 1.1 ms a claim of 64 on the server, about a
sixth of a worker's round in bench/outbox_vs_queues.py. With room left on the page the update
stays on it and touches no index (heap-only tuple). Pages written before this keep their fill
until they are rewritten; SQLite has no such setting. The ALTER rewrites nothing and takes a
SHARE UPDATE EXCLUSIVE lock (PostgreSQL 10 and later): deliveries are queued and claimed
while it runs.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FILLFACTOR = 70  # percent of each page the enqueue fills; the rest is for the lease's update


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE deliveries SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE deliveries RESET (fillfactor)")
