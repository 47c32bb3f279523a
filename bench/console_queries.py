"""The console overviews' queries one by one, on the console benchmark's data kept in a
directory (built on the first run, reused after): where a page's time goes.

    python bench/console_queries.py --dir /tmp/console-data --enterprises 100000
    python bench/console_queries.py --dir /tmp/console-data --db postgresql
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from console import deliveries
from populate import drop_database, fresh_database, populate
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from contracts.dates import local_date
from gateway.console.overview import overview, start_of_day
from gateway.delivery import health
from gateway.ledger import service as ledgers
from gateway.measures.feedback import feedback_owed
from gateway.models import LogEntry
from gateway.observability.metrics import outbox_lag_seconds
from gateway.runtime import Runtime
from gateway.settings import DeliverySettings, Settings
from gateway.signing import ensure_gateway_keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--enterprises", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    database = args.dir / "bench_console.db"
    url = f"sqlite:///{database}"
    if args.db == "postgresql":  # built afresh on every run, dropped at the end
        url = fresh_database("postgresql", name="bench_console_queries")
    settings = Settings(
        data_dir=args.dir / "data",
        database_url=url,
        delivery=DeliverySettings(in_process_worker=False),
    )
    if args.db == "postgresql" or not database.exists():
        args.dir.mkdir(parents=True, exist_ok=True)
        if args.db == "sqlite":
            url = fresh_database("sqlite", name="bench_console", directory=args.dir)
        populate(url, args.enterprises, log_entries=args.enterprises)
        ensure_gateway_keys(settings)
        runtime = Runtime.open(settings)
        deliveries(runtime, 4)
        runtime.close()
    runtime = Runtime.open(settings)
    now = runtime.clock.now()
    today = local_date(now)
    everything = ledgers.LedgerFilter(on=today)
    queries: dict[str, Callable[[Session], Any]] = {
        "subscription health (24 h)": lambda s: health.subscription_health(s, now),
        "feedback owed": lambda s: feedback_owed(s, today, 5, overdue_only=True, limit=1),
        "outbox lag": lambda s: outbox_lag_seconds(s, now),
        "failing deliveries": lambda s: health.failing_deliveries(s),
        "dead and parked deliveries": lambda s: health.stuck_deliveries(s),
        "publishes today by type": lambda s: s.execute(
            select(LogEntry.type, func.count())
            .where(LogEntry.accepted_at >= start_of_day(today), LogEntry.kind == "message")
            .group_by(LogEntry.type)
        ).all(),
        "the overview page's reads together": lambda s: overview(s, now, settings),
        "one ledger summary": lambda s: ledgers.ledger_summary(s, everything, "region"),
        "three ledger summaries": lambda s: ledgers.ledger_summaries(
            s, everything, ("region", "grade", "industry")
        ),
    }
    print("| query | best ms | median ms |\n|---|---:|---:|")
    for name, query in queries.items():
        times = []
        for _ in range(args.runs):
            with runtime.db.reader() as session:
                began = time.perf_counter()
                query(session)
                times.append((time.perf_counter() - began) * 1000)
        times.sort()
        print(f"| {name} | {times[0]:.1f} | {times[len(times) // 2]:.1f} |")
    runtime.close()
    drop_database(url)


if __name__ == "__main__":
    main()
