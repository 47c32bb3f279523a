"""The gateway's single publish and standing query under each HTTP stack it has shipped, in
one run.

    git worktree add /tmp/perf-base d0644d9           # main before `gateway serve` named its stack
    git worktree add --detach /tmp/perf-base-g main   # main: uvicorn on httptools and uvloop
    python bench/http_stack.py --base /tmp/perf-base --main /tmp/perf-base-g
    python bench/http_stack.py --base /tmp/perf-base --requests 2000 --rounds 4

Targets, each one server process (with its descendants) pinned to CPU 0 on a SQLite database
of its own (same register: --enterprises from bench/populate.py, one agency `bench` that
publishes `enterprise.registered` and asks `standing`):

- `main h11/asyncio`: the --base tree's code (imported from there through PYTHONPATH) under
  uvicorn with h11 on the stdlib loop, what main's `gateway serve` ran where uvicorn had no
  `standard` extra (issue 24's baseline);
- `main serve httptools/uvloop`: the --main tree's `gateway serve` as it shipped there
  (uvicorn's httptools parser on uvloop), if --main is given;
- `granian CLI`: with --granian-cli, this tree's app under Granian's own command line (ASGI,
  one worker, uvloop, HTTP "auto"), the earlier section's `granian` target;
- `serve`: this tree's `gateway serve` as shipped (uvicorn on httptools and uvloop; on the
  branch that tried Granian, its supervising process and one worker, HTTP/1.1).

The load generator (bench/loadgen.py, pinned to CPU 1) sends, in --rounds rounds whose target
order is reversed every round, --requests single publishes (`POST /v1/messages`, one new
signed message each) and --requests standing queries (`GET /v1/enterprises/{code}?purpose=…`
for random codes) from --concurrency keep-alive connections. Each server's CPU time (its
processes, user + system) per request is read from /proc beside the rates, and its memory
(all its processes: RSS, and PSS, which counts pages a forked worker shares once) after the
last round.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from common import login  # noqa: E402
from harness import (  # noqa: E402
    HOST,
    JOSE,
    Server,
    free_port,
    memory_mb,
    pinned,
    print_json,
    registrations,
)
from harness import prepare as prepare_database  # noqa: E402
from loadgen import Request, Run, drive, merge_runs  # noqa: E402
from populate import code_of, populate  # noqa: E402

from contracts.uscc import complete_uscc  # noqa: E402
from keys.suites import SigningKey  # noqa: E402

PURPOSE = "credit+review"
WARMUP = 300
# what d0644d9's `gateway serve` passed uvicorn: log level info, no access log
UVICORN = ["-m", "uvicorn", "--factory", "gateway.app:create_app", "--host", HOST]
UVICORN += ["--log-level", "info", "--no-access-log"]


def prepare(directory: Path, enterprises: int) -> tuple[dict[str, str], SigningKey]:
    """A migrated SQLite database with the register and the agency that publishes and asks."""
    prepared = prepare_database(
        "sqlite",
        database="gateway",
        directory=directory,
        name="基准测试",
        uscc=complete_uscc("11350000MB000001"),
        roles=["grading_authority", "bank"],
        scopes=["publish", "query"],
        publish=["enterprise.registered"],
        query=["standing"],
    )
    populate(prepared.url, enterprises)
    return prepared.env | {"GATEWAY_ACCESS_TOKEN_TTL_SECONDS": "7200"}, prepared.key


def command(stack: str, port: int) -> list[str]:
    python = [sys.executable]
    if stack == "h11":
        return [*python, *UVICORN, "--port", str(port), "--http", "h11", "--loop", "asyncio"]
    if stack == "granian-cli":  # the section "HTTP stack (issue 24 §1)"'s `granian` target
        granian = str(Path(sys.executable).with_name("granian"))
        options = ["--interface", "asgi", "--factory", "--workers", "1", "--loop", "uvloop"]
        options += ["--no-access-log", "--host", HOST, "--port", str(port)]
        return [granian, *options, "gateway.app:create_app"]
    # `gateway serve` of the tree the server runs in (first on PYTHONPATH), whatever it runs
    return [*python, "-m", "gateway.cli", "serve", "--host", HOST, "--port", str(port)]


def start(stack: str, tree: Path, env: dict[str, str], log: Path) -> Server:
    """One server pinned to CPU 0 in `tree` (its code first on the path); its log lines (the
    gateway's JSON access line per request) go to a file, as a deployment's go to a collector."""
    port = free_port()
    env = env | {"PYTHONPATH": str(tree)}
    return Server(pinned("0", command(stack, port)), port=port, env=env, cwd=tree, log=log)


@dataclass
class Target:
    name: str
    server: Server
    key: SigningKey
    enterprises: int
    published: int = 0

    def publishes(self, count: int) -> list[Request]:
        """`count` new signed registrations, never sent to this target before."""
        bodies = registrations(self.key, self.published, count)
        self.published += count
        return [("POST", "/v1/messages", body) for body in bodies]

    def queries(self, rng: random.Random, count: int) -> list[Request]:
        return [
            (
                "GET",
                f"/v1/enterprises/{code_of(rng.randrange(self.enterprises))}?purpose={PURPOSE}",
                b"",
            )
            for _ in range(count)
        ]


def measure(
    targets: list[Target], requests: int, rounds: int, conc: int
) -> dict[str, dict[str, Any]]:
    rng = random.Random(24)
    auth = {t.name: login(t.server.base, t.key, "bench", "publish query") for t in targets}
    runs: dict[tuple[str, str], list[Run]] = {}
    cpu: dict[tuple[str, str], float] = {}
    per_round = max(1, requests // rounds)
    for n in range(-1, rounds):  # round -1 warms every target up, unmeasured
        size = WARMUP if n < 0 else per_round
        for target in targets if n % 2 == 0 else targets[::-1]:
            for kind, batch, content_type in (
                ("publish", target.publishes(size), JOSE),
                ("query", target.queries(rng, size), "application/json"),
            ):
                began = target.server.cpu_seconds()
                run = drive(
                    HOST,
                    target.server.port,
                    batch,
                    concurrency=conc,
                    content_type=content_type,
                    headers=auth[target.name],
                )
                if n >= 0:
                    key = (target.name, kind)
                    cpu[key] = cpu.get(key, 0.0) + target.server.cpu_seconds() - began
                    runs.setdefault(key, []).append(run)
    out: dict[str, dict[str, Any]] = {}
    for (name, kind), rs in runs.items():
        run = merge_runs(rs)
        out.setdefault(name, {})[kind] = run.summary() | {
            "statuses": run.statuses,
            "server_cpu_us": round(cpu[name, kind] / len(run.latencies) * 1e6),
        }
    for target in targets:
        pids = process_tree(target.server.process.pid)
        out[target.name]["memory"] = {
            "processes": len(pids),
            "rss_mb": round(sum(memory_mb(pid) for pid in pids), 1),
            "pss_mb": round(sum(pss_mb(pid) for pid in pids), 1),
        }
    return out


def pss_mb(pid: int) -> float:
    """The process's proportional set size in MB: pages it shares with another process (a
    forked worker with its supervisor) counted once between them, unlike RSS."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no Pss for {pid}")


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (Granian's worker is a child of its supervisor), from /proc."""
    found, pending = [], [pid]
    while pending:
        pid = pending.pop()
        found.append(pid)
        for task in Path(f"/proc/{pid}/task").iterdir():
            pending += [int(child) for child in (task / "children").read_text().split()]
    return found


def report(figures: dict[str, dict[str, Any]], conc: int, against: list[str]) -> None:
    names = list(figures)
    width = max(26, *(len(n) + 2 for n in names))
    print(f"\n{'':44}" + "".join(f"{n:>{width}}" for n in names))
    for kind in ("publish", "query"):
        for label, field in (
            (f"{kind} requests/s, {conc} clients", "rate_per_s"),
            (f"{kind} p50 ms", "p50_ms"),
            (f"{kind} p99 ms", "p99_ms"),
            (f"{kind} server CPU µs per request", "server_cpu_us"),
        ):
            print(f"{label:44}" + "".join(f"{figures[n][kind][field]:>{width}}" for n in names))
        for base in against:
            rate = figures[base][kind]["rate_per_s"]
            ratios = (figures[n][kind]["rate_per_s"] / rate for n in names)
            label = f"{kind} rate / {base}"[:43]
            print(f"{label:44}" + "".join(f"{r:>{width - 1}.2f}x" for r in ratios))
    for field in ("rss_mb", "pss_mb"):
        label = f"server {field[:3].upper()} MB after the run (processes)"
        memory = [figures[n]["memory"] for n in names]
        cells = (f"{m[field]} ({m['processes']})" for m in memory)
        print(f"{label:44}" + "".join(f"{c:>{width}}" for c in cells))
    for name in names:
        print(
            f"statuses {name}: "
            + ", ".join(f"{k} {figures[name][k]['statuses']}" for k in ("publish", "query"))
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--base", type=Path, required=True, help="worktree of the h11/asyncio baseline (d0644d9)"
    )
    parser.add_argument(
        "--main", type=Path, help="worktree of a main whose `gateway serve` to compare as well"
    )
    parser.add_argument(
        "--granian-cli",
        action="store_true",
        help="also this tree's app under Granian's own CLI (the earlier section's target)",
    )
    parser.add_argument("--requests", type=int, default=3000, help="per kind and target")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--enterprises", type=int, default=10_000)
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    stacks = [("main h11/asyncio", "h11", args.base.resolve())]
    if args.main is not None:
        stacks.append(("main serve httptools/uvloop", "main-serve", args.main.resolve()))
    if args.granian_cli:
        stacks.append(("granian CLI", "granian-cli", ROOT))
    stacks.append(("serve", "serve", ROOT))
    targets: list[Target] = []
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        try:
            for name, stack, tree in stacks:
                directory = Path(tmp) / stack
                env, key = prepare(directory, args.enterprises)
                server = start(stack, tree, env, directory / "server.log")
                targets.append(Target(name, server, key, args.enterprises))
            figures = measure(targets, args.requests, args.rounds, args.concurrency)
        finally:
            for target in targets:
                target.server.stop()
    baselines = [name for name, stack, _ in stacks if stack in ("h11", "main-serve")]
    report(figures, args.concurrency, baselines)
    if args.json:
        print_json(figures)


if __name__ == "__main__":
    main()
