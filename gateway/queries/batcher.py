"""Group commit for single standing queries: concurrent questions share one transaction.

A standing query is a few reads, one access record and a commit; alone, the fixed part (begin,
the right, the catalog version, the log size, the commit, a thread-pool hop per request, and
on SQLite the process's write lock) cost more than the answer. Here the event loop hands each
question to one thread (`gateway.groups.GroupWorker`), which answers every question waiting in
one transaction (the batch query's statements: rights and catalog once, ledgers in one
statement per 500 codes), writes their access records in one INSERT, commits, and only then
signs each answer's attestation and hands it back. No answer leaves before its access record is
committed; if the transaction fails, every question in it fails and none is recorded or
answered.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from gateway.errors import BadRequest, GatewayError
from gateway.groups import GroupWorker
from gateway.queries import service
from gateway.queries.service import Ask
from gateway.runtime import Runtime

# Refusals decided before the question was admitted record the purpose as it was sent (as the
# one-at-a-time path did); the others the stripped purpose.
_BEFORE_ADMISSION = frozenset({"not_permitted", "field_not_in_view"})


@dataclass(frozen=True)
class Question:
    ask: Ask
    purpose: str
    sent_purpose: str | None
    at: dt.datetime


class StandingQueries:
    """The thread answering single standing queries in groups (at most `max_group` each)."""

    def __init__(self, runtime: Runtime, max_group: int = 256) -> None:
        self._runtime = runtime
        self._worker: GroupWorker[Question, bytes | GatewayError] = GroupWorker(
            "standing-queries", lambda group: answer(runtime, group), max_group
        )

    async def ask(self, ask: Ask, *, purpose: str, sent_purpose: str | None) -> bytes:
        """The JSON answer (`standing` and `attestation`) once its access record is
        committed; raises the question's refusal (recorded too)."""
        question = Question(ask, purpose, sent_purpose, self._runtime.clock.now())
        result = await self._worker.submit(question)
        if isinstance(result, GatewayError):
            raise result
        return result

    @property
    def worker(self) -> GroupWorker[Question, bytes | GatewayError]:
        return self._worker

    def close(self, timeout: float = 30) -> None:
        """Answer what is waiting, then stop the thread."""
        self._worker.close(timeout)


def answer(runtime: Runtime, group: Sequence[Question]) -> list[bytes | GatewayError]:
    """Each question's JSON answer or refusal, all recorded in one committed transaction.

    A question whose code or purpose holds U+0000 is refused on its own (`invalid_text`, not
    recorded: no database stores such text), so that it cannot fail the statements of the
    others in its group."""
    unstorable = [_has_nul(q) for q in group]
    if any(unstorable):
        storable = [q for q, bad in zip(group, unstorable, strict=True) if not bad]
        kept = iter(answer(runtime, storable) if storable else [])
        return [_nul_refusal() if bad else next(kept) for bad in unstorable]
    with runtime.db.transaction() as session:
        service.read_one_snapshot(session)  # the answers and the attested size: one state
        outcomes = service.standings(session, [q.ask for q in group])
        service.record_accesses(
            session,
            [
                {
                    "at": q.at,
                    "agency_id": q.ask.agency_id,
                    "uscc": q.ask.uscc,
                    "action": "query",
                    "purpose": q.sent_purpose
                    if isinstance(outcome, GatewayError) and outcome.code in _BEFORE_ADMISSION
                    else q.purpose,
                    "result": outcome.code if isinstance(outcome, GatewayError) else "ok",
                }
                for q, outcome in zip(group, outcomes, strict=True)
            ],
        )
        size = service.log_size(session)
    answers: list[bytes | GatewayError] = []
    for q, outcome in zip(group, outcomes, strict=True):
        if isinstance(outcome, GatewayError):
            answers.append(outcome)
            continue
        attestation = service.attestation(runtime.signer, outcome, q.ask.agency_id, q.at, size)
        answers.append(orjson.dumps({"standing": outcome, "attestation": attestation}))
    return answers


def _has_nul(question: Question) -> bool:
    return "\x00" in question.ask.uscc or "\x00" in (question.sent_purpose or "")


def _nul_refusal() -> GatewayError:  # a fresh exception for each refused question
    return BadRequest("invalid_text", "text may not contain U+0000 (NUL)")
