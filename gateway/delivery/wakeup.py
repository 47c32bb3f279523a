"""Waking an idle delivery worker as soon as deliveries are queued (issue 24 §5).

An idle worker used to sleep `idle_sleep_seconds` (0.2 s) between claims, which was most of a
delivery's latency when the outbox was empty: 164 ms median from publish to webhook at 10
messages a second (bench/e2e.py). On PostgreSQL the transaction that queues deliveries sends
`NOTIFY gateway_outbox`, delivered at its commit, and each worker LISTENs on a connection of its
own: it claims at once, whichever process published. On SQLite, which has no notifications
between processes, the worker still polls every `idle_sleep_seconds`; a claim on the queue
heads costs an index probe, so the poll is cheap.

A lost notification costs nothing but the poll interval: the worker never trusts one to find
work, it only stops waiting. A listening connection that breaks (an outage, a restart) is
opened again at the next wait; until then the worker polls.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import psycopg

from gateway.bulk import Writes
from gateway.db import libpq_url

CHANNEL = "gateway_outbox"
log = logging.getLogger("gateway.delivery")


def announce(writes: Writes) -> None:
    """In the transaction that queued deliveries: wake the listening workers at its commit
    (PostgreSQL folds the same notification sent twice in one transaction into one), sent
    with the transaction's other writes."""
    writes.notify(CHANNEL)


class Wakeup:
    """Waits up to a worker's idle interval, returning early when deliveries were queued or
    the worker is asked to stop."""

    def __init__(self, database_url: str, stop: Any) -> None:
        self.stop = stop
        self._url = libpq_url(database_url) if database_url.startswith("postgresql") else None
        self._listener: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    def wait(self, seconds: float) -> None:
        if self._url is None or self.stop.is_set():
            self.stop.wait(seconds)
            return
        try:
            listener = self._listen()
            # one slice at a time, so that a stop is seen within a tenth of a second
            remaining = seconds
            while remaining > 0 and not self.stop.is_set():
                slice_ = min(remaining, 0.1)
                if next(iter(listener.notifies(timeout=slice_, stop_after=1)), None) is not None:
                    # those that came while this one waited say the same: one claim for all
                    for _ in listener.notifies(timeout=0):
                        pass
                    return
                remaining -= slice_
        except psycopg.Error as exc:
            log.warning("delivery_wakeup_unavailable", extra={"error": type(exc).__name__})
            self.close()
            self.stop.wait(seconds)

    def _listen(self) -> psycopg.Connection[Any]:
        if self._listener is None or self._listener.closed or self._listener.broken:
            assert self._url is not None
            self._listener = psycopg.connect(self._url, autocommit=True, connect_timeout=5)
            self._listener.execute(f"LISTEN {CHANNEL}")
        return self._listener

    def close(self) -> None:
        with self._lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
