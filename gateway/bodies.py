"""The bound on every request body, enforced before any route reads or parses one.

Six concurrent 150 MB form bodies to the token endpoint took an API process from 0.33 to
1.9 GB (issue 20, finding 4): a route that parses its body (FastAPI's JSON and form models,
`request.body()`) reads all of it first. This pure-ASGI middleware refuses a body over its
route's bound with `413 payload_too_large` before the route runs: by its Content-Length
without reading it, or, for a chunked body, once what arrived passes the bound.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import (
    BadRequest,
    GatewayError,
    PayloadTooLarge,
    oauth_error_response,
    problem_response,
)
from gateway.settings import Settings

__all__ = ["BodyLimit", "body_limits"]

TOKEN_PATH = "/v1/oauth/token"  # noqa: S105 -- a path, not a secret


def body_limits(settings: Settings) -> tuple[int, dict[str, int]]:
    """The bound of every route's body (bytes), and the paths that have their own."""
    publish = settings.publish.max_body_bytes
    return settings.limits.max_body_bytes, {
        "/v1/messages": publish,
        "/v1/messages/batch": publish * 64,  # what the batch route reads (publishing.routes)
        TOKEN_PATH: settings.limits.max_token_body_bytes,
    }


class BodyLimit:
    """Refuses a request body over `limits[path]` (else `default`) bytes with a 413 problem
    before the app sees the request; passes every other request through untouched.

    A body with a Content-Length is judged by it, unread: the server (uvicorn, h11 or
    httptools) never hands an app more than the length declared. A chunked body (RFC 9112
    §6.1: Transfer-Encoding overrides Content-Length) is read into memory up to the bound,
    then replayed to the app; one that passes the bound is refused there. An HTTP/1.1
    request with neither header has no body (RFC 9112 §6.3); an HTTP/2 one may have (RFC 9113
    §8.1.1: Content-Length is optional there), so it is read and counted as a chunked one
    (`gateway serve` speaks HTTP/1.1 only; a server the app is mounted in may not).
    """

    def __init__(self, app: ASGIApp, default: int, limits: Mapping[str, int]) -> None:
        self.app, self.default, self.limits = app, default, dict(limits)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.default)
        length: bytes | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
        if length is not None and not length.isdigit():  # servers refuse it first; so do we
            error = BadRequest("invalid_request", "Content-Length is not a number of bytes")
            await _answer(scope, receive, send, error)
        elif length is not None and int(length) > limit:
            await _refuse(scope, receive, send, limit)
        elif chunked or (length is None and scope.get("http_version") == "2"):
            # counted: chunked even with a Content-Length (Transfer-Encoding overrides it),
            # and an HTTP/2 body that declared no length
            body, complete = await _read(receive, limit)
            if body is None:
                await _refuse(scope, receive, send, limit)
            elif complete:  # else the client went away: there is no one to answer
                await self.app(scope, _replay(body, receive), send)
        else:
            await self.app(scope, receive, send)


async def _read(receive: Receive, limit: int) -> tuple[bytes | None, bool]:
    """(the whole body, True); (None, False) once it passes `limit`, the rest left unread;
    (what came, False) if the client disconnected first."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None, False
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True


async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    error = PayloadTooLarge("payload_too_large", f"the body exceeds {limit} bytes")
    await _answer(scope, receive, send, error)


async def _answer(scope: Scope, receive: Receive, send: Send, error: GatewayError) -> None:
    if scope["path"] == TOKEN_PATH:  # RFC 6749 §5.2, as the endpoint's other refusals
        response = oauth_error_response(error, scope["path"])
    else:
        response = problem_response(error, scope["path"])
    response.headers["connection"] = "close"  # the rest of the body is never read
    await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app `body` in one message, then waits as the server's
    does (for the client to disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
