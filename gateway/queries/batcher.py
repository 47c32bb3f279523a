"""Group commit for single standing queries: concurrent questions share one transaction.

A standing query is a few reads, one access record and a commit; alone, the fixed part (begin,
the right, the catalog version, the log size, the commit, a thread-pool hop per request, and
on SQLite the process's write lock) cost more than the answer. Here the event loop hands each
question to one thread, which answers every question waiting in one transaction (the batch
query's statements: rights and catalog once, ledgers in one statement per 500 codes), writes
their access records in one INSERT, commits, and only then signs each answer's attestation
and hands it back. No answer leaves before its access record is committed; if the
transaction fails, every question in it fails and none is recorded or answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import threading
from collections import defaultdict
from dataclasses import dataclass, field

import orjson

from gateway.errors import GatewayError
from gateway.queries import service
from gateway.queries.service import Ask
from gateway.runtime import Runtime

log = logging.getLogger(__name__)

# Refusals decided before the question was admitted record the purpose as it was sent (as the
# one-at-a-time path did); the others the stripped purpose.
_BEFORE_ADMISSION = frozenset({"not_permitted", "field_not_in_view"})


@dataclass
class _Pending:
    ask: Ask
    purpose: str
    sent_purpose: str | None
    at: dt.datetime
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[bytes] = field(repr=False)


class StandingQueries:
    """The thread answering single standing queries in groups (at most `max_group` each)."""

    def __init__(self, runtime: Runtime, max_group: int = 256) -> None:
        self._runtime = runtime
        self._max_group = max_group
        self._cond = threading.Condition()
        self._queue: list[_Pending] = []
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="standing-queries", daemon=True)
        self._thread.start()

    async def ask(self, ask: Ask, *, purpose: str, sent_purpose: str | None) -> bytes:
        """The JSON answer (`standing` and `attestation`) once its access record is
        committed; raises the question's refusal (recorded too)."""
        loop = asyncio.get_running_loop()
        pending = _Pending(
            ask, purpose, sent_purpose, self._runtime.clock.now(), loop, loop.create_future()
        )
        with self._cond:
            if self._closed:
                raise RuntimeError("the gateway is shutting down")
            self._queue.append(pending)
            self._cond.notify()
        return await pending.future

    def close(self, timeout: float = 30) -> None:
        """Answer what is waiting, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                group = self._queue[: self._max_group]
                del self._queue[: self._max_group]
            try:
                answers = self._answer(group)
            except Exception as exc:  # a bug, not the database: fail the group, keep serving
                log.exception("answering a group of %d standing queries failed", len(group))
                answers = [exc] * len(group)
            self._settle(group, answers)

    def _answer(self, group: list[_Pending]) -> list[bytes | BaseException]:
        runtime = self._runtime
        try:
            with runtime.db.transaction() as session:
                outcomes = service.standings(session, [p.ask for p in group])
                service.record_accesses(
                    session,
                    [
                        {
                            "at": p.at,
                            "agency_id": p.ask.agency_id,
                            "uscc": p.ask.uscc,
                            "action": "query",
                            "purpose": p.sent_purpose
                            if isinstance(outcome, GatewayError)
                            and outcome.code in _BEFORE_ADMISSION
                            else p.purpose,
                            "result": outcome.code if isinstance(outcome, GatewayError) else "ok",
                        }
                        for p, outcome in zip(group, outcomes, strict=True)
                    ],
                )
                size = service.log_size(session)
        except Exception as exc:  # every question of the group fails with it; none was recorded
            log.exception("a group of %d standing queries failed", len(group))
            return [exc] * len(group)
        answers: list[bytes | BaseException] = []
        for p, outcome in zip(group, outcomes, strict=True):
            if isinstance(outcome, GatewayError):
                answers.append(outcome)
                continue
            attestation = service.attestation(runtime.signer, outcome, p.ask.agency_id, p.at, size)
            answers.append(orjson.dumps({"standing": outcome, "attestation": attestation}))
        return answers

    @staticmethod
    def _settle(group: list[_Pending], answers: list[bytes | BaseException]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Pending, bytes | BaseException]]]
        by_loop = defaultdict(list)
        for pending, answer in zip(group, answers, strict=True):
            by_loop[pending.loop].append((pending, answer))
        for loop, settled in by_loop.items():
            # a closed loop has nobody waiting any more
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, settled)


def _resolve(settled: list[tuple[_Pending, bytes | BaseException]]) -> None:
    for pending, answer in settled:
        if pending.future.done():  # the client went away
            continue
        if isinstance(answer, BaseException):
            pending.future.set_exception(answer)
        else:
            pending.future.set_result(answer)
