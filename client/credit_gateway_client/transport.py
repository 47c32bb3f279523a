"""One HTTP call to the gateway: the bearer token, the retry policy, and every failure turned
into this package's errors (an httpx exception never reaches the caller).

The httpx client is handed in (the transport seam): tests give it a mock transport.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Protocol

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
            outcome = self._try(method, url, idempotent, sent, form, kwargs)
            if isinstance(outcome, httpx.Response):
                return outcome
            if bearer is not None and outcome.error.code == "invalid_token" and not renewed:
                bearer.invalidate()  # e.g. the gateway's key changed under the token
                renewed, attempt = True, attempt - 1
                continue
            delay = self.retry.delay(attempt, outcome.retry_after) if outcome.retryable else None
            if delay is None:
                raise outcome.error
            self._sleep(delay)

    def _try(
        self,
        method: str,
        url: str,
        idempotent: bool,
        headers: dict[str, str],
        form: Callable[[], Mapping[str, str]] | None,
        kwargs: dict[str, Any],
    ) -> httpx.Response | _Failure:
        """One try: the 2xx response, or why it failed and whether to try again."""
        try:
            response = self.client.request(
                method, url, headers=headers, data=form() if form else None, **kwargs
            )
        except httpx.TransportError as exc:
            # nothing was sent when the connection was never made: any call may go again
            unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
            code = "timeout" if isinstance(exc, httpx.TimeoutException) else _transport_code(exc)
            error = GatewayUnreachable(code, f"{method} {url}: {exc!r}")
            return _Failure(error, None, (idempotent or unsent) and self.retry.on_transport_errors)
        if response.is_success:
            return response
        problem = problem_from_response(response)
        retryable = idempotent and response.status_code in self.retry.statuses
        return _Failure(problem, getattr(problem, "retry_after", None), retryable)


class _Failure(NamedTuple):
    error: GatewayClientError
    retry_after: float | None
    retryable: bool


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
