"""Refused requests recorded but bounded: a budget of refusals per client address, spent
before authentication, and identical refusals folded into one access record with a count.

2,094 `Bearer x.y.z` requests in 10 s wrote 2,094 access records, each taking SQLite's
writer lock (issue 20, finding 5). Now:

- Every address has a token bucket (`GATEWAY_REFUSALS__PER_SECOND`, `__BURST`) spent by
  each request refused before any agency was verified (no or a bad token, a refused login).
  An address whose bucket is empty is answered `429 rate_limited` with `Retry-After` before
  its token is read. A verified agency's requests never spend it: they have their own rate.
- A refusal is one access record per (address, agency, enterprise, action, what, code) and
  window (`__WINDOW_SECONDS`): its first occurrence is written at once; repeats only count
  in memory, and every `__FLUSH_SECONDS` the counts and last times are added to that record
  (`count`, `at` = first seen, `last_at`). A crash loses at most one flush of counts.

Per process (like the agency rate limits); both tables are bounded by `__MAX_TRACKED`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import bindparam, update
from sqlalchemy.orm import Session

from gateway.db import Database
from gateway.errors import TooManyRequests
from gateway.models import AccessRecord, table_of
from gateway.settings import RefusalSettings

__all__ = ["TOKEN_REFUSALS", "Refusal", "Refusals", "flush_forever"]

# Refusals of a token that verified (revoked since, its agency disabled): the request is no
# agency's, and spends its address's budget like a bad token.
TOKEN_REFUSALS = frozenset({"token_revoked", "agency_disabled"})
log = logging.getLogger(__name__)


class Refusal(NamedTuple):
    """What makes two refusals the same record."""

    address: str | None
    agency_id: str | None
    uscc: str | None
    action: str
    what: str | None
    code: str


@dataclass
class _Pending:
    record_id: int | None  # None while its first occurrence is being written
    first: float  # monotonic: when its window began
    count: int = 0  # occurrences not yet added to the record
    last_at: dt.datetime | None = None


class _Counted(NamedTuple):
    record_id: int
    more: int
    last: dt.datetime | None


@dataclass
class _Bucket:
    tokens: float
    at: float


OVERFLOW = "(other refusals)"  # what a refusal is folded into once the table is full

_table = table_of(AccessRecord)
_ADD_COUNTS = (
    update(_table)
    .where(_table.c.id == bindparam("record_id"))
    .values(count=_table.c.count + bindparam("more"), last_at=bindparam("last"))
)


class Refusals:
    """The address budgets and the refusal records of one process."""

    def __init__(
        self, settings: RefusalSettings, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self._now = monotonic
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._pending: dict[Refusal, _Pending] = {}
        # counts of windows already over, still to be added to their records
        self._retired: list[_Counted] = []

    # --- the budget per address ---------------------------------------------------------------

    def check_address(self, address: str | None) -> None:
        """Raise 429 rate_limited if `address` has spent its refusals (nothing is spent)."""
        if address is None:
            return
        with self._lock:
            bucket = self._refilled(address)
            if bucket is None or bucket.tokens >= 1.0:
                return
            wait = max(1, math.ceil((1.0 - bucket.tokens) / self.settings.per_second))
        raise TooManyRequests(
            "rate_limited",
            f"too many refused requests from {address}: send a valid access token, or retry "
            f"after {wait} s",
            retry_after=wait,
        )

    def spend(self, address: str | None) -> None:
        """One refusal of a request no agency was verified for, from `address`."""
        if address is None:
            return
        with self._lock:
            bucket = self._refilled(address)
            if bucket is None:
                if len(self._buckets) >= self.settings.max_tracked:
                    self._buckets.popitem(last=False)  # the least recently refused address
                bucket = self._buckets[address] = _Bucket(float(self.settings.burst), self._now())
            self._buckets.move_to_end(address)
            bucket.tokens = max(0.0, bucket.tokens - 1.0)

    def _refilled(self, address: str) -> _Bucket | None:
        bucket = self._buckets.get(address)
        if bucket is not None:
            now = self._now()
            burst = float(self.settings.burst)
            bucket.tokens = min(burst, bucket.tokens + (now - bucket.at) * self.settings.per_second)
            bucket.at = now
        return bucket

    # --- the records ---------------------------------------------------------------------------

    def note(self, refusal: Refusal, at: dt.datetime) -> Refusal | None:
        """Count one refusal; returns the refusal whose record must be written now (its
        first in this window: call `write_first`), or None when it was only counted."""
        now = self._now()
        with self._lock:
            if refusal not in self._pending and len(self._pending) >= self.settings.max_tracked:
                refusal = Refusal(None, None, None, refusal.action, OVERFLOW, refusal.code)
            pending = self._pending.get(refusal)
            if pending is not None and now - pending.first < self.settings.window_seconds:
                pending.count += 1
                pending.last_at = at
                return None
            # a new window: the old one's counts go out with the next flush, under its id
            if pending is not None and pending.record_id is not None and pending.count:
                self._retired.append(_Counted(pending.record_id, pending.count, pending.last_at))
            self._pending[refusal] = _Pending(None, now)
            return refusal

    def write_first(self, db: Database, refusal: Refusal, at: dt.datetime) -> None:
        """The record of a refusal's first occurrence in its window, in a transaction of its
        own; later occurrences are added to it by `flush`."""
        with db.transaction() as session:
            record = AccessRecord(
                at=at,
                agency_id=refusal.agency_id,
                uscc=refusal.uscc[:18] if refusal.uscc else None,
                action=refusal.action,
                purpose=refusal.what[:200] if refusal.what else None,
                result=refusal.code[:48],
                address=refusal.address[:64] if refusal.address else None,
                count=1,
                last_at=at,
            )
            session.add(record)
            session.flush()
            record_id = record.id
        with self._lock:
            pending = self._pending.get(refusal)
            if pending is not None and pending.record_id is None:
                pending.record_id = record_id

    def flush(self, db: Database) -> int:
        """Add the counted repeats to their records; forget windows that are over. Returns
        how many records were updated. Counts a failed flush could not write are kept for
        the next one."""
        now = self._now()
        with self._lock:
            changes, self._retired = self._retired, []
            for refusal, pending in list(self._pending.items()):
                if pending.record_id is None:
                    continue  # its first record is still being written
                if pending.count:
                    changes.append(_Counted(pending.record_id, pending.count, pending.last_at))
                    pending.count = 0
                if now - pending.first >= self.settings.window_seconds:
                    del self._pending[refusal]
        if changes:
            try:
                with db.transaction() as session:
                    _add_counts(session, changes)
            except Exception:
                with self._lock:
                    self._retired.extend(changes)
                raise
        return len(changes)


def _add_counts(session: Session, changes: list[_Counted]) -> None:
    session.connection().execute(_ADD_COUNTS, [c._asdict() for c in changes])


async def flush_forever(refusals: Refusals, db: Database) -> None:
    """The lifespan's task: the counts every `flush_seconds`, and once more when cancelled."""
    from starlette.concurrency import run_in_threadpool

    try:
        while True:
            await asyncio.sleep(refusals.settings.flush_seconds)
            try:
                await run_in_threadpool(refusals.flush, db)
            except Exception as exc:  # the database away: kept for the next flush
                log.warning("access: refusal counts not written yet: %r", exc)
    finally:
        try:
            await asyncio.shield(run_in_threadpool(refusals.flush, db))
        except Exception as exc:
            log.warning("access: refusal counts lost at shutdown: %r", exc)
