"""Streamed downloads that a slow or vanished client cannot turn against the gateway (issue 20,
finding 1): each takes one of a few slots per process, ends at a deadline or when its client
stops taking bytes, and closes its source the moment it ends, whichever way it ends."""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Iterator
from typing import Any

import anyio
import anyio.lowlevel
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.responses import Response, StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from gateway.errors import ServiceUnavailable
from gateway.settings import StreamSettings

log = logging.getLogger("gateway.streams")
# What may fail a batch of a long export without being a bug: logged without a traceback.
DATABASE_TROUBLE = (PoolTimeout, OperationalError, InterfaceError)
PIECE_BYTES = 64 * 1024  # one send: what uvicorn's buffer takes before it pauses the sender


class StreamSlots:
    """How many streamed downloads this process serves at once. Used on the event loop only
    (routes and responses), so a plain counter needs no lock."""

    RETRY_AFTER_SECONDS = 5  # most downloads take seconds; a stalled one frees its slot

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0

    def take(self) -> Slot:
        """A slot, or 503 too_many_streams when all are taken."""
        if self.open >= self.limit:
            raise ServiceUnavailable(
                "too_many_streams",
                f"this gateway process already serves {self.limit} downloads at once; "
                "retry shortly",
                retry_after=self.RETRY_AFTER_SECONDS,
            )
        self.open += 1
        return Slot(self)


class Slot:
    """One taken slot; `release` is idempotent."""

    def __init__(self, slots: StreamSlots) -> None:
        self._slots: StreamSlots | None = slots

    def release(self) -> None:
        if self._slots is not None:
            self._slots.open -= 1
            self._slots = None


class BoundedStream(Response):
    """Sends `inner` (a StreamingResponse or FileResponse) with the stream's limits: the
    whole answer within `deadline_seconds`, every 64 KiB piece taken by the client within
    `stall_seconds`, and nothing more once the client is gone (`http.disconnect`). Then, on
    every way out, `close()` (the body's generator, in a worker thread: its `finally` may
    touch the database) and the slot is given back.

    A stream cut short is an incomplete chunked body (no terminating chunk), which HTTP
    clients report as an error: a CSV is never silently truncated."""

    def __init__(
        self,
        inner: Response,
        *,
        slot: Slot,
        limits: StreamSettings,
        close: Callable[[], None] | None = None,
    ) -> None:
        self.inner = inner
        self.status_code = inner.status_code
        self.raw_headers = inner.raw_headers
        self.background = None
        self._slot = slot
        self._limits = limits
        self._close = close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            ended, failure = await self._send_bounded(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):  # also when the server cancels the request
                if self._close is not None:
                    await anyio.to_thread.run_sync(_close_quietly, self._close)
                self._slot.release()
        where = {"path": scope.get("path"), "ended": ended}
        if ended in ("stalled", "deadline"):
            log.warning("stream cut short: %s", ended, extra=where)
        elif isinstance(failure, DATABASE_TROUBLE):
            log.warning("stream cut short: database %s", type(failure).__name__, extra=where)
        elif failure is not None:
            # Not raised: the answer has started, so no handler could turn it into a problem
            # (Starlette would only add "response already started" to the traceback).
            log.error("stream cut short: its body failed", exc_info=failure, extra=where)

    async def _send_bounded(
        self, scope: Scope, receive: Receive, send: Send
    ) -> tuple[str, Exception | None]:
        """How the stream ended (sent, client_left, stalled, deadline or failed), and the body's
        exception if it failed."""
        ended, complete, failure = "sent", False, None
        limits = self._limits
        with anyio.CancelScope(deadline=anyio.current_time() + limits.deadline_seconds) as stream:

            async def send_in_time(message: Message) -> None:
                nonlocal ended, complete
                for piece in _pieces(message):
                    with anyio.move_on_after(limits.stall_seconds) as wait:
                        await send(piece)
                    if wait.cancelled_caught:
                        ended = "stalled"
                        stream.cancel()
                        await anyio.lowlevel.checkpoint()  # raises the cancellation
                body = message["type"] == "http.response.body"
                complete = body and not message.get("more_body", False)

            async def watch_disconnect() -> None:
                nonlocal ended
                while (await receive())["type"] != "http.disconnect":
                    pass
                if not complete:  # uvicorn says "disconnect" after a complete answer too
                    ended = "client_left"
                    stream.cancel()

            async with anyio.create_task_group() as group:
                group.start_soon(watch_disconnect)
                try:
                    await self.inner(scope, _nothing_to_receive, send_in_time)
                except Exception as exc:
                    ended, failure = "failed", exc
                group.cancel_scope.cancel()
        if stream.cancelled_caught and ended == "sent":
            ended = "deadline"
        return ended, failure


def csv_stream(
    chunks: Generator[str, None, None],
    first: str,
    *,
    slot: Slot,
    limits: StreamSettings,
    headers: dict[str, str],
) -> BoundedStream:
    """`first` and then the rest of `chunks` (a generator) as a bounded text/csv stream;
    both generators are closed when it ends."""

    def body() -> Generator[str, None, None]:
        yield first
        yield from chunks

    rows = body()

    def close() -> None:
        rows.close()  # closes `chunks` too if it got that far; if not, the next line does
        chunks.close()

    inner = StreamingResponse(rows, media_type="text/csv; charset=utf-8", headers=headers)
    return BoundedStream(inner, slot=slot, limits=limits, close=close)


def _pieces(message: Message) -> Iterator[Message]:
    """A body message as sends of at most PIECE_BYTES: a stalled client then holds one piece
    in the server's buffer, not a whole batch of rows."""
    body = message.get("body", b"")
    if message["type"] != "http.response.body" or len(body) <= PIECE_BYTES:
        yield message
        return
    more = message.get("more_body", False)
    view = memoryview(body)
    for start in range(0, len(body), PIECE_BYTES):
        end = start + PIECE_BYTES
        yield {
            "type": "http.response.body",
            "body": bytes(view[start:end]),
            "more_body": more or end < len(body),
        }


async def _nothing_to_receive() -> Message:
    """The inner response's receive: the disconnect is watched here, once."""
    await anyio.sleep_forever()
    raise AssertionError("unreachable")  # pragma: no cover


def _close_quietly(close: Callable[[], Any]) -> None:
    try:
        close()
    except ValueError:  # "generator already executing": its thread still runs (not expected)
        log.warning("a stream's generator could not be closed: it was running")
