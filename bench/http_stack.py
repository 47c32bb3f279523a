"""The gateway's single publish and standing query under three HTTP stacks, in one run.

    git worktree add /tmp/perf-base d0644d9          # main before `gateway serve` named its stack
    python bench/http_stack.py --base /tmp/perf-base
    python bench/http_stack.py --base /tmp/perf-base --no-granian --requests 2000 --rounds 4

Targets, each one server process pinned to CPU 0 on a SQLite database of its own (same
register: --enterprises from bench/populate.py, one agency `bench` that publishes
`enterprise.registered` and asks `standing`):

- `main h11/asyncio`: the --base tree's code (imported from there through PYTHONPATH) under
  uvicorn with h11 on the stdlib loop, what main's `gateway serve` runs where uvicorn has no
  `standard` extra;
- `serve httptools/uvloop`: this tree's `gateway serve`, its default as shipped;
- `granian`: this tree's app under Granian (ASGI, one worker, uvloop), if it is installed.

The load generator (bench/loadgen.py, pinned to CPU 1) sends, in --rounds rounds whose target
order is reversed every round, --requests single publishes (`POST /v1/messages`, one new
signed message each) and --requests standing queries (`GET /v1/enterprises/{code}?purpose=…`
for random codes) from --concurrency keep-alive connections. Each server's CPU time (its
processes, user + system) per request is read from /proc beside the rates.
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
from harness import HOST, JOSE, Server, free_port, pinned, print_json, registrations  # noqa: E402
from harness import prepare as prepare_database  # noqa: E402
from loadgen import Request, Run, drive, merge_runs  # noqa: E402
from populate import code_of, populate  # noqa: E402

from contracts.uscc import complete_uscc  # noqa: E402
from keys.suites import SigningKey  # noqa: E402

PURPOSE = "credit+review"
WARMUP = 300
# what main's `gateway serve` passed uvicorn: log level info, no access log
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
    if stack == "serve":
        return [*python, "-m", "gateway.cli", "serve", "--host", HOST, "--port", str(port)]
    granian = str(Path(sys.executable).with_name("granian"))
    return [
        granian,
        "--interface",
        "asgi",
        "--factory",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        "1",
        "--loop",
        "uvloop",
        "--no-access-log",
        "gateway.app:create_app",
    ]


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
    return out


def report(figures: dict[str, dict[str, Any]], conc: int) -> None:
    names = list(figures)
    base = figures[names[0]]
    print(f"\n{'':34}" + "".join(f"{n:>24}" for n in names))
    for kind in ("publish", "query"):
        for label, field in (
            (f"{kind} requests/s, {conc} clients", "rate_per_s"),
            (f"{kind} p50 ms", "p50_ms"),
            (f"{kind} p99 ms", "p99_ms"),
            (f"{kind} server CPU µs per request", "server_cpu_us"),
        ):
            print(f"{label:34}" + "".join(f"{figures[n][kind][field]:>24}" for n in names))
        print(
            f"{kind + ' rate / ' + names[0]:34}"
            + "".join(
                f"{figures[n][kind]['rate_per_s'] / base[kind]['rate_per_s']:>23.2f}x"
                for n in names
            )
        )
    for name in names:
        print(
            f"statuses {name}: "
            + ", ".join(f"{k} {figures[name][k]['statuses']}" for k in figures[name])
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", type=Path, required=True, help="worktree of main to compare")
    parser.add_argument("--requests", type=int, default=3000, help="per kind and target")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--enterprises", type=int, default=10_000)
    parser.add_argument("--no-granian", dest="granian", action="store_false")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    stacks = [
        ("main h11/asyncio", "h11", args.base.resolve()),
        ("serve httptools/uvloop", "serve", ROOT),
    ]
    if args.granian and Path(sys.executable).with_name("granian").exists():
        stacks.append(("granian", "granian", ROOT))
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
    report(figures, args.concurrency)
    if args.json:
        print_json(figures)


if __name__ == "__main__":
    main()
