"""Every class of answer a call can get (2xx, 429 with Retry-After, 503, 5xx, a problem
document, a timeout, a broken connection) and what the client does with it: retried only
when the call is idempotent, Retry-After honoured, each refusal a typed exception."""

from __future__ import annotations

import email.utils
import random

import httpx
import pytest
from client_fakes import BASE, FakeGateway, problem

from credit_gateway_client import (
    BadRequest,
    Conflict,
    Forbidden,
    GatewayUnreachable,
    NotFound,
    PayloadTooLarge,
    ProblemError,
    RateLimited,
    RetryPolicy,
    ServerError,
    ServiceUnavailable,
    Unauthorized,
    UnexpectedResponse,
    Unprocessable,
)
from credit_gateway_client.errors import retry_after_seconds
from credit_gateway_client.transport import Http

STANDING_PATH = "/v1/enterprises/91350203AY4CL12T2P"


def standing_ok(gateway: FakeGateway) -> httpx.Response:
    answer = {"uscc": "91350203AY4CL12T2P", "grade": {"status": "active"}}
    return httpx.Response(200, json={"standing": answer, "attestation": gateway.attest(answer)})


def test_a_2xx_is_answered_at_once() -> None:
    gateway = FakeGateway()
    route = gateway.router.get(STANDING_PATH).mock(return_value=standing_ok(gateway))
    with gateway.client() as client:
        assert client.standing("91350203AY4CL12T2P", "loan").answer["grade"]["status"] == "active"
    assert route.call_count == 1
    assert route.calls[0].request.headers["authorization"] == "Bearer token-1"
    assert route.calls[0].request.url.params["purpose"] == "loan"


def test_429_waits_at_least_its_retry_after_then_retries() -> None:
    gateway = FakeGateway()
    route = gateway.router.get(STANDING_PATH)
    route.side_effect = [problem("rate_limited", 429, retry_after=3), standing_ok(gateway)]
    sleeps: list[float] = []
    with gateway.client(sleep=sleeps.append) as client:
        client.standing("91350203AY4CL12T2P", "loan")
    assert route.call_count == 2
    assert sleeps
    assert sleeps[0] >= 3


def test_a_retry_after_longer_than_the_policy_waits_is_the_callers() -> None:
    gateway = FakeGateway()
    gateway.router.get(STANDING_PATH).mock(
        return_value=problem("rate_limited", 429, retry_after=600)
    )
    sleeps: list[float] = []
    with gateway.client(sleep=sleeps.append) as client, pytest.raises(RateLimited) as caught:
        client.standing("91350203AY4CL12T2P", "loan")
    assert (caught.value.code, caught.value.status, caught.value.retry_after) == (
        "rate_limited",
        429,
        600,
    )
    assert sleeps == []


def test_503_backs_off_and_gives_up_after_the_attempts() -> None:
    gateway = FakeGateway()
    route = gateway.router.get(STANDING_PATH).mock(
        return_value=problem("database_busy", 503, retry_after=2)
    )
    sleeps: list[float] = []
    policy = RetryPolicy(attempts=3, backoff=0.5)
    with (
        gateway.client(sleep=sleeps.append, retry=policy) as client,
        pytest.raises(ServiceUnavailable) as caught,
    ):
        client.standing("91350203AY4CL12T2P", "loan")
    assert route.call_count == 3
    assert len(sleeps) == 2
    assert all(s >= 2 for s in sleeps)
    assert caught.value.code == "database_busy"
    assert caught.value.retry_after == 2


def test_503_without_retry_after_backs_off_exponentially() -> None:
    gateway = FakeGateway()
    route = gateway.router.get(STANDING_PATH)
    route.side_effect = [
        httpx.Response(503),
        httpx.Response(503),
        standing_ok(gateway),
    ]
    sleeps: list[float] = []
    policy = RetryPolicy(backoff=1.0, jitter=0.0)
    with gateway.client(sleep=sleeps.append, retry=policy) as client:
        client.standing("91350203AY4CL12T2P", "loan")
    assert sleeps == [1.0, 2.0]


def test_a_500_is_not_retried() -> None:
    gateway = FakeGateway()
    route = gateway.router.get(STANDING_PATH).mock(
        return_value=problem("internal_error", 500, "a fault of ours")
    )
    with gateway.client() as client, pytest.raises(ServerError) as caught:
        client.standing("91350203AY4CL12T2P", "loan")
    assert route.call_count == 1
    assert (caught.value.code, caught.value.status) == ("internal_error", 500)


def test_a_proxys_502_without_a_problem_is_retried_then_raised_with_its_status() -> None:
    gateway = FakeGateway()
    route = gateway.router.get(STANDING_PATH).mock(
        return_value=httpx.Response(502, text="<html>Bad Gateway</html>")
    )
    with gateway.client() as client, pytest.raises(ServerError) as caught:
        client.standing("91350203AY4CL12T2P", "loan")
    assert route.call_count == 4
    assert caught.value.code == "http_502"
    assert "Bad Gateway" in caught.value.detail


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "invalid_uscc", BadRequest),
        (401, "signature_invalid", Unauthorized),
        (403, "field_not_in_view", Forbidden),
        (404, "unknown_enterprise", NotFound),
        (409, "duplicate_conflict", Conflict),
        (413, "batch_too_large", PayloadTooLarge),
        (415, "unsupported_media_type", ProblemError),
        (422, "invalid_transition", Unprocessable),
    ],
)
def test_a_problem_becomes_its_typed_exception(
    status: int, code: str, cls: type[ProblemError]
) -> None:
    gateway = FakeGateway()
    route = gateway.router.get(STANDING_PATH).mock(
        return_value=problem(code, status, "the detail", pointer="/subject", part="check")
    )
    with gateway.client() as client, pytest.raises(cls) as caught:
        client.standing("91350203AY4CL12T2P", "loan")
    assert route.call_count == 1  # a refusal is final
    assert type(caught.value) is cls
    assert (caught.value.code, caught.value.status, caught.value.detail) == (
        code,
        status,
        "the detail",
    )
    assert caught.value.problem["pointer"] == "/subject"


def test_a_timeout_is_retried_for_an_idempotent_call_then_raised() -> None:
    gateway = FakeGateway()
    route = gateway.router.get(STANDING_PATH).mock(side_effect=httpx.ReadTimeout("slow"))
    with gateway.client() as client, pytest.raises(GatewayUnreachable) as caught:
        client.standing("91350203AY4CL12T2P", "loan")
    assert route.call_count == 4
    assert caught.value.code == "timeout"
    assert not isinstance(caught.value, httpx.HTTPError)


def test_a_timeout_then_an_answer_succeeds() -> None:
    gateway = FakeGateway()
    route = gateway.router.get(STANDING_PATH)
    route.side_effect = [httpx.ConnectError("reset"), standing_ok(gateway)]
    with gateway.client() as client:
        client.standing("91350203AY4CL12T2P", "loan")
    assert route.call_count == 2


def http_with(handler: httpx.MockTransport, sleeps: list[float]) -> Http:
    return Http(httpx.Client(transport=handler), sleep=sleeps.append)


def test_a_call_that_is_not_idempotent_is_never_retried() -> None:
    calls: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return problem("database_busy", 503, retry_after=1)

    sleeps: list[float] = []
    http = http_with(httpx.MockTransport(answer), sleeps)
    with pytest.raises(ServiceUnavailable):
        http.request("POST", BASE + "/v1/something", idempotent=False)
    assert len(calls) == 1
    assert sleeps == []


def test_a_read_timeout_of_a_call_that_is_not_idempotent_is_not_retried() -> None:
    calls: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(GatewayUnreachable):
        http_with(httpx.MockTransport(answer), []).request("POST", BASE + "/v1/x", idempotent=False)
    assert len(calls) == 1


def test_a_connection_never_made_is_retried_even_when_not_idempotent() -> None:
    calls: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(204)

    response = http_with(httpx.MockTransport(answer), []).request(
        "POST", BASE + "/v1/x", idempotent=False
    )
    assert response.status_code == 204
    assert len(calls) == 2


def test_a_2xx_that_is_no_json_object_is_unexpected() -> None:
    gateway = FakeGateway()
    gateway.router.get(STANDING_PATH).mock(return_value=httpx.Response(200, text="[1]"))
    with gateway.client() as client, pytest.raises(UnexpectedResponse):
        client.standing("91350203AY4CL12T2P", "loan")


def test_retry_after_is_read_as_seconds_or_as_an_http_date() -> None:
    assert retry_after_seconds({"retry-after": "7"}) == 7
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert retry_after_seconds({"retry-after": date}, now=1_000_000) == pytest.approx(30)
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_the_policy_is_a_value() -> None:
    policy = RetryPolicy(attempts=3, backoff=1.0, max_backoff=1.5, jitter=0.2)
    rng = random.Random(7)
    first = policy.delay(1, None, rng)
    assert first is not None
    assert 0.8 <= first <= 1.2
    second = policy.delay(2, None, rng)
    assert second is not None
    assert 1.2 <= second <= 1.8
    assert policy.delay(3, None, rng) is None  # the third try was the last
    assert policy.delay(1, 30.0, rng) == 30.0  # never shorter than Retry-After
    assert policy.delay(1, 61.0, rng) is None  # longer than max_retry_after: the caller's
    assert policy.with_attempts(5).delay(3, None, rng) is not None
