"""PostgreSQL connections killed under load (pg_terminate_backend): requests fail cleanly with
503 `database_unavailable` and a Retry-After, nothing half-done is kept, and the service
recovers by itself."""

from __future__ import annotations

import select as io_select
import threading
import time

import psycopg
import pytest
from conftest import PG_URL, START
from contract_factories import make_registration
from fastapi.testclient import TestClient
from gateway_factories import bearer, register_publisher
from sqlalchemy import func, literal, select

from contracts.uscc import complete_uscc
from gateway.app import create_app
from gateway.clock import FixedClock
from gateway.db import Database
from gateway.models import Enterprise, LogEntry
from gateway.runtime import Runtime
from gateway.settings import Settings


def test_killed_connections_give_503_then_recovery(pg_settings: Settings) -> None:
    clock = FixedClock(START)
    runtime = Runtime.open(pg_settings, clock)
    authority = register_publisher(runtime, "fj-yjt", ["enterprise.registered"])
    database = pg_settings.effective_database_url.rpartition("/")[2]
    statuses: list[int] = []
    accepted: list[str] = []
    stop = threading.Event()

    def terminator() -> None:
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            while not stop.is_set():
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (database,),
                )
                time.sleep(0.05)

    try:
        headers = {"content-type": "application/jose", **bearer(runtime, authority.agency_id)}
        with TestClient(create_app(pg_settings, clock=clock)) as client:
            killer = threading.Thread(target=terminator)
            killer.start()
            try:
                for n in range(120):
                    token = authority.message(
                        "enterprise.registered",
                        make_registration(),
                        subject=complete_uscc(f"91350100MA{n:06d}"),
                    )
                    response = client.post("/v1/messages", content=token, headers=headers)
                    statuses.append(response.status_code)
                    if response.status_code == 201:
                        accepted.append(response.json()["message_id"])
                    else:
                        assert response.status_code == 503, response.text
                        assert response.json()["code"] == "database_unavailable"
                        assert response.headers["retry-after"]
            finally:
                stop.set()
                killer.join(10)
            assert 503 in statuses, "the terminator never hit a request"
            # Recovery without a restart: the pool replaces the dead connections.
            token = authority.message(
                "enterprise.registered",
                make_registration(),
                subject=complete_uscc("91350200MA000001"),
            )
            after = client.post("/v1/messages", content=token, headers=headers)
            assert after.status_code == 201, after.text
            assert client.get("/readyz").status_code == 200
        with runtime.db.reader() as session:
            logged = set(
                session.scalars(select(LogEntry.message_id).where(LogEntry.kind == "message"))
            )
            enterprises = session.scalar(select(func.count()).select_from(Enterprise))
        assert set(accepted) <= logged
        assert enterprises == len(logged)  # nothing half-applied: ledgers agree with the log
    finally:
        runtime.close()


def test_pooled_connections_closed_by_the_server_are_replaced_unseen(
    pg_settings: Settings,
) -> None:
    """Connections the server closed while they sat idle in the pool (a restart, an idle
    timeout, pg_terminate_backend) are replaced on checkout, without a round trip: the next
    transactions all succeed, and none of them ran a ping."""
    database = Database(pg_settings.effective_database_url, pool_size=3)
    pings: list[object] = []
    database.engine.dialect.do_ping = pings.append  # type: ignore[method-assign,assignment]
    try:
        sessions = [database.sessions() for _ in range(3)]  # three pooled connections
        for session in sessions:
            session.execute(select(1))
        for session in sessions:
            session.close()
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (pg_settings.effective_database_url.rpartition("/")[2],),
            ).fetchone()
        assert killed is not None
        assert killed[0] == 3
        deadline = time.monotonic() + 5
        while len(_idle_backends(pg_settings)) and time.monotonic() < deadline:
            time.sleep(0.01)  # until the server has closed them
        for n in range(6):
            with database.transaction() as session:
                assert session.execute(select(literal(n))).scalar_one() == n
        assert pings == []
    finally:
        database.dispose()


def _idle_backends(settings: Settings) -> list[int]:
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (settings.effective_database_url.rpartition("/")[2],),
        ).fetchall()
    return [row[0] for row in rows]


def test_only_pooled_connections_are_checked_on_checkout(
    pg_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection just opened goes out unchecked (as SQLAlchemy's pre-ping left it): the
    pool replaces a connection on checkout twice at most, so checking new ones too turned a
    server killing connections fast into a 500 instead of a 503. Once pooled, it is checked."""
    polls: list[int] = []
    real_poll = io_select.poll

    class CountingPoll:
        def __init__(self) -> None:
            self._poll = real_poll()

        def register(self, fd: int, mask: int) -> None:
            polls.append(fd)
            self._poll.register(fd, mask)

        def poll(self, timeout: int) -> list[tuple[int, int]]:
            return self._poll.poll(timeout)

    monkeypatch.setattr(io_select, "poll", CountingPoll)  # the module gateway.db polls with
    database = Database(pg_settings.effective_database_url, pool_size=1)
    try:
        with database.transaction() as session:
            session.execute(select(literal(1)))
        assert polls == []  # new: not checked
        with database.transaction() as session:
            session.execute(select(literal(1)))
        assert len(polls) == 1  # pooled: checked
    finally:
        database.dispose()
