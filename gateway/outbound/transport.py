"""How a delivery reaches a receiver: every connection to an address vetted as it is opened
(no DNS rebinding past the SSRF check), every wait, the name's lookup included, cut to the
attempt's deadline, and at most ANSWER_BYTES of any answer read.

httpx's timeouts are per read and write; a receiver dripping a byte at a time held an attempt
open for as long as it liked, past the claim's lease. `attempt_deadline` sets, for the
calling thread, when its attempt must be over; the network backend here bounds every connect,
read and write by it.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

from gateway.outbound.ssrf import PinnedBackend

__all__ = ["ANSWER_BYTES", "attempt_deadline", "delivery_transport", "read_answer"]

# What a delivery uses of the receiver's answer: a consumer receipt (a compact JWS, well under
# this) and the excerpt kept with the attempt. A receiver answering 600 MB bodies took the
# gateway from 0.3 to 3.2 GB with 8 parallel deliveries (issue 20, finding 2).
ANSWER_BYTES = 16384

_attempt = threading.local()  # .deadline: when this thread's attempt must be over (monotonic)


@contextmanager
def attempt_deadline(at: float) -> Iterator[None]:
    _attempt.deadline = at
    try:
        yield
    finally:
        _attempt.deadline = None


def _bounded(timeout: float | None, expired: type[Exception]) -> float | None:
    """`timeout` cut to what is left of this thread's attempt; raises `expired` when none is."""
    deadline: float | None = getattr(_attempt, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired("the delivery attempt's deadline has passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A socket whose every wait ends by the attempt's deadline: httpx's timeouts are per
    read and write, so a receiver dripping a byte at a time (headers or body) held an
    attempt open for as long as it liked, past the claim's lease."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """Opens connections through `inner` (resolving, vetting and connecting: PinnedBackend)
    with the connect timeout cut to the attempt's deadline, and bounds the stream's waits."""

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._backend = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _bounded(timeout, httpcore.ConnectTimeout)
        stream = self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return _DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class _DeliveryTransport(httpx.HTTPTransport):
    """httpx's own transport (its pool, limits and error mapping) over `_DeadlineBackend`
    around ssrf.PinnedBackend: each connection goes to an address resolved and vetted as it
    is opened, so a second DNS answer cannot send it elsewhere than the check allowed, and
    the lookup and the connection end by the attempt's deadline."""

    def __init__(self, allowed_hosts: Collection[str]) -> None:
        super().__init__()
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)  # httpx's
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_DeadlineBackend(PinnedBackend(allowed_hosts, httpcore.SyncBackend())),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        assert isinstance(response.stream, httpx.SyncByteStream)
        response.stream = _Capped(response.stream, ANSWER_BYTES)
        return response


class _Capped(httpx.SyncByteStream):
    """At most `limit` bytes of an answer's body, as they arrive off the connection; the
    rest is never read. Closing it before the body's end closes the connection (httpcore
    never puts a connection with unread body back in its pool)."""

    def __init__(self, stream: httpx.SyncByteStream, limit: int) -> None:
        self._stream, self._limit = stream, limit

    def __iter__(self) -> Iterator[bytes]:
        left = self._limit
        if left <= 0:
            return
        for chunk in self._stream:  # one read off the socket at most (64 KiB in httpcore)
            yield chunk[:left]
            left -= len(chunk)
            if left <= 0:
                return

    def close(self) -> None:
        self._stream.close()


def delivery_transport(allowed_hosts: Collection[str]) -> httpx.HTTPTransport:
    return _DeliveryTransport(allowed_hosts)


def read_answer(response: httpx.Response, limit: int = ANSWER_BYTES) -> bytes:
    """The first `limit` bytes of a streamed answer's body as sent (never decompressed: the
    delivery client asks for `identity`, and a bomb must not be inflated here); the caller's
    `with client.stream(...)` then closes it, unread beyond that."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_raw():
        chunks.append(chunk[: limit - size])
        size += len(chunks[-1])
        if size >= limit:
            break
    return b"".join(chunks)
