"""`/metrics` in the Prometheus text format: counters kept in the process, gauges read from
the database at scrape time (so every API process reports the same queue and log state)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from gateway.models import Checkpoint, Delivery, LogHead, WitnessStatus
from gateway.runtime import Runtime

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self, runtime: Runtime) -> None:
        self.registry = CollectorRegistry()
        self.published = Counter(
            "gateway_published_messages",
            "Published messages by type and outcome (accepted, duplicate, or the problem code).",
            ["type", "outcome"],
            registry=self.registry,
        )
        self.publish_seconds = Histogram(
            "gateway_publish_seconds",
            "Time to answer one publish request (single or batch).",
            ["endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.registry.register(_DatabaseGauges(runtime))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _DatabaseGauges(Collector):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self.runtime.clock.now()
        with self.runtime.db.reader() as session:
            size = session.scalar(select(LogHead.size)) or 0
            rows = session.execute(
                select(Delivery.status, func.count()).group_by(Delivery.status)
            ).all()
            by_status: dict[str, int] = {status: n for status, n in rows}
            oldest = session.scalar(
                select(func.min(Delivery.next_attempt_at)).where(Delivery.status == "pending")
            )
            checkpoint = session.scalar(select(func.max(Checkpoint.size)))
            checkpoint_at = session.scalar(
                select(Checkpoint.created_at).where(Checkpoint.size == checkpoint)
            )
            witnesses = list(session.scalars(select(WitnessStatus)))
        yield _gauge("gateway_log_size", "Entries in the Merkle log.", size)
        deliveries = GaugeMetricFamily(
            "gateway_deliveries", "Delivery rows by status.", labels=["status"]
        )
        for status in ("pending", "delivered", "dead"):
            deliveries.add_metric([status], by_status.get(status, 0))
        yield deliveries
        yield _gauge(
            "gateway_oldest_pending_delivery_age_seconds",
            "How long the oldest pending delivery has been due (0 when none).",
            _age(now, oldest),
        )
        yield _gauge("gateway_dead_letters", "Dead-lettered deliveries.", by_status.get("dead", 0))
        yield _gauge(
            "gateway_checkpoint_behind_entries",
            "Entries not yet covered by the newest stored checkpoint.",
            size - (checkpoint or 0),
        )
        yield _gauge(
            "gateway_checkpoint_age_seconds",
            "Age of the newest stored checkpoint.",
            _age(now, checkpoint_at),
        )
        cosigned = GaugeMetricFamily(
            "gateway_witness_cosignature_age_seconds",
            "Age of each witness's latest cosignature.",
            labels=["witness"],
        )
        for w in witnesses:
            cosigned.add_metric([w.name], _age(now, w.cosigned_at) if w.cosigned_at else -1)
        yield cosigned


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _age(now: dt.datetime, then: dt.datetime | None) -> float:
    return max(0.0, (now - then).total_seconds()) if then else 0.0
