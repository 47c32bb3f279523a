"""The test process's recycled PostgreSQL database (conftest.RecycledDatabase): whatever a test
left, the next test gets the database as the migrations made it."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
from conftest import AUTHORITY, RecycledDatabase, Steps


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
    seeded = {
        table: _rows(recycled.url, f'SELECT * FROM "{table}"') for table in recycled.seeds[()].rows
    }
    assert seeded, "the migrations write a row or two (log_head)"
    with psycopg.connect(recycled.url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO agencies (id, name, uscc, roles, created_at)"
            " VALUES ('a', 'A', '91350100M000100Y43', '[]', now())"
        )
        conn.execute("SELECT nextval(pg_get_serial_sequence('access_records', 'id'))")
        for table in recycled.seeds[()].rows:
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


def test_a_prepared_start_comes_back_whole_and_its_sequences_go_on_from_it(
    pg_recycled: RecycledDatabase, prepare: Callable[[str, Steps], None]
) -> None:
    url = pg_recycled.empty(("client", "authority"), prepare)
    start = {table: _rows(url, sql) for table, sql in TABLES.items()}
    assert start["agencies"] == [(AUTHORITY,)]
    assert start["measure_catalogs"] == [(1,)]
    assert [kind for (kind,) in start["log_entries"]] == ["gateway"] * 4  # catalog first
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM publish_rights")
        conn.execute("UPDATE agencies SET name = 'changed'")
    assert pg_recycled.empty(("client", "authority"), prepare) == url
    assert {table: _rows(url, sql) for table, sql in TABLES.items()} == start
    assert _rows(url, "SELECT name FROM agencies") == [("agency fj-yjt",)]
    # every column a sequence fills goes on past the rows the start holds (but log_head's one
    # row, which the migration writes with its id and nothing adds to)
    for table, column in _rows(url, SERIAL_COLUMNS + " AND table_name <> 'log_head'"):
        after = _rows(url, f"SELECT nextval(pg_get_serial_sequence('{table}', '{column}'))")
        highest = _rows(url, f'SELECT coalesce(max("{column}"), 0) FROM "{table}"')
        assert after[0][0] > highest[0][0], (table, column)
    # and a test asking for nothing prepared gets the migrations' rows alone
    pg_recycled.empty()
    assert _rows(url, "SELECT count(*) FROM agencies") == [(0,)]
    assert _rows(url, "SELECT count(*) FROM log_entries") == [(0,)]


TABLES = {
    "agencies": "SELECT id FROM agencies",
    "measure_catalogs": "SELECT version FROM measure_catalogs",
    "log_entries": "SELECT kind FROM log_entries ORDER BY idx",
    "publish_rights": "SELECT agency_id, message_type FROM publish_rights ORDER BY 2",
}
SERIAL_COLUMNS = """
SELECT table_name, column_name FROM information_schema.columns
 WHERE table_schema = 'public' AND column_default LIKE 'nextval(%'
"""


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
