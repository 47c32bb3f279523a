"""Merkle log cost as it grows: append throughput, proof generation, storage per entry.

    python bench/log.py                      # SQLite, up to 1,000,000 entries
    python bench/log.py --db postgresql --max 100000

Appends synthetic 700-byte leaves through the gateway's own `Appender` (the code a publish
uses: node table, head lock, prefetch of the right edge) in transactions of 1,000, together with
their `log_entries` rows. At each checkpoint size (10^4, 10^5, 10^6) it measures the append rate
of the last window (the baseline is the rate at 10^4, measured in the same run), the time to
build 1,000 inclusion proofs and 1,000 consistency proofs at random positions from the database,
and the database bytes per entry. O(log n) means the rates stay within 2x across sizes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from sqlalchemy import insert, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.db import Database  # noqa: E402
from gateway.migrate import upgrade  # noqa: E402
from gateway.models import LogEntry  # noqa: E402
from gateway.transparency.tlog import Appender, consistency_proof, inclusion_proof, tree_size  # noqa: E402
from keys import merkle  # noqa: E402

PG_ADMIN = os.environ.get("GATEWAY_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BATCH = 1000
NOW = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)


def database(backend: str, workdir: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{workdir / 'log.db'}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS bench_log WITH (FORCE)")
        admin.execute("CREATE DATABASE bench_log")
    return PG_ADMIN.rpartition("/")[0] + "/bench_log"


def append(db: Database, start: int, count: int) -> float:
    """Append `count` leaves in transactions of BATCH; returns seconds spent."""
    began = time.perf_counter()
    for offset in range(0, count, BATCH):
        with db.transaction() as session:
            appender = Appender(session)
            rows = []
            for n in range(start + offset, start + min(count, offset + BATCH)):
                leaf = f"leaf-{n:012d}".encode().ljust(700, b".")
                index, digest = appender.append(leaf)
                rows.append(
                    {
                        "idx": index,
                        "kind": "message",
                        "message_id": f"{n:036d}",
                        "type": "bench",
                        "issuer": "bench",
                        "subject": None,
                        "issued_at": NOW,
                        "accepted_at": NOW,
                        "jws": leaf,
                        "leaf_hash": digest,
                        "receipt": "",
                    }
                )
            session.execute(insert(LogEntry), rows)
            appender.finish()
    return time.perf_counter() - began


def proofs(db: Database, size: int, rng: random.Random) -> tuple[float, float]:
    """Mean microseconds per inclusion proof and per consistency proof (1,000 each)."""
    with db.reader() as session:
        began = time.perf_counter()
        for _ in range(1000):
            inclusion_proof(session, rng.randrange(size), size)
        inc = (time.perf_counter() - began) / 1000 * 1e6
        began = time.perf_counter()
        for _ in range(1000):
            consistency_proof(session, rng.randrange(1, size + 1), size)
        con = (time.perf_counter() - began) / 1000 * 1e6
    return inc, con


def storage(db: Database, backend: str) -> int:
    with db.reader() as session:
        if backend == "sqlite":
            pages = session.execute(text("PRAGMA page_count")).scalar_one()
            page = session.execute(text("PRAGMA page_size")).scalar_one()
            return int(pages * page)
        return int(
            session.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
        )


def verify_sample(db: Database, size: int) -> None:
    """A sanity check that the stored tree is right: one proof verified against the root."""
    with db.reader() as session:
        from gateway.transparency.tlog import DbSubtrees

        root = merkle.root_hash(size, DbSubtrees(session))
        leaf = merkle.leaf_hash(f"leaf-{size - 1:012d}".encode().ljust(700, b"."))
        assert merkle.verify_inclusion(
            leaf, size - 1, size, inclusion_proof(session, size - 1, size), root
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--max", type=int, default=1_000_000, help="largest size (a power of 10)")
    args = parser.parse_args()
    sizes = [s for s in (10_000, 100_000, 1_000_000, 10_000_000) if s <= args.max]
    rng = random.Random(1)
    with tempfile.TemporaryDirectory(prefix="bench-log-") as tmp:
        url = database(args.db, Path(tmp))
        upgrade(url)
        db = Database(url, pool_size=2)
        window = 5000
        print(f"backend {args.db}; appends in transactions of {BATCH}; window {window} entries")
        print(
            f"{'size':>10} {'append/s':>10} {'incl. µs':>10} {'cons. µs':>10} {'bytes/entry':>12}"
        )
        base_rate: float | None = None
        base_inc: float | None = None
        base_con: float | None = None
        have = 0
        for size in sizes:
            fill = size - window - have
            append(db, have, fill)
            have += fill
            seconds = append(db, have, window)
            have += window
            assert tree_size_of(db) == size
            rate = window / seconds
            inc, con = proofs(db, size, rng)
            per_entry = storage(db, args.db) / size
            verify_sample(db, size)
            print(
                f"{size:>10} {rate:>10.0f} {inc:>10.1f} {con:>10.1f} {per_entry:>12.0f}", flush=True
            )
            base_rate, base_inc, base_con = base_rate or rate, base_inc or inc, base_con or con
        assert base_rate, "no size was measured"
        assert base_inc
        assert base_con
        print(
            f"largest vs 10^4: append rate x{rate / base_rate:.2f}, "
            f"inclusion time x{inc / base_inc:.2f}, consistency time x{con / base_con:.2f} "
            "(goal: within 2x)"
        )
        db.dispose()


def tree_size_of(db: Database) -> int:
    with db.reader() as session:
        return tree_size(session)


if __name__ == "__main__":
    main()
