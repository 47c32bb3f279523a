"""A subscription's pull feed (protocol.md §5) as an iterator of events, acknowledged as the
caller asks, and resumable from the gateway's cursor or from one the caller kept."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

from credit_gateway_client.errors import UnexpectedResponse
from credit_gateway_client.events import Event

__all__ = ["AckMode", "Feed"]

# "page": acknowledge a page once every event of it was handed out and the caller came back
#         for more (or the feed ended): at least once, one acknowledgement per page.
# "each": acknowledge each event when the caller comes back for the next one.
# "manual": never by itself; the caller calls ack().
AckMode = Literal["page", "each", "manual"]


class Feed(Iterator[Event]):
    """Events in log order. An event counts as handled once the caller asks for the next, so
    a caller that stops (or crashes) mid-page reads the rest again next time: deduplicate on
    `event.id`. Without `after` the feed starts after the gateway's acknowledged cursor; keep
    `cursor` (the index the feed has read up to) to resume elsewhere with `after=`. With `follow`
    it never ends: at the end it waits `poll_seconds` and asks again."""

    def __init__(
        self,
        read_page: Callable[[int | None, int], Mapping[str, Any]],
        acknowledge: Callable[[int], int],
        *,
        after: int | None = None,
        limit: int = 100,
        ack: AckMode = "page",
        follow: bool = False,
        poll_seconds: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if ack not in ("page", "each", "manual"):
            raise ValueError("ack is 'page', 'each' or 'manual'")
        self._read_page = read_page
        self._acknowledge = acknowledge
        self._after = after
        self._limit = limit
        self._mode = ack
        self._follow = follow
        self._poll = poll_seconds
        self._sleep = sleep
        self._buffer: deque[Event] = deque()
        self._page_end: int | None = None  # `next` of the page being handed out
        self._handed: int | None = None
        self._ended = False
        self.cursor: int | None = after
        self.acked: int | None = None
        self.parked: list[dict[str, Any]] = []  # items never rendered, with the reason

    def __next__(self) -> Event:
        if self._handed is not None and self._mode == "each":
            self.ack(self._handed)
        self._handed = None
        while not self._buffer:
            if self._page_end is not None:  # every event of the page was handled
                self.cursor = self._page_end  # past its parked items too
                if self._mode != "manual":
                    self.ack(self._page_end)
                self._page_end = None
            if self._ended:
                if not self._follow:
                    raise StopIteration
                self._sleep(self._poll)
            self._fetch()
        event = self._buffer.popleft()
        self._handed = self.cursor = event.index
        return event

    def ack(self, index: int | None = None) -> int:
        """Move the gateway's cursor to `index` (default: the last event handed out); it
        never moves back. Returns the acknowledged index."""
        target = self.cursor if index is None else index
        if target is None:
            raise ValueError("nothing was read yet: give the index to acknowledge")
        if self.acked is None or target > self.acked:
            self.acked = self._acknowledge(target)
        return self.acked

    def _fetch(self) -> None:
        page = self._read_page(self._after, self._limit)
        try:
            start, following = int(page["after"]), int(page["next"])
            events = [Event.from_json(item) for item in page["items"]]
            more = bool(page["has_more"])
        except (KeyError, TypeError, ValueError) as exc:
            raise UnexpectedResponse(f"not a feed page: {exc!r}") from exc
        self.parked.extend(p for p in page.get("parked", []) if isinstance(p, dict))
        self._buffer.extend(events)
        self._after = following
        self._page_end = following if following > start else None
        if self.cursor is None:
            self.cursor = start  # where the gateway's cursor stood
        self._ended = not more
