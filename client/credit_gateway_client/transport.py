"""One HTTP call to the gateway: the bearer token, the retry policy, and every failure turned
into this package's errors (an httpx exception never reaches the caller).

The httpx client is handed in (the transport seam): tests give it a mock transport.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import httpx

from credit_gateway_client.errors import (
    GatewayClientError,
    GatewayUnreachable,
    UnexpectedResponse,
    problem_from_response,
)
from credit_gateway_client.retry import DEFAULT_RETRY, RetryPolicy

__all__ = ["Bearer", "Http", "json_object"]


class Bearer(Protocol):
    """Where access tokens come from (tokens.TokenSource)."""

    def get(self) -> str: ...

    def invalidate(self) -> None: ...


class Http:
    """Calls with retries. Only calls marked idempotent are tried again (retry.py says which
    are); a connection that was never made is tried again for any call, as nothing was sent."""

    def __init__(
        self,
        client: httpx.Client,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.retry = retry
        self._sleep = sleep

    def request(
        self,
        method: str,
        url: str,
        *,
        idempotent: bool,
        bearer: Bearer | None = None,
        headers: Mapping[str, str] | None = None,
        form: Callable[[], Mapping[str, str]] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """The 2xx response; raises the problem, or GatewayUnreachable. `form` is called
        again for every try (a client assertion is used once). A `401 invalid_token` gets
        one new token and one more try."""
        attempt, renewed = 0, False
        while True:
            attempt += 1
            sent = dict(headers or {})
            if bearer is not None:
                sent["authorization"] = f"Bearer {bearer.get()}"
            retry_after: float | None = None
            try:
                response = self.client.request(
                    method, url, headers=sent, data=form() if form else None, **kwargs
                )
            except httpx.TimeoutException as exc:
                failure: GatewayClientError = GatewayUnreachable(
                    "timeout", f"{method} {url}: {exc}"
                )
                retryable = idempotent or isinstance(exc, httpx.ConnectTimeout)
            except httpx.TransportError as exc:
                failure = GatewayUnreachable(_transport_code(exc), f"{method} {url}: {exc!r}")
                retryable = idempotent or isinstance(exc, httpx.ConnectError)
            else:
                if response.is_success:
                    return response
                problem = problem_from_response(response)
                if bearer is not None and problem.code == "invalid_token" and not renewed:
                    bearer.invalidate()  # e.g. the gateway's key changed under the token
                    renewed, attempt = True, attempt - 1
                    continue
                failure = problem
                retry_after = getattr(problem, "retry_after", None)
                retryable = idempotent and response.status_code in self.retry.statuses
            if isinstance(failure, GatewayUnreachable):
                retryable = retryable and self.retry.on_transport_errors
            delay = self.retry.delay(attempt, retry_after) if retryable else None
            if delay is None:
                raise failure
            self._sleep(delay)


def _transport_code(exc: httpx.TransportError) -> str:
    return "connect_error" if isinstance(exc, httpx.ConnectError) else "transport_error"


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The response's JSON object, or UnexpectedResponse."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise UnexpectedResponse(
            f"{response.request.method} {response.request.url} answered "
            f"{response.status_code} without a JSON object",
            status=response.status_code,
        )
    return body
