"""`gateway worker`: claim due deliveries, POST them signed, record every attempt.

Claiming takes, per (subscription, enterprise), only the earliest pending delivery, so messages
about one enterprise reach a subscription strictly in log order while other enterprises flow
freely. On PostgreSQL the claim uses `FOR UPDATE SKIP LOCKED`; on SQLite the claim runs under
the database's single writer (`BEGIN IMMEDIATE`). A claim is a lease: a worker that dies
mid-delivery leaves it to expire, and another worker delivers it again (at least once).
The retry schedule is persistent rows; tenacity only retries a connection error within one
attempt.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_fixed

from gateway.delivery.receipts import looks_like_jws, verify_consumer_receipt
from gateway.delivery.receipts import store as store_receipt
from gateway.delivery.ssrf import UnsafeEndpoint, check_endpoint
from gateway.delivery.webhooks import cloud_event, signature_header
from gateway.models import Delivery, DeliveryAttempt, LogEntry, Subscription
from gateway.runtime import Runtime
from gateway.settings import DeliverySettings
from keys.jws import parse_compact

EXCERPT = 300


@dataclass(frozen=True)
class Job:
    delivery_id: int
    attempts: int
    subscription: dict[str, Any]
    webhook_id: str
    body: bytes
    message_id: str
    leaf_hash: str


def claim_due_deliveries(
    session: Session, now: dt.datetime, limit: int, lease: dt.timedelta
) -> list[int]:
    """Lease up to `limit` due deliveries, each the earliest pending one of its enterprise."""
    # The head of each (subscription, enterprise) queue: its earliest pending delivery. A join
    # on these heads, rather than a NOT EXISTS probe per row, keeps the claim linear in the
    # queue whatever the planner believes about the table (measured: the anti-join was
    # planned as a nested loop over all pending rows, 335 ms for 1,000 of them; this, 3 ms).
    heads = (
        select(
            Delivery.subscription_id,
            Delivery.uscc,
            func.min(Delivery.log_index).label("head"),
        )
        .where(Delivery.status == "pending")
        .group_by(Delivery.subscription_id, Delivery.uscc)
        .subquery()
    )
    query = (
        select(Delivery.id)
        .join(
            heads,
            and_(
                Delivery.subscription_id == heads.c.subscription_id,
                Delivery.uscc == heads.c.uscc,
                Delivery.log_index == heads.c.head,
            ),
        )
        .join(Subscription, Subscription.id == Delivery.subscription_id)
        .where(
            Delivery.status == "pending",
            Delivery.next_attempt_at <= now,
            or_(Delivery.claimed_until.is_(None), Delivery.claimed_until < now),
            Subscription.status == "active",
            Subscription.url.is_not(None),
            or_(
                Subscription.breaker_open_until.is_(None),
                Subscription.breaker_open_until <= now,
            ),
        )
        .order_by(Delivery.log_index)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(of=Delivery, skip_locked=True)
    ids = list(session.scalars(query))
    if ids:
        session.execute(
            update(Delivery).where(Delivery.id.in_(ids)).values(claimed_until=now + lease)
        )
    return ids


def _view(subscription: Subscription, envelope: dict[str, Any]) -> dict[str, Any]:
    if subscription.view == "full":
        return dict(envelope["data"])
    return {  # notice: that something happened, about whom, from whom; no content
        "type": envelope["type"],
        "subject": envelope["subject"],
        "issuer": envelope["issuer"],
        "issued_at": envelope["issued_at"],
    }


def load_jobs(
    session: Session, ids: list[int], source: str, now: dt.datetime | None = None
) -> list[Job]:
    now = now or dt.datetime.now(dt.UTC)
    rows = session.execute(
        select(Delivery, Subscription, LogEntry)
        .join(Subscription, Subscription.id == Delivery.subscription_id)
        .join(LogEntry, LogEntry.idx == Delivery.log_index)
        .where(Delivery.id.in_(ids))
        .order_by(Delivery.log_index)
    )
    jobs = []
    for delivery, subscription, entry in rows:
        token = entry.jws.decode()
        envelope = json.loads(parse_compact(token).payload)
        body = cloud_event(
            source=source,
            message_id=entry.message_id,
            message_type=entry.type,
            subject=entry.subject or "",
            time=entry.accepted_at.isoformat(),
            sequence=entry.idx,
            leaf_hash=entry.leaf_hash,
            data=_view(subscription, envelope),
            jws=token if subscription.view == "full" else None,
        )
        jobs.append(
            Job(
                delivery_id=delivery.id,
                attempts=delivery.attempts,
                subscription={
                    "id": subscription.id,
                    "agency_id": subscription.agency_id,
                    "url": subscription.url,
                    "signing": list(subscription.signing),
                    "hmac_secrets": [subscription.hmac_secret]
                    + (
                        [subscription.previous_hmac_secret]
                        if subscription.previous_hmac_secret
                        and subscription.previous_valid_until
                        and subscription.previous_valid_until > now
                        else []
                    )
                    if subscription.hmac_secret
                    else [],
                    "schedule": list(subscription.retry_schedule),
                },
                webhook_id=f"msg_{entry.message_id}.{subscription.id}",
                body=body,
                message_id=entry.message_id,
                leaf_hash=entry.leaf_hash.hex(),
            )
        )
    return jobs


@dataclass(frozen=True)
class Result:
    status_code: int | None
    error_class: str | None
    excerpt: str | None
    latency_ms: float
    retry_after: float | None = None
    body: str = ""  # a 2xx body may hold the receiver's signed receipt


@retry(
    retry=retry_if_exception_type(httpx.ConnectError),
    stop=stop_after_attempt(3),
    wait=wait_fixed(0.2),
    reraise=True,
)
def _post(client: httpx.Client, url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return client.post(url, content=body, headers=headers)


def attempt(runtime: Runtime, client: httpx.Client, job: Job) -> Result:
    """One signed POST (signed afresh: a new timestamp every attempt)."""
    url = str(job.subscription["url"])
    started = time.perf_counter()
    try:
        check_endpoint(url, runtime.settings.delivery.allowed_hosts)
        timestamp = int(time.time())
        headers = {
            "content-type": "application/cloudevents+json",
            "webhook-id": job.webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(
                job.webhook_id,
                timestamp,
                job.body,
                schemes=job.subscription["signing"],
                hmac_secrets=job.subscription["hmac_secrets"],
                ed25519_key=runtime.signer.webhook_key,
            ),
        }
        response = _post(client, url, job.body, headers)
    except UnsafeEndpoint as exc:
        return Result(None, "unsafe_endpoint", str(exc)[:EXCERPT], _ms(started))
    except httpx.TimeoutException:
        return Result(None, "timeout", None, _ms(started))
    except httpx.TransportError as exc:
        return Result(None, "connection", type(exc).__name__, _ms(started))
    return Result(
        response.status_code,
        None if response.is_success else f"http_{response.status_code}",
        response.text[:EXCERPT],
        _ms(started),
        _retry_after(response),
        response.text[:16384].strip() if response.is_success else "",
    )


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None or response.status_code not in (429, 503):
        return None
    if value.strip().isdigit():
        return float(value)
    parsed = email.utils.parsedate_to_datetime(value)
    return max(0.0, (parsed - dt.datetime.now(dt.UTC)).total_seconds()) if parsed else None


def record_all(runtime: Runtime, outcomes: list[tuple[Job, Result]], now: dt.datetime) -> list[str]:
    """Store a round's attempts and next states in one transaction; returns the states."""
    config = runtime.settings.delivery
    with runtime.db.transaction() as session:
        # Load the round's rows in two queries (and keep them referenced: the identity map
        # is weak, so unreferenced rows would be fetched again one by one).
        deliveries = {
            d.id: d
            for d in session.scalars(
                select(Delivery).where(Delivery.id.in_([j.delivery_id for j, _ in outcomes]))
            )
        }
        subscriptions = {
            s.id: s
            for s in session.scalars(
                select(Subscription).where(
                    Subscription.id.in_({j.subscription["id"] for j, _ in outcomes})
                )
            )
        }
        return [
            _apply_result(
                session,
                deliveries[job.delivery_id],
                subscriptions[job.subscription["id"]],
                job,
                result,
                now,
                config,
            )
            for job, result in outcomes
        ]


def _apply_result(
    session: Session,
    delivery: Delivery,
    subscription: Subscription,
    job: Job,
    result: Result,
    now: dt.datetime,
    config: DeliverySettings,
) -> str:
    schedule = job.subscription["schedule"]
    next_at: dt.datetime | None = None
    delivery.claimed_until = None
    error_class = result.error_class
    succeeded = result.status_code is not None and 200 <= result.status_code < 300
    _update_breaker(subscription, succeeded or result.status_code == 410, now, config)
    if succeeded:
        delivery.status, delivery.delivered_at, delivery.last_error = "delivered", now, None
        if looks_like_jws(result.body):
            kid, why = verify_consumer_receipt(
                session,
                result.body,
                agency_id=job.subscription["agency_id"],
                message_id=job.message_id,
                leaf_hash=job.leaf_hash,
            )
            if kid is None:
                error_class, delivery.last_error = "receipt_invalid", why[:500]
            else:
                store_receipt(
                    session,
                    delivery_id=delivery.id,
                    message_id=job.message_id,
                    agency_id=job.subscription["agency_id"],
                    kid=kid,
                    token=result.body,
                    now=now,
                )
    elif result.status_code == 410:
        subscription.status = "disabled"
        subscription.status_reason = "the endpoint answered 410 Gone"
        delivery.last_error = "410 Gone: endpoint disabled"
        next_at = now
    else:
        delivery.attempts += 1
        delivery.last_error = result.error_class
        if delivery.attempts >= len(schedule):
            delivery.status = "dead"
        else:
            delay = schedule[delivery.attempts] * random.uniform(0.8, 1.2)  # noqa: S311
            if result.retry_after is not None:
                delay = min(max(delay, result.retry_after), config.max_retry_after_seconds)
            next_at = now + dt.timedelta(seconds=delay)
            delivery.next_attempt_at = next_at
    session.add(
        DeliveryAttempt(
            delivery_id=delivery.id,
            at=now,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            error_class=error_class,
            response_excerpt=result.excerpt,
            next_attempt_at=next_at,
        )
    )
    return delivery.status


def _update_breaker(
    subscription: Subscription, healthy: bool, now: dt.datetime, config: DeliverySettings
) -> None:
    """Per-endpoint circuit breaker kept on the subscription row, so every worker sees it:
    after `breaker_threshold` consecutive failures nothing is claimed for the endpoint until
    the cooldown has passed; then one round probes it again."""
    if healthy:
        subscription.consecutive_failures, subscription.breaker_open_until = 0, None
        return
    subscription.consecutive_failures = (subscription.consecutive_failures or 0) + 1
    if subscription.consecutive_failures >= config.breaker_threshold:
        subscription.breaker_open_until = now + dt.timedelta(
            seconds=config.breaker_cooldown_seconds
        )


def run_once(runtime: Runtime, client: httpx.Client, pool: ThreadPoolExecutor | None = None) -> int:
    """Claim one batch and deliver it; returns how many deliveries were attempted."""
    config = runtime.settings.delivery
    now = runtime.clock.now()
    with runtime.db.transaction() as session:
        ids = claim_due_deliveries(
            session, now, config.claim_batch, dt.timedelta(seconds=config.lease_seconds)
        )
    if not ids:
        return 0
    with runtime.db.reader() as session:
        jobs = load_jobs(session, ids, runtime.settings.log_origin, now)

    def deliver(job: Job) -> tuple[Job, Result]:
        return job, attempt(runtime, client, job)

    outcomes = [deliver(job) for job in jobs] if pool is None else list(pool.map(deliver, jobs))
    record_all(runtime, outcomes, runtime.clock.now())
    return len(jobs)


def make_client(runtime: Runtime) -> httpx.Client:
    """The one shared client: no redirects (a 3xx is a failure), bounded timeouts."""
    return httpx.Client(
        timeout=runtime.settings.delivery.timeout_seconds,
        follow_redirects=False,
        headers={"user-agent": "credit-gateway/0.1"},
    )


def run_until(runtime: Runtime, stop: Any) -> None:
    """Loop until `stop.is_set()`; sleeps only when there was nothing to do."""
    config = runtime.settings.delivery
    with make_client(runtime) as client, ThreadPoolExecutor(config.parallel) as pool:
        while not stop.is_set():
            if run_once(runtime, client, pool) == 0:
                stop.wait(config.idle_sleep_seconds)
