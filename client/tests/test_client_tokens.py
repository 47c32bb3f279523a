"""Logging in with private_key_jwt: the assertion the gateway expects (protocol.md §6.1), one
token reused until shortly before it expires, a fresh assertion on every try."""

from __future__ import annotations

import httpx
import pytest
from client_fakes import AGENCY, TOKEN_URL, FakeClock, FakeGateway, problem

from credit_gateway_client import Unauthorized
from credit_gateway_client.jose import jwk_thumbprint

PATH = "/v1/subscriptions/s1/feed"
EMPTY_PAGE = {
    "subscription": "s1",
    "after": -1,
    "items": [],
    "parked": [],
    "next": -1,
    "has_more": False,
}


def test_the_client_assertion_is_what_the_gateway_checks() -> None:
    gateway = FakeGateway()
    gateway.router.get(PATH).mock(return_value=httpx.Response(200, json=EMPTY_PAGE))
    clock = FakeClock()
    with gateway.client(clock=clock) as client:
        list(client.feed("s1", ack="manual"))
    [sent] = gateway.assertions
    assert sent["header"]["kid"] == jwk_thumbprint(gateway.agency_key.public.jwk)
    assert sent["header"]["alg"] == "EdDSA"
    assert sent["iss"] == sent["sub"] == AGENCY
    assert sent["aud"] == TOKEN_URL
    assert sent["iat"] == int(clock.now)
    assert 0 < sent["exp"] - sent["iat"] <= 300
    assert sent["form"]["grant_type"] == "client_credentials"
    assert sent["form"]["client_assertion_type"] == (
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    )
    assert "scope" not in sent["form"]  # every scope granted


def test_a_token_is_reused_then_renewed_before_it_expires() -> None:
    gateway = FakeGateway(token_lifetime=600)
    route = gateway.router.get(PATH).mock(return_value=httpx.Response(200, json=EMPTY_PAGE))
    clock = FakeClock()
    with gateway.client(clock=clock, scope="subscribe") as client:
        list(client.feed("s1", ack="manual"))
        clock.now += 500  # 100 s left: still used
        list(client.feed("s1", ack="manual"))
        clock.now += 45  # 55 s left: less than the 60 s margin, renewed
        list(client.feed("s1", ack="manual"))
    tokens = [c.request.headers["authorization"] for c in route.calls]
    assert tokens == ["Bearer token-1", "Bearer token-1", "Bearer token-2"]
    assert gateway.assertions[0]["jti"] != gateway.assertions[1]["jti"]
    assert gateway.assertions[0]["form"]["scope"] == "subscribe"


def test_a_token_the_gateway_no_longer_takes_is_replaced_once() -> None:
    gateway = FakeGateway()
    route = gateway.router.get(PATH)
    route.side_effect = [
        problem("invalid_token", 401, error="invalid_token"),
        httpx.Response(200, json=EMPTY_PAGE),
    ]
    with gateway.client() as client:
        list(client.feed("s1", ack="manual"))
    assert [c.request.headers["authorization"] for c in route.calls] == [
        "Bearer token-1",
        "Bearer token-2",
    ]


def test_a_refused_login_is_raised_with_its_code() -> None:
    gateway = FakeGateway()
    gateway.router.post("/v1/oauth/token").mock(
        return_value=problem("wrong_audience", 401, "aud must name …", error="invalid_client")
    )
    with gateway.client() as client, pytest.raises(Unauthorized) as caught:
        list(client.feed("s1"))
    assert caught.value.code == "wrong_audience"
    assert caught.value.problem["error"] == "invalid_client"


def test_a_retried_login_signs_a_new_assertion() -> None:
    gateway = FakeGateway()
    seen: list[str] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        seen.append(dict(httpx.QueryParams(request.content.decode()))["client_assertion"])
        if len(seen) == 1:
            return problem("database_busy", 503, retry_after=1)
        return gateway.issue_token(request)

    gateway.token_route.side_effect = flaky
    gateway.router.get(PATH).mock(return_value=httpx.Response(200, json=EMPTY_PAGE))
    with gateway.client() as client:
        list(client.feed("s1", ack="manual"))
    assert len(seen) == 2
    assert seen[0] != seen[1]
