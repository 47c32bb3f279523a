"""Fixtures for the gateway tests: every test runs once on SQLite and once on PostgreSQL.

Each test gets a database made by the real Alembic migrations (the schema is exactly what
`gateway init` makes): on SQLite a copy of a migrated template file; on PostgreSQL the test
process's own migrated database, emptied before each test through one kept connection
(`DELETE` of the tables that hold rows with foreign keys off, the sequences restarted, the
rows the migrations wrote put back: 2.5 ms for an empty database) instead of a `CREATE
DATABASE … TEMPLATE` and `DROP DATABASE` per test, which took 94 % of a PostgreSQL test's time.
A test that changed the schema (a downgrade, a renamed table) is noticed by event triggers and
its database is made again from the template. Tests about PostgreSQL itself (`pg_settings`)
still get a database of their own.

What a test's `client` and `authority` fixtures write first (the shipped measure catalog the
app records when it starts; the grading authority's registration) is written once per process
by the same code, in the order the test asks for them, and the test's database starts as a
copy of that (`prepared`): 20-50 ms a test otherwise. Every test gateway of a process has the
same gateway keys (gateway_factories), so those entries verify as its own.

PostgreSQL comes from `GATEWAY_TEST_PG_URL` (default: the local server's `test` database).
When it does not answer the PostgreSQL half is skipped, except where `GATEWAY_TEST_REQUIRE_PG`
or `CI` is set: there it fails, so CI can never pass without having run it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import psycopg
import pytest
from fastapi.testclient import TestClient
from gateway_factories import Publisher, gateway_settings, operator_token, register_publisher

from gateway.app import create_app, record_shipped_catalog
from gateway.clock import FixedClock
from gateway.migrate import upgrade
from gateway.runtime import Runtime
from gateway.settings import Settings
from keys.suites import SigningKey, get_suite

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


# Where the sequences stand once a prepared database's rows are written (put back with them).
SEQUENCE_STATES = """
SELECT format('%I.%I', schemaname, sequencename), last_value
  FROM pg_sequences WHERE schemaname = 'public' AND last_value IS NOT NULL
"""

# The fixtures whose first writes a test's database can already hold, in the order the test
# asks for them (a step each; see `prepare`).
Steps = tuple[str, ...]
PREPARABLE = ("client", "authority")
PREPARED = pytest.StashKey[Steps]()


class Seed(NamedTuple):
    """The rows a test's PostgreSQL database starts with, and where its sequences stand."""

    rows: dict[str, bytes]
    sequences: list[tuple[str, int]]


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
        # the rows the migrations wrote (log_head), then each prepared start as it is first asked
        self.seeds: dict[Steps, Seed] = {(): Seed(self._rows(conn), [])}

    def _rows(self, conn: psycopg.Connection) -> dict[str, bytes]:
        rows = {}
        for (table,) in conn.execute(self.which_hold_rows).fetchall():
            with conn.cursor().copy(f'COPY "{table}" TO STDOUT') as copy:
                rows[table] = b"".join(bytes(chunk) for chunk in copy)
        return rows

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

    def empty(self, steps: Steps = (), make: Callable[[str, Steps], None] | None = None) -> str:
        """The database as the migrations left it (and as `make` then prepared it for
        `steps`, done once and copied after); what an earlier test held is let go."""
        seed = self.seeds.get(steps)
        if seed is None:
            assert make is not None
            self.empty()
            make(self.url, steps)
            conn = self._connection()
            sequences = [(name, value) for name, value in conn.execute(SEQUENCE_STATES)]
            seed = self.seeds[steps] = Seed(self._rows(conn), sequences)
        for _ in range(2):
            try:
                changed = self._empty(self._connection(), seed)
            except psycopg.OperationalError:  # the test killed this connection too
                self._close()
                changed = self._empty(self._connection(), seed)
            if not changed:
                break
            self._create()
        return self.url

    def _empty(self, conn: psycopg.Connection, seed: Seed) -> bool:
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
            for table, rows in seed.rows.items():
                with conn.cursor().copy(f'COPY "{table}" FROM STDIN') as copy:
                    copy.write(rows)
            for name, value in seed.sequences:
                conn.execute("SELECT setval(%s, %s)", (name, value))
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


@pytest.fixture(scope="session")
def authority_key() -> SigningKey:
    """The grading authority's key in every test of this process that asks for `authority`."""
    return get_suite("ed25519").generate()


@pytest.fixture(scope="session")
def prepare(
    authority_key: SigningKey, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str, Steps], None]:
    """Writes into a database what `steps` write first, by the code they run: `client` the
    shipped catalog its app records on start, `authority` the authority's registration."""

    def make(url: str, steps: Steps) -> None:
        data_dir = tmp_path_factory.mktemp("prepare")
        runtime = Runtime.open(gateway_settings(data_dir, url), FixedClock(START))
        try:
            for step in steps:
                if step == "client":
                    record_shipped_catalog(runtime)
                else:
                    register_authority(runtime, authority_key)
        finally:
            runtime.close()

    return make


@pytest.fixture(scope="session")
def sqlite_prepared(
    sqlite_template: Path,
    prepare: Callable[[str, Steps], None],
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[Steps], Path]:
    """A migrated SQLite file per prepared start, made when first asked."""
    made: dict[Steps, Path] = {(): sqlite_template}

    def get(steps: Steps) -> Path:
        if steps not in made:
            path = tmp_path_factory.mktemp("prepared") / "gateway.db"
            shutil.copyfile(sqlite_template, path)
            prepare(f"sqlite:///{path}", steps)
            with contextlib.closing(sqlite3.connect(path)) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # all of it in the one file
            made[steps] = path
        return made[steps]

    return get


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty, migrated database for one test; holding already what the test's `client`
    and `authority` would write first (module docstring)."""
    names = request.fixturenames
    steps = tuple(sorted((name for name in PREPARABLE if name in names), key=names.index))
    request.node.stash[PREPARED] = steps
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_prepared")(steps)
        target = tmp_path / "gateway.db"
        shutil.copyfile(template, target)
        yield f"sqlite:///{target}"
        return
    recycled: RecycledDatabase = request.getfixturevalue("pg_recycled")
    yield recycled.empty(steps, request.getfixturevalue("prepare"))


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


AUTHORITY = "fj-yjt"


def register_authority(runtime: Runtime, key: SigningKey | None = None) -> Publisher:
    """The provincial grading authority, allowed to publish every grading decision."""
    return register_publisher(
        runtime,
        AUTHORITY,
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
        key=key,
    )


@pytest.fixture
def authority(
    request: pytest.FixtureRequest, runtime: Runtime, authority_key: SigningKey
) -> Publisher:
    """The provincial grading authority, allowed to publish every grading decision (registered
    already where the test's database was prepared for it)."""
    if "authority" in request.node.stash.get(PREPARED, ()):
        return Publisher(AUTHORITY, authority_key, runtime)
    return register_authority(runtime)
