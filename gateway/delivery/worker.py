"""`gateway worker`: claim due deliveries, POST them signed, record every attempt.

Claiming takes, per (subscription, enterprise), only the earliest pending delivery, and none
while an earlier one is dead or parked, so messages about one enterprise reach a subscription
strictly in log order while other enterprises flow freely (an operator replays or skips a
stuck one). On PostgreSQL the claim uses `FOR UPDATE SKIP LOCKED`; on SQLite the claim runs
under the database's single writer (`BEGIN IMMEDIATE`). A claim is a lease: a worker that dies
mid-delivery leaves it to expire, and another worker delivers it again (at least once). A round
of attempts ends by half its lease, and a result is recorded only while the lease still holds.
The retry schedule is persistent rows; tenacity only retries a connection error within one
attempt. A round the database fails (an outage, a restart) is counted and the worker backs off
and goes on: what it had claimed is delivered again once the lease has passed.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import random
import time
from collections.abc import Sequence
from concurrent.futures import ALL_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import Session
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_fixed

from gateway.bulk import BulkInsert, BulkUpdate
from gateway.delivery import heads
from gateway.delivery.health import count_attempts
from gateway.delivery.jobs import Job, claim_due_deliveries, load_jobs
from gateway.delivery.receipts import looks_like_jws, verify_consumer_receipt
from gateway.delivery.receipts import store as store_receipt
from gateway.delivery.subscriptions import DEFAULT_SCHEDULE, attempts_allowed, retry_delay
from gateway.delivery.wakeup import Wakeup
from gateway.delivery.webhooks import signature_header
from gateway.models import Delivery, DeliveryAttempt, Subscription, table_of
from gateway.outbound.ssrf import (
    InvalidEndpoint,
    ResolutionTimeout,
    UnsafeEndpoint,
    check_endpoint,
)
from gateway.outbound.transport import attempt_deadline, delivery_transport, read_answer
from gateway.runtime import Runtime
from gateway.settings import DeliverySettings

EXCERPT = 300
log = logging.getLogger("gateway.delivery")


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
def _post(
    client: httpx.Client, url: str, body: bytes, headers: dict[str, str]
) -> tuple[httpx.Response, str]:
    """POST and read at most ANSWER_BYTES of the answer, then close it: the response (its
    status and headers) and what was read of its body, as text."""
    with client.stream("POST", url, content=body, headers=headers) as response:
        answer = read_answer(response)
    return response, _decoded(answer, response.charset_encoding)


def _decoded(answer: bytes, charset: str | None) -> str:
    try:
        return answer.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return answer.decode("utf-8", errors="replace")


def attempt(
    runtime: Runtime, client: httpx.Client, job: Job, deadline: float | None = None
) -> Result:
    """One signed POST (signed afresh: a new timestamp every attempt), over by `deadline`
    (`time.monotonic()`; default: `timeout_seconds` from now) whatever the receiver does."""
    url = str(job.subscription["url"])
    started = time.perf_counter()
    if deadline is None:
        deadline = time.monotonic() + runtime.settings.delivery.timeout_seconds
    try:
        # checked again for every attempt (DNS changes); the lookup is part of the attempt
        check_endpoint(
            url, runtime.settings.delivery.allowed_hosts, max(deadline - time.monotonic(), 0)
        )
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
                ed25519_keys=runtime.signer.webhook_keys(runtime.clock.now()),
            ),
        }
        with attempt_deadline(deadline):
            response, text = _post(client, url, job.body, headers)
    except InvalidEndpoint as exc:  # a URL stored before it was checked as it is now
        return Result(None, "invalid_endpoint", str(exc)[:EXCERPT], _ms(started))
    except UnsafeEndpoint as exc:
        return Result(None, "unsafe_endpoint", str(exc)[:EXCERPT], _ms(started))
    except ResolutionTimeout as exc:
        return Result(None, "timeout", str(exc)[:EXCERPT], _ms(started))
    except httpx.TimeoutException:
        return Result(None, "timeout", None, _ms(started))
    except httpx.TransportError as exc:
        return Result(None, "connection", type(exc).__name__, _ms(started))
    return Result(
        response.status_code,
        None if response.is_success else f"http_{response.status_code}",
        text[:EXCERPT],
        _ms(started),
        _retry_after(response, runtime.clock.now()),
        text.strip() if response.is_success else "",
    )


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _retry_after(response: httpx.Response, now: dt.datetime) -> float | None:
    """Seconds the receiver asks us to wait (RFC 9110 §10.2.3: delay-seconds or an HTTP-date);
    None when it asks nothing we can read. The header is the receiver's: junk is ignored, not
    raised, and a date without a zone (`-0000`, RFC 5322 §3.3) is taken as UTC."""
    value = response.headers.get("retry-after")
    if value is None or response.status_code not in (429, 503):
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return max(0.0, (parsed - now).total_seconds())


@dataclass
class _Next:
    """A delivery's state after an attempt, written back with the round's one UPDATE."""

    delivery_id: int
    status: str
    attempts: int
    next_attempt_at: dt.datetime
    delivered_at: dt.datetime | None
    last_error: str | None


# A round's states and attempts, each in one statement on PostgreSQL (psycopg's executemany
# sent every row as a statement of its own: with 64 deliveries a round, its per-row work in
# Python was a fifth of a worker's CPU in bench/outbox_vs_queues.py).
_DELIVERIES = table_of(Delivery)
_SET_STATES = BulkUpdate(_DELIVERIES, "id")
_INSERT_ATTEMPTS = BulkInsert(table_of(DeliveryAttempt))


def record_all(runtime: Runtime, outcomes: list[tuple[Job, Result]], now: dt.datetime) -> list[str]:
    """Store a round's attempts and next states in one transaction; returns the states.

    Only while this worker still holds a delivery's lease (claimed_until is still the value
    its claim wrote): once the lease has passed to another worker, or a replay cleared it, a
    late result would overwrite newer state (a delivered row set back to pending), so it is
    dropped and logged; the attempt was at least once, as a lost lease always allowed.

    Core executemany statements, not the ORM unit of work: per delivery, the ORM cost a
    millisecond, as much as the POST itself.
    """
    config = runtime.settings.delivery
    with runtime.db.transaction() as session:
        ids = [job.delivery_id for job, _ in outcomes]
        current = {row.id: row for row in _lock_round(session, ids)}
        held = []
        for job, result in outcomes:
            row = current.get(job.delivery_id)
            if job.lease is not None and row is not None and row.claimed_until == job.lease:
                held.append((job, result))
            else:
                log.warning(
                    "delivery %s: lease lost before its result (%s) was recorded; dropped",
                    job.delivery_id,
                    result.error_class or result.status_code,
                )
        if not held:
            return []
        outcomes = held
        # Kept referenced: the identity map is weak, unreferenced rows would be re-fetched.
        subscriptions = {
            s.id: s
            for s in session.scalars(
                select(Subscription).where(
                    Subscription.id.in_({j.subscription["id"] for j, _ in outcomes})
                )
            )
        }
        statuses = {sid: s.status for sid, s in subscriptions.items()}
        updates: list[_Next] = []
        attempts: list[dict[str, Any]] = []
        subs: list[str] = []  # each attempt's subscription, for its hourly count
        for job, result in outcomes:
            row = current[job.delivery_id]
            state = _Next(job.delivery_id, "pending", row.attempts, row.next_attempt_at, None, None)
            try:
                error_class, next_at = _apply_result(
                    session, state, subscriptions[job.subscription["id"]], job, result, now, config
                )
            except Exception as exc:  # one delivery's failure must not discard the round's
                log.exception("delivery %s: its result could not be applied", job.delivery_id)
                error_class, next_at = _retry_after_failure(state, row.attempts, exc, now)
            state.last_error = _storable(state.last_error)
            updates.append(state)
            subs.append(job.subscription["id"])
            attempts.append(
                {
                    "delivery_id": job.delivery_id,
                    "at": now,
                    "status_code": result.status_code,
                    "latency_ms": result.latency_ms,
                    "error_class": error_class,
                    "response_excerpt": _storable(result.excerpt),
                    "next_attempt_at": next_at,
                }
            )
        connection = session.connection()
        # The rows are this worker's: locked above (on SQLite the write lock is held) with the
        # lease checked under the lock, so they are updated by id alone, in one statement.
        _SET_STATES(
            connection,
            [
                {
                    "id": u.delivery_id,
                    "status": u.status,
                    "attempts": u.attempts,
                    "next_attempt_at": u.next_attempt_at,
                    "delivered_at": u.delivered_at,
                    "last_error": u.last_error,
                    "claimed_until": None,
                }
                for u in updates
            ],
        )
        # each queue's head moves on, waits for its retry, or stops at a dead or parked one;
        # a subscription a 410 disabled holds all its heads
        queues = {
            (current[u.delivery_id].subscription_id, current[u.delivery_id].uscc) for u in updates
        }
        heads.settle(session, queues)
        heads.refresh(session, [i for i, s in subscriptions.items() if s.status != statuses[i]])
        _INSERT_ATTEMPTS(connection, attempts)
        counted = zip(attempts, subs, strict=True)
        count_attempts(session, [attempt | {"subscription_id": sub} for attempt, sub in counted])
        return [u.status for u in updates]


# The round's deliveries, locked: no claim takes them over until the round commits. On
# PostgreSQL the driver's text with the ids as an array in binary (SQLAlchemy's expanding IN
# rendered and processed 64 parameters each round).
_LOCK_ROUND = (
    select(
        _DELIVERIES.c.id,
        _DELIVERIES.c.subscription_id,
        _DELIVERIES.c.uscc,
        _DELIVERIES.c.attempts,
        _DELIVERIES.c.next_attempt_at,
        _DELIVERIES.c.claimed_until,
    )
    .where(_DELIVERIES.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(_DELIVERIES.c.id)
    .with_for_update()
)
_LOCK_ROUND_POSTGRESQL = (
    "SELECT id, subscription_id, uscc, attempts, next_attempt_at, claimed_until FROM deliveries"
    " WHERE id = ANY(CAST(%(ids)b AS BIGINT[])) ORDER BY id FOR UPDATE"
)


def _lock_round(session: Session, ids: list[int]) -> Sequence[Any]:
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        return connection.exec_driver_sql(_LOCK_ROUND_POSTGRESQL, {"ids": ids}).all()
    return connection.execute(_LOCK_ROUND, {"ids": ids}).all()


def _storable(text: str | None) -> str | None:
    """Text as the round's statements can store it: a receiver's answer may hold U+0000,
    which the database refuses (gateway.db), and one such value failed the whole round."""
    return text.replace("\x00", "\ufffd") if text else text


def _retry_after_failure(
    state: _Next, attempts: int, exc: Exception, now: dt.datetime
) -> tuple[str, dt.datetime | None]:
    """The next state of a delivery whose result could not be applied (a bug, a row no check
    foresaw): an attempt that failed, retried on the default ladder (protocol.md §4), dead
    after its last step. Returns (error class, next attempt time)."""
    state.status, state.delivered_at = "pending", None
    state.attempts = attempts + 1
    state.last_error = f"internal_error: {type(exc).__name__}: {exc}"[:500]
    if state.attempts >= len(DEFAULT_SCHEDULE):
        state.status = "dead"
        return "internal_error", None
    delay = retry_delay(DEFAULT_SCHEDULE, state.attempts) * random.uniform(0.8, 1.2)  # noqa: S311
    state.next_attempt_at = now + dt.timedelta(seconds=delay)
    return "internal_error", state.next_attempt_at


def _apply_result(
    session: Session,
    state: _Next,
    subscription: Subscription,
    job: Job,
    result: Result,
    now: dt.datetime,
    config: DeliverySettings,
) -> tuple[str | None, dt.datetime | None]:
    """Decide the delivery's next state; returns (error class, next attempt time)."""
    error_class = result.error_class
    if error_class == "parked":
        state.status, state.last_error = "parked", job.parked
        return error_class, None
    if error_class == "withheld":  # for good; only a replay (the right checked again) sends it
        state.status, state.last_error = "withheld", job.withheld
        return error_class, None
    succeeded = result.status_code is not None and 200 <= result.status_code < 300
    _update_breaker(subscription, succeeded or result.status_code == 410, now, config)
    if succeeded:
        state.status, state.delivered_at = "delivered", now
        why_not = (
            _keep_receipt(session, job, result.body, now) if looks_like_jws(result.body) else None
        )
        if why_not is not None:
            error_class, state.last_error = "receipt_invalid", why_not
        return error_class, None
    if result.status_code == 410:
        subscription.status = "disabled"
        subscription.status_reason = "the endpoint answered 410 Gone"
        state.last_error, state.next_attempt_at = "410 Gone: endpoint disabled", now
        return error_class, now
    state.attempts += 1
    state.last_error = result.error_class
    schedule = job.subscription["schedule"]
    if state.attempts >= attempts_allowed(schedule):
        state.status = "dead"
        return error_class, None
    delay = retry_delay(schedule, state.attempts) * random.uniform(0.8, 1.2)  # noqa: S311
    if result.retry_after is not None:  # may lengthen the schedule's wait, never shorten it
        delay = max(delay, min(result.retry_after, config.max_retry_after_seconds))
    state.next_attempt_at = now + dt.timedelta(seconds=delay)
    return error_class, state.next_attempt_at


def _keep_receipt(session: Session, job: Job, token: str, now: dt.datetime) -> str | None:
    """Verify a receiver's signed receipt and keep it; returns why it was not kept, or None.
    In a savepoint: the receipt is the only database work a result brings, and what it meets
    (a receiver's text the database refuses, say) must stay with this one delivery."""
    agency_id = job.subscription["agency_id"]
    try:
        with session.begin_nested():
            kid, why = verify_consumer_receipt(
                session,
                token,
                agency_id=agency_id,
                message_id=job.message_id,
                leaf_hash=job.leaf_hash,
            )
            if kid is None:
                return why[:500]
            store_receipt(
                session,
                delivery_id=job.delivery_id,
                message_id=job.message_id,
                agency_id=agency_id,
                kid=kid,
                token=token,
                now=now,
            )
    except Exception as exc:
        log.warning("delivery %s: its receipt could not be checked", job.delivery_id, exc_info=exc)
        return f"the receipt could not be checked: {type(exc).__name__}: {exc}"[:500]
    return None


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


def claim(runtime: Runtime, limit: int) -> tuple[list[Job], float]:
    """Claim up to `limit` due deliveries; returns them and the monotonic time by which their
    attempts must be over: half the lease after the claim, which leaves the other half for
    recording."""
    config = runtime.settings.delivery
    now = runtime.clock.now()
    lease = dt.timedelta(seconds=config.lease_seconds)
    round_over = time.monotonic() + config.lease_seconds / 2
    with runtime.db.transaction() as session:
        ids = claim_due_deliveries(session, now, limit, lease)
    if not ids:
        return [], round_over
    with runtime.db.reader() as session:
        jobs = load_jobs(session, ids, runtime.settings.log_origin, now, lease=now + lease)
    return jobs, round_over


def deliver(runtime: Runtime, client: httpx.Client, job: Job, round_over: float) -> Result | None:
    """POST one claimed job; its result, or None when its turn came too late to be worth
    starting (it is handed back unattempted, no attempt counted). Each attempt ends by
    `timeout_seconds` after it starts or by `round_over`, whichever is sooner. Never raises:
    one job's bug must not lose the other outcomes."""
    config = runtime.settings.delivery
    if job.parked is not None:  # failed its view contract: recorded, never sent
        return Result(None, "parked", job.parked[:EXCERPT], 0.0)
    if job.withheld is not None:  # the subscribe right was withdrawn: never sent
        return Result(None, "withheld", job.withheld[:EXCERPT], 0.0)
    started = time.perf_counter()
    if round_over - time.monotonic() < config.timeout_seconds / 10:
        return None
    deadline = min(time.monotonic() + config.timeout_seconds, round_over)
    host = urlsplit(str(job.subscription["url"])).hostname
    try:
        result = attempt(runtime, client, job, deadline)
        if not (result.status_code is not None and 200 <= result.status_code < 300):
            log.warning(
                "delivery attempt failed: subscription %s, endpoint host %s, error %s",
                job.subscription["id"],
                host,
                result.error_class or result.status_code,
            )
        return result
    except Exception as exc:
        log.exception(
            "delivery %s: the attempt failed unexpectedly: subscription %s, endpoint host %s",
            job.delivery_id,
            job.subscription["id"],
            host,
        )
        excerpt = f"{type(exc).__name__}: {exc}"[:EXCERPT]
        return Result(None, "internal_error", excerpt, _ms(started))


def claim_and_post(
    runtime: Runtime, client: httpx.Client, pool: ThreadPoolExecutor | None = None
) -> list[tuple[Job, Result]]:
    """Claim one round and POST it all; the outcomes still have to be recorded (run_once;
    the long-running worker, run_until, records each result as it comes instead)."""
    jobs, round_over = claim(runtime, runtime.settings.delivery.claim_batch)
    if not jobs:
        return []
    if pool is None:
        results = [deliver(runtime, client, job, round_over) for job in jobs]
    else:
        results = list(pool.map(lambda job: deliver(runtime, client, job, round_over), jobs))
    late = [job for job, result in zip(jobs, results, strict=True) if result is None]
    if late:
        _release(runtime, late)
    return [(job, result) for job, result in zip(jobs, results, strict=True) if result is not None]


def _release(runtime: Runtime, jobs: list[Job]) -> None:
    """Hand unattempted jobs back to the queue (unless the lease has already passed on)."""
    table = table_of(Delivery)
    with runtime.db.transaction() as session:
        session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"), table.c.claimed_until == bindparam("b_lease"))
            .values(claimed_until=None),
            [{"b_id": job.delivery_id, "b_lease": job.lease} for job in jobs],
        )
        heads.settle_deliveries(session, [job.delivery_id for job in jobs])  # due again now


def run_once(runtime: Runtime, client: httpx.Client, pool: ThreadPoolExecutor | None = None) -> int:
    """Claim one round, deliver it and record it; returns how many were attempted."""
    outcomes = claim_and_post(runtime, client, pool)
    if outcomes:
        record_all(runtime, outcomes, runtime.clock.now())
    return len(outcomes)


def make_client(runtime: Runtime) -> httpx.Client:
    """The one shared client: no redirects (a 3xx is a failure), bounded timeouts: each read,
    write or connect within `timeout_seconds`, and a whole attempt by its deadline; each
    connection goes to an address vetted when it is opened, and no answer is read beyond
    ANSWER_BYTES (gateway.outbound.transport). Answers are asked for uncompressed."""
    return httpx.Client(
        transport=delivery_transport(runtime.settings.delivery.allowed_hosts),
        timeout=runtime.settings.delivery.timeout_seconds,
        follow_redirects=False,
        headers={"user-agent": "credit-gateway/0.1", "accept-encoding": "identity"},
    )


FailureKind = Literal["database", "unexpected"]


class RoundFailures:
    """The worker's failed rounds: how long it waits after each one (from `first` seconds,
    doubling up to `most`, back to `first` once a round succeeds) and what /metrics and
    /readyz report. Logged once per streak of failures (again if their kind changes), not
    per round. Written by the worker's thread only; other threads read the counts."""

    def __init__(self, first: float = 0.5, most: float = 30.0) -> None:
        self.first = first
        self.most = most
        self.total: dict[FailureKind, int] = {"database": 0, "unexpected": 0}
        self.streak = 0  # failed rounds since the last one that succeeded
        self._logged: FailureKind | None = None
        self._since = 0.0

    def failed(self, exc: Exception) -> float:
        """Count a failed round and log it if its streak has not; returns seconds to wait."""
        kind: FailureKind = (
            "database" if isinstance(exc, DBAPIError | DisconnectionError) else "unexpected"
        )
        self.total[kind] += 1
        self.streak += 1
        if self.streak == 1:
            self._since = time.monotonic()
        if kind != self._logged:
            self._logged = kind
            if kind == "database":  # the driver's own words: the statement adds nothing here
                reason = exc.orig if isinstance(exc, DBAPIError) and exc.orig else exc
                log.warning(
                    "delivery worker: the database failed a round (%s: %s); retrying, at "
                    "most %g s apart, until it answers",
                    type(exc).__name__,
                    " ".join(str(reason).split()),  # one line: psycopg adds a hint on a second
                    self.most,
                )
            else:
                log.error("delivery worker: a round failed; retrying", exc_info=exc)
        # jittered, so that workers restarted together do not come back in step
        delay = self.first * 2.0 ** min(self.streak - 1, 16) * random.uniform(0.8, 1.2)  # noqa: S311
        return min(delay, self.most)

    def succeeded(self) -> None:
        if self.streak:
            log.info(
                "delivery worker: rounds succeed again after %d failed (%.1f s)",
                self.streak,
                time.monotonic() - self._since,
            )
        self.streak, self._logged = 0, None


# How often the long-running worker records what has ended while other attempts go on.
RECORD_EVERY = 0.05


def run_until(runtime: Runtime, stop: Any, failures: RoundFailures | None = None) -> None:
    """Loop until `stop.is_set()`, sleeping only when there was nothing to do, or after a
    claim or a recording that failed (counted in `failures`): nothing but a BaseException
    ends the loop.

    A stream, not rounds: up to `claim_batch` claimed deliveries are in flight on `parallel`
    threads; every RECORD_EVERY seconds the results that have ended are recorded and, once
    half the batch is free, more are claimed. A receiver that answers slowly holds only its
    own attempts (each bounded by the attempt's deadline), never the others' results: with
    rounds, a round was recorded when its slowest attempt ended, and two receivers answering
    a byte a second held every subscription's deliveries (54 of 960 delivered in 60 s).
    Order holds because an unrecorded delivery keeps its lease (nobody claims it) and, still
    pending, keeps later deliveries of its enterprise waiting; if its recording fails, it is
    claimed and posted again once that lease has passed.
    """
    config = runtime.settings.delivery
    if failures is None:
        failures = RoundFailures()
    flight: dict[Future[Result | None], Job] = {}
    wakeup = Wakeup(runtime.settings.effective_database_url, stop)
    with make_client(runtime) as client, ThreadPoolExecutor(config.parallel) as pool:
        try:
            while not stop.is_set():
                claimed = 0
                try:
                    if len(flight) <= config.claim_batch // 2:
                        jobs, round_over = claim(runtime, config.claim_batch - len(flight))
                        claimed = len(jobs)
                        for job in jobs:
                            flight[pool.submit(deliver, runtime, client, job, round_over)] = job
                    _record_ended(runtime, flight, RECORD_EVERY)
                except Exception as exc:
                    stop.wait(failures.failed(exc))
                    continue
                failures.succeeded()
                if not claimed and not flight:
                    wakeup.wait(config.idle_sleep_seconds)  # at once when deliveries are queued
        finally:  # what is in flight ends by its deadline; its results are recorded
            wakeup.close()
            try:
                _record_ended(runtime, flight, None)
            except Exception as exc:
                failures.failed(exc)


def _record_ended(
    runtime: Runtime, flight: dict[Future[Result | None], Job], timeout: float | None
) -> None:
    """Wait up to `timeout` (None: until all have ended) for the attempts in flight, then
    record those that ended and hand back those that came too late to start."""
    if not flight:
        return
    ended, _ = wait(list(flight), timeout=timeout, return_when=ALL_COMPLETED)
    finished = [(flight.pop(future), future.result()) for future in ended]
    late = [job for job, result in finished if result is None]
    if late:
        _release(runtime, late)
    outcomes = [(job, result) for job, result in finished if result is not None]
    if outcomes:
        record_all(runtime, outcomes, runtime.clock.now())
