"""Per-agency request rate limits: a token bucket per agency in each API process.

The limits come from the `rate_limits` table (an agency's own) or the settings (everyone
else), re-read every few seconds so an admin's change reaches every process without a restart.
The buckets are per process: with N API processes an agency can reach N times its rate, so a
deployment divides its limits by N (written down in the README). An empty bucket answers
429 with `Retry-After`, the seconds until a token is back.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from gateway.db import Database
from gateway.errors import TooManyRequests
from gateway.models import RateLimit


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    def __init__(
        self,
        db: Database,
        per_second: float,
        burst: int,
        refresh_seconds: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._default = (per_second, burst)
        self._refresh = refresh_seconds
        self._now = monotonic
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}
        self._limits: dict[str, tuple[float, int]] = {}
        self._loaded_at = -math.inf

    def invalidate(self) -> None:
        """Re-read the limits at the next request (this process changed them)."""
        self._loaded_at = -math.inf

    def limit_of(self, agency_id: str) -> tuple[float, int]:
        if self._now() - self._loaded_at >= self._refresh:
            with self._db.reader() as session:
                rows = session.execute(
                    select(RateLimit.agency_id, RateLimit.per_second, RateLimit.burst)
                ).all()
            self._limits = {a: (rate, burst) for a, rate, burst in rows}
            self._loaded_at = self._now()
        return self._limits.get(agency_id, self._default)

    def take(self, agency_id: str) -> None:
        """Spend one token of `agency_id`'s bucket or raise 429 naming when to come back."""
        rate, burst = self.limit_of(agency_id)
        with self._lock:
            now = self._now()
            bucket = self._buckets.get(agency_id)
            if bucket is None:
                bucket = self._buckets[agency_id] = _Bucket(float(burst), now)
            bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.at) * rate)
            bucket.at = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return
            wait = (1.0 - bucket.tokens) / rate
        raise TooManyRequests(
            "rate_limited",
            f"agency {agency_id!r} is over its rate of {rate:g} requests/s (burst {burst}); "
            f"retry after {math.ceil(wait)} s",
            retry_after=max(1, math.ceil(wait)),
        )
