"""What one database's backends are doing, sampled from `pg_stat_activity` in a thread, and
the CPU time they used, read from /proc (the server runs on this machine). For
bench/scale_paper.py: how much of a publish's time its backend waits on the log-append lock.

The log-append lock is the `log_head` row lock (`SELECT … FOR UPDATE`,
gateway/transparency/tlog.py `lock_head`). A backend waiting for a row lock another
transaction holds shows `wait_event_type = 'Lock'` with `wait_event = 'transactionid'` (the
first waiter, on the holder's transaction id) or `'tuple'` (further waiters queue on the
tuple lock), its `query` the locking statement: that pair is what is counted as the log
lock. Waits on the WAL (`IO` `WALSync` / `WALWrite`, `LWLock` `WALWrite`) are commits
waiting for their flush.

Who holds the lock: `SELECT … FOR UPDATE` takes a RowShareLock on the table `log_head` (in
`pg_locks`, held to the end of the transaction) before it locks the row, and nothing else the
gateway runs takes that mode there; a backend holding it and not waiting on a lock holds the
row. What that holder is doing (running a statement, waiting for its commit's WAL flush —
inside the lock, since row locks are released after the commit record is flushed — or idle in
its transaction while the gateway's Python works) splits the lock's busy time.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

# One row per client backend of the database, the sampler's own left out. The statement that
# locks the head is the only one the gateway runs against `log_head … FOR UPDATE`.
_SAMPLE = """
SELECT a.state, a.wait_event_type, a.wait_event,
       a.query ILIKE '%%log_head%%for update%%',
       a.pid IN (SELECT l.pid FROM pg_locks AS l
                 WHERE l.locktype = 'relation' AND l.relation = 'log_head'::regclass
                   AND l.database = (SELECT oid FROM pg_database
                                     WHERE datname = current_database())
                   AND l.mode = 'RowShareLock' AND l.granted)
FROM pg_stat_activity AS a
WHERE a.datname = %s AND a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()
"""
_PIDS = """
SELECT pid FROM pg_stat_activity
WHERE datname = %s AND backend_type = 'client backend' AND pid <> pg_backend_pid()
"""
WAL_WAITS = {("IO", "WALSync"), ("IO", "WALWrite"), ("LWLock", "WALWrite"), ("IO", "WALInitSync")}
LOG_LOCK = "waiting on the log-append lock"
OTHER_LOCK = "waiting on another lock"
WAL = "waiting for the WAL flush (commit)"
ON_CPU = "running (no wait event)"
IN_TRANSACTION = "idle in transaction (waiting for the gateway process)"


def classify(state: str | None, kind: str | None, event: str | None, head: bool) -> str | None:
    """What one backend was doing in one sample; None when it was idle (no transaction)."""
    if state == "idle in transaction":
        return IN_TRANSACTION
    if state != "active":
        return None
    if event == "ClientRead":  # between a statement's end and its state's update: the same
        return IN_TRANSACTION
    if kind == "Lock":
        return LOG_LOCK if head and event in ("transactionid", "tuple") else OTHER_LOCK
    if (kind, event) in WAL_WAITS:
        return WAL
    if kind is None:
        return ON_CPU
    return f"waiting on {kind} {event}"


@dataclass
class Samples:
    """Backend observations by class over `count` samples taken in `seconds`."""

    count: int = 0
    seconds: float = 0.0
    observed: Counter[str] = field(default_factory=Counter)
    with_log_waiter: int = 0  # samples in which at least one backend waited on the log lock
    held: int = 0  # samples in which a backend held the log lock
    holder: Counter[str] = field(default_factory=Counter)  # what the holder was doing
    sampler_cpu_seconds: float = 0.0  # the sampling thread's
    backend_cpu_seconds: float = 0.0  # its PostgreSQL backend's (not in the database's figure)

    @property
    def active(self) -> int:
        return sum(n for what, n in self.observed.items() if what != IN_TRANSACTION)

    def summary(self, requests: int) -> dict[str, Any]:
        interval = self.seconds / self.count if self.count else 0.0
        log_waits = self.observed[LOG_LOCK]
        return {
            "samples": self.count,
            "interval_ms": round(interval * 1000, 2),
            "observations": dict(self.observed.most_common()),
            "log_lock_share_of_active": round(log_waits / self.active, 4) if self.active else 0,
            "share_of_samples_with_a_log_waiter": round(self.with_log_waiter / self.count, 4)
            if self.count
            else 0,
            # a backend seen waiting in n samples waited about n sample intervals in all
            "log_lock_wait_us_per_request": round(log_waits * interval / requests * 1e6, 1)
            if requests
            else 0,
            "log_lock_held_share": round(self.held / self.count, 4) if self.count else 0,
            "holder": dict(self.holder.most_common()),
            "sampler_cpu_ms": round(self.sampler_cpu_seconds * 1000, 1),
            "sampler_backend_cpu_ms": round(self.backend_cpu_seconds * 1000, 1),
        }


class Sampler:
    """Samples the backends of `database` every `interval` seconds between `start` and
    `stop`, on a connection of its own (autocommit: each sample is a fresh snapshot of
    pg_stat_activity, which PostgreSQL otherwise keeps for the whole transaction)."""

    def __init__(self, dsn: str, database: str, interval: float) -> None:
        self.database, self.interval = database, interval
        self.connection = psycopg.connect(dsn, autocommit=True)
        self.pid = self.connection.info.backend_pid
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.samples = Samples()

    def start(self) -> None:
        self.samples, self._stop = Samples(), threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-waits", daemon=True)
        self._thread.start()

    def stop(self) -> Samples:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self.samples

    def _run(self) -> None:
        samples, began, cpu = self.samples, time.perf_counter(), time.thread_time()
        backend = own_cpu_seconds(self.pid)
        due = began
        with self.connection.cursor() as cursor:
            while not self._stop.is_set():
                cursor.execute(_SAMPLE, (self.database,))
                rows = cursor.fetchall()
                seen = [classify(*row[:4]) for row in rows]
                samples.observed.update(s for s in seen if s is not None)
                samples.with_log_waiter += LOG_LOCK in seen
                holders = [
                    s
                    for s, row in zip(seen, rows, strict=True)
                    if row[4] and s not in (LOG_LOCK, None)
                ]  # None: its state read as idle, a race between the two views
                samples.held += bool(holders)
                samples.holder.update(str(s) for s in holders[:1])
                samples.count += 1
                due += self.interval
                time.sleep(max(0.0, due - time.perf_counter()))
        samples.seconds = time.perf_counter() - began
        samples.sampler_cpu_seconds = time.thread_time() - cpu
        samples.backend_cpu_seconds = own_cpu_seconds(self.pid) - backend

    def backend_pids(self) -> list[int]:
        """The database's client backends now, the sampler's own excluded (call it between
        runs only: it shares the sampler's connection)."""
        with self.connection.cursor() as cursor:
            cursor.execute(_PIDS, (self.database,))
            return [pid for (pid,) in cursor.fetchall()]

    def close(self) -> None:
        self.stop()
        self.connection.close()


def own_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (its threads included, children not), or 0
    if it has gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def backends_cpu(pids: list[int]) -> dict[int, float]:
    return {pid: own_cpu_seconds(pid) for pid in pids}


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds the backends used between two readings (a backend new since `before`
    counts from zero; one gone by `after` is lost, which the pool's long-lived connections
    make rare)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def machine_jiffies() -> tuple[int, int, int]:
    """(busy, steal, total) clock ticks of every CPU since boot, from /proc/stat: busy is
    user, nice, system, irq and softirq; steal is time the hypervisor gave other guests."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return user + nice + system + irq + softirq, steal, sum(fields[:8])
