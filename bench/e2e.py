"""End to end (issue 24 §5): publish → webhook delivered and verified, at a steady rate.

    python bench/e2e.py                                   # PostgreSQL, 2 workers, 200/s, 60 s
    python bench/e2e.py --db sqlite --workers 1 --rate 50 --seconds 10

A fresh database holds --enterprises registered enterprises (one a second of the rate by
default) and four receiving agencies, each with a push subscription (`enterprise.updated`,
signed `v1`: HMAC-SHA256, what the standardwebhooks library verifies) to one receiver process
on loopback (bench/receiver_app.py `create_verifying_app`), which verifies every signature
before it counts a webhook arrived. One `gateway serve` process takes the publishes (its
in-process worker off) and --workers `gateway worker` processes deliver (with --workers 0 the
serve process's own worker does). The load generator sends one signed `enterprise.updated`
every 1/--rate seconds for --seconds, open loop (on schedule, never waiting for an answer),
going round the enterprises so each gets one about every --enterprises/--rate seconds; then it
waits (up to --drain seconds) for every delivery. Nothing is pinned to a CPU: all of it shares
the machine, as a one-host deployment would.

Reported: publish → delivered latency (from the start of the publish request to the receiver
holding the verified webhook) p50/p99 over every delivery, deliveries expected (accepted
publishes × subscriptions) against received, per-enterprise order (each (subscription,
enterprise)'s log indexes must arrive increasing), and the send rate achieved.
Goals: p50 < 50 ms, p99 < 250 ms, nothing lost, order kept.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from common import login  # noqa: E402
from harness import (  # noqa: E402
    BENCH,
    HOST,
    JOSE,
    LOOPBACK_DELIVERY,
    Prepared,
    add_subscribers,
    free_port,
    gateway_serve,
    machine_line,
    prepare,
    print_json,
    registrations,
    sign_message,
    start_worker,
    stop_process,
    uvicorn,
)
from loadgen import Schedule, open_loop  # noqa: E402
from populate import drop_database  # noqa: E402
from receiver_app import SECRETS_ENV  # noqa: E402

from contracts.uscc import complete_uscc  # noqa: E402
from gateway.publishing.orchestration import publish as publish_messages  # noqa: E402
from gateway.runtime import Runtime  # noqa: E402

SUBSCRIPTIONS = 4
GOAL_P50_MS, GOAL_P99_MS = 50, 250
TYPE = "enterprise.updated"
WARMUP = 8  # updates published and delivered before the measured run


def register(prepared: Prepared, enterprises: int) -> list[str]:
    """`enterprises` registered in process, before any subscription (a subscription gets only
    what is accepted after it): their codes."""
    tokens = registrations(prepared.key, 0, enterprises)
    runtime = Runtime.open(prepared.settings())
    try:
        for i in range(0, enterprises, 1000):
            publish_messages(runtime, tokens[i : i + 1000])
    finally:
        runtime.close()
    return [complete_uscc(f"91350100{n:08d}") for n in range(enterprises)]


def updates(prepared: Prepared, codes: list[str], count: int) -> tuple[list[bytes], list[str]]:
    """`count` signed `enterprise.updated`, going round `codes` (each a new name, so that
    something changes), and their message ids."""
    issued = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30)).isoformat(timespec="seconds")
    ids = [str(uuid.uuid4()) for _ in range(count)]
    tokens = [
        sign_message(
            prepared.key,
            TYPE,
            codes[n % len(codes)],
            {
                "changed_on": "2024-06-01",
                "basis": "correction",
                "changes": {"name": f"福州端到端测试第{n}次更名有限公司"},
            },
            issued_at=issued,
            message_id=ids[n],
        )
        for n in range(count)
    ]
    return tokens, ids


def await_deliveries(base: str, expected: int, drain: float) -> dict[str, Any]:
    """What the receiver holds once it has `expected` webhooks, or after `drain` seconds."""
    deadline = time.monotonic() + drain
    with httpx.Client(base_url=base) as client:
        while time.monotonic() < deadline:
            if client.get("/count").json()["received"] >= expected:
                break
            time.sleep(0.2)
        answer: dict[str, Any] = client.get("/arrivals").json()
    return answer


def figures(schedule: Schedule, ids: list[str], received: dict[str, Any]) -> dict[str, Any]:
    sent = dict(zip(ids, schedule.sent_at, strict=True))
    accepted = sum(1 for status in schedule.statuses if status == 201)
    measured = [a for a in received["arrivals"] if a[2] in sent]  # not the warm-up's
    latencies: list[float] = sorted((at - sent[mid]) * 1000 for at, _, mid, _, _ in measured)
    last: dict[tuple[str, str], int] = {}
    out_of_order = 0
    for _, sub, _, subject, index in received["arrivals"]:  # in the order received
        if index <= last.get((sub, subject), -1):
            out_of_order += 1
        last[sub, subject] = index

    span = max((a[0] for a in measured), default=0.0) - min(schedule.sent_at)

    def pct(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 1)

    return {
        "sent": len(ids),
        "send_rate_per_s": round(schedule.send_rate, 1),
        "publish_statuses": dict(Counter(schedule.statuses)),
        "publish_p50_ms": round(schedule.run.pct(0.5), 1),
        "publish_p99_ms": round(schedule.run.pct(0.99), 1),
        "deliveries_expected": accepted * SUBSCRIPTIONS,
        "deliveries_received": len(measured),
        # from the first send to the last arrival: below rate x subscriptions, a backlog grew
        "delivered_per_s": round(len(measured) / span, 1) if span > 0 else None,
        "signatures_rejected": received["rejected"],
        "repeated": received["repeated"],
        "order_violations": out_of_order,
        "pairs_checked": len(last),
        "p50_ms": pct(0.5) if latencies else None,
        "p99_ms": pct(0.99) if latencies else None,
        "max_ms": round(latencies[-1], 1) if latencies else None,
    }


def bench(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    database = f"bench_e2e_{os.getpid()}"  # its own name: other runs may share the server
    prepared = prepare(
        args.db,
        database=database,
        directory=workdir,
        name="基准测试应急管理厅",
        uscc=complete_uscc("11350000MB000001"),
        roles=["grading_authority"],
        scopes=["publish"],
        publish=["enterprise.registered", TYPE],
    )
    processes, servers = [], []
    try:
        codes = register(prepared, args.enterprises)
        receiver_port = free_port()
        subscriptions = add_subscribers(
            prepared.settings(),
            {f"e2e-{n}": f"http://{HOST}:{receiver_port}/hook/{n}" for n in range(SUBSCRIPTIONS)},
            types=[TYPE],
            signing=["v1"],
        )
        secrets = {s["id"]: s["hmac_secret"] for s in subscriptions}
        receiver = uvicorn(
            "receiver_app:create_verifying_app",
            env={SECRETS_ENV: json.dumps(secrets)},
            app_dir=BENCH,
            cpu=None,
            port=receiver_port,
        )
        servers.append(receiver)
        env = (
            prepared.env
            | LOOPBACK_DELIVERY
            | {
                "GATEWAY_ACCESS_TOKEN_TTL_SECONDS": "7200",
                "GATEWAY_DELIVERY__IN_PROCESS_WORKER": "false" if args.workers else "true",
            }
        )
        servers.append(gateway_serve(env, log=workdir / "serve.log"))
        processes = [
            start_worker(env, cpu=None, log=workdir / f"worker-{n}.log")
            for n in range(args.workers)
        ]
        gateway = servers[-1]
        auth = login(gateway.base, prepared.key, "bench", "publish")
        tokens, ids = updates(prepared, codes, WARMUP + int(args.rate * args.seconds))
        # Warm-up, unmeasured: the first deliveries open the workers' connections.
        with httpx.Client(base_url=gateway.base, headers=auth) as client:
            for token in tokens[:WARMUP]:
                client.post("/v1/messages", content=token, headers={"content-type": JOSE})
        await_deliveries(receiver.base, WARMUP * SUBSCRIPTIONS, args.drain)
        tokens, ids = tokens[WARMUP:], ids[WARMUP:]
        schedule = open_loop(
            HOST,
            gateway.port,
            [("POST", "/v1/messages", token) for token in tokens],
            rate=args.rate,
            content_type=JOSE,
            headers=auth,
        )
        expected = sum(1 for s in schedule.statuses if s == 201) * SUBSCRIPTIONS
        received = await_deliveries(receiver.base, WARMUP * SUBSCRIPTIONS + expected, args.drain)
    finally:
        for process in processes:
            stop_process(process)
        for server in reversed(servers):
            server.stop()
        drop_database(prepared.url)
    return {
        "backend": args.db,
        "workers": args.workers,
        "rate_per_s": args.rate,
        "seconds": args.seconds,
        "subscriptions": SUBSCRIPTIONS,
        "enterprises": args.enterprises,
    } | figures(schedule, ids, received)


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def report(r: dict[str, Any]) -> None:
    workers = f"{r['workers']} worker(s)" if r["workers"] else "the in-process worker"
    print(
        f"\n== {r['backend']}, {workers}: {r['sent']} publishes at {r['rate_per_s']:g}/s for "
        f"{r['seconds']:g} s, {r['subscriptions']} subscriptions, {r['enterprises']} "
        "enterprises =="
    )
    print(
        f"sent at {r['send_rate_per_s']}/s (asked {r['rate_per_s']:g}); publish answers "
        f"{r['publish_statuses']}, p50 {r['publish_p50_ms']} ms, p99 {r['publish_p99_ms']} ms"
    )
    if r["p50_ms"] is None:
        print("no webhook arrived")
    else:
        print(
            f"publish -> delivered: p50 {r['p50_ms']} ms (goal < {GOAL_P50_MS} ms: "
            f"{verdict(r['p50_ms'] < GOAL_P50_MS)}), p99 {r['p99_ms']} ms (goal < "
            f"{GOAL_P99_MS} ms: {verdict(r['p99_ms'] < GOAL_P99_MS)}), max {r['max_ms']} ms"
        )
    lost = r["deliveries_expected"] - r["deliveries_received"]
    print(
        f"deliveries: {r['deliveries_received']} received of {r['deliveries_expected']} "
        f"expected ({verdict(lost == 0)}: {lost} missing); signatures rejected "
        f"{r['signatures_rejected']}, repeats {r['repeated']}"
    )
    print(
        f"delivered at {r['delivered_per_s']}/s from the first send to the last arrival "
        f"(the rate asks {r['rate_per_s'] * r['subscriptions']:g}/s)"
    )
    print(
        f"per-enterprise order: {r['order_violations']} out of order over "
        f"{r['pairs_checked']} (subscription, enterprise) pairs "
        f"({verdict(r['order_violations'] == 0)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="postgresql")
    parser.add_argument(
        "--workers", type=int, default=2, help="`gateway worker` processes (0: in process)"
    )
    parser.add_argument("--rate", type=float, default=200.0, help="publishes per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the sending")
    parser.add_argument(
        "--enterprises",
        type=int,
        default=0,
        help="enterprises the updates go round (default: the rate, one update a second each)",
    )
    parser.add_argument(
        "--drain", type=float, default=60.0, help="seconds to wait for the last deliveries"
    )
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = parser.parse_args()
    if args.rate <= 0 or args.seconds <= 0 or args.workers < 0:
        parser.error("--rate and --seconds must be positive, --workers at least 0")
    args.enterprises = args.enterprises or max(1, round(args.rate))
    print(machine_line(), flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        result = bench(args, Path(tmp))
    report(result)
    if args.json:
        print_json(result)


if __name__ == "__main__":
    main()
