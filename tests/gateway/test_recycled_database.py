"""The test process's recycled PostgreSQL database (conftest.RecycledDatabase): whatever a test
left, the next test gets the database as the migrations made it."""

from __future__ import annotations

import psycopg
import pytest
from conftest import RecycledDatabase


def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture
def recycled(pg_recycled: RecycledDatabase) -> RecycledDatabase:
    pg_recycled.empty()
    return pg_recycled


def test_rows_go_sequences_restart_and_the_migrations_rows_come_back(
    recycled: RecycledDatabase,
) -> None:
    seeded = {table: _rows(recycled.url, f'SELECT * FROM "{table}"') for table in recycled.seeded}
    assert seeded, "the migrations write a row or two (log_head)"
    with psycopg.connect(recycled.url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO agencies (id, name, uscc, roles, created_at)"
            " VALUES ('a', 'A', '91350100M000100Y43', '[]', now())"
        )
        conn.execute("SELECT nextval(pg_get_serial_sequence('access_records', 'id'))")
        for table in recycled.seeded:
            conn.execute(f'DELETE FROM "{table}"')
        idle = psycopg.connect(recycled.url, autocommit=True)  # an earlier test's leftover
    recycled.empty()
    assert idle.closed or idle.broken or _closed(idle)
    assert _rows(recycled.url, "SELECT count(*) FROM agencies") == [(0,)]
    for table, rows in seeded.items():
        assert _rows(recycled.url, f'SELECT * FROM "{table}"') == rows
    assert _rows(
        recycled.url, "SELECT last_value FROM pg_sequences WHERE schemaname = 'public'"
    ) == [(None,)] * len(_rows(recycled.url, "SELECT 1 FROM pg_sequences"))


def _closed(conn: psycopg.Connection) -> bool:
    try:
        conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return True
    return False


@pytest.mark.parametrize(
    "change",
    [
        "ALTER TABLE agencies ADD COLUMN extra text",
        "DROP INDEX ix_deliveries_due",
        "ALTER TABLE agencies RENAME TO agencies_old",
        "UPDATE alembic_version SET version_num = '0012'",
    ],
)
def test_a_changed_schema_is_made_again(recycled: RecycledDatabase, change: str) -> None:
    columns = "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public'"
    indexes = "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'"
    before = _rows(recycled.url, columns), _rows(recycled.url, indexes)
    revision = _rows(recycled.url, "SELECT version_num FROM alembic_version")
    with psycopg.connect(recycled.url, autocommit=True) as conn:
        conn.execute(change)
    recycled.empty()
    assert (_rows(recycled.url, columns), _rows(recycled.url, indexes)) == before
    assert _rows(recycled.url, "SELECT version_num FROM alembic_version") == revision
    assert _rows(recycled.url, "SELECT count(*) FROM gw_test.schema_changes") == [(0,)]


def test_temporary_tables_and_other_schemas_are_not_a_change(recycled: RecycledDatabase) -> None:
    with psycopg.connect(recycled.url, autocommit=True) as conn:
        conn.execute("CREATE TEMPORARY TABLE scratch (x int)")
        conn.execute("DROP TABLE scratch")
    assert _rows(recycled.url, "SELECT count(*) FROM gw_test.schema_changes") == [(0,)]
