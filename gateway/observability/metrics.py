"""`/metrics` in the Prometheus text format: counters kept in the process, gauges read from
the database at scrape time (so every API process reports the same queue and log state)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from gateway.delivery.jobs import disabled_agencies
from gateway.delivery.worker import RoundFailures
from gateway.models import Checkpoint, Delivery, LogEntry, LogHead, Subscription, WitnessStatus
from gateway.runtime import Runtime

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """The process's metrics; `worker_rounds`: its in-process delivery worker's failures."""

    def __init__(self, runtime: Runtime, worker_rounds: RoundFailures | None = None) -> None:
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
        self.queries = Counter(
            "gateway_queries",
            "Standing queries answered, by calling agency and result.",
            ["agency", "result"],
            registry=self.registry,
        )
        if worker_rounds is not None:
            self.registry.register(_WorkerRounds(worker_rounds))
        self.registry.register(_DatabaseGauges(runtime))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _WorkerRounds(Collector):
    def __init__(self, failures: RoundFailures) -> None:
        self.failures = failures

    def collect(self) -> Iterator[CounterMetricFamily]:
        failed = CounterMetricFamily(
            "gateway_delivery_worker_failed_rounds",
            "Rounds the in-process delivery worker failed (then backed off and went on), by "
            "kind: database (unreachable, restarting, its file removed) or unexpected.",
            labels=["kind"],
        )
        for kind, n in self.failures.total.items():
            failed.add_metric([kind], n)
        yield failed


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
            outbox_lag = outbox_lag_seconds(session, now)
            backlogs = subscription_backlogs(session)
            checkpoint = session.scalar(select(func.max(Checkpoint.size)))
            checkpoint_at = session.scalar(
                select(Checkpoint.created_at).where(Checkpoint.size == checkpoint)
            )
            witnesses = list(session.scalars(select(WitnessStatus)))
        yield _gauge("gateway_log_size", "Entries in the Merkle log.", size)
        deliveries = GaugeMetricFamily(
            "gateway_deliveries", "Delivery rows by status.", labels=["status"]
        )
        for status in ("pending", "delivered", "dead", "parked", "skipped", "withheld"):
            deliveries.add_metric([status], by_status.get(status, 0))
        yield deliveries
        yield _gauge(
            "gateway_oldest_pending_delivery_age_seconds",
            "How long the most overdue delivery a worker should be posting now has been due "
            "(0 when none); /readyz fails beyond GATEWAY_OBSERVABILITY__MAX_OUTBOX_LAG_SECONDS.",
            outbox_lag,
        )
        yield from _backlog_families(backlogs, now)
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


@dataclass(frozen=True)
class Backlog:
    """What one subscription has not received: pending pushes, or for a pull-only feed the
    entries after its acknowledged cursor; `oldest` is when the first of them was accepted."""

    subscription_id: str
    agency_id: str
    pending: int
    oldest: dt.datetime | None


def subscription_backlogs(session: Session) -> list[Backlog]:
    """Every subscription's backlog in one grouped query (a pull-only subscription's rows stay
    `pending` for good: its cursor says what was read)."""
    waiting = (
        select(
            Delivery.subscription_id,
            func.count().label("pending"),
            func.min(Delivery.log_index).label("first"),
        )
        .join(Subscription, Subscription.id == Delivery.subscription_id)
        .where(
            Delivery.status == "pending",
            or_(Subscription.url.is_not(None), Delivery.log_index > Subscription.acked_index),
        )
        .group_by(Delivery.subscription_id)
        .subquery()
    )
    rows = session.execute(
        select(Subscription.id, Subscription.agency_id, waiting.c.pending, LogEntry.accepted_at)
        .outerjoin(waiting, waiting.c.subscription_id == Subscription.id)
        .outerjoin(LogEntry, LogEntry.idx == waiting.c.first)
        .order_by(Subscription.id)
    )
    return [Backlog(sub, agency, pending or 0, oldest) for sub, agency, pending, oldest in rows]


def outbox_lag_seconds(session: Session, now: dt.datetime) -> float:
    """How long the most overdue delivery that a worker should be posting now has been due.

    Only what the claim would take counts (gateway.delivery.jobs): pending, the head of its
    (subscription, enterprise) queue, for an active push subscription whose breaker is closed.
    A delivery waiting for its retry, behind an earlier one about the same enterprise (pending,
    dead or parked: those are counted as dead letters and parked deliveries, an operator's
    matter), or for a paused, pull-only or cooling-down subscription, or a disabled agency's,
    is not late: nothing should post it yet.
    """
    pushable = and_(
        Subscription.status == "active",
        Subscription.url.is_not(None),
        Subscription.agency_id.not_in(disabled_agencies()),
        or_(Subscription.breaker_open_until.is_(None), Subscription.breaker_open_until <= now),
    )
    # Walk the pending deliveries from the longest due (ix_deliveries_due) and take the first
    # at the head of its queue: nothing earlier of its enterprise pending (ix_deliveries_
    # pending_order, one index probe) or dead or parked. Grouping every pending delivery by
    # queue first cost 175 ms at 400,000 deliveries on PostgreSQL (the console overview).
    earlier = aliased(Delivery)
    before_it = and_(
        earlier.subscription_id == Delivery.subscription_id,
        earlier.uscc == Delivery.uscc,
        earlier.log_index < Delivery.log_index,
    )
    due = session.scalar(
        select(Delivery.next_attempt_at)
        .join(Subscription, Subscription.id == Delivery.subscription_id)
        .where(
            Delivery.status == "pending",
            pushable,
            ~exists().where(before_it, earlier.status == "pending"),
            ~exists().where(before_it, earlier.status.in_(("dead", "parked"))),
        )
        .order_by(Delivery.next_attempt_at)
        .limit(1)
    )
    return _age(now, due)


def _backlog_families(backlogs: list[Backlog], now: dt.datetime) -> Iterator[GaugeMetricFamily]:
    labels = ["subscription", "agency"]
    lag = GaugeMetricFamily(
        "gateway_subscription_delivery_lag_seconds",
        "Per subscription: seconds since its oldest undelivered message was accepted (0: none).",
        labels=labels,
    )
    pending = GaugeMetricFamily(
        "gateway_subscription_pending_deliveries",
        "Per subscription: messages not yet delivered (pull feeds: after the acked cursor).",
        labels=labels,
    )
    for b in backlogs:
        lag.add_metric([b.subscription_id, b.agency_id], _age(now, b.oldest))
        pending.add_metric([b.subscription_id, b.agency_id], b.pending)
    yield lag
    yield pending
    yield _gauge(
        "gateway_oldest_undelivered_message_age_seconds",
        "Seconds since the oldest message some subscription has not received was accepted.",
        max((_age(now, b.oldest) for b in backlogs), default=0.0),
    )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _age(now: dt.datetime, then: dt.datetime | None) -> float:
    return max(0.0, (now - then).total_seconds()) if then else 0.0
