"""Every response class of a push attempt, through respx: what is recorded, what comes next."""

from __future__ import annotations

import datetime as dt
import logging

import httpx
import pytest
import respx
from contract_factories import make_award, make_registration
from fastapi.testclient import TestClient
from gateway_factories import Publisher, publish, register_publisher
from sqlalchemy import select

from gateway.delivery.subscriptions import create_subscription
from gateway.delivery.worker import make_client, run_once
from gateway.models import Delivery, DeliveryAttempt, Subscription
from gateway.runtime import Runtime

URL = "https://receiver.example/hook"
SCHEDULE = [0, 60, 600]


@pytest.fixture
def queued(client: TestClient, authority: Publisher, runtime: Runtime) -> Runtime:
    register_publisher(
        runtime, "fj-cib", ["measure.applied"], roles=["bank"], subscribe=["grade.awarded"]
    )
    runtime.settings.delivery.allowed_hosts.append("receiver.example")
    with runtime.db.transaction() as session:
        create_subscription(
            session,
            agency_id="fj-cib",
            url=URL,
            types=["grade.awarded"],
            now=runtime.clock.now(),
            allowed_hosts=["receiver.example"],
            retry_schedule=SCHEDULE,
        )
    publish(client, authority.message("enterprise.registered", make_registration()))
    assert publish(client, authority.message("grade.awarded", make_award())).status_code == 201
    return runtime


def one_attempt(
    runtime: Runtime, answer: httpx.Response | Exception
) -> tuple[Delivery, DeliveryAttempt, Subscription]:
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(URL)
        if isinstance(answer, Exception):
            route.side_effect = answer
        else:
            route.return_value = answer
        with make_client(runtime) as http:
            assert run_once(runtime, http) == 1
    with runtime.db.reader() as session:
        delivery = session.scalars(select(Delivery)).one()
        attempt = session.scalars(select(DeliveryAttempt)).one()
        subscription = session.scalars(select(Subscription)).one()
    return delivery, attempt, subscription


def _delay(runtime: Runtime, delivery: Delivery) -> float:
    return (delivery.next_attempt_at - runtime.clock.now()).total_seconds()


def test_2xx_delivers(queued: Runtime) -> None:
    delivery, attempt, _ = one_attempt(queued, httpx.Response(200, text="ok"))
    assert delivery.status == "delivered"
    assert attempt.status_code == 200
    assert attempt.error_class is None


def test_3xx_is_a_failure_not_followed(queued: Runtime) -> None:
    answer = httpx.Response(302, headers={"location": "https://elsewhere.example/"})
    delivery, attempt, _ = one_attempt(queued, answer)
    assert delivery.status == "pending"
    assert attempt.error_class == "http_302"
    assert 48 <= _delay(queued, delivery) <= 72  # schedule[1] = 60 s, ±20 % jitter


def test_410_disables_the_endpoint(queued: Runtime) -> None:
    delivery, _attempt, subscription = one_attempt(queued, httpx.Response(410))
    assert subscription.status == "disabled"
    assert delivery.status == "pending"
    assert delivery.attempts == 0


def test_429_retry_after_is_honoured_within_bounds(queued: Runtime) -> None:
    answer = httpx.Response(429, headers={"retry-after": "300"})
    delivery, attempt, _ = one_attempt(queued, answer)
    assert attempt.error_class == "http_429"
    assert _delay(queued, delivery) == pytest.approx(300, abs=1)


def test_503_retry_after_beyond_the_bound_is_capped(queued: Runtime) -> None:
    answer = httpx.Response(503, headers={"retry-after": str(10 * 24 * 3600)})
    delivery, _, _ = one_attempt(queued, answer)
    assert _delay(queued, delivery) == pytest.approx(3600, abs=1)


def test_5xx_is_retried_on_the_schedule(queued: Runtime) -> None:
    delivery, attempt, _ = one_attempt(queued, httpx.Response(500, text="boom" * 200))
    assert attempt.error_class == "http_500"
    assert attempt.response_excerpt is not None
    assert len(attempt.response_excerpt) <= 300
    assert delivery.attempts == 1


def test_timeout_is_recorded(queued: Runtime) -> None:
    delivery, attempt, _ = one_attempt(queued, httpx.ReadTimeout("slow"))
    assert attempt.error_class == "timeout"
    assert attempt.status_code is None
    assert delivery.status == "pending"


def test_connection_reset_is_recorded(queued: Runtime) -> None:
    delivery, attempt, _ = one_attempt(queued, httpx.RemoteProtocolError("connection reset"))
    assert attempt.error_class == "connection"
    assert delivery.next_attempt_at > queued.clock.now()


def test_last_attempt_dead_letters(queued: Runtime) -> None:
    for _ in SCHEDULE:
        with respx.mock() as mock:
            mock.post(URL).return_value = httpx.Response(500)
            with make_client(queued) as http:
                queued.clock.advance(seconds=1000)  # type: ignore[attr-defined]
                run_once(queued, http)
    with queued.db.reader() as session:
        delivery = session.scalars(select(Delivery)).one()
    assert delivery.status == "dead"
    assert delivery.attempts == len(SCHEDULE)
    assert dt.timedelta(0) <= queued.clock.now() - delivery.next_attempt_at


def test_breaker_opens_after_consecutive_failures_and_closes_after_cooldown(
    queued: Runtime, client: TestClient, authority: Publisher
) -> None:
    from contracts.uscc import complete_uscc

    for n in range(6):  # more enterprises, so several deliveries are due at once
        code = complete_uscc(f"91350800MA{n:06d}")
        publish(
            client, authority.message("enterprise.registered", make_registration(), subject=code)
        )
        publish(client, authority.message("grade.awarded", make_award(), subject=code))
    queued.settings.delivery.breaker_threshold = 3
    queued.settings.delivery.claim_batch = 1
    with respx.mock() as mock:
        route = mock.post(URL)
        route.return_value = httpx.Response(500)
        with make_client(queued) as http:
            for _ in range(3):
                assert run_once(queued, http) == 1
            assert run_once(queued, http) == 0  # open: nothing is claimed for this endpoint
            assert route.call_count == 3
            queued.clock.advance(seconds=61)  # type: ignore[attr-defined]
            route.return_value = httpx.Response(204)
            assert run_once(queued, http) == 1  # half-open probe succeeds, breaker closes
            assert run_once(queued, http) == 1
    with queued.db.reader() as session:
        subscription = session.scalars(select(Subscription)).one()
    assert subscription.breaker_open_until is None
    assert subscription.consecutive_failures == 0


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (httpx.Response(500, text="down"), "http_500"),
        (httpx.ConnectError("connection refused"), "connection"),
        (httpx.ReadTimeout("slow"), "timeout"),
    ],
    ids=["5xx", "connection", "timeout"],
)
def test_a_failed_attempt_is_logged_at_warning_with_subscription_host_and_error(
    queued: Runtime,
    caplog: pytest.LogCaptureFixture,
    answer: httpx.Response | Exception,
    error: str,
) -> None:
    """Issue 23 §5: an operator reading the logs sees which subscription failed, where, why."""
    caplog.set_level(logging.INFO, logger="gateway.delivery")
    _, attempt, subscription = one_attempt(queued, answer)
    assert attempt.error_class == error
    failed = [r for r in caplog.records if r.getMessage().startswith("delivery attempt failed")]
    assert len(failed) == 1, caplog.text
    (record,) = failed
    assert (record.name, record.levelno) == ("gateway.delivery", logging.WARNING)
    assert record.getMessage() == (
        f"delivery attempt failed: subscription {subscription.id},"
        f" endpoint host receiver.example, error {error}"
    )


def test_a_delivered_attempt_logs_no_warning(
    queued: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.delivery")
    delivery, _, _ = one_attempt(queued, httpx.Response(204))
    assert delivery.status == "delivered"
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_an_unexpected_failure_of_an_attempt_names_its_subscription_and_host(
    queued: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug rather than the receiver (here the transport raising what httpx never does):
    logged at ERROR with its traceback, and still which subscription and endpoint."""
    caplog.set_level(logging.INFO, logger="gateway.delivery")
    delivery, attempt, subscription = one_attempt(queued, RuntimeError("a bug"))
    assert attempt.error_class == "internal_error"
    assert delivery.status == "pending"
    (record,) = [r for r in caplog.records if "failed unexpectedly" in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert record.getMessage() == (
        f"delivery {delivery.id}: the attempt failed unexpectedly:"
        f" subscription {subscription.id}, endpoint host receiver.example"
    )
