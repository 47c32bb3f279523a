"""What a running gateway holds: settings, database, keys, clock. Built in the app lifespan."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from fastapi import Request

from gateway.access.ratelimit import RateLimiter
from gateway.clock import Clock, SystemClock
from gateway.db import Database
from gateway.errors import PayloadTooLarge
from gateway.publishing.service import Outcome, PublishContext, publish_batch
from gateway.publishing.verify import KeyCache
from gateway.settings import Settings
from gateway.signing import GatewaySigner, load_gateway_signer


@dataclass
class Runtime:
    settings: Settings
    db: Database
    signer: GatewaySigner
    clock: Clock = field(default_factory=SystemClock)
    key_cache: KeyCache = field(default_factory=KeyCache)
    rate_limiter: RateLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.rate_limiter = RateLimiter(
            self.db, self.settings.rate_limit_per_second, self.settings.rate_limit_burst
        )

    @classmethod
    def open(cls, settings: Settings, clock: Clock | None = None) -> Runtime:
        return cls(
            settings=settings,
            db=Database(settings.effective_database_url),
            signer=load_gateway_signer(settings),
            clock=clock or SystemClock(),
        )

    def publish_context(self) -> PublishContext:
        return PublishContext(
            signer=self.signer,
            key_cache=self.key_cache,
            max_skew=dt.timedelta(seconds=self.settings.publish.max_future_skew_seconds),
            log_origin=self.settings.log_origin,
        )

    def publish(
        self,
        raws: Sequence[bytes],
        too_big: Sequence[int] = (),
        callers: Sequence[str | None] | None = None,
    ) -> list[Outcome]:
        """Publish in one transaction (committed before this returns); answers per item.
        `callers[i]` is the agency whose access token item i came with (None: in-process)."""
        oversized = set(too_big)
        limit = self.settings.publish.max_body_bytes
        wanted = [raw for i, raw in enumerate(raws) if i not in oversized]
        who = None if callers is None else [c for i, c in enumerate(callers) if i not in oversized]
        with self.db.transaction() as session:
            accepted = iter(
                publish_batch(session, wanted, self.publish_context(), self.clock.now(), who)
            )
        refused = Outcome(
            413, error=PayloadTooLarge("payload_too_large", f"item exceeds {limit} bytes")
        )
        return [refused if i in oversized else next(accepted) for i in range(len(raws))]

    def close(self) -> None:
        self.db.dispose()


async def get_runtime(request: Request) -> Runtime:
    """The dependency `Depends(get_runtime)`. A coroutine: FastAPI runs a plain function
    dependency in its thread pool, a thread hop on every request for one attribute."""
    runtime: Runtime = request.app.state.runtime
    return runtime
