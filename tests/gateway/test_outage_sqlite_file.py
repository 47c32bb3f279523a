"""The SQLite file removed or replaced under a running gateway (`rm gateway.db*`): /readyz
answers 503 saying so, a publish is refused with 503 `database_unavailable` and nothing is
written to the removed file, no empty database appears at the path, and putting the very
file back makes the gateway whole again."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import START
from contract_factories import make_registration
from fastapi.testclient import TestClient
from gateway_factories import Publisher, gateway_settings, publish, register_publisher
from sqlalchemy import select

from contracts.uscc import complete_uscc
from gateway.app import create_app
from gateway.clock import FixedClock
from gateway.db import Database, DatabaseFileLost
from gateway.runtime import Runtime
from gateway.settings import Settings

SUFFIXES = ("", "-wal", "-shm")


@pytest.fixture
def database_file(tmp_path: Path, sqlite_template: Path) -> Path:
    path = tmp_path / "db" / "gateway.db"
    path.parent.mkdir()
    shutil.copyfile(sqlite_template, path)
    return path


@pytest.fixture
def sqlite_settings(tmp_path: Path, database_file: Path) -> Settings:
    return gateway_settings(tmp_path / "data", f"sqlite:///{database_file}")


@pytest.fixture
def sqlite_runtime(sqlite_settings: Settings) -> Iterator[Runtime]:
    runtime = Runtime.open(sqlite_settings, FixedClock(START))
    try:
        yield runtime
    finally:
        runtime.close()


def _move(path: Path, to: Path) -> None:
    """`mv gateway.db* to/` (by hard links: what the process holds open stays readable)."""
    to.mkdir(exist_ok=True)
    for suffix in SUFFIXES:
        name = path.with_name(path.name + suffix)
        if name.exists():
            os.link(name, to / name.name)
            name.unlink()


def _put_back(kept: Path, path: Path) -> None:
    for suffix in SUFFIXES:
        name = kept / (path.name + suffix)
        if name.exists():
            os.replace(name, path.with_name(name.name))


def _log_size(path: Path) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        row = db.execute("SELECT size FROM log_head").fetchone()
    db.close()
    return int(row[0]) if row else 0


def test_readyz_and_publishing_refuse_a_removed_database_file(
    sqlite_settings: Settings, sqlite_runtime: Runtime, database_file: Path, tmp_path: Path
) -> None:
    authority: Publisher = register_publisher(sqlite_runtime, "fj-yjt", ["enterprise.registered"])
    message = authority.message(
        "enterprise.registered", make_registration(), subject=complete_uscc("91350100MA000011")
    )
    with TestClient(create_app(sqlite_settings, clock=sqlite_runtime.clock)) as client:
        assert client.get("/readyz").status_code == 200
        kept = tmp_path / "kept"
        _move(database_file, kept)
        before = _log_size(kept / "gateway.db")

        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["failing"] == ["database"]
        database = ready.json()["checks"]["database"]
        assert database["error"] == "DatabaseFileLost"
        assert "the database file was removed or replaced" in database["detail"]
        assert str(database_file) not in database["detail"]  # /readyz answers anyone

        refused = publish(client, message)
        assert refused.status_code == 503, refused.text
        assert refused.json()["code"] == "database_unavailable"
        assert refused.headers["retry-after"]
        assert _log_size(kept / "gateway.db") == before  # nothing went to the removed file
        assert not database_file.exists()  # and no empty database was made in its place

        # a copy is another file: still refused (the process must restart to take it)
        shutil.copyfile(kept / "gateway.db", database_file)
        assert client.get("/readyz").status_code == 503
        assert publish(client, message).status_code == 503
        database_file.unlink()

        _put_back(kept, database_file)  # the very file: the gateway is whole again
        assert client.get("/readyz").status_code == 200
        accepted = publish(client, message)
        assert accepted.status_code == 201, accepted.text
    assert _log_size(database_file) == before + 1


def test_no_new_connection_opens_a_fresh_file_where_the_database_was(
    database_file: Path, tmp_path: Path
) -> None:
    database = Database(f"sqlite:///{database_file}", pool_size=1)
    try:
        with database.transaction() as session:
            session.execute(select(1))
        _move(database_file, tmp_path / "kept")
        database.dispose()  # so that the next transaction needs a new connection
        with pytest.raises(DatabaseFileLost), database.reader() as session:
            session.execute(select(1))
        with pytest.raises(DatabaseFileLost), database.transaction() as session:
            session.execute(select(1))
        assert not database_file.exists()
    finally:
        database.dispose()
