"""When a call is tried again: a retry policy is a small frozen value, declared once.

(The house style composes tenacity policies; this package may depend on httpx, cryptography
and pyjwt only, so the one policy it needs is a dataclass instead.)

Only idempotent calls are retried: reads, acknowledgements (the cursor never moves back), and
publishing, because the client resends the *same bytes*, which the gateway answers with the
same receipt (protocol.md §1.4). A `429` or `503` is waited out for at least its
`Retry-After`; a 502/504 from a proxy and a timeout or broken connection back off
exponentially with jitter. Everything else is answered at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

__all__ = ["DEFAULT_RETRY", "NO_RETRY", "RetryPolicy"]

_RNG = random.Random()  # noqa: S311 -- jitter spreads retries out; it guards no secret


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` tries in all; waits of `backoff` × 2^n (± `jitter`), at most `max_backoff`,
    never shorter than a `Retry-After`; a `Retry-After` longer than `max_retry_after` is not
    waited out here: the RateLimited/ServiceUnavailable goes to the caller, with it."""

    attempts: int = 4
    statuses: frozenset[int] = frozenset({429, 502, 503, 504})
    backoff: float = 0.5
    max_backoff: float = 10.0
    max_retry_after: float = 60.0
    jitter: float = 0.2
    on_transport_errors: bool = True

    def with_attempts(self, attempts: int) -> RetryPolicy:
        return replace(self, attempts=attempts)

    def delay(
        self, attempt: int, retry_after: float | None, rng: random.Random | None = None
    ) -> float | None:
        """Seconds to wait before try `attempt + 1` (1-based `attempt` just failed), or None
        to give up."""
        if attempt >= self.attempts:
            return None
        if retry_after is not None and retry_after > self.max_retry_after:
            return None
        wait = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        draw: float = (rng or _RNG).random()
        wait *= 1 + self.jitter * (2 * draw - 1)
        return max(wait, retry_after or 0.0)


DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(attempts=1)
