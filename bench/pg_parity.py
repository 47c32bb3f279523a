"""PostgreSQL against SQLite in the same run (issue 24 §4), for this checkout and, with `--base`,
another one (a worktree of main) beside it: four gateways at most, their loads interleaved.

    python bench/pg_parity.py --base /tmp/wt-pgpar-base --single 2000 --batches 4 --rounds 4
    python bench/pg_parity.py --statements      # statements per group on each database

Each gateway (one uvicorn process pinned to CPU 0, its own fresh database, the code of its
checkout) takes single publishes from 32 keep-alive clients (pinned to CPU 1) and batches of
1,000, as bench/publish.py does; in each round every gateway gets its share, the order rotated
each round, so that the host's drift falls on all alike. Reported per gateway: the rates, the
server's CPU per single publish, the CPU every `postgres` process spent meanwhile (the
database's share, on the same two cores), and PostgreSQL's rate as a share of SQLite's for each
checkout, per round (the spread) and overall.

`--statements` runs in process instead: for groups of 1, 16, 32 and 1,000 publishes, the
statements (and rows, and executemany calls) one group sends, and the publishing thread's CPU
per message.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from common import login  # noqa: E402
from harness import (  # noqa: E402
    JOSE,
    PUBLISHER,
    Server,
    machine_line,
    process_cpu_seconds,
    uvicorn,
)
from harness import prepare as prepare_database  # noqa: E402
from harness import registrations as messages  # noqa: E402
from loadgen import Run, load, merge_runs  # noqa: E402

BACKENDS = ("sqlite", "postgresql")


def prepare(backend: str, name: str, workdir: Path) -> Any:
    return prepare_database(
        backend,
        database=name,
        directory=workdir / name,
        **PUBLISHER,
    )


def postgres_cpu_seconds(database: str) -> float:
    """CPU time of the PostgreSQL backends serving `database` (their process titles name it);
    0 for a SQLite target. A backend that ended between two readings drops out of the sum:
    the gateway's pool keeps its connections, so its backends live through a load."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if title.startswith(b"postgres: ") and f" {database} ".encode() in title:
            total += process_cpu_seconds(int(entry.name))
    return total


class Target:
    """One gateway: its checkout, database, bodies and the figures it gathers."""

    def __init__(
        self, label: str, tree: Path, backend: str, workdir: Path, single: int, batches: int
    ) -> None:
        self.label, self.backend = label, backend
        self.database = f"bench_pgpar_{label.replace('-', '_')}"
        prepared = prepare(backend, self.database, workdir)
        self.singles = messages(prepared.key, 0, single + 200)
        self.batches = [messages(prepared.key, 10_000_000 + 1000 * n, 1000) for n in range(batches)]
        self.server: Server = uvicorn(
            "gateway.app:create_app", env=prepared.env, tree=tree, log=workdir / f"{label}.log"
        )
        self.auth = login(self.server.base, prepared.key, "bench", "publish")
        self.runs: list[Run] = []
        self.batch_runs: list[Run] = []
        self.cpu = 0.0
        self.pg_cpu = 0.0
        self.batch_pg_cpu = 0.0
        self.batch_cpu = 0.0

    def database_cpu(self) -> float:
        return postgres_cpu_seconds(self.database) if self.backend == "postgresql" else 0.0

    def post(self, bodies: list[bytes], path: str = "/v1/messages", conc: int = 32) -> Run:
        run, _ = load(
            "127.0.0.1",
            self.server.port,
            path,
            bodies,
            concurrency=conc,
            content_type=JOSE if path == "/v1/messages" else "application/json",
            headers=self.auth,
        )
        return run


def batch_body(batch: list[bytes]) -> bytes:
    return json.dumps({"messages": [m.decode() for m in batch]}).encode()


def run_ab(args: argparse.Namespace) -> None:
    os.sched_setaffinity(0, {1})
    trees = {"branch": ROOT} | ({"base": args.base.resolve()} if args.base else {})
    print(machine_line(), "| loadavg", Path("/proc/loadavg").read_text().strip())
    with tempfile.TemporaryDirectory(prefix="bench-pgpar-") as tmp:
        targets = [
            Target(
                f"{name}-{backend}",
                tree,
                backend,
                Path(tmp),
                args.single,
                1 + args.rounds * args.batches,
            )
            for name, tree in trees.items()
            for backend in args.db
        ]
        try:
            for t in targets:  # warm: caches, the tree's right edge, the first connections
                t.post(t.singles[:200])
                t.post([batch_body(t.batches[0])], "/v1/messages/batch", 1)
            singles = {t.label: t.singles[200:] for t in targets}
            for n in range(args.rounds):
                k = n % len(targets)
                order = targets[k:] + targets[:k]
                if n % 2:
                    order = order[::-1]
                for t in order:
                    chunk = singles[t.label][
                        n * args.single // args.rounds : (n + 1) * args.single // args.rounds
                    ]
                    began, pg_began = t.server.cpu_seconds(), t.database_cpu()
                    t.runs.append(t.post(chunk))
                    t.cpu += t.server.cpu_seconds() - began
                    t.pg_cpu += t.database_cpu() - pg_began
                for t in order:
                    for b in range(args.batches):
                        body = batch_body(t.batches[1 + n * args.batches + b])
                        began, pg_began = t.server.cpu_seconds(), t.database_cpu()
                        t.batch_runs.append(t.post([body], "/v1/messages/batch", 1))
                        t.batch_cpu += t.server.cpu_seconds() - began
                        t.batch_pg_cpu += t.database_cpu() - pg_began
        finally:
            for t in targets:
                t.server.stop()
    report(targets, args)
    print("loadavg at end", Path("/proc/loadavg").read_text().strip())


def report(targets: list[Target], args: argparse.Namespace) -> None:
    print(
        f"\n{'gateway':20}{'single/s':>10}{'rounds (single/s)':>36}{'CPU µs':>8}"
        f"{'pg µs':>7}{'batch msg/s':>12}{'CPU µs':>8}{'pg µs':>7}  statuses"
    )
    for t in targets:
        single, batch = merge_runs(t.runs), merge_runs(t.batch_runs)
        n, nb = len(single.latencies), 1000 * len(batch.latencies)
        rounds = " ".join(f"{r.rate:7.1f}" for r in t.runs)
        print(
            f"{t.label:20}{single.rate:10.1f}{rounds:>36}{t.cpu / n * 1e6:8.0f}"
            f"{t.pg_cpu / n * 1e6:7.0f}{1000 * batch.rate:12.1f}{t.batch_cpu / nb * 1e6:8.0f}"
            f"{t.batch_pg_cpu / nb * 1e6:7.0f}  {single.statuses} {batch.statuses}"
        )
    by = {t.label: t for t in targets}
    for name in ("branch", "base"):
        pg, lite = by.get(f"{name}-postgresql"), by.get(f"{name}-sqlite")
        if pg is None or lite is None:
            continue
        per_round = [p.rate / s.rate for p, s in zip(pg.runs, lite.runs, strict=True)]
        per_batch_round = []
        for r in range(args.rounds):
            sl = slice(r * args.batches, (r + 1) * args.batches)
            p_rate = merge_runs(pg.batch_runs[sl]).rate
            s_rate = merge_runs(lite.batch_runs[sl]).rate
            per_batch_round.append(p_rate / s_rate)
        single = merge_runs(pg.runs).rate / merge_runs(lite.runs).rate
        batch = merge_runs(pg.batch_runs).rate / merge_runs(lite.batch_runs).rate
        print(
            f"{name}: PostgreSQL/SQLite single {single:.0%} (median of rounds "
            f"{statistics.median(per_round):.0%}: "
            + " ".join(f"{x:.0%}" for x in per_round)
            + f"), batch {batch:.0%} (median {statistics.median(per_batch_round):.0%}: "
            + " ".join(f"{x:.0%}" for x in per_batch_round)
            + ")"
        )
    if "branch-postgresql" in by and "base-postgresql" in by:
        for backend in args.db:
            new = merge_runs(by[f"branch-{backend}"].runs).rate
            old = merge_runs(by[f"base-{backend}"].runs).rate
            newb = merge_runs(by[f"branch-{backend}"].batch_runs).rate
            oldb = merge_runs(by[f"base-{backend}"].batch_runs).rate
            print(f"{backend}: branch/base single {new / old:.2f}x, batch {newb / oldb:.2f}x")


# --- statements per group, in process ----------------------------------------------------------


def count_statements(backend: str, workdir: Path, sizes: list[int], per_size: int) -> None:
    from sqlalchemy import event

    from gateway.publishing.orchestration import publish
    from gateway.runtime import Runtime

    prepared = prepare(backend, "bench_pgpar_statements", workdir)
    runtime = Runtime.open(prepared.settings())
    tokens = messages(prepared.key, 0, 1000 + per_size * len(sizes))
    publish(runtime, tokens[:1000])
    seen: Counter[str] = Counter()
    rows: Counter[str] = Counter()

    def note(conn: Any, cursor: Any, statement: str, params: Any, ctx: Any, many: bool) -> None:
        key = " ".join(statement.split())[:90]
        seen[key] += 1
        rows[key] += len(params) if many else 1

    event.listen(runtime.db.engine, "before_cursor_execute", note)
    position = 1000
    for size in sizes:
        seen.clear()
        rows.clear()
        groups = max(1, per_size // size)
        wall, cpu = time.perf_counter(), time.thread_time()
        for _ in range(groups):
            publish(runtime, tokens[position : position + size])
            position += size
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
        total = sum(seen.values()) / groups
        print(
            f"[{backend}] groups of {size}: {total:.1f} statements per group (+ BEGIN, COMMIT),"
            f" thread CPU {cpu / groups / size * 1e6:.0f} µs/msg, wall {wall / groups * 1e3:.2f}"
            " ms/group"
        )
        for statement, n in seen.most_common():
            print(f"    {n / groups:5.1f} x ({rows[statement] / n:6.1f} rows)  {statement}")
    event.remove(runtime.db.engine, "before_cursor_execute", note)
    runtime.close()


def run_statements(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-pgpar-") as tmp:
        for backend in args.db:
            count_statements(backend, Path(tmp), [1, 16, 32, 1000], 2000)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", type=Path, help="another checkout measured beside this one")
    parser.add_argument("--db", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--single", type=int, default=2000, help="single publishes per gateway")
    parser.add_argument("--batches", type=int, default=2, help="batches of 1,000 per round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--statements", action="store_true", help="statements per group")
    args = parser.parse_args()
    if args.statements:
        run_statements(args)
    else:
        run_ab(args)


if __name__ == "__main__":
    main()
