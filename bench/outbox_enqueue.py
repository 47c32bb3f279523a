"""What queueing an accepted message's deliveries costs the publishing thread, in process.

    python bench/outbox_enqueue.py                           # SQLite and PostgreSQL
    python bench/outbox_enqueue.py --base /tmp/wt-main       # beside another checkout

A fresh database (SQLite in a temporary directory; PostgreSQL `bench_outbox_enqueue_<pid>`,
dropped at the end) holds one agency (`bench`, subscribe right to `enterprise.registered`)
with --subscriptions push subscriptions to that type. Then `gateway.delivery.outbox.enqueue`
runs for --groups groups of --size accepted registrations (500 enterprises, round and round),
each group in a transaction of its own as a publish's is (without the rest of the publish),
after 300 unmeasured groups. Reported per round: the calling thread's CPU per group
(`time.thread_time`: with a round trip's kernel work on loopback, not the database's own),
wall time per group, and statements per group (a `before_cursor_execute` count).

With --base DIR the same measurement runs on DIR's code (a worktree of another commit) in a
process of its own, the two checkouts alternating round by round on the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

# --code DIR (set for --base): import the gateway from DIR instead
ROOT = Path(sys.argv[sys.argv.index("--code") + 1] if "--code" in sys.argv else __file__)
ROOT = ROOT.resolve() if "--code" in sys.argv else ROOT.resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import psycopg  # noqa: E402
from sqlalchemy import event  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _prepare(db: str, workdir: Path, subscriptions: int) -> tuple[Any, str | None]:
    from common import register_bench_agency

    from contracts.uscc import complete_uscc
    from gateway.delivery.subscriptions import create_subscription
    from gateway.migrate import upgrade
    from gateway.runtime import Runtime
    from gateway.settings import Settings
    from gateway.signing import ensure_gateway_keys

    database = None
    if db == "postgresql":
        database = f"bench_outbox_enqueue_{os.getpid()}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {database}")
            admin.execute(f"CREATE DATABASE {database}")
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}"
    else:
        url = f"sqlite:///{workdir / 'gateway.db'}"
    upgrade(url)
    settings = Settings(data_dir=workdir, database_url=url)
    ensure_gateway_keys(settings)
    register_bench_agency(
        settings,
        name="bench",
        uscc=complete_uscc("11350000MB000001"),
        roles=["insurer"],
        scopes=["subscribe"],
        subscribe=["enterprise.registered"],
    )
    runtime = Runtime.open(settings)
    with runtime.db.transaction() as session:
        for n in range(subscriptions):
            create_subscription(
                session,
                agency_id="bench",
                url=f"http://127.0.0.1:9/hook/{n}",
                types=["enterprise.registered"],
                now=runtime.clock.now(),
                allowed_hosts=["127.0.0.1"],
            )
    return runtime, database


def measure(args: argparse.Namespace) -> None:
    """The child: prepare, then one line of JSON per round read from stdin's 'go'."""
    from gateway.delivery.outbox import Accepted, enqueue

    with tempfile.TemporaryDirectory(prefix="bench-enqueue-") as tmp:
        runtime, database = _prepare(args.db, Path(tmp), args.subscriptions)
        statements = [0]

        def count(*_: object) -> None:
            statements[0] += 1

        event.listen(runtime.db.engine, "before_cursor_execute", count)
        position = [0]

        def groups(n: int) -> tuple[float, float, float]:
            statements[0] = 0
            cpu, wall = time.thread_time(), time.perf_counter()
            for _ in range(n):
                first = position[0]
                position[0] += args.size
                items = [
                    Accepted(
                        i,
                        str(uuid.UUID(int=i)),
                        "enterprise.registered",
                        f"{i % 500:018d}",
                        "350102",
                        "C",
                        frozenset(),
                    )
                    for i in range(first, first + args.size)
                ]
                with runtime.db.transaction() as session:
                    enqueue(session, items, runtime.clock.now())
            cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
            return cpu / n * 1e6, wall / n * 1e6, statements[0] / n

        try:
            groups(300)
            print("ready", flush=True)
            for line in sys.stdin:
                if line.strip() != "go":
                    break
                cpu, wall, per = groups(args.groups)
                print(json.dumps({"cpu": cpu, "wall": wall, "statements": per}), flush=True)
        finally:
            runtime.close()
            if database:
                with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                    admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def _child(code: Path, db: str, args: argparse.Namespace) -> subprocess.Popen[str]:
    script = Path(__file__).resolve()
    command = [
        sys.executable,
        str(script),
        "--child",
        "--code",
        str(code),
        "--db",
        db,
        "--size",
        str(args.size),
        "--groups",
        str(args.groups),
        "--subscriptions",
        str(args.subscriptions),
    ]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    ready = process.stdout.readline().strip()
    if ready != "ready":
        raise SystemExit(f"{code}: the measuring process did not start ({ready!r})")
    return process


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--size", type=int, default=1, help="accepted messages per group")
    parser.add_argument("--groups", type=int, default=2000, help="groups per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--subscriptions", type=int, default=4)
    parser.add_argument("--base", type=Path, help="another checkout measured beside this one")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--code", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.db = args.db[0]
        measure(args)
        return
    checkouts = {"this": ROOT} | ({"base": args.base.resolve()} if args.base else {})
    print(
        f"enqueue of {args.size} message(s) to {args.subscriptions} subscriptions, "
        f"{args.groups} groups a round, {args.rounds} rounds (load {os.getloadavg()[0]:.2f})"
    )
    print(f"{'database':10} {'checkout':8} {'round':>5} {'CPU µs':>9} {'wall µs':>9} {'stmts':>6}")
    for db in args.db:
        children = {name: _child(code, db, args) for name, code in checkouts.items()}
        try:
            for number in range(args.rounds):
                order = list(children.items())
                if number % 2:
                    order.reverse()
                for name, child in order:
                    assert child.stdin is not None
                    assert child.stdout is not None
                    child.stdin.write("go\n")
                    child.stdin.flush()
                    figures = json.loads(child.stdout.readline())
                    print(
                        f"{db:10} {name:8} {number + 1:>5} {figures['cpu']:>9,.0f}"
                        f" {figures['wall']:>9,.0f} {figures['statements']:>6.1f}",
                        flush=True,
                    )
        finally:
            for child in children.values():
                assert child.stdin is not None
                child.stdin.close()
                child.wait(60)


if __name__ == "__main__":
    main()
