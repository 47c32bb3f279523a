"""Fixtures for the gateway tests: every test runs once on SQLite and once on PostgreSQL.

Each test gets a fresh database made by the real Alembic migrations: on SQLite a copy of a
migrated template file, on PostgreSQL `CREATE DATABASE … TEMPLATE` of a migrated template
(fast, and the schema is exactly what `gateway init` makes).

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


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "gateway.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "gateway.db"
        shutil.copyfile(template, target)
        yield f"sqlite:///{target}"
        return
    with _fresh_pg_database(request.getfixturevalue("pg_template")) as url:
        yield url


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


@pytest.fixture
def authority(runtime: Runtime) -> Publisher:
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
