"""One delivery claim's time as the pending backlog grows, on PostgreSQL, before and after
the table is analysed.

    python bench/outbox_claim.py --pending 5000 20000

For each size, a fresh database (`bench_outbox_claim_<pid>`, dropped at the end) gets that
many pending deliveries (one subscription, one enterprise each, by bench/outbox_vs_queues.py's
enqueue), then `claim_due_deliveries` for 64 runs once on the statistics the table has (this
machine's server runs with autovacuum off, as a busy one may not have analysed a backlog that
grew within the minute) and once after `ANALYZE deliveries`, each under a statement timeout,
each rolled back. With --walk, also the claim as proposed in bench/RESULTS.md (not the
gateway's code): pending deliveries walked in log order through a partial index created here
(`log_index WHERE status = 'pending'`), each kept when no earlier pending or dead/parked
delivery of its (subscription, enterprise) exists; its first 64 checked equal to the
gateway's claim's.

Each claim is timed twice: the first in the process (SQLAlchemy compiles its statements, the
server plans them afresh) and the median of five more, as a running worker sees it. With
--baseline DIR, each size is measured again in the same run by this script on DIR's code (a
worktree of another commit, e.g. main's: its schema, its enqueue, its claim), so the two
claims are compared on the same machine under the same load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from sqlalchemy import text

# --code DIR (set by --baseline): import the gateway and the enqueue from DIR instead
ROOT = Path(sys.argv[sys.argv.index("--code") + 1] if "--code" in sys.argv else __file__)
ROOT = ROOT.resolve() if "--code" in sys.argv else ROOT.resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from outbox_vs_queues import PG_ADMIN, _settings, gateway_enqueue, gateway_setup  # noqa: E402

from gateway.delivery.jobs import claim_due_deliveries  # noqa: E402
from gateway.runtime import Runtime  # noqa: E402

WALK_INDEX = "CREATE INDEX ix_bench_pending_log ON deliveries (log_index) WHERE status = 'pending'"
WALK = text(
    """SELECT d.id FROM deliveries AS d JOIN subscriptions AS s ON s.id = d.subscription_id
    WHERE d.status = 'pending' AND d.next_attempt_at <= :now
      AND (d.claimed_until IS NULL OR d.claimed_until < :now)
      AND s.status = 'active' AND s.url IS NOT NULL
      AND (s.breaker_open_until IS NULL OR s.breaker_open_until <= :now)
      AND s.agency_id NOT IN (SELECT id FROM agencies WHERE status <> 'active')
      AND NOT EXISTS (SELECT 1 FROM deliveries AS e WHERE e.status = 'pending'
          AND e.subscription_id = d.subscription_id AND e.uscc = d.uscc
          AND e.log_index < d.log_index)
      AND NOT EXISTS (SELECT 1 FROM deliveries AS x WHERE x.status IN ('dead', 'parked')
          AND x.subscription_id = d.subscription_id AND x.uscc = d.uscc
          AND x.log_index < d.log_index)
    ORDER BY d.log_index LIMIT 64 FOR UPDATE OF d SKIP LOCKED"""
)


def walk_ms(runtime: Runtime, timeout_s: int) -> tuple[str, list[int]]:
    with runtime.db.transaction() as session:
        session.execute(text(f"SET LOCAL statement_timeout = '{timeout_s}s'"))
        began = time.perf_counter()
        ids = list(session.scalars(WALK, {"now": runtime.clock.now()}))
        took = time.perf_counter() - began
        session.rollback()
    return f"{took * 1000:.1f} ms ({len(ids)} found)", ids


def claimed(runtime: Runtime) -> list[int]:
    with runtime.db.transaction() as session:
        ids = claim_due_deliveries(session, runtime.clock.now(), 64, dt.timedelta(seconds=60))
        session.rollback()
    return ids


def claim_ms(runtime: Runtime, timeout_s: int, repeat: int = 5) -> str:
    """The first claim's time, then the median of `repeat` more; each rolled back."""
    took: list[float] = []
    for _ in range(1 + repeat):
        with runtime.db.transaction() as session:
            session.execute(text(f"SET LOCAL statement_timeout = '{timeout_s}s'"))
            began = time.perf_counter()
            try:
                now = runtime.clock.now()
                ids = claim_due_deliveries(session, now, 64, dt.timedelta(seconds=60))
            except Exception as exc:  # the statement timeout
                return f"over {time.perf_counter() - began:.0f} s ({type(exc).__name__})"
            finally:
                session.rollback()
        took.append((time.perf_counter() - began) * 1000)
    return f"{took[0]:.0f} ms first, {statistics.median(took[1:]):.1f} ms after ({len(ids)})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pending", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--timeout", type=int, default=20, help="statement timeout, seconds")
    parser.add_argument("--walk", action="store_true", help="and the proposed claim")
    parser.add_argument("--baseline", type=Path, help="a worktree whose claim to measure too")
    parser.add_argument("--code", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    base = PG_ADMIN.rpartition("/")[0]
    for pending in args.pending:
        name = f"bench_outbox_claim_{os.getpid()}"
        with psycopg.connect(base + "/postgres", autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        url = f"{base}/{name}"
        try:
            with tempfile.TemporaryDirectory(prefix="bench-claim-") as data_dir:
                gateway_setup(url, data_dir)
                gateway_enqueue(url, data_dir, pending, 100, 0)
                runtime = Runtime.open(_settings(url, data_dir))
                stale = claim_ms(runtime, args.timeout)
                with psycopg.connect(url, autocommit=True) as connection:
                    connection.execute("ANALYZE deliveries")
                analysed = claim_ms(runtime, args.timeout)
                walked = ""
                if args.walk:
                    with psycopg.connect(url, autocommit=True) as connection:
                        connection.execute(WALK_INDEX)
                        connection.execute("ANALYZE deliveries")
                    figure, ids = walk_ms(runtime, args.timeout)
                    assert sorted(ids) == sorted(claimed(runtime)), "the walk claims others"
                    walked = f"; proposed walk {figure}, the same 64"
                runtime.close()
        finally:
            with psycopg.connect(base + "/postgres", autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        print(
            f"{pending:>8,} pending: as enqueued {stale}; after ANALYZE {analysed}{walked}",
            flush=True,
        )
        if args.baseline:
            command = [sys.executable, __file__, "--pending", str(pending)]
            command += ["--timeout", str(args.timeout), "--code", str(args.baseline)]
            figure = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            print(f"  baseline ({args.baseline}): {figure.strip()}", flush=True)


if __name__ == "__main__":
    main()
