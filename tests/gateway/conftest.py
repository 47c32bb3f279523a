"""Fixtures for the gateway tests: every test runs once on SQLite and once on PostgreSQL.

Each test gets an empty database made by the real Alembic migrations (the schema is exactly
what `gateway init` makes): on SQLite a copy of a migrated template file; on PostgreSQL the
test process's own migrated database, emptied before each test (`TRUNCATE` of the tables that
hold rows, the sequences restarted, the rows the migrations wrote put back; `TRUNCATE` of all
29 tables took 156 ms, most of it for empty ones; `DELETE` was faster still but lets new rows
fill old rows' places, so a test could see rows in another order than on a fresh database)
instead of a `CREATE DATABASE … TEMPLATE`
and `DROP DATABASE` per test, which took 94 % of a PostgreSQL test's time. A test that changed
the schema (a downgrade, a renamed table) is noticed by the schema's fingerprint and its
database is made again from the template. Tests about PostgreSQL itself (`pg_settings`) still
get a database of their own.

PostgreSQL comes from `GATEWAY_TEST_PG_URL` (default: the local server's `test` database).
When it does not answer the PostgreSQL half is skipped, except where `GATEWAY_TEST_REQUIRE_PG`
or `CI` is set: there it fails, so CI can never pass without having run it.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from gateway_factories import Publisher, gateway_settings, operator_token, register_publisher

from gateway.app import create_app
from gateway.clock import FixedClock
from gateway.migrate import upgrade
from gateway.runtime import Runtime
from gateway.settings import Settings

PG_URL = os.environ.get("GATEWAY_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_PG = bool(os.environ.get("GATEWAY_TEST_REQUIRE_PG") or os.environ.get("CI"))
START = dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.UTC)


def _pg_url(database: str) -> str:
    base, _, _ = PG_URL.rpartition("/")
    return f"{base}/{database}"


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated template database on the PostgreSQL server; dropped at the end."""
    try:
        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required here but does not answer at {PG_URL}: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {exc}")
    name = f"gw_tpl_{os.getpid()}"
    admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    admin.execute(f'CREATE DATABASE "{name}"')
    upgrade(_pg_url(name))
    try:
        yield name
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


# Whether a test changed the schema (a downgrade, a renamed table, a dropped index): event
# triggers in the test process's database note any DDL on the public schema, which the next
# test's emptying reads in one query (the schema's fingerprint over information_schema took
# 10-20 ms a test). The notes live in a schema of their own, outside what the gateway reads.
WATCH_DDL = """
CREATE SCHEMA gw_test;
CREATE TABLE gw_test.schema_changes (what text);
CREATE FUNCTION gw_test.note_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO gw_test.schema_changes SELECT command_tag FROM pg_event_trigger_ddl_commands()
   WHERE schema_name = 'public' LIMIT 1;
END $$;
CREATE FUNCTION gw_test.note_drop() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO gw_test.schema_changes SELECT object_type FROM pg_event_trigger_dropped_objects()
   WHERE schema_name = 'public' LIMIT 1;
END $$;
CREATE EVENT TRIGGER gw_test_ddl ON ddl_command_end EXECUTE FUNCTION gw_test.note_ddl();
CREATE EVENT TRIGGER gw_test_drop ON sql_drop EXECUTE FUNCTION gw_test.note_drop();
"""
CHANGED = """
SELECT EXISTS (SELECT FROM gw_test.schema_changes)
    OR (SELECT string_agg(version_num, ',') FROM alembic_version) IS DISTINCT FROM %s
"""
# The sequences a test drew from (rolled-back inserts draw too), back to their start.
RESTART_SEQUENCES = """
SELECT setval(format('%I.%I', schemaname, sequencename), start_value, false)
  FROM pg_sequences WHERE schemaname = 'public' AND last_value IS NOT NULL
"""


def _one(conn: psycopg.Connection, sql: str, *params: object) -> object:
    row = conn.execute(sql, params or None).fetchone()
    assert row is not None
    return row[0]


class RecycledDatabase:
    """This test process's migrated PostgreSQL database, emptied before each test through one
    connection it keeps (a connect per test cost 5-20 ms)."""

    def __init__(self, template: str) -> None:
        self.template = template
        self.name = f"gw_w_{os.getpid()}"
        self.url = _pg_url(self.name)
        self._conn: psycopg.Connection | None = None
        self._create()
        conn = self._connection()
        self.revision = _one(conn, "SELECT string_agg(version_num, ',') FROM alembic_version")
        self.tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename <> 'alembic_version' ORDER BY tablename"
            )
        ]
        self.which_hold_rows = " UNION ALL ".join(
            f"SELECT '{table}' WHERE EXISTS (SELECT FROM \"{table}\")" for table in self.tables
        )
        self.seeded: dict[str, bytes] = {}  # rows the migrations wrote (log_head)
        for table in self.tables:
            if _one(conn, f'SELECT EXISTS (SELECT FROM "{table}")'):
                with conn.cursor().copy(f'COPY "{table}" TO STDOUT') as copy:
                    self.seeded[table] = b"".join(bytes(chunk) for chunk in copy)

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self.url, autocommit=True)
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _create(self) -> None:
        self._close()
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{self.name}" TEMPLATE "{self.template}"')
            # a test's commit need not wait for the disk: nothing here outlives a crash
            admin.execute(f'ALTER DATABASE "{self.name}" SET synchronous_commit = off')
        self._connection().execute(WATCH_DDL)

    def empty(self) -> str:
        """The database as the migrations left it; what an earlier test held is let go."""
        try:
            changed = self._empty(self._connection())
        except psycopg.OperationalError:  # the test killed this connection too
            self._close()
            changed = self._empty(self._connection())
        if changed:
            self._create()
        return self.url

    def _empty(self, conn: psycopg.Connection) -> bool:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        if _one(conn, CHANGED, self.revision):
            return True
        with conn.transaction():
            # foreign keys are not checked while every table is emptied
            conn.execute("SET LOCAL session_replication_role = replica")
            for (table,) in conn.execute(self.which_hold_rows).fetchall():
                conn.execute(f'DELETE FROM "{table}"')
            conn.execute(RESTART_SEQUENCES)
            for table, rows in self.seeded.items():
                with conn.cursor().copy(f'COPY "{table}" FROM STDIN') as copy:
                    copy.write(rows)
        return False

    def drop(self) -> None:
        self._close()
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_recycled(pg_template: str) -> Iterator[RecycledDatabase]:
    database = RecycledDatabase(pg_template)
    try:
        yield database
    finally:
        database.drop()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "gateway.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty, migrated database for one test."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "gateway.db"
        shutil.copyfile(template, target)
        yield f"sqlite:///{target}"
        return
    yield request.getfixturevalue("pg_recycled").empty()


@contextmanager
def _fresh_pg_database(template_name: str) -> Iterator[str]:
    name = f"gw_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"')
    try:
        yield _pg_url(name)
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_settings(tmp_path: Path, pg_template: str) -> Iterator[Settings]:
    """Settings on a fresh PostgreSQL database, for tests about PostgreSQL itself."""
    with _fresh_pg_database(pg_template) as url:
        yield gateway_settings(tmp_path / "pg-data", url)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return gateway_settings(tmp_path / "data", database_url, allowed_hosts=["127.0.0.1"])


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def runtime(settings: Settings, clock: FixedClock) -> Iterator[Runtime]:
    """Direct access to the database and keys (for setup and for checking what was stored)."""
    rt = Runtime.open(settings, clock)
    try:
        yield rt
    finally:
        rt.close()


@pytest.fixture
def client(settings: Settings, clock: FixedClock, runtime: Runtime) -> Iterator[TestClient]:
    """The API with an operator's bearer token on every request."""
    with TestClient(create_app(settings, clock=clock)) as test_client:
        test_client.headers["authorization"] = f"Bearer {operator_token(runtime)}"
        yield test_client


def register_authority(runtime: Runtime) -> Publisher:
    """The provincial grading authority, allowed to publish every grading decision."""
    return register_publisher(
        runtime,
        "fj-yjt",
        [
            "enterprise.registered",
            "enterprise.updated",
            "enterprise.closed",
            "grade.awarded",
            "grade.renewed",
            "grade.downgraded",
            "grade.revoked",
            "grade.expired",
            "rectification.ordered",
            "rectification.overdue",
            "rectification.verified",
            "accident.reported",
            "listing.added",
            "listing.removed",
            "self_assessment.published",
        ],
        roles=["grading_authority", "listing_department"],
    )


@pytest.fixture
def authority(runtime: Runtime) -> Publisher:
    """The provincial grading authority, allowed to publish every grading decision."""
    return register_authority(runtime)
