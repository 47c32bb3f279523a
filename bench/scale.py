"""Scale (issue 7 §6): publish, query, proof and delivery rates on a PostgreSQL gateway holding
10^6 enterprises and 10^6 log entries, beside the same rates at 10^4 measured in the same run,
and the API process's peak RSS.

    python bench/scale.py                      # 10,000 beside 1,000,000
    python bench/scale.py --large 200000 --json

Each size gets a fresh database (bench/populate.py: enterprises by COPY, then as many synthetic
log entries whose Merkle nodes the gateway's own DbSubtrees computes), one agency `bench`
(publish, query, subscribe, admin; a `standing` right; its rate limit raised) with a push
subscription to a loopback receiver (bench/receiver_app.py) for `enterprise.registered`, and
one gateway process (uvicorn, pinned to CPU 0, in-process worker off). Then, per size:

- publish: --publishes single POST /v1/messages of new enterprises from 32 clients;
- query:   --queries GET /v1/enterprises/{code} for random codes from 64 clients;
- proof:   --proofs GET /v1/log/proofs/inclusion for random indexes from 32 clients;
- delivery: one `gateway worker` process (CPU 0) drains the publishes' deliveries; rate =
  deliveries / seconds until the last is delivered;
- RSS: the API process's VmHWM (peak resident set) read from /proc after all of it.

The two sizes are measured one after the other in the same run; the goal is each large-size
rate within 80 % of the small one's, and the peak RSS under 300 MB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from common import login  # noqa: E402
from harness import (  # noqa: E402
    BENCH,
    HOST,
    JOSE,
    LOOPBACK_DELIVERY,
    drain_with_worker,
    memory_mb,
    prepare,
    print_json,
    registrations,
    subscribe,
    uvicorn,
)
from loadgen import load, load_requests  # noqa: E402
from populate import append_log, code_of, drop_database, populate  # noqa: E402
from query import PURPOSE  # noqa: E402

from contracts.uscc import complete_uscc  # noqa: E402
from gateway.models import Delivery  # noqa: E402
from gateway.runtime import Runtime  # noqa: E402


def measure(size: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    began = time.perf_counter()
    name = f"bench_scale_{size}"
    prepared = prepare(
        "postgresql",
        database=name,
        directory=workdir / "postgresql" / name,
        name="基准测试银行",
        uscc=complete_uscc("91350100MA000BNK"),
        roles=["bank"],
        scopes=["query", "publish", "admin"],
        publish=["enterprise.registered"],
        subscribe=["enterprise.registered"],
        query=["standing"],
    )
    url = prepared.url
    populate(url, size)
    append_log(url, size, subjects=size, seed=7, now=dt.datetime.now(dt.UTC))
    loaded = time.perf_counter() - began
    receiver = uvicorn("receiver_app:create_app", app_dir=BENCH, cpu=None)
    subscribe(prepared.settings(), f"{receiver.base}/hook")
    env = (
        prepared.env
        | LOOPBACK_DELIVERY
        | {
            "GATEWAY_ACCESS_TOKEN_TTL_SECONDS": "7200",
            "GATEWAY_DELIVERY__IN_PROCESS_WORKER": "false",
            "GATEWAY_CONNECTORS__SNAPSHOT_INTERVAL_SECONDS": "0",
        }
    )
    server = uvicorn("gateway.app:create_app", env=env, log=workdir / f"scale-{size}.log")
    rng = random.Random(size)
    result: dict[str, Any] = {"size": size, "load_seconds": round(loaded, 1)}
    try:
        auth = login(server.base, prepared.key, "bench", "publish query admin")
        tokens = registrations(
            prepared.key,
            10**7 + size,  # eight digits, as the codes' prefix leaves room for
            args.publishes + 100,
            prefix="91350200",
            name="厦门规模测试第{n}有限公司",
            region_code="350203",
        )
        load(
            HOST,
            server.port,
            "/v1/messages",
            tokens[:100],
            concurrency=32,
            content_type=JOSE,
            headers=auth,
        )  # warm-up
        run, _ = load(
            HOST,
            server.port,
            "/v1/messages",
            tokens[100:],
            concurrency=32,
            content_type=JOSE,
            headers=auth,
        )
        result["publish_per_s"] = round(run.rate, 1)
        result["publish_statuses"] = run.statuses
        queries = [
            ("GET", f"/v1/enterprises/{code_of(rng.randrange(size))}?purpose={PURPOSE}", b"")
            for _ in range(args.queries)
        ]
        load_requests(HOST, server.port, queries[:200], concurrency=64, headers=auth)
        run, _ = load_requests(HOST, server.port, queries, concurrency=64, headers=auth)
        result["query_per_s"] = round(run.rate, 1)
        result["query_statuses"] = run.statuses
        tree = int(httpx.get(f"{server.base}/v1/log/checkpoint").text.split("\n")[1])
        proofs = [
            ("GET", f"/v1/log/proofs/inclusion?tree_size={tree}&index={rng.randrange(tree)}", b"")
            for _ in range(args.proofs)
        ]
        load_requests(HOST, server.port, proofs[:200], concurrency=32)
        run, _ = load_requests(HOST, server.port, proofs, concurrency=32)
        result["proof_per_s"] = round(run.rate, 1)
        result["proof_statuses"] = run.statuses
        result["log_size"] = tree
        runtime = Runtime.open(prepared.settings())
        try:
            with runtime.db.reader() as session:
                pending = session.scalar(select(func.count()).select_from(Delivery))
            seconds = drain_with_worker(
                runtime, {**env, "GATEWAY_OBSERVABILITY__LOG_LEVEL": "WARNING"}
            )
            result["delivery_per_s"] = round((pending or 0) / seconds, 1)
        finally:
            runtime.close()
        result["api_peak_rss_mb"] = round(memory_mb(server.process.pid, "VmHWM"), 1)
    finally:
        server.stop()
        receiver.stop()
        if not args.keep:
            drop_database(url)
    return result


RATES = ("publish_per_s", "query_per_s", "proof_per_s", "delivery_per_s")


def report(small: dict[str, Any], large: dict[str, Any]) -> None:
    print(f"\n{'':22}{small['size']:>14,}{large['size']:>14,}{'ratio':>9}  goal")
    for key in RATES:
        ratio = large[key] / small[key]
        verdict = "met" if ratio >= 0.8 else "NOT met"
        print(f"{key:22}{small[key]:>14}{large[key]:>14}{ratio:>9.0%}  >= 80 % {verdict}")
    for key in ("api_peak_rss_mb", "log_size", "load_seconds"):
        print(f"{key:22}{small[key]:>14}{large[key]:>14}")
    peak = max(small["api_peak_rss_mb"], large["api_peak_rss_mb"])
    print(f"API peak RSS {peak} MB (goal < 300 MB: {'met' if peak < 300 else 'NOT met'})")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--publishes", type=int, default=1500)
    parser.add_argument("--queries", type=int, default=3000)
    parser.add_argument("--proofs", type=int, default=3000)
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        small = measure(args.small, args, Path(tmp))
        large = measure(args.large, args, Path(tmp))
    report(small, large)
    if args.json:
        print_json([small, large])


if __name__ == "__main__":
    main()
