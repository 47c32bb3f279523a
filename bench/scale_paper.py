"""Scale on paper (issue 24 §6): the measurements a capacity estimate rests on, on PostgreSQL
with two API processes (and one, beside them in the same run).

    python bench/scale_paper.py                   # about 4 minutes at the defaults
    python bench/scale_paper.py --processes 2 --rounds 2 --pgbench-seconds 5 --json

1. The gateway, once per count in --processes (2, then 1 for comparison): a fresh database
   `gw_scalepaper_gateway` (--enterprises synthetic enterprises, bench/populate.py), the
   agency `bench` (publish, query; rate limit raised), and `gateway serve --workers N` as
   deployed (httptools/uvloop, its JSON log lines to a file, in-process delivery worker off,
   no subscriptions: a publish writes no delivery rows). Nothing is pinned: the API
   processes, PostgreSQL and the load generator (this process) share the machine's cores.
   In each of --rounds rounds, the order alternating, --publishes single `POST /v1/messages`
   (a new signed registration each) and --queries standing queries
   (`GET /v1/enterprises/{code}?purpose=…`), each from --clients keep-alive clients. Per run:
   the rate, p50/p99, the API processes' CPU seconds (their /proc stat, the uvicorn
   supervisor included) and the database's backends' CPU seconds, each per request; the
   commits the database counted (pg_stat_database.xact_commit) per request; and, sampled
   every --sample-ms from pg_stat_activity and pg_locks in a thread, what the gateway's
   backends were doing: the share waiting on the log-append lock (the `log_head` row lock),
   the share of the time some backend held it, and what the holder was doing meanwhile
   (bench/pg_waits.py).
2. The commit rate of this PostgreSQL primary: pgbench (/usr/bin/pgbench) on a database of its
   own, `gw_scalepaper_pgbench`, a one-statement insert-only script (a 700-byte row, about a
   message's JWS, one commit per transaction) with 1, 2 and 4 clients, and `SELECT 1` with
   one client for the round trip's cost; --pgbench-rounds rounds, each --pgbench-seconds.

The server's durability settings (synchronous_commit, fsync, wal_sync_method, …) are read with
SHOW and printed: they hold for pgbench and the gateway alike (neither changes them). Both
databases are dropped at the end (--keep keeps them). The load average is printed at the start
and the end: the machine has 2 cores and is shared.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from common import login  # noqa: E402
from harness import HOST, JOSE, Server, free_port, prepare, print_json, registrations  # noqa: E402
from loadgen import Request, Run, drive  # noqa: E402
from pg_waits import (  # noqa: E402
    Sampler,
    backends_cpu,
    cpu_used,
    machine_jiffies,
    own_cpu_seconds,
)
from populate import PG_ADMIN, code_of, drop_database, populate  # noqa: E402
from query import PURPOSE  # noqa: E402

from contracts.uscc import complete_uscc  # noqa: E402

PREFIX = "gw_scalepaper_"
PGBENCH = "/usr/bin/pgbench"
SETTINGS = (
    "server_version",
    "synchronous_commit",
    "fsync",
    "wal_sync_method",
    "full_page_writes",
    "commit_delay",
    "wal_level",
    "synchronous_standby_names",
    "shared_buffers",
    "max_connections",
)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def server_settings() -> dict[str, str]:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        return {name: str(conn.execute(f"SHOW {name}").fetchone()[0]) for name in SETTINGS}


# --- the commit rate: pgbench ------------------------------------------------------------------

INSERT_SCRIPT = "INSERT INTO commits (payload) VALUES (repeat('x', 700));\n"
SELECT_SCRIPT = "SELECT 1;\n"


class Machine:
    """CPU use of the whole machine (every core) between `__init__` and `done()`."""

    def __init__(self) -> None:
        self.began, self.jiffies = time.perf_counter(), machine_jiffies()

    def done(self) -> dict[str, float]:
        busy, steal, total = (b - a for a, b in zip(self.jiffies, machine_jiffies(), strict=True))
        return {
            "machine_busy_share": round(busy / total, 3) if total else 0.0,
            "machine_steal_share": round(steal / total, 3) if total else 0.0,
        }


def pgbench(database: str, script: Path, clients: int, seconds: int) -> dict[str, Any]:
    """One pgbench run: transactions per second (without connection time) and mean latency."""
    admin = conninfo_to_dict(PG_ADMIN)
    command = [
        PGBENCH,
        "-n",
        "-h",
        str(admin.get("host", HOST)),
        "-p",
        str(admin.get("port", 5432)),
    ]
    command += ["-U", str(admin.get("user", "postgres")), "-c", str(clients), "-j", str(clients)]
    command += ["-T", str(seconds), "-f", str(script), database]
    machine = Machine()
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    latency = re.search(r"latency average = ([\d.]+) ms", out)
    if tps is None or latency is None:
        raise RuntimeError(f"pgbench said:\n{out}")
    return {"tps": round(float(tps[1]), 1), "latency_ms": float(latency[1])} | machine.done()


def commit_rate(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """pgbench's insert-only runs per client count and its SELECT 1 runs, round by round
    (the order reversed every round)."""
    database = f"{PREFIX}pgbench"
    url = PG_ADMIN.rpartition("/")[0] + "/" + database
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {database}")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE commits (id bigserial PRIMARY KEY, payload text NOT NULL)")
    scripts = {"insert": workdir / "insert.sql", "select1": workdir / "select1.sql"}
    scripts["insert"].write_text(INSERT_SCRIPT)
    scripts["select1"].write_text(SELECT_SCRIPT)
    plan = [("insert", c) for c in args.pgbench_clients] + [("select1", 1)]
    runs: dict[str, list[dict[str, Any]]] = {f"{s} c={c}": [] for s, c in plan}
    try:
        for n in range(args.pgbench_rounds):
            for script, clients in plan if n % 2 == 0 else plan[::-1]:
                run = pgbench(database, scripts[script], clients, args.pgbench_seconds)
                runs[f"{script} c={clients}"].append(run)
                print(f"  pgbench {script} c={clients}: {run['tps']:,.1f} tps", flush=True)
    finally:
        if not args.keep:
            drop_database(url)
    return runs


# --- the gateway under two API processes -------------------------------------------------------


class Gateway:
    """`gateway serve --workers 2` on a fresh, populated database, and the sampler on it."""

    def __init__(self, args: argparse.Namespace, processes: int, workdir: Path) -> None:
        self.database = f"{PREFIX}gateway"
        prepared = prepare(
            "postgresql",
            database=self.database,
            directory=workdir / self.database,
            name="基准测试银行",
            uscc=complete_uscc("91350100MA000BNK"),
            roles=["bank"],
            scopes=["query", "publish"],
            publish=["enterprise.registered"],
            query=["standing"],
        )
        self.url, self.key = prepared.url, prepared.key
        try:
            self._start(args, processes, prepared.env, workdir)
        except BaseException:
            drop_database(self.url)
            raise

    def _start(
        self, args: argparse.Namespace, processes: int, env: dict[str, str], workdir: Path
    ) -> None:
        populate(self.url, args.enterprises)
        env = env | {
            "GATEWAY_ACCESS_TOKEN_TTL_SECONDS": "7200",
            "GATEWAY_DELIVERY__IN_PROCESS_WORKER": "false",
            "GATEWAY_CONNECTORS__SNAPSHOT_INTERVAL_SECONDS": "0",
        }
        port = free_port()
        command = [sys.executable, "-m", "gateway.cli", "serve", "--host", HOST]
        command += ["--port", str(port), "--workers", str(processes)]
        self.sampler = Sampler(self.url, self.database, args.sample_ms / 1000)
        self.log = workdir / f"serve-{processes}.log"
        self.server = Server(command, port=port, env=env, log=self.log)
        self.wait_for_processes(processes)

    def wait_for_processes(self, count: int, timeout: float = 60.0) -> None:
        """Until every API process has started (the first answers /healthz before the
        others are up): uvicorn logs each one's application start-up."""
        deadline = time.monotonic() + timeout
        while self.log.read_text(errors="replace").count("Application startup complete") < count:
            if time.monotonic() > deadline:
                self.server.stop()
                raise RuntimeError(f"{count} API processes did not start; see {self.log}")
            time.sleep(0.2)

    def api_cpu(self) -> dict[int, float]:
        """CPU seconds per process of the server's tree (the supervisor and its workers)."""
        pids, pending = [], [self.server.process.pid]
        while pending:
            pid = pending.pop()
            pids.append(pid)
            for task in Path(f"/proc/{pid}/task").glob("*/children"):
                pending += [int(c) for c in task.read_text().split()]
        return {pid: own_cpu_seconds(pid) for pid in pids}

    def commits(self) -> int:
        with self.sampler.connection.cursor() as cursor:
            cursor.execute(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (self.database,)
            )
            row = cursor.fetchone()
            return int(row[0]) if row else 0

    def log_size(self) -> int:
        with self.sampler.connection.cursor() as cursor:
            cursor.execute("SELECT size FROM log_head WHERE id = 1")
            row = cursor.fetchone()
            return int(row[0]) if row else 0

    def groups(self, first: int, end: int) -> int:
        """Publishing transactions that appended entries first … end - 1: the entries of one
        group share its `accepted_at` (publish_batch stamps them with one `now`)."""
        with self.sampler.connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(DISTINCT accepted_at) FROM log_entries WHERE idx >= %s AND idx < %s",
                (first, end),
            )
            row = cursor.fetchone()
            return int(row[0]) if row else 0

    def close(self, keep: bool) -> None:
        self.sampler.close()
        self.server.stop()
        if not keep:
            drop_database(self.url)


def measured(
    gateway: Gateway, requests: list[Request], clients: int, content_type: str, auth: Any
) -> dict[str, Any]:
    """One load run and what it cost: per request, the API processes' and the database
    backends' CPU, the commits; the machine's busy share; the backends' sampled waits."""
    api, pids = gateway.api_cpu(), gateway.sampler.backend_pids()
    backends, commits, size = backends_cpu(pids), gateway.commits(), gateway.log_size()
    own, machine = resource.getrusage(resource.RUSAGE_SELF), Machine()
    gateway.sampler.start()
    run: Run = drive(
        HOST,
        gateway.server.port,
        requests,
        concurrency=clients,
        content_type=content_type,
        headers=auth,
    )
    samples = gateway.sampler.stop()
    n = len(run.latencies)
    api_after = gateway.api_cpu()
    api_used = {pid: api_after[pid] - api.get(pid, 0.0) for pid in api_after}
    pids_after = gateway.sampler.backend_pids()
    db_used = cpu_used(backends, backends_cpu(sorted(set(pids) | set(pids_after))))
    committed = gateway.commits() - commits
    appended = gateway.log_size() - size
    groups = gateway.groups(size, size + appended) if appended else 0
    own_after = resource.getrusage(resource.RUSAGE_SELF)
    bench_cpu = own_after.ru_utime + own_after.ru_stime - own.ru_utime - own.ru_stime
    return {
        **run.summary(),
        "statuses": run.statuses,
        "api_cpu_us": round(sum(api_used.values()) / n * 1e6),
        "api_cpu_split": sorted(round(s, 2) for s in api_used.values()),
        "db_cpu_us": round(db_used / n * 1e6),
        "bench_process_cpu_us": round(bench_cpu / n * 1e6),
        "commits_per_request": round(committed / n, 3),
        "commits_per_s": round(committed / run.seconds, 1),
        "publishing_commits_per_s": round(groups / run.seconds, 1),
        "publishes_per_group": round(appended / groups, 2) if groups else None,
        "waits": samples.summary(n),
        **machine.done(),
    }


def gateway_runs(
    args: argparse.Namespace, processes: int, workdir: Path
) -> dict[str, list[dict[str, Any]]]:
    """The rounds of publishes and queries against `processes` API processes."""
    gateway = Gateway(args, processes, workdir)
    rng = random.Random(args.seed)
    try:
        auth = login(gateway.server.base, gateway.key, "bench", "publish query")
        bodies = registrations(
            gateway.key,
            20_000_000,
            200 + args.publishes * args.rounds,
            prefix="91350200",
            name="厦门纸上规模第{n}有限公司",
            region_code="350203",
        )
        publishes: list[Request] = [("POST", "/v1/messages", b) for b in bodies]

        def queries(count: int) -> list[Request]:
            path = "/v1/enterprises/{}?purpose=" + PURPOSE
            return [
                ("GET", path.format(code_of(rng.randrange(args.enterprises))), b"")
                for _ in range(count)
            ]

        # Warm-up, unmeasured: both processes open their pools and caches.
        drive(
            HOST,
            gateway.server.port,
            publishes[:200],
            concurrency=args.clients,
            content_type=JOSE,
            headers=auth,
        )
        drive(HOST, gateway.server.port, queries(400), concurrency=args.clients, headers=auth)
        runs: dict[str, list[dict[str, Any]]] = {"publish": [], "query": []}
        for n in range(args.rounds):
            chunk = publishes[200 + n * args.publishes : 200 + (n + 1) * args.publishes]
            order = ["publish", "query"] if n % 2 == 0 else ["query", "publish"]
            for kind in order:
                if kind == "publish":
                    run = measured(gateway, chunk, args.clients, JOSE, auth)
                else:
                    run = measured(
                        gateway, queries(args.queries), args.clients, "application/json", auth
                    )
                runs[kind].append(run)
                print(
                    f"  {processes} process(es), round {n + 1} {kind}: "
                    f"{run['rate_per_s']:,.1f}/s, API CPU {run['api_cpu_us']} µs, database CPU "
                    f"{run['db_cpu_us']} µs per request, log lock held "
                    f"{run['waits']['log_lock_held_share']:.0%} of the time",
                    flush=True,
                )
    finally:
        gateway.close(args.keep)
    return runs


# --- the report --------------------------------------------------------------------------------


def spread(values: list[float | None], digits: int = 1) -> str:
    """Median (min–max) of the rounds' figures (None: no figure, left out)."""
    figures = [v for v in values if v is not None]
    if not figures:
        return "–"
    if len(figures) == 1:
        return f"{figures[0]:,.{digits}f}"
    low, mid, high = min(figures), statistics.median(figures), max(figures)
    return f"{mid:,.{digits}f} ({low:,.{digits}f}–{high:,.{digits}f})"


def per_core(runs: list[dict[str, Any]], *keys: str) -> list[float]:
    """Requests per second one core gives at each run's CPU per request (µs, `keys` summed)."""
    return [1e6 / sum(run[k] for k in keys) for run in runs]


def lock_ceiling(run: dict[str, Any]) -> float | None:
    """The rate at which the log lock would be held all the time, at this run's hold time per
    request (rate / share of the time held); None when it was never seen held."""
    held = run["waits"]["log_lock_held_share"]
    return run["rate_per_s"] / held if held else None


def sampler_share(run: dict[str, Any]) -> float:
    """The pg_stat_activity sampler's own cost, in % of one core over the run."""
    waits = run["waits"]
    used = waits["sampler_cpu_ms"] + waits["sampler_backend_cpu_ms"]
    return 100 * used / 1000 / (run["requests"] / run["rate_per_s"])


ROWS: tuple[tuple[str, Any, int], ...] = (
    ("requests/s achieved", lambda r: r["rate_per_s"], 1),
    ("p50 ms", lambda r: r["p50_ms"], 1),
    ("p99 ms", lambda r: r["p99_ms"], 1),
    ("API CPU µs per request", lambda r: r["api_cpu_us"], 0),
    ("database CPU µs per request", lambda r: r["db_cpu_us"], 0),
    ("load generator CPU µs per req.", lambda r: r["bench_process_cpu_us"], 0),
    ("commits per request", lambda r: r["commits_per_request"], 3),
    ("commits/s (read-only ones too)", lambda r: r["commits_per_s"], 1),
    ("publishing commits/s (groups)", lambda r: r.get("publishing_commits_per_s") or None, 1),
    ("publishes per group", lambda r: r.get("publishes_per_group"), 2),
    ("machine busy, both cores (%)", lambda r: 100 * r["machine_busy_share"], 0),
    ("steal (%)", lambda r: 100 * r["machine_steal_share"], 1),
    ("log-lock share of active (%)", lambda r: 100 * r["waits"]["log_lock_share_of_active"], 1),
    (
        "samples with a log waiter (%)",
        lambda r: 100 * r["waits"]["share_of_samples_with_a_log_waiter"],
        1,
    ),
    ("log-lock wait µs per request", lambda r: r["waits"]["log_lock_wait_us_per_request"], 0),
    ("log lock held (% of the time)", lambda r: 100 * r["waits"]["log_lock_held_share"], 1),
    ("rate the lock allows (/s)", lock_ceiling, 0),
    ("sampler thread + backend CPU (%)", sampler_share, 1),
    ("per core, API only (/s)", None, 0),
    ("per core, API + database (/s)", None, 0),
)


def pooled(runs: list[dict[str, Any]], key: str) -> str:
    """The rounds' sampled observations (`key` of their waits) pooled, as shares."""
    counts: dict[str, int] = {}
    for run in runs:
        for what, n in run["waits"][key].items():
            counts[what] = counts.get(what, 0) + n
    total = sum(counts.values()) or 1
    ordered = sorted(counts.items(), key=lambda item: -item[1])
    return ", ".join(f"{what} {n / total:.1%}" for what, n in ordered) or "none seen"


def busiest_share(run: dict[str, Any]) -> float:
    """The busiest API process's share of the API processes' CPU in a run."""
    split = run["api_cpu_split"]
    return max(split) / sum(split) if sum(split) else 1.0


def balanced(runs: dict[str, list[dict[str, Any]]], processes: int) -> dict[str, Any]:
    """The runs in which every API process served: uvicorn's workers share one listening
    socket, and now and then one of them accepts all the load generator's connections,
    which makes that run a one-process run (it is reported, and left out of the medians)."""
    if processes < 2:
        return runs
    limit = 1 - 0.5 / processes  # with 2 processes: one took more than 75 % of the CPU
    return {kind: [r for r in rs if busiest_share(r) <= limit] or rs for kind, rs in runs.items()}


def report_gateway(result: dict[str, Any], clients: int) -> None:
    every = result["runs"]
    runs = balanced(every, result["processes"])
    left_out = {k: len(every[k]) - len(runs[k]) for k in every if len(every[k]) > len(runs[k])}
    print(
        f"\n== the gateway: {result['processes']} API process(es), {clients} clients, "
        f"{len(every['publish'])} rounds; median (min–max) over rounds =="
    )
    print(f"{'':34}{'single publish':>28}{'standing query':>28}")
    for label, figure, digits in ROWS:
        cells = []
        for kind in ("publish", "query"):
            if label.startswith("per core, API only"):
                values = per_core(runs[kind], "api_cpu_us")
            elif label.startswith("per core"):
                values = per_core(runs[kind], "api_cpu_us", "db_cpu_us")
            else:
                values = [figure(r) for r in runs[kind]]
            cells.append(spread(values, digits))
        print(f"{label:34}{cells[0]:>28}{cells[1]:>28}")
    for kind, plural in (("publish", "publishes"), ("query", "queries")):
        print(f"backends in a transaction during {plural}: {pooled(runs[kind], 'observations')}")
    print(f"the log lock's holder during publishes: {pooled(runs['publish'], 'holder')}")
    if left_out:
        print(f"left out, one process took the whole load: {left_out} run(s)")
    statuses = {k: [r["statuses"] for r in v] for k, v in every.items()}
    print(
        f"statuses: {statuses}; API CPU split per process (s): "
        f"{[r['api_cpu_split'] for r in every['publish']]}"
    )


def report_pgbench(runs: dict[str, list[dict[str, Any]]]) -> None:
    print("\n== commit rate of this PostgreSQL (pgbench), median (min–max) over rounds ==")
    for name, rs in runs.items():
        tps = [r["tps"] for r in rs]
        latency = spread([r["latency_ms"] for r in rs], 3)
        busy = spread([100 * r["machine_busy_share"] for r in rs], 0)
        print(f"{name:14} {spread(tps):>30} tps   latency {latency} ms   machine busy {busy} %")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--processes",
        type=int,
        nargs="+",
        default=[2, 1],
        help="API processes (serve --workers), one gateway phase per count, in this order",
    )
    parser.add_argument("--clients", type=int, default=32, help="keep-alive clients per run")
    parser.add_argument("--enterprises", type=int, default=100_000, help="size of the register")
    parser.add_argument("--publishes", type=int, default=3000, help="single publishes per round")
    parser.add_argument("--queries", type=int, default=6000, help="standing queries per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of publishes and queries")
    parser.add_argument("--sample-ms", type=float, default=5.0, help="pg_stat_activity interval")
    parser.add_argument("--pgbench-clients", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--pgbench-seconds", type=int, default=8)
    parser.add_argument("--pgbench-rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help=f"keep the {PREFIX}* databases")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = parser.parse_args()
    if args.rounds < 1 or args.pgbench_rounds < 1 or min(args.processes) < 1:
        parser.error("--rounds, --pgbench-rounds and --processes must be at least 1")
    result: dict[str, Any] = {"cpus": os.cpu_count(), "loadavg_start": loadavg()}
    result["postgresql"] = server_settings()
    print(f"{os.cpu_count()} CPUs; load average at start {result['loadavg_start']}", flush=True)
    print(
        "PostgreSQL (pgbench and the gateway alike): "
        + ", ".join(f"{k} {v}" for k, v in result["postgresql"].items()),
        flush=True,
    )
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-scale-paper-") as tmp:
        result["clients"] = args.clients
        result["gateway"] = [
            {"processes": n, "runs": gateway_runs(args, n, Path(tmp))} for n in args.processes
        ]
        result["loadavg_between"] = loadavg()
        result["pgbench"] = commit_rate(args, Path(tmp))
    result["loadavg_end"] = loadavg()
    result["seconds"] = round(time.perf_counter() - began, 1)
    for measured_gateway in result["gateway"]:
        report_gateway(measured_gateway, args.clients)
    report_pgbench(result["pgbench"])
    print(
        f"\nload average: start {result['loadavg_start']}, after the gateway "
        f"{result['loadavg_between']}, end {result['loadavg_end']}; {result['seconds']} s"
    )
    if args.json:
        print_json(result)


if __name__ == "__main__":
    main()
