"""The gateway's Merkle log beside pymerkle's `SqliteTree`, the same entries, in one run.

    pip install -e '.[bench]'
    python bench/log_vs_pymerkle.py                      # 10^5 and 10^6 leaves
    python bench/log_vs_pymerkle.py --max 100000 --proofs 2000

Both logs get the same JWS-sized entries (800 to 1,199 bytes, 1,000 on average; the demo's
signed messages are 0.8 to 1.1 KB) in batches of 1,000, one transaction a batch, each in its
own SQLite file with the gateway's settings (WAL, `synchronous=NORMAL`: durable across a
process crash; pymerkle's connection is given the same pragmas). The gateway appends through
its own `Appender` (the code a publish runs: head lock, right edge, node table) and inserts
the `log_entries` rows beside the nodes, as a publish does; pymerkle through
`append_entries` (its bulk append: leaves only, no nodes). At each size: the append rate of
the last 10,000 entries, roots, inclusion proofs and consistency proofs per second at random
sizes, each log cold (pymerkle's a freshly opened tree, its subroot cache empty; ours a
freshly opened `Database`, its node cache empty and filled as the pass goes) and warm (the
third pass of pymerkle's tree, the second of ours), the size of our node cache, disk
bytes per entry, and a check that both give the same RFC 6962 root at random sizes and that
each one's proofs verify against it.

What SQLite alone costs our append (the floor under the append goal): the very rows the
gateway wrote for the last 10,000 entries (`log_entries`, `tree_nodes`, the head), read back
and replayed by the stdlib `sqlite3` module into a third file made from the gateway's own
schema (its `CREATE` statements, taken from the migrated database) and filled to the same
size, in the same batches and transactions: no Python of ours in the timed part. A fourth
file does the same with each message id replaced by one that grows with the index, to show
what the unique index on issuer-chosen (random) UUIDs costs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from pymerkle import SqliteTree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.bulk import BulkInsert  # noqa: E402
from gateway.db import Database  # noqa: E402
from gateway.migrate import upgrade  # noqa: E402
from gateway.models import LogEntry, table_of  # noqa: E402
from gateway.transparency.tlog import (  # noqa: E402
    Appender,
    consistency_proof,
    inclusion_proof,
    node_cache,
    root_hash,
)
from keys import merkle  # noqa: E402

BATCH = 1000
WINDOW = 10_000
NOW = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)
_INSERT_ENTRIES = BulkInsert(table_of(LogEntry))  # what a publish inserts them with
_BODY = b"eyJhbGciOiJFZERTQSIsImtpZCI6ImJlbmNoIiwidHlwIjoiZ2F0ZXdheS1tZXNzYWdlK2p3cyJ9." * 16


def entry(n: int) -> bytes:
    """Entry n: JWS-like bytes (base64url alphabet), unique, 800 + (n * 37) % 400 long."""
    head = f"{n:012d}.".encode()
    return head + _BODY[: 800 + (n * 37) % 400 - len(head)]


def append_gateway(db: Database, start: int, count: int) -> tuple[float, float]:
    """Seconds for all, and of them for the `log_entries` INSERTs alone."""
    began = time.perf_counter()
    rows_s = 0.0
    for offset in range(start, start + count, BATCH):
        with db.transaction() as session:
            appender = Appender(session)
            rows = []
            for n in range(offset, min(start + count, offset + BATCH)):
                leaf = entry(n)
                index, digest = appender.append(leaf)
                rows.append(
                    {
                        "idx": index,
                        "kind": "message",
                        # random like a message's UUID, for the unique index's sake
                        "message_id": str(uuid.UUID(bytes=hashlib.md5(leaf).digest())),
                        "type": "enterprise.registered",
                        "issuer": "bench",
                        "subject": f"9135010{n % 100_000:010d}X",
                        "issued_at": NOW,
                        "accepted_at": NOW,
                        "jws": leaf,
                        "leaf_hash": digest,
                        "receipt": "",
                    }
                )
            rows_began = time.perf_counter()
            _INSERT_ENTRIES(session.connection(), rows)
            rows_s += time.perf_counter() - rows_began
            appender.finish()
    return time.perf_counter() - began, rows_s


_FLOOR_TABLES = ("log_entries", "tree_nodes", "log_head")


def open_floor(gateway: Path, path: Path) -> sqlite3.Connection:
    """A database with the gateway's log tables, indexes and durability settings, empty."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    with sqlite3.connect(gateway) as source:
        marks = ", ".join("?" * len(_FLOOR_TABLES))
        ddl = source.execute(
            f"SELECT sql FROM sqlite_master WHERE tbl_name IN ({marks}) AND sql IS NOT NULL"
            " ORDER BY type DESC",  # tables before their indexes
            _FLOOR_TABLES,
        ).fetchall()
    for (statement,) in ddl:
        con.execute(statement)
    con.execute("INSERT INTO log_head (id, size) VALUES (1, 0)")
    return con


def _window(gateway: Path, start: int, end: int) -> tuple[list[tuple], list[tuple]]:
    """The `log_entries` and `tree_nodes` rows the gateway wrote for entries [start, end): a
    node (level, idx) is written with the entry that completes it, ((idx + 1) << level) - 1."""
    with sqlite3.connect(gateway) as con:
        entries = con.execute(
            "SELECT * FROM log_entries WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end)
        ).fetchall()
        nodes = []
        level = 0
        while 1 << level <= end:  # per level a range of the primary key
            low, high = ((start + (1 << level)) >> level) - 1, end >> level
            nodes += con.execute(
                "SELECT level, idx, hash FROM tree_nodes WHERE level = ? AND idx >= ? AND idx < ?",
                (level, low, high),
            ).fetchall()
            level += 1
    nodes.sort(key=lambda n: (((n[1] + 1) << n[0]) - 1, n[0]))  # in the order appended
    return entries, nodes


def _sequential(entries: list[tuple]) -> list[tuple]:
    """The rows with message ids that grow with the index (column 2: see the model)."""
    return [(*row[:2], f"{row[0]:036d}", *row[3:]) for row in entries]


def append_floor(
    con: sqlite3.Connection, gateway: Path, start: int, count: int, *, sequential: bool = False
) -> float:
    """Seconds the stdlib sqlite3 module takes to store the gateway's rows for entries
    [start, start + count) in batches of 1,000 (their reading back is not timed)."""
    spent = 0.0
    for offset in range(start, start + count, BATCH):
        end = min(start + count, offset + BATCH)
        entries, nodes = _window(gateway, offset, end)
        if sequential:
            entries = _sequential(entries)
        began = time.perf_counter()
        con.execute("BEGIN IMMEDIATE")
        con.executemany(f"INSERT INTO log_entries VALUES ({', '.join('?' * 11)})", entries)
        con.executemany("INSERT INTO tree_nodes (level, idx, hash) VALUES (?, ?, ?)", nodes)
        con.execute("UPDATE log_head SET size = ? WHERE id = 1", (end,))
        con.execute("COMMIT")
        spent += time.perf_counter() - began
    return spent


def open_pymerkle(path: Path) -> SqliteTree:
    tree = SqliteTree(str(path))  # sha256, RFC 6962 prefixes (its default "security" mode)
    tree.con.execute("PRAGMA journal_mode=WAL")
    tree.con.execute("PRAGMA synchronous=NORMAL")
    return tree


def append_pymerkle(tree: SqliteTree, start: int, count: int) -> float:
    began = time.perf_counter()
    for offset in range(start, start + count, BATCH):
        tree.append_entries([entry(n) for n in range(offset, min(start + count, offset + BATCH))])
    return time.perf_counter() - began


def rate(work: Callable[[], object], count: int, budget: float) -> float:
    """Calls of `work` per second over `count` calls, or as many as fit in `budget` s."""
    began = time.perf_counter()
    done = 0
    while done < count:
        work()
        done += 1
        if time.perf_counter() - began > budget:
            break
    return done / (time.perf_counter() - began)


def file_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def check_same_roots(db: Database, tree: SqliteTree, size: int, rng: random.Random) -> int:
    """Both roots at `size` and at random smaller sizes equal; each one's proofs verify
    against them (ours with keys.merkle, pymerkle's with its own verify). Returns sizes
    checked."""
    sizes = [size, *(rng.randrange(1, size + 1) for _ in range(20))]
    with db.reader() as session:
        for n in sizes:
            ours = root_hash(session, n)
            assert ours == tree.get_root(n), f"roots differ at size {n}"
            index = rng.randrange(n)
            leaf = merkle.leaf_hash(entry(index))
            path = inclusion_proof(session, index, n)
            assert merkle.verify_inclusion(leaf, index, n, path, ours)
            tree.prove_inclusion(index + 1, n).verify(leaf, ours)
            old = rng.randrange(1, n + 1)
            assert merkle.verify_consistency(
                old, n, root_hash(session, old), ours, consistency_proof(session, old, n)
            )
            tree.prove_consistency(old, n).verify(tree.get_root(old), ours)
    return len(sizes)


def measure(
    url: str, pm: Path, size: int, proofs: int, budget: float, rng: random.Random
) -> dict[str, float]:
    out: dict[str, float] = {}
    db = Database(url, pool_size=2)  # as a process just started: its node cache empty
    try:
        with db.reader() as session:

            def ours_inc() -> None:
                n = rng.randrange(1, size + 1)
                inclusion_proof(session, rng.randrange(n), n)

            def ours_con() -> None:
                n = rng.randrange(1, size + 1)
                consistency_proof(session, rng.randrange(1, n + 1), n)

            for when in ("_cold", ""):  # the cache fills during the first pass
                out["ours_root" + when] = rate(
                    lambda: root_hash(session, rng.randrange(1, size + 1)), proofs, budget
                )
                out["ours_inc" + when] = rate(ours_inc, proofs, budget)
                out["ours_con" + when] = rate(ours_con, proofs, budget)
            cache = node_cache(session)
            out["cache_hashes"], out["cache_floor"] = cache.nodes(), cache.floor
    finally:
        db.dispose()
    tree = open_pymerkle(pm)  # freshly opened: its subroot cache empty
    try:

        def pm_inc() -> None:
            n = rng.randrange(1, size + 1)
            tree.prove_inclusion(rng.randrange(1, n + 1), n)

        def pm_con() -> None:
            n = rng.randrange(1, size + 1)
            tree.prove_consistency(rng.randrange(1, n + 1), n)

        out["pm_inc_cold"] = rate(pm_inc, proofs, budget)
        out["pm_con_cold"] = rate(pm_con, proofs, budget)
        out["pm_root"] = rate(lambda: tree.get_root(rng.randrange(1, size + 1)), proofs, budget)
        for _ in range(3):  # its cache fills as proofs run: the last of three passes
            out["pm_inc"] = rate(pm_inc, proofs, budget)
            out["pm_con"] = rate(pm_con, proofs, budget)
    finally:
        tree.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--max", type=int, default=1_000_000, help="largest size (a power of 10)")
    parser.add_argument("--proofs", type=int, default=2000, help="per kind, log and size")
    parser.add_argument("--budget", type=float, default=10.0, help="seconds at most per figure")
    args = parser.parse_args()
    sizes = [s for s in (100_000, 1_000_000) if s <= args.max]
    rng = random.Random(6962)
    with tempfile.TemporaryDirectory(prefix="bench-log-pm-") as tmp:
        gw_path, pm_path = Path(tmp) / "gateway.db", Path(tmp) / "pymerkle.db"
        url = f"sqlite:///{gw_path}"
        upgrade(url)
        db = Database(url, pool_size=2)
        tree = open_pymerkle(pm_path)
        floors = {
            sequential: open_floor(gw_path, Path(tmp) / f"floor-{sequential}.db")
            for sequential in (False, True)
        }
        header = f"{'':34}" + "".join(f"{f'{s:,} ours':>16}{f'{s:,} pymerkle':>20}" for s in sizes)
        rows: dict[str, list[str]] = {}
        have = 0
        for size in sizes:
            fill = size - WINDOW - have
            append_gateway(db, have, fill)
            append_pymerkle(tree, have, fill)
            ours_s, rows_s = append_gateway(db, size - WINDOW, WINDOW)
            pm_s = append_pymerkle(tree, size - WINDOW, WINDOW)
            floor_s = {}
            for sequential, con in floors.items():
                append_floor(con, gw_path, have, fill, sequential=sequential)
                floor_s[sequential] = append_floor(
                    con, gw_path, size - WINDOW, WINDOW, sequential=sequential
                )
            have = size
            with sqlite3.connect(gw_path) as con:  # fold the WAL into the file before sizing
                con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            tree.con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            figures = measure(url, pm_path, size, args.proofs, args.budget, rng)
            checked = check_same_roots(db, tree, size, rng)
            for label, ours, theirs in (
                ("append entries/s (batches of 1,000)", WINDOW / ours_s, WINDOW / pm_s),
                ("  ours outside the rows' INSERT", WINDOW / (ours_s - rows_s), float("nan")),
                ("  floor: our rows by sqlite3 alone", WINDOW / floor_s[False], float("nan")),
                ("  floor, message ids in order", WINDOW / floor_s[True], float("nan")),
                # pymerkle's roots: one pass, after its cold proofs (partly warm)
                ("roots/s, ours cold", figures["ours_root_cold"], figures["pm_root"]),
                ("roots/s, ours warm", figures["ours_root"], float("nan")),
                ("inclusion proofs/s, cold", figures["ours_inc_cold"], figures["pm_inc_cold"]),
                ("inclusion proofs/s, warm", figures["ours_inc"], figures["pm_inc"]),
                ("consistency proofs/s, cold", figures["ours_con_cold"], figures["pm_con_cold"]),
                ("consistency proofs/s, warm", figures["ours_con"], figures["pm_con"]),
                ("  ours: node cache, MiB", figures["cache_hashes"] * 32 / 2**20, float("nan")),
                ("  ours: node cache floor (level)", figures["cache_floor"], float("nan")),
                ("disk bytes per entry", file_bytes(gw_path) / size, file_bytes(pm_path) / size),
            ):
                digits = 1 if "MiB" in label else 0
                rows.setdefault(label, []).append(f"{ours:>16,.{digits}f}{theirs:>20,.0f}")
            print(f"size {size:,}: same root at {checked} sizes, every proof verified", flush=True)
        print(header)
        for label, cells in rows.items():
            print(f"{label:34}" + "".join(cells))
        tree.close()
        db.dispose()
        for con in floors.values():
            con.close()


if __name__ == "__main__":
    main()
