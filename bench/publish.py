"""Publish throughput and latency beside a bare-FastAPI baseline measured in the same run.

    python bench/publish.py                       # SQLite and PostgreSQL
    python bench/publish.py --db sqlite --single 2000 --batches 5
    python bench/publish.py --db sqlite --stub    # and the event loop's share alone

For each database: a gateway (one uvicorn process pinned to CPU 0) takes N single publishes
from 32 concurrent keep-alive clients (pinned to CPU 1), then batches of 1,000; the baseline
app (bench/baseline_app.py, same uvicorn settings, also on CPU 0) takes the same bodies, its
loads alternating with the gateway's: --rounds rounds of single publishes and one batch at a
time, the order reversed each round. While the single
load runs, a probe GETs /healthz every 10 ms: its latency shows whether the event loop blocks.
Every message is a new, valid `enterprise.registered`, so each one is fully verified, applied,
appended and receipted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from common import login  # noqa: E402
from harness import BENCH, JOSE, PUBLISHER, Server, print_json, uvicorn  # noqa: E402
from harness import prepare as prepare_database  # noqa: E402
from harness import registrations as messages  # noqa: E402
from loadgen import Run, load, merge_runs  # noqa: E402

from keys.suites import SigningKey  # noqa: E402


def prepare(backend: str, workdir: Path) -> tuple[dict[str, str], SigningKey]:
    """The database `bench_publish` and its agency: a stand-in for every role, it publishes
    and (bench/deliver.py) subscribes itself."""
    prepared = prepare_database(
        backend,
        database="bench_publish",
        directory=workdir / backend,
        **PUBLISHER,
    )
    return prepared.env, prepared.key


def measure(
    servers: dict[str, Server],
    singles: list[bytes],
    batches: list[list[bytes]],
    conc: int,
    auth: dict[str, str],
    rounds: int,
) -> dict[str, dict[str, Any]]:
    """Each server's figures, its loads interleaved with the others' in `rounds` rounds (the
    order reversed every round), so that the host's drift during a run, which moves rates
    by 15-30 % here, falls on both alike. Every server gets the same bodies; the gateway sees
    each message once. Beside the rates, each server process's CPU time (user + system, from
    /proc) per single publish: a figure the host's drift moves less than a rate."""
    warm, singles = singles[:200], singles[200:]
    host = "127.0.0.1"
    names = list(servers)
    ports = {name: server.port for name, server in servers.items()}
    cpu_seconds = dict.fromkeys(names, 0.0)
    for name in names:
        load(
            host,
            ports[name],
            "/v1/messages",
            warm,
            concurrency=conc,
            content_type=JOSE,
            headers=auth,
        )
    runs: dict[str, list[Run]] = {name: [] for name in names}
    probes: dict[str, list[Run]] = {name: [] for name in names}
    for n in range(rounds):
        chunk = singles[n * len(singles) // rounds : (n + 1) * len(singles) // rounds]
        for name in names if n % 2 == 0 else names[::-1]:
            began = servers[name].cpu_seconds()
            run, probe = load(
                host,
                ports[name],
                "/v1/messages",
                chunk,
                concurrency=conc,
                content_type=JOSE,
                headers=auth,
            )
            cpu_seconds[name] += servers[name].cpu_seconds() - began
            runs[name].append(run)
            probes[name].append(probe)
    bodies = [json.dumps({"messages": [m.decode() for m in b]}).encode() for b in batches]
    batch_runs: dict[str, list[Run]] = {name: [] for name in names}
    for name in names:
        load(host, ports[name], "/v1/messages/batch", bodies[:1], concurrency=1, headers=auth)
    for n, body in enumerate(bodies[1:]):
        for name in names if n % 2 == 0 else names[::-1]:
            run, _ = load(
                host, ports[name], "/v1/messages/batch", [body], concurrency=1, headers=auth
            )
            batch_runs[name].append(run)
    per_batch = len(batches[0])
    out = {}
    for name in names:
        single, batch = merge_runs(runs[name]), merge_runs(batch_runs[name])
        out[name] = {
            "single": single.summary()
            | {
                "statuses": single.statuses,
                "server_cpu_us": round(cpu_seconds[name] / len(single.latencies) * 1e6),
            },
            "healthz_under_load": merge_runs(probes[name]).summary(),
            "batch": {
                "batches": len(bodies) - 1,
                "messages_per_s": round(per_batch * batch.rate, 1),
                "p50_ms_per_batch": round(batch.pct(0.5), 1),
                "statuses": batch.statuses,
            },
        }
    return out


def bench(
    backend: str,
    single: int,
    batches: int,
    conc: int,
    rounds: int,
    workdir: Path,
    stub: bool = False,
) -> dict[str, Any]:
    env, key = prepare(backend, workdir)
    singles = messages(key, 0, single + 200)
    batch_msgs = messages(key, 10_000_000, 1000 * (batches + 1))
    grouped = [batch_msgs[i : i + 1000] for i in range(0, len(batch_msgs), 1000)]
    servers: list[Server] = []
    try:
        servers.append(uvicorn("gateway.app:create_app", env=env))
        servers.append(uvicorn("baseline_app:create_app", app_dir=BENCH))
        # The same Authorization header goes to the baseline, which ignores it.
        named = {"gateway": servers[0], "baseline": servers[1]}
        if stub:  # the gateway's event loop alone: publishing answered by a fixed receipt
            servers.append(uvicorn("stub_app:create_app", env=env, app_dir=BENCH))
            named["stub"] = servers[2]
        auth = login(servers[0].base, key, "bench", "publish")
        figures = measure(named, singles, grouped, conc, auth, rounds)
    finally:
        for server in servers:
            server.stop()
    return {"backend": backend, **figures}


def report(result: dict[str, Any]) -> None:
    g, b = result["gateway"], result["baseline"]
    ratio = g["single"]["rate_per_s"] / b["single"]["rate_per_s"]
    print(f"\n== {result['backend']} ==")
    print(f"{'':28}{'gateway':>12}{'baseline':>12}")
    for label, key in (
        ("single publishes/s", "rate_per_s"),
        ("server CPU µs per single", "server_cpu_us"),
        ("single p50 ms", "p50_ms"),
        ("single p99 ms", "p99_ms"),
    ):
        print(f"{label:28}{g['single'][key]:>12}{b['single'][key]:>12}")
    print(
        f"{'batch messages/s':28}{g['batch']['messages_per_s']:>12}"
        f"{b['batch']['messages_per_s']:>12}"
    )
    print(
        f"{'/healthz p99 ms under load':28}{g['healthz_under_load']['p99_ms']:>12}"
        f"{b['healthz_under_load']['p99_ms']:>12}"
    )
    print(
        f"single throughput = {ratio:.0%} of baseline (goal >= 50 %); "
        f"batch {g['batch']['messages_per_s']:.0f}/s (goal >= 8,000/s)"
    )
    cpu_ratio = b["single"]["server_cpu_us"] / g["single"]["server_cpu_us"]
    print(f"by server CPU per single publish, the gateway costs {1 / cpu_ratio:.1f} x the baseline")
    print(f"statuses: single {g['single']['statuses']}, batch {g['batch']['statuses']}")
    if "stub" in result:
        s = result["stub"]["single"]
        print(
            f"stub (publishing answered by a fixed receipt): {s['rate_per_s']} singles/s, "
            f"server CPU {s['server_cpu_us']} µs per single: the event loop's share"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--single", type=int, default=3000, help="single publishes measured")
    parser.add_argument("--batches", type=int, default=8, help="batches of 1,000 measured")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="single-publish rounds, alternating the servers (even: each goes first as often)",
    )
    parser.add_argument(
        "--stub",
        action="store_true",
        help="also measure the gateway with publishing answered by a fixed receipt "
        "(bench/stub_app.py): the event loop's share of a single publish",
    )
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = parser.parse_args()
    if not 1 <= args.rounds <= args.single:
        parser.error("--rounds must be between 1 and --single")
    os.sched_setaffinity(0, {1})
    backends = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-publish-") as tmp:
        for backend in backends:
            results.append(
                bench(
                    backend,
                    args.single,
                    args.batches,
                    args.concurrency,
                    args.rounds,
                    Path(tmp),
                    args.stub,
                )
            )
            report(results[-1])
    if args.json:
        print_json(results)


if __name__ == "__main__":
    main()
