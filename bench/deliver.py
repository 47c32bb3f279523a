"""Delivery throughput and publish-to-delivered latency, beside a direct-POST baseline.

    python bench/deliver.py                  # SQLite
    python bench/deliver.py --db postgresql

Throughput: N deliveries are queued (N published registrations, one subscription), then one
`gateway worker` process delivers them to a local receiver (a uvicorn process); the baseline
is the same httpx client settings and the same thread count posting the same CloudEvents
bodies straight to the same receiver, in the same run. Latency: a gateway (`gateway serve`,
in-process worker) takes single publishes at a steady rate; the receiver records when each
message arrives.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from sqlalchemy import select

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from common import login  # noqa: E402
from harness import BENCH, LOOPBACK_DELIVERY, drain_with_worker, subscribe, uvicorn  # noqa: E402
from publish import messages, prepare  # noqa: E402

from gateway.delivery.jobs import load_jobs  # noqa: E402
from gateway.delivery.worker import make_client  # noqa: E402
from gateway.models import Delivery  # noqa: E402
from gateway.publishing.orchestration import publish as publish_messages  # noqa: E402
from gateway.runtime import Runtime  # noqa: E402
from gateway.settings import DeliverySettings, Settings  # noqa: E402


def throughput(backend: str, count: int, workdir: Path) -> dict[str, float]:
    env, key = prepare(backend, workdir)
    settings = Settings(
        data_dir=Path(env["GATEWAY_DATA_DIR"]),
        database_url=env["GATEWAY_DATABASE_URL"],
        delivery=DeliverySettings(allowed_hosts=["127.0.0.1"]),
    )
    receiver = uvicorn("receiver_app:create_app", app_dir=BENCH, cpu="1")
    url = f"{receiver.base}/hook"
    subscribe(settings, url)
    runtime = Runtime.open(settings)
    try:
        tokens = messages(key, 20_000_000, count)
        for i in range(0, count, 1000):
            publish_messages(runtime, tokens[i : i + 1000])
        with runtime.db.reader() as session:
            ids = list(session.scalars(select(Delivery.id).order_by(Delivery.id)))
            bodies = [job.body for job in load_jobs(session, ids, "bench")]
        worker_seconds = drain_with_worker(runtime, env | LOOPBACK_DELIVERY)
        # Baseline: the same client settings and parallelism, no database, no signing.
        with make_client(runtime) as client, ThreadPoolExecutor(settings.delivery.parallel) as pool:
            began = time.perf_counter()
            list(
                pool.map(
                    lambda b: client.post(
                        url, content=b, headers={"content-type": "application/cloudevents+json"}
                    ),
                    bodies,
                )
            )
            direct_seconds = time.perf_counter() - began
    finally:
        runtime.close()
        receiver.stop()
    return {
        "deliveries": count,
        "worker_per_s": round(count / worker_seconds, 1),
        "direct_post_per_s": round(count / direct_seconds, 1),
    }


def latency(backend: str, rate: float, seconds: float, workdir: Path) -> dict[str, float]:
    env, key = prepare(backend, workdir / "latency")
    receiver = uvicorn("receiver_app:create_app", app_dir=BENCH, cpu="1")
    genv = env | LOOPBACK_DELIVERY | {"GATEWAY_DELIVERY__IDLE_SLEEP_SECONDS": "0.02"}
    gateway = uvicorn("gateway.app:create_app", env=genv)
    try:
        base = gateway.base
        auth = login(base, key, "bench", "publish admin")
        httpx.post(
            f"{base}/v1/subscriptions",
            headers=auth,
            json={
                "agency_id": "bench",
                "url": f"{receiver.base}/hook",
                "types": ["enterprise.registered"],
            },
        ).raise_for_status()
        tokens = messages(key, 30_000_000, int(rate * seconds))
        sent: dict[str, float] = {}
        with httpx.Client(base_url=base, headers=auth) as client:
            began = time.perf_counter()
            for n, token in enumerate(tokens):
                target = began + n / rate
                time.sleep(max(0.0, target - time.perf_counter()))
                message_id = json.loads(base64.urlsafe_b64decode(token.split(b".")[1] + b"=="))[
                    "id"
                ]
                sent[message_id] = time.time()
                client.post(
                    "/v1/messages", content=token, headers={"content-type": "application/jose"}
                )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            arrivals = httpx.get(f"{receiver.base}/arrivals").json()
            if len(arrivals) >= len(sent):
                break
            time.sleep(0.2)
        lat = sorted((arrivals[m] - sent[m]) * 1000 for m in sent if m in arrivals)
    finally:
        gateway.stop()
        receiver.stop()
    return {
        "rate_per_s": rate,
        "messages": len(sent),
        "delivered": len(lat),
        "p50_ms": round(lat[len(lat) // 2], 1),
        "p99_ms": round(lat[int(len(lat) * 0.99) - 1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--deliveries", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=50.0, help="publishes/s for the latency run")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-deliver-") as tmp:
        result = throughput(args.db, args.deliveries, Path(tmp))
        ratio = result["worker_per_s"] / result["direct_post_per_s"]
        print(
            f"[{args.db}] one worker: {result['worker_per_s']}/s; direct posts: "
            f"{result['direct_post_per_s']}/s; ratio {ratio:.0%} (goal >= 50 %)",
            flush=True,
        )
        lat = latency(args.db, args.rate, args.seconds, Path(tmp))
        print(
            f"[{args.db}] publish->delivered at {lat['rate_per_s']}/s: p50 {lat['p50_ms']} ms, "
            f"p99 {lat['p99_ms']} ms ({lat['delivered']}/{lat['messages']} delivered)"
        )


if __name__ == "__main__":
    main()
