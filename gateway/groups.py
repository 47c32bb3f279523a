"""Group commit fed from the event loop: one thread serves what requests hand it, in groups.

A request's unit of work (a publish, a standing query) costs a few fixed round trips whatever
its size, and a commit. Here the event loop hands each unit to one thread, which takes every
unit waiting, does them in one transaction and answers each with its own result once that
transaction has committed. No thread-pool hop per request, no threads queueing for the
database (on SQLite, for the process's write lock) or handing the GIL to each other: the
handler awaits a future.

`serve(items)` answers a group: one result or exception per item, in order. If it raises,
every item of the group gets that exception; the thread goes on with the next group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class _Pending(Generic[Item, Result]):
    item: Item
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Result] = field(repr=False)


class GroupWorker(Generic[Item, Result]):
    """The thread `name` answering items in groups of at most `max_group`."""

    def __init__(
        self,
        name: str,
        serve: Callable[[Sequence[Item]], Sequence[Result | BaseException]],
        max_group: int = 256,
    ) -> None:
        self._serve_group = serve
        self._max_group = max_group
        self._cond = threading.Condition()
        self._queue: list[_Pending[Item, Result]] = []
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    async def submit(self, item: Item) -> Result:
        """`item`'s result once its group is done (committed); raises its exception."""
        loop = asyncio.get_running_loop()
        pending: _Pending[Item, Result] = _Pending(item, loop, loop.create_future())
        with self._cond:
            if self._closed:
                raise RuntimeError(f"{self._thread.name} is shutting down")
            self._queue.append(pending)
            self._cond.notify()
        return await pending.future

    @property
    def name(self) -> str:
        return self._thread.name

    def is_alive(self) -> bool:
        """Whether the thread serves (a readiness check: without it requests would wait)."""
        return self._thread.is_alive()

    def close(self, timeout: float = 30) -> None:
        """Serve what is waiting, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                group = self._queue[: self._max_group]
                del self._queue[: self._max_group]
            try:
                results = list(self._serve_group([p.item for p in group]))
                if len(results) != len(group):
                    raise RuntimeError(f"{len(results)} results for {len(group)} items")
            except Exception as exc:  # the group fails as one; the thread goes on
                log.exception("%s: a group of %d failed", self._thread.name, len(group))
                results = [exc] * len(group)
            _settle(group, results)


def _settle(group: list[_Pending[Item, Result]], results: Sequence[Result | BaseException]) -> None:
    by_loop: defaultdict[
        asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Result], Result | BaseException]]
    ]
    by_loop = defaultdict(list)
    for pending, result in zip(group, results, strict=True):
        by_loop[pending.loop].append((pending.future, result))
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop has nobody waiting any more
            loop.call_soon_threadsafe(_resolve, settled)


def _resolve(settled: list[tuple[asyncio.Future[Result], Result | BaseException]]) -> None:
    for future, result in settled:
        if future.done():  # the client went away
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
