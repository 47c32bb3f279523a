"""Standing-query throughput and latency beside a bare-FastAPI baseline measured in the same run,
the latency of a 1,000-code batch, and (--scale) the query rate on a register of 10^6.

    python bench/query.py                                  # SQLite and PostgreSQL, 10,000 each
    python bench/query.py --db postgresql --scale 1000000  # and a 10^6 register beside it
    python bench/query.py --db sqlite --requests 2000 --json

For each database: a fresh database with N enterprises (bench/populate.py: valid codes, Fujian
districts, a mix of grade states, list entries and accidents), one agency `bench` (role bank,
scope `query`, a `standing` right on the whole contract, its rate limit raised), and a gateway
(one uvicorn process pinned to CPU 0). The load generator (asyncio streams, keep-alive,
--concurrency connections, pinned to CPU 1) asks `GET /v1/enterprises/{code}?purpose=…` for
random codes of the register: each answer is read from the ledgers, recorded as an access
record and attested (an Ed25519 JWS). The baseline (bench/baseline_app.py, same uvicorn
settings, also on CPU 0) answers the same requests with JSON of the mean size of the gateway's
answers, measured first. Gateway and baseline are measured in alternating rounds, so both see
the same machine. Then the gateway answers `POST /v1/enterprises/query` with 1,000 random codes,
one request at a time (the first a warm-up), and the single-query latency is measured again
with only --light-concurrency clients (4), where the queueing of 64 clients does not hide it.
With --scale S on PostgreSQL a second gateway serves a register of S enterprises (loaded by
COPY, load time reported), taking part in the same alternating rounds. The PostgreSQL databases
(bench_query, bench_query_scale) are dropped at the end unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from baseline_app import QUERY_BYTES_ENV  # noqa: E402
from common import login  # noqa: E402
from harness import BENCH, HOST, Server, machine_line, print_json, uvicorn  # noqa: E402
from harness import prepare as prepare_database  # noqa: E402
from loadgen import Request, Run, drive, merge_runs  # noqa: E402
from populate import Loaded, code_of, drop_database, populate  # noqa: E402

from contracts.uscc import complete_uscc  # noqa: E402
from keys.suites import SigningKey  # noqa: E402

PURPOSE = "credit+review"
WARMUP = 400


@dataclass
class Prepared:
    env: dict[str, str]
    key: SigningKey
    enterprises: int
    loaded: Loaded


def prepare(backend: str, workdir: Path, name: str, count: int) -> Prepared:
    """A migrated database with the querying agency and `count` enterprises."""
    prepared = prepare_database(
        backend,
        database=name,
        directory=workdir / backend / name,
        name="基准测试银行",
        uscc=complete_uscc("91350100MA000BNK"),
        roles=["bank"],
        scopes=["query"],
        query=["standing"],
    )
    loaded = populate(prepared.url, count)
    env = prepared.env | {"GATEWAY_ACCESS_TOKEN_TTL_SECONDS": "7200"}
    return Prepared(env, prepared.key, count, loaded)


@dataclass
class Target:
    name: str
    server: Server
    auth: dict[str, str]
    enterprises: int  # codes are drawn from code_of(0 … enterprises - 1)


def singles(rng: random.Random, enterprises: int, count: int) -> list[Request]:
    return [
        ("GET", f"/v1/enterprises/{code_of(rng.randrange(enterprises))}?purpose={PURPOSE}", b"")
        for _ in range(count)
    ]


def answer_sizes(target: Target, rng: random.Random, count: int = 200) -> list[int]:
    """Body sizes of `count` real answers (all must be 200)."""
    sizes = []
    with httpx.Client(base_url=target.server.base, headers=target.auth) as client:
        for method, path, _ in singles(rng, target.enterprises, count):
            response = client.request(method, path)
            if response.status_code != 200:
                raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")
            sizes.append(len(response.content))
    return sizes


def interleaved(
    targets: list[Target], rng: random.Random, requests: int, rounds: int, conc: int
) -> dict[str, Run]:
    """`requests` per target in `rounds` rounds, the targets' order reversed every round."""
    for target in targets:
        warm = singles(rng, target.enterprises, WARMUP)
        drive(HOST, target.server.port, warm, concurrency=conc, headers=target.auth)
    runs: dict[str, list[Run]] = {t.name: [] for t in targets}
    per_round = max(1, requests // rounds)
    for n in range(rounds):
        for target in targets if n % 2 == 0 else targets[::-1]:
            batch = singles(rng, target.enterprises, per_round)
            runs[target.name].append(
                drive(HOST, target.server.port, batch, concurrency=conc, headers=target.auth)
            )
    return {name: merge_runs(rs) for name, rs in runs.items()}


def batch_latency(target: Target, rng: random.Random, repeats: int) -> dict[str, Any]:
    """`repeats` batches of 1,000 random codes, one at a time (after one warm-up batch)."""
    bodies = [
        json.dumps(
            {
                "codes": [code_of(rng.randrange(target.enterprises)) for _ in range(1000)],
                "purpose": "portfolio review",
            }
        ).encode()
        for _ in range(repeats + 1)
    ]
    requests = [("POST", "/v1/enterprises/query", b) for b in bodies]
    drive(HOST, target.server.port, requests[:1], concurrency=1, headers=target.auth)
    run = drive(HOST, target.server.port, requests[1:], concurrency=1, headers=target.auth)
    ms = sorted(x * 1000 for x in run.latencies)
    return {
        "batches": len(ms),
        "p50_ms": round(statistics.median(ms), 1),
        "min_ms": round(ms[0], 1),
        "max_ms": round(ms[-1], 1),
        "statuses": run.statuses,
    }


def summary(run: Run) -> dict[str, Any]:
    return run.summary() | {"statuses": run.statuses}


def bench(backend: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    main = prepare(backend, workdir, "bench_query", args.enterprises)
    print(f"[{backend}] loaded {main.loaded.describe()}", flush=True)
    scale = None
    if args.scale and backend == "postgresql":
        scale = prepare(backend, workdir, "bench_query_scale", args.scale)
        print(f"[{backend}] loaded {scale.loaded.describe()}", flush=True)
    servers: list[Server] = []
    try:
        gateway = uvicorn("gateway.app:create_app", env=main.env, log=logs / f"{backend}-gw.log")
        servers.append(gateway)
        targets = [
            Target(
                "gateway",
                gateway,
                login(gateway.base, main.key, "bench", "query"),
                main.enterprises,
            )
        ]
        sizes = answer_sizes(targets[0], rng)
        size = round(statistics.fmean(sizes))
        baseline = uvicorn(
            "baseline_app:create_app",
            env={QUERY_BYTES_ENV: str(size)},
            app_dir=BENCH,
            log=logs / f"{backend}-baseline.log",
        )
        servers.append(baseline)
        targets.append(Target("baseline", baseline, targets[0].auth, main.enterprises))
        if scale is not None:
            big = uvicorn(
                "gateway.app:create_app", env=scale.env, log=logs / f"{backend}-scale.log"
            )
            servers.append(big)
            auth = login(big.base, scale.key, "bench", "query")
            targets.append(Target("gateway_scale", big, auth, scale.enterprises))
        runs = interleaved(targets, rng, args.requests, args.rounds, args.concurrency)
        light = (
            interleaved(targets[:2], rng, args.light_requests, 2, args.light_concurrency)
            if args.light_concurrency
            else None
        )
        batch = batch_latency(targets[0], rng, args.batches)
        batch_scale = batch_latency(targets[2], rng, args.batches) if scale else None
    finally:
        for server in servers:
            server.stop()
        if not args.keep:
            for prepared in (main, scale):
                if prepared is not None:
                    drop_database(prepared.env["GATEWAY_DATABASE_URL"])
    result: dict[str, Any] = {
        "backend": backend,
        "enterprises": args.enterprises,
        "load_seconds": round(main.loaded.seconds, 1),
        "answer_bytes": {"mean": size, "min": min(sizes), "max": max(sizes)},
        "concurrency": args.concurrency,
        "gateway": summary(runs["gateway"]),
        "baseline": summary(runs["baseline"]),
        "batch_1000": batch,
    }
    if light is not None:
        result["light"] = {
            "concurrency": args.light_concurrency,
            "gateway": summary(light["gateway"]),
            "baseline": summary(light["baseline"]),
        }
    if scale is not None:
        result["scale"] = {
            "enterprises": scale.enterprises,
            "load_seconds": round(scale.loaded.seconds, 1),
            "gateway": summary(runs["gateway_scale"]),
            "batch_1000": batch_scale,
        }
    return result


def report(r: dict[str, Any]) -> None:
    g, b = r["gateway"], r["baseline"]
    ratio = g["rate_per_s"] / b["rate_per_s"]
    print(
        f"\n== {r['backend']}: {r['enterprises']:,} enterprises, {r['concurrency']} clients, "
        f"answers {r['answer_bytes']['mean']} bytes (mean) =="
    )
    columns = [("gateway", g), ("baseline", b)]
    if "scale" in r:
        columns.append((f"gateway {r['scale']['enterprises']:,}", r["scale"]["gateway"]))
    print(f"{'':26}" + "".join(f"{name:>20}" for name, _ in columns))
    for label, key in (
        ("queries/s", "rate_per_s"),
        ("p50 ms", "p50_ms"),
        ("p99 ms", "p99_ms"),
        ("requests", "requests"),
    ):
        print(f"{label:26}" + "".join(f"{col[key]:>20}" for _, col in columns))
    batch = r["batch_1000"]
    print(
        f"gateway = {ratio:.0%} of baseline (goal >= 60 %); p99 {g['p99_ms']} ms (goal < 25 ms;"
        f" with {r['concurrency']} clients always waiting, a mean under 25 ms needs "
        f"{r['concurrency'] / 0.025:,.0f} answers/s)"
    )
    if "light" in r:
        lg, lb = r["light"]["gateway"], r["light"]["baseline"]
        print(
            f"with {r['light']['concurrency']} clients: gateway {lg['rate_per_s']}/s p50 "
            f"{lg['p50_ms']} p99 {lg['p99_ms']} ms; baseline {lb['rate_per_s']}/s p50 "
            f"{lb['p50_ms']} p99 {lb['p99_ms']} ms"
        )
    print(
        f"batch of 1,000: p50 {batch['p50_ms']} ms over {batch['batches']} "
        f"(min {batch['min_ms']}, max {batch['max_ms']}; goal < 200 ms)"
    )
    if "scale" in r:
        s = r["scale"]
        keep = s["gateway"]["rate_per_s"] / g["rate_per_s"]
        print(
            f"{s['enterprises']:,} enterprises (loaded in {s['load_seconds']} s): "
            f"{s['gateway']['rate_per_s']}/s = {keep:.0%} of the rate at "
            f"{r['enterprises']:,} (goal >= 80 %); batch p50 {s['batch_1000']['p50_ms']} ms"
        )
    statuses = {name: col["statuses"] for name, col in columns}
    print(f"statuses: {statuses}, batch {batch['statuses']}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--enterprises", type=int, default=10_000, help="size of the register")
    parser.add_argument(
        "--scale", type=int, default=0, help="PostgreSQL: also serve a register of this size"
    )
    parser.add_argument("--requests", type=int, default=4000, help="single queries per target")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds per target")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--light-concurrency",
        type=int,
        default=4,
        help="also measure latency with this few clients (0: skip)",
    )
    parser.add_argument("--light-requests", type=int, default=1000, help="per target")
    parser.add_argument("--batches", type=int, default=7, help="1,000-code batches timed")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    parser.add_argument(
        "--keep", action="store_true", help="keep the PostgreSQL databases (bench_query*)"
    )
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    print(machine_line(), flush=True)
    backends = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-query-") as tmp:
        for backend in backends:
            results.append(bench(backend, args, Path(tmp)))
            report(results[-1])
    if args.json:
        print_json(results)


if __name__ == "__main__":
    main()
