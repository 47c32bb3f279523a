"""Console pages server-side on a large register (issue 23: each under 300 ms with 10^5
enterprises): 10^5 enterprises and 10^5 log entries (bench/populate.py), four subscriptions
with a delivery of every entry each (4 × 10^5 rows: delivered, some pending after failed
attempts, some dead), an attempt row per delivery in the last 24 hours (counted in the hourly
rows as the workers count them), then every operator page asked in process (TestClient) as a
signed-in operator; median and worst of N.

    python bench/console.py --db sqlite --enterprises 100000
    python bench/console.py --db postgresql --enterprises 100000
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient
from populate import code_of, fresh_database, populate
from sqlalchemy import insert, select

from gateway.app import create_app
from gateway.console.sessions import issue_link
from gateway.delivery.health import count_attempts
from gateway.models import Delivery, DeliveryAttempt, LogEntry, Subscription
from gateway.registry import service
from gateway.registry.scopes import grant_scopes
from gateway.runtime import Runtime
from gateway.settings import DeliverySettings, Settings
from gateway.signing import ensure_gateway_keys

PAGES = ("overview", "ledgers", "deliveries", "feedback", "agencies", "log", "agency/")


def deliveries(runtime: Runtime, subscribers: int) -> int:
    """A subscription per agency and a delivery (plus one attempt) of every log entry."""
    now = runtime.clock.now()
    with runtime.db.transaction() as session:
        for n in range(subscribers):
            agency = f"bench-{n}"
            service.add_agency(
                session,
                runtime.signer,
                agency_id=agency,
                name=agency,
                uscc="11350000MB0000019N",
                roles=["insurer"],
                now=now,
            )
            session.add(
                Subscription(
                    id=f"00000000-0000-0000-0000-{n:012d}",
                    agency_id=agency,
                    url=f"https://bench-{n}.example/hook",
                    types=["grade.awarded"],
                    view="notice",
                    signing=["v1a"],
                    status="active",
                    retry_schedule=[0, 5],
                    acked_index=-1,
                    created_at=now,
                    queued=0,
                    consecutive_failures=n % 2,
                )
            )
        entries = list(session.execute(select(LogEntry.idx, LogEntry.message_id, LogEntry.subject)))
    rows = 0
    for n in range(subscribers):
        sub = f"00000000-0000-0000-0000-{n:012d}"
        batch, attempts = [], []
        for i, (idx, message_id, subject) in enumerate(entries):
            status = "dead" if i % 997 == 0 else "pending" if i % 101 == 0 else "delivered"
            batch.append(
                {
                    "id": rows + i + 1,
                    "subscription_id": sub,
                    "log_index": idx,
                    "message_id": message_id,
                    "uscc": subject or code_of(0),
                    "subseq": i + 1,
                    "status": status,
                    "attempts": 0 if status == "delivered" else 2,
                    "next_attempt_at": now,
                    "delivered_at": now if status == "delivered" else None,
                    "last_error": None if status == "delivered" else "http_503",
                }
            )
            attempts.append(
                {
                    "delivery_id": rows + i + 1,
                    "at": now - dt.timedelta(minutes=i % 1440),
                    "status_code": 204 if status == "delivered" else 503,
                    "latency_ms": 12.5,
                    "error_class": None if status == "delivered" else "http_503",
                }
            )
        with runtime.db.transaction() as session:
            session.execute(insert(Delivery), batch)
            session.execute(insert(DeliveryAttempt), attempts)
            # as the workers do: each attempt counted in its subscription's hourly row
            count_attempts(
                session,
                [a | {"subscription_id": sub, "response_excerpt": None} for a in attempts],
            )
        rows += len(batch)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--enterprises", type=int, default=100_000)
    parser.add_argument("--subscribers", type=int, default=4)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = fresh_database(args.db, name="bench_console", directory=Path(tmp))
        loaded = populate(url, args.enterprises, log_entries=args.enterprises)
        settings = Settings(
            data_dir=Path(tmp) / "data",
            database_url=url,
            delivery=DeliverySettings(in_process_worker=False),
            rate_limit_per_second=1e6,
            rate_limit_burst=1_000_000,
        )
        ensure_gateway_keys(settings)
        runtime = Runtime.open(settings)
        made = deliveries(runtime, args.subscribers)
        with runtime.db.transaction() as session:
            service.add_agency(
                session,
                runtime.signer,
                agency_id="ops",
                name="ops",
                uscc="11350000MB0000019N",
                roles=["operator"],
                now=runtime.clock.now(),
            )
            grant_scopes(session, runtime.signer, "ops", ["admin"], runtime.clock.now())
            token = issue_link(
                session, runtime.signer, "ops", runtime.clock.now(), dt.timedelta(minutes=10)
            )
        print(
            f"{args.db}: {loaded.enterprises} enterprises, {made} deliveries "
            f"(loaded in {loaded.seconds:.0f} s)"
        )
        with TestClient(create_app(settings)) as client:
            client.post("/console/login", data={"token": token})
            pages = [*PAGES, f"enterprises/{code_of(7)}"]
            print("| page | median ms | worst ms |\n|---|---:|---:|")
            for page in pages:
                times = []
                for _ in range(args.runs):
                    began = time.perf_counter()
                    answer = client.get(f"/console/{page}")
                    times.append((time.perf_counter() - began) * 1000)
                    assert answer.status_code == 200, (page, answer.text[:300])
                print(f"| `/console/{page}` | {statistics.median(times):.0f} | {max(times):.0f} |")
        runtime.close()


if __name__ == "__main__":
    main()
