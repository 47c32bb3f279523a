"""Group commit for single publishes: concurrent requests share one transaction.

A publish costs a few fixed round trips (registry, head lock, node prefetch, commit) whatever
its size, so under concurrency the threads waiting for the log head hand their messages to
whichever thread holds it. Every caller still gets its answer only after the transaction that
holds its message has committed; one that fails fails every message in it, and none is stored.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gateway.publishing.service import Outcome

Publish = Callable[[Sequence[bytes], Sequence[int], Sequence[str | None]], list[Outcome]]


@dataclass
class _Waiting:
    raw: bytes
    caller: str | None
    outcome: Outcome | None = None
    error: BaseException | None = None
    done: bool = False


class GroupCommitter:
    def __init__(self, publish: Publish, max_group: int = 256) -> None:
        self._publish = publish
        self._max_group = max_group
        self._cond = threading.Condition()
        self._queue: list[_Waiting] = []
        self._busy = False

    def submit(self, raw: bytes, caller: str | None = None) -> Outcome:
        """Publish `raw` (sent by `caller`'s token); blocks until the transaction holding it
        has committed or failed."""
        mine = _Waiting(raw, caller)
        with self._cond:
            self._queue.append(mine)
        while True:
            with self._cond:
                while self._busy and not mine.done:
                    self._cond.wait()
                if mine.done:
                    return self._answer(mine)
                self._busy = True
                group = self._queue[: self._max_group]
                del self._queue[: self._max_group]
            self._run(group)

    def _run(self, group: list[_Waiting]) -> None:
        try:
            outcomes = self._publish([w.raw for w in group], (), [w.caller for w in group])
        except BaseException as exc:  # handed to every waiter; the leader re-raises its own
            for waiting in group:
                waiting.error = exc
        else:
            for waiting, outcome in zip(group, outcomes, strict=True):
                waiting.outcome = outcome
        with self._cond:
            for waiting in group:
                waiting.done = True
            self._busy = False
            self._cond.notify_all()

    @staticmethod
    def _answer(waiting: _Waiting) -> Outcome:
        if waiting.error is not None:
            raise waiting.error
        assert waiting.outcome is not None
        return waiting.outcome
