"""Proofs and roots per second by the size of the log's node cache (tlog.NodeCache), at 10^6.

    python bench/log_cache_budget.py                          # SQLite, 0 1 4 16 64 MiB
    python bench/log_cache_budget.py --db postgresql --budgets 0 4 64

The log is the node table alone (`tree_nodes` and the head, as the Appender leaves them for
`--size` leaves, written in bulk: what proofs read, without the entries' rows). For each
budget (GATEWAY_DATABASE__LOG_NODE_CACHE_MIB), a fresh `Database`: the time to fill its cache
(roots of the whole tree asked until the cache holds every node its budget allows), then,
warm, roots, inclusion and consistency proofs at random sizes and indexes; the floor (the
lowest level kept) and what the cache holds. Budget 0 is every node from the table, the
proof assembled once from its plan (what the cache's path does without a cache).
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.db import Database  # noqa: E402
from gateway.migrate import upgrade  # noqa: E402
from gateway.transparency import tlog  # noqa: E402
from keys import merkle  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def nodes(size: int) -> Iterator[tuple[int, int, bytes]]:
    """Every node of a tree of `size` leaves, as the Appender stores them (streamed: 2 × 10^6
    rows held at once would take some 300 MB)."""
    edge: list[bytes] = []
    for i in range(size):
        current = merkle.leaf_hash(b"entry %d" % i)
        yield 0, i, current
        level, idx = 0, i
        while idx & 1:
            current = merkle.node_hash(edge.pop(), current)
            level, idx = level + 1, idx >> 1
            yield level, idx, current
        edge.append(current)


def build(url: str, size: int) -> None:
    upgrade(url)
    rows = nodes(size)
    if url.startswith("sqlite"):
        with sqlite3.connect(url.split("///", 1)[1]) as con:
            con.executemany("INSERT INTO tree_nodes (level, idx, hash) VALUES (?, ?, ?)", rows)
            con.execute("UPDATE log_head SET size = ? WHERE id = 1", (size,))
        return
    with psycopg.connect(url) as con:
        with con.cursor().copy("COPY tree_nodes (level, idx, hash) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        con.execute("UPDATE log_head SET size = %s WHERE id = 1", (size,))
        con.execute("ANALYZE tree_nodes")


def rate(work: Callable[[], object], count: int) -> float:
    began = time.perf_counter()
    for _ in range(count):
        work()
    return count / (time.perf_counter() - began)


def measure(url: str, size: int, mib: float, count: int) -> str:
    db = Database(url, pool_size=2, log_node_cache_mib=mib)
    rng = random.Random(6962)
    try:
        with db.reader() as session:
            cache = tlog.node_cache(session)
            began = time.perf_counter()
            while cache.complete < size:
                tlog.root_hash(session, size)
            fill = time.perf_counter() - began

            def root() -> None:
                tlog.root_hash(session, rng.randrange(1, size + 1))

            def inclusion() -> None:
                n = rng.randrange(1, size + 1)
                tlog.inclusion_proof(session, rng.randrange(n), n)

            def consistency() -> None:
                n = rng.randrange(1, size + 1)
                tlog.consistency_proof(session, rng.randrange(1, n + 1), n)

            figures = [rate(f, count) for f in (root, inclusion, consistency)]
            held = cache.nodes() * merkle.HASH_SIZE / 2**20
            floor = cache.floor if cache.nodes() else "-"
    finally:
        db.dispose()
    cells = "".join(f"{f:>12,.0f}" for f in figures)
    return f"{mib:>10g}{floor:>7}{held:>10.1f}{fill:>9.2f}{cells}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--budgets", type=float, nargs="+", default=[0, 1, 4, 16, 64])
    parser.add_argument("--count", type=int, default=3000, help="of each kind, per budget")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-log-cache-") as tmp:
        if args.db == "sqlite":
            url = f"sqlite:///{tmp}/gateway.db"
        else:
            name = f"bench_log_cache_{int(time.time())}"
            admin = psycopg.connect(PG_ADMIN, autocommit=True)
            admin.execute(f'CREATE DATABASE "{name}"')
            url = PG_ADMIN.rpartition("/")[0] + f"/{name}"
        try:
            build(url, args.size)
            print(f"{args.size:,} leaves, {args.db}; warm rates per second")
            head = f"{'MiB':>10}{'floor':>7}{'held MiB':>10}{'fill s':>9}"
            print(head + "".join(f"{k:>12}" for k in ("roots", "inclusion", "consistency")))
            for mib in args.budgets:
                print(measure(url, args.size, mib, args.count), flush=True)
        finally:
            if args.db == "postgresql":
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                admin.close()


if __name__ == "__main__":
    main()
