"""One delivery worker's CPU and statements per claim+complete round, on PostgreSQL, in process.

    python bench/outbox_round.py                          # 10,000 deliveries, 3 drains
    python bench/outbox_round.py --base /tmp/wt-ob-start  # and another checkout's, alternating

A fresh database (`bench_outbox_round_<pid>`, dropped at the end) gets --jobs pending
deliveries (one subscription, one enterprise each, by bench/outbox_vs_queues.py's enqueue),
analysed; then this process drains them with that benchmark's worker loop (`claim_due_deliveries`
for `claim_batch`, then `record_all` with a 204) on its main thread, and reports per delivery
the thread's CPU (`time.thread_time`: what the worker's Python, SQLAlchemy and psycopg cost,
whatever else runs on the machine), split into claim and record, the CPU of the server
backends it used (/proc/<pid>/stat, when the server is on this machine) and per round the
statements sent (a `before_cursor_execute` listener) and the commits. Wall time is printed but
is not the measure: on a shared machine it is what the others leave.

With --base DIR, each drain is repeated by this script on DIR's code (a worktree of another
commit: its schema, its enqueue, its claim and record), alternating, each in a process of its
own, so that before and after are measured under the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# --code DIR (set by --base): import the gateway and the enqueue from DIR instead
ROOT = Path(sys.argv[sys.argv.index("--code") + 1] if "--code" in sys.argv else __file__)
ROOT = ROOT.resolve() if "--code" in sys.argv else ROOT.resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import psycopg  # noqa: E402
from outbox_vs_queues import PG_ADMIN, _settings, gateway_enqueue, gateway_setup  # noqa: E402
from sqlalchemy import event, select  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def _backend_cpu(pids: set[int]) -> float:
    """Seconds of CPU (user + system) the server processes `pids` have used, 0 if unreadable."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def drain(jobs: int) -> dict[str, Any]:
    """Enqueue `jobs` into a fresh database and drain them on this thread; the figures."""
    import datetime as dt

    from gateway.delivery.jobs import Job, claim_due_deliveries
    from gateway.delivery.worker import Result, record_all
    from gateway.models import Subscription
    from gateway.runtime import Runtime

    base = PG_ADMIN.rpartition("/")[0]
    name = f"bench_outbox_round_{os.getpid()}"
    with psycopg.connect(base + "/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    url = f"{base}/{name}"
    try:
        with tempfile.TemporaryDirectory(prefix="bench-round-") as data_dir:
            gateway_setup(url, data_dir)
            gateway_enqueue(url, data_dir, jobs, 100, 0)
            with psycopg.connect(url, autocommit=True) as connection:
                connection.execute("ANALYZE deliveries")
            runtime = Runtime.open(_settings(url, data_dir))
            statements = [0]
            backends: set[int] = set()

            @event.listens_for(runtime.db.engine, "before_cursor_execute")
            def _count(*_: Any) -> None:
                statements[0] += 1

            @event.listens_for(runtime.db.engine, "connect")
            def _backend(dbapi_connection: Any, _record: Any) -> None:
                with dbapi_connection.cursor() as cursor:
                    backends.add(cursor.execute("SELECT pg_backend_pid()").fetchone()[0])

            runtime.db.engine.dispose()  # every connection from here on is seen
            config = runtime.settings.delivery
            lease = dt.timedelta(seconds=config.lease_seconds)
            done = Result(204, None, None, 0.0)
            with runtime.db.reader() as session:
                subscription = {"id": session.scalars(select(Subscription.id)).one()}
            subscription["schedule"] = []
            rounds = delivered = counted = 0
            claim_cpu = record_cpu = 0.0
            server0 = _backend_cpu(backends)
            statements[0] = 0
            wall0, cpu0 = time.perf_counter(), time.thread_time()
            while True:
                now = runtime.clock.now()
                t0 = time.thread_time()
                with runtime.db.transaction() as session:
                    ids = claim_due_deliveries(session, now, config.claim_batch, lease)
                t1 = time.thread_time()
                claim_cpu += t1 - t0
                if not ids:
                    break
                batch = [Job(i, 0, subscription, "", b"", "", "", lease=now + lease) for i in ids]
                record_all(runtime, [(job, done) for job in batch], runtime.clock.now())
                record_cpu += time.thread_time() - t1
                rounds += 1
                delivered += len(ids)
                counted = statements[0]  # the last, empty claim's are left out
            cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
            server = _backend_cpu(backends) - server0
            with psycopg.connect(url, autocommit=True) as connection:
                left = connection.execute(
                    "SELECT count(*) FROM deliveries WHERE status <> 'delivered'"
                ).fetchone()[0]
            runtime.close()
    finally:
        with psycopg.connect(base + "/postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    assert delivered == jobs, (delivered, jobs)
    assert left == 0, left
    return {
        "cpu_us": cpu / delivered * 1e6,
        "claim_us": claim_cpu / delivered * 1e6,
        "record_us": record_cpu / delivered * 1e6,
        "server_us": server / delivered * 1e6,
        "wall_us": wall / delivered * 1e6,
        "statements": counted / rounds,
        "rounds": rounds,
    }


def _line(label: str, r: dict[str, Any]) -> str:
    return (
        f"{label:>6}: worker CPU {r['cpu_us']:6.1f} µs/delivery (claim {r['claim_us']:5.1f}, "
        f"record {r['record_us']:5.1f}), server {r['server_us']:5.1f} µs, wall "
        f"{r['wall_us']:5.1f} µs; {r['statements']:.1f} statements/round ({r['rounds']} rounds)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3, help="drains of each code")
    parser.add_argument("--base", type=Path, help="another checkout to measure alternately")
    parser.add_argument("--code", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(drain(args.jobs)))
        return
    codes = {"this": ROOT}
    if args.base is not None:
        codes = {"base": args.base.resolve(), "this": ROOT}
    results: dict[str, list[dict[str, Any]]] = {label: [] for label in codes}
    for _ in range(args.runs):
        for label, code in codes.items():
            out = subprocess.run(
                [sys.executable, __file__, "--one", "--jobs", str(args.jobs), "--code", str(code)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            results[label].append(json.loads(out.strip().splitlines()[-1]))
            print(_line(label, results[label][-1]), flush=True)
    print(f"\nmedians of {args.runs} drains of {args.jobs:,} deliveries:")
    for label, runs in results.items():
        median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(_line(label, median))


if __name__ == "__main__":
    main()
