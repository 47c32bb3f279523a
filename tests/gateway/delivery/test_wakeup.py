"""An idle worker wakes when deliveries are queued (issue 24 §5): on PostgreSQL the publishing
transaction's NOTIFY ends the worker's idle wait at once, from any process; on SQLite it polls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from contract_factories import make_award, make_registration
from fastapi.testclient import TestClient
from gateway_factories import Publisher, publish, register_publisher
from loopback import serving
from test_delivery_slow_receivers import receiver, until

from gateway.db import libpq_url
from gateway.delivery.subscriptions import create_subscription
from gateway.delivery.wakeup import CHANNEL, Wakeup
from gateway.delivery.worker import run_until
from gateway.runtime import Runtime


@pytest.fixture
def hook() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    with serving(receiver(None, seen)) as base:
        yield f"{base}/hook", seen


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_publish_wakes_a_worker_sleeping_for_a_minute(
    client: TestClient, authority: Publisher, runtime: Runtime, hook: tuple[str, list[str]]
) -> None:
    url, seen = hook
    runtime.settings.delivery.idle_sleep_seconds = 60  # without the notification: a minute
    register_publisher(runtime, "fj-picc", [], roles=["insurer"], subscribe=["grade.awarded"])
    with runtime.db.transaction() as session:
        create_subscription(
            session,
            agency_id="fj-picc",
            url=url,
            types=["grade.awarded"],
            now=runtime.clock.now(),
            allowed_hosts=["127.0.0.1"],
        )
    stop = threading.Event()
    worker = threading.Thread(target=run_until, args=(runtime, stop))
    worker.start()
    try:
        until(lambda: _listening(runtime), "the worker never listened")  # found nothing, waits
        registration = authority.message("enterprise.registered", make_registration())
        assert publish(client, registration).status_code == 201
        assert publish(client, authority.message("grade.awarded", make_award())).status_code == 201
        until(lambda: len(seen) == 1, "the worker slept through the publish", seconds=20)
    finally:
        stop.set()
        worker.join(30)
    assert not worker.is_alive(), "a stop ends the wait within its slice"


def _listening(runtime: Runtime) -> bool:
    with psycopg.connect(libpq_url(runtime.settings.effective_database_url)) as conn:
        return bool(_waiting_listeners(conn))


def _waiting_listeners(conn: psycopg.Connection) -> list[tuple[int]]:
    return conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND query = %s AND state = 'idle'",
        (f"LISTEN {CHANNEL}",),
    ).fetchall()


def _notify(url: str) -> None:
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(f"NOTIFY {CHANNEL}")


def test_a_stop_ends_the_wait_and_sqlite_only_polls() -> None:
    stop = threading.Event()
    wakeup = Wakeup("sqlite:///gateway.db", stop)
    started = time.monotonic()
    wakeup.wait(0.05)
    assert time.monotonic() - started >= 0.05
    threading.Timer(0.1, stop.set).start()
    wakeup.wait(60)
    assert stop.is_set()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_broken_listener_falls_back_to_polling_then_listens_again(database_url: str) -> None:
    stop = threading.Event()
    wakeup = Wakeup(database_url, stop)
    wakeup.wait(0.01)  # listening now
    with psycopg.connect(libpq_url(database_url), autocommit=True) as admin:
        for (pid,) in _waiting_listeners(admin):
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    wakeup.wait(0.05)  # the broken connection is noticed: a poll, no exception
    notifier = threading.Timer(0.3, _notify, args=(database_url,))
    started = time.monotonic()
    wakeup.wait(0.01)  # listening again
    notifier.start()
    wakeup.wait(60)
    assert time.monotonic() - started < 30, "the new listener heard the notification"
    wakeup.close()
