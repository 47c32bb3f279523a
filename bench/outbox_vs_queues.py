"""The delivery outbox beside pgqueuer and procrastinate on the same PostgreSQL, in one run.

    pip install -e '.[bench]'
    python bench/outbox_vs_queues.py                   # 20,000 jobs, 1 and 2 workers
    python bench/outbox_vs_queues.py --jobs 100000

One database (`bench_outbox_<pid>`, dropped at the end) holds the three. For each queue and
each worker count: --jobs jobs are enqueued by one process in transactions of --batch (the
gateway: `gateway.delivery.outbox.enqueue` for accepted messages, one subscription, one
enterprise each; pgqueuer: `Queries.enqueue` with lists; procrastinate: `batch_defer_async`),
then 1 or 2 worker processes, started and connected before the clock starts, claim and
complete them with a no-op handler until none is left. The gateway's worker is its own claim
(`claim_due_deliveries`: the earliest pending delivery per subscription and enterprise, a
lease, SKIP LOCKED) and its own completion (`record_all` with a 204: the row's state, the
attempt and the hourly count), without rendering the document or the POST; pgqueuer runs
`QueueManager.run` in drain mode, procrastinate `run_worker_async(wait=False)`, each with its
defaults (--pgqueuer-batch and --procrastinate-concurrency change them). All three commit
with the server's `synchronous_commit` (on, its default). Each queue's table is analysed
after the enqueue (--no-analyze: not), so that every claim is planned on statistics that
know the backlog.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import multiprocessing as mp
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import select

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from gateway.db import libpq_url  # noqa: E402

PG_ADMIN = os.environ.get("GATEWAY_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _payload(i: int) -> dict[str, str]:
    """What a job carries for the peers: what a delivery row names."""
    return {"subscription": "bench", "message_id": str(uuid.UUID(int=i)), "uscc": f"{i:018d}"}


# ---- the gateway -------------------------------------------------------------------------


def _settings(url: str, data_dir: str) -> Any:
    from gateway.settings import Settings

    return Settings(data_dir=Path(data_dir), database_url=url)


def gateway_setup(url: str, data_dir: str) -> None:
    from common import register_bench_agency

    from contracts.uscc import complete_uscc
    from gateway.delivery.subscriptions import create_subscription
    from gateway.migrate import upgrade
    from gateway.runtime import Runtime
    from gateway.signing import ensure_gateway_keys

    upgrade(url)
    settings = _settings(url, data_dir)
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
    try:
        with runtime.db.transaction() as session:
            create_subscription(
                session,
                agency_id="bench",
                url="http://127.0.0.1:9/hook",
                types=["enterprise.registered"],
                now=runtime.clock.now(),
                allowed_hosts=["127.0.0.1"],
            )
    finally:
        runtime.close()


def gateway_enqueue(url: str, data_dir: str, jobs: int, batch: int, start: int) -> float:
    from gateway.delivery.outbox import Accepted, enqueue
    from gateway.runtime import Runtime

    runtime = Runtime.open(_settings(url, data_dir))
    try:
        began = time.perf_counter()
        for offset in range(start, start + jobs, batch):
            items = [
                Accepted(
                    i,
                    str(uuid.UUID(int=i)),
                    "enterprise.registered",
                    f"{i:018d}",
                    "350102",
                    "C",
                    frozenset(),
                )
                for i in range(offset, min(start + jobs, offset + batch))
            ]
            with runtime.db.transaction() as session:
                assert enqueue(session, items, runtime.clock.now()) == len(items)
        return time.perf_counter() - began
    finally:
        runtime.close()


def gateway_worker(url: str, data_dir: str, ready: Any, go: Any, size: int) -> None:
    """`size` is unused: the claim takes the gateway's `claim_batch` (64)."""
    from gateway.delivery.jobs import Job, claim_due_deliveries
    from gateway.delivery.worker import Result, record_all
    from gateway.models import Subscription
    from gateway.runtime import Runtime

    runtime = Runtime.open(_settings(url, data_dir))
    config = runtime.settings.delivery
    lease = dt.timedelta(seconds=config.lease_seconds)
    done = Result(204, None, None, 0.0)
    with runtime.db.reader() as session:  # connected before the clock starts
        subscription = {"id": session.scalars(select(Subscription.id)).one(), "schedule": []}
    ready.set()
    go.wait()
    idle = 0
    while idle < 20:  # a second without a claim: the queue is empty
        now = runtime.clock.now()
        with runtime.db.transaction() as session:
            ids = claim_due_deliveries(session, now, config.claim_batch, lease)
        if not ids:
            idle += 1
            time.sleep(0.05)
            continue
        idle = 0
        jobs = [Job(i, 0, subscription, "", b"", "", "", lease=now + lease) for i in ids]
        record_all(runtime, [(job, done) for job in jobs], runtime.clock.now())
    runtime.close()


# ---- pgqueuer ----------------------------------------------------------------------------


async def _pgq(url: str) -> tuple[Any, Any]:
    from pgqueuer.db import PsycopgDriver
    from pgqueuer.queries import Queries

    connection = await psycopg.AsyncConnection.connect(libpq_url(url), autocommit=True)
    return connection, Queries(PsycopgDriver(connection))


def pgqueuer_setup(url: str, data_dir: str) -> None:
    async def run() -> None:
        connection, queries = await _pgq(url)
        await queries.install()
        await connection.close()

    asyncio.run(run())


def pgqueuer_enqueue(url: str, data_dir: str, jobs: int, batch: int, start: int) -> float:
    import orjson

    async def run() -> float:
        connection, queries = await _pgq(url)
        began = time.perf_counter()
        for offset in range(start, start + jobs, batch):
            n = min(start + jobs, offset + batch) - offset
            payloads = [orjson.dumps(_payload(i)) for i in range(offset, offset + n)]
            await queries.enqueue(["noop"] * n, payloads, [0] * n)  # one statement
        seconds = time.perf_counter() - began
        await connection.close()
        return seconds

    return asyncio.run(run())


def pgqueuer_worker(url: str, data_dir: str, ready: Any, go: Any, size: int) -> None:
    """`size`: jobs a dequeue takes (`batch_size`, 10 by default)."""
    from pgqueuer.domain.types import QueueExecutionMode
    from pgqueuer.qm import QueueManager

    async def run() -> None:
        connection, queries = await _pgq(url)
        manager = QueueManager(queries)

        @manager.entrypoint("noop")
        async def noop(job: Any) -> None:
            return None

        ready.set()
        await asyncio.to_thread(go.wait)
        await manager.run(mode=QueueExecutionMode.drain, batch_size=size)
        await connection.close()

    asyncio.run(run())


# ---- procrastinate -----------------------------------------------------------------------


def _procrastinate(url: str) -> tuple[Any, Any]:
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=libpq_url(url)))

    @app.task(name="noop", queue="bench")
    async def noop(**payload: Any) -> None:
        return None

    return app, noop


def procrastinate_setup(url: str, data_dir: str) -> None:
    async def run() -> None:
        app, _ = _procrastinate(url)
        async with app.open_async():
            await app.schema_manager.apply_schema_async()

    asyncio.run(run())


def procrastinate_enqueue(url: str, data_dir: str, jobs: int, batch: int, start: int) -> float:
    async def run() -> float:
        app, noop = _procrastinate(url)
        async with app.open_async():
            began = time.perf_counter()
            for offset in range(start, start + jobs, batch):
                end = min(start + jobs, offset + batch)
                await noop.batch_defer_async(*(_payload(i) for i in range(offset, end)))
            return time.perf_counter() - began

    return asyncio.run(run())


def procrastinate_worker(url: str, data_dir: str, ready: Any, go: Any, size: int) -> None:
    """`size`: jobs in flight (`concurrency`, 1 by default; each fetch takes one job)."""

    async def run() -> None:
        app, _ = _procrastinate(url)
        async with app.open_async():
            ready.set()
            await asyncio.to_thread(go.wait)
            await app.run_worker_async(
                queues=["bench"], wait=False, concurrency=size, install_signal_handlers=False
            )

    asyncio.run(run())


# ---- the run -----------------------------------------------------------------------------

LEFT = {  # jobs not yet completed (the gateway: whether any is; it never leaves them dead here)
    # Polled every 20 ms while the workers run, so it must cost each queue about nothing: a
    # count of the deliveries not delivered scanned the whole table (delivered rows stay),
    # about 2 ms at 20,000 and growing with it, taking CPU from the gateway's workers alone.
    "gateway": "SELECT count(*) FROM (SELECT FROM deliveries WHERE status = 'pending' LIMIT 1) x",
    "pgqueuer": "SELECT count(*) FROM pgqueuer",
    "procrastinate": "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')",
}
TABLES = {  # analysed after the enqueue unless --no-analyze
    "gateway": "deliveries",
    "pgqueuer": "pgqueuer",
    "procrastinate": "procrastinate_jobs",
}
RESET = {
    "gateway": "TRUNCATE delivery_attempts, delivery_hours, deliveries CASCADE",
    "pgqueuer": "TRUNCATE pgqueuer, pgqueuer_log",
    "procrastinate": "TRUNCATE procrastinate_jobs CASCADE",
}
QUEUES: dict[str, tuple[Callable[..., None], Callable[..., float], Callable[..., None]]] = {
    "gateway": (gateway_setup, gateway_enqueue, gateway_worker),
    "pgqueuer": (pgqueuer_setup, pgqueuer_enqueue, pgqueuer_worker),
    "procrastinate": (procrastinate_setup, procrastinate_enqueue, procrastinate_worker),
}


def drain(name: str, url: str, data_dir: str, workers: int, size: int, timeout: float) -> float:
    """Seconds for `workers` processes to complete every job (started and connected first)."""
    context = mp.get_context("spawn")
    go = context.Event()
    readies = [context.Event() for _ in range(workers)]
    processes = [
        context.Process(target=QUEUES[name][2], args=(url, data_dir, ready, go, size))
        for ready in readies
    ]
    for process in processes:
        process.start()
    for ready in readies:
        assert ready.wait(60), f"{name} worker did not start"
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        go.set()
        began = time.perf_counter()
        while connection.execute(LEFT[name]).fetchone()[0]:
            assert time.perf_counter() - began < timeout, f"{name}: not drained in {timeout} s"
            time.sleep(0.02)
        seconds = time.perf_counter() - began
    for process in processes:
        process.join(30)
        if process.is_alive():
            process.terminate()
            process.join()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100, help="jobs per enqueue transaction")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--queues", nargs="+", default=list(QUEUES), choices=list(QUEUES))
    parser.add_argument("--timeout", type=float, default=600, help="seconds for one drain")
    parser.add_argument(
        "--no-analyze",
        dest="analyze",
        action="store_false",
        help="leave the planner the statistics autovacuum happens to have",
    )
    parser.add_argument("--pgqueuer-batch", type=int, default=10, help="its default: 10")
    parser.add_argument("--procrastinate-concurrency", type=int, default=1, help="its default: 1")
    args = parser.parse_args()
    name = f"bench_outbox_{os.getpid()}"
    admin_url = PG_ADMIN.rpartition("/")[0] + "/postgres"
    url = PG_ADMIN.rpartition("/")[0] + "/" + name
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-outbox-") as data_dir:
            for queue in args.queues:
                setup, enqueue_jobs, _ = QUEUES[queue]
                setup(url, data_dir)
                for n, workers in enumerate(args.workers):
                    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
                        connection.execute(RESET[queue])
                    start = n * args.jobs  # fresh ids and log indexes every time
                    enqueued = enqueue_jobs(url, data_dir, args.jobs, args.batch, start)
                    if args.analyze:
                        with psycopg.connect(libpq_url(url), autocommit=True) as connection:
                            connection.execute(f"ANALYZE {TABLES[queue]}")
                    size = {"pgqueuer": args.pgqueuer_batch}.get(
                        queue, args.procrastinate_concurrency
                    )
                    drained = drain(queue, url, data_dir, workers, size, args.timeout)
                    rows.append((queue, workers, args.jobs / enqueued, args.jobs / drained))
                    print(
                        f"{queue:14} {workers} worker(s): enqueue {args.jobs / enqueued:9,.0f}/s, "
                        f"claim+complete {args.jobs / drained:9,.0f}/s "
                        f"({args.jobs / drained / workers:,.0f}/s per worker)",
                        flush=True,
                    )
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    print(f"\n{args.jobs:,} jobs, enqueued in transactions of {args.batch}")
    print(f"{'queue':14}{'workers':>8}{'enqueue/s':>12}{'claim+complete/s':>18}{'per worker':>12}")
    for queue, workers, enq, rate in rows:
        print(f"{queue:14}{workers:>8}{enq:>12,.0f}{rate:>18,.0f}{rate / workers:>12,.0f}")


if __name__ == "__main__":
    main()
