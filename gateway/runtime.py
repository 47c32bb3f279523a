"""What a running gateway holds: settings, database, keys, clock, caches. Built in the app
lifespan; resources only (publishing's orchestration is gateway.publishing.orchestration)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from gateway.access.ratelimit import RateLimiter
from gateway.access.refusals import Refusals
from gateway.clock import Clock, SystemClock
from gateway.db import Database
from gateway.publishing.verify import KeyCache
from gateway.settings import Settings
from gateway.signing import GatewaySigner, load_gateway_signer
from gateway.streaming import StreamSlots


@dataclass
class Runtime:
    settings: Settings
    db: Database
    signer: GatewaySigner
    clock: Clock = field(default_factory=SystemClock)
    key_cache: KeyCache = field(default_factory=KeyCache)
    rate_limiter: RateLimiter = field(init=False)
    refusals: Refusals = field(init=False)  # refusals per address, and their records
    streams: StreamSlots = field(init=False)  # streamed downloads served at once

    def __post_init__(self) -> None:
        self.rate_limiter = RateLimiter(
            self.db, self.settings.rate_limit_per_second, self.settings.rate_limit_burst
        )
        self.streams = StreamSlots(self.settings.streams.max_open)
        self.refusals = Refusals(self.settings.refusals)

    @classmethod
    def open(cls, settings: Settings, clock: Clock | None = None) -> Runtime:
        pools, streams = settings.database, settings.streams
        return cls(
            settings=settings,
            db=Database(
                settings.effective_database_url,
                pool_size=pools.pool_size,
                pool_timeout=pools.pool_timeout_seconds,
                export_pool_size=streams.pool_size,
                export_pool_timeout=streams.pool_timeout_seconds,
            ),
            signer=load_gateway_signer(settings),
            clock=clock or SystemClock(),
        )

    def close(self) -> None:
        self.db.dispose()


async def get_runtime(request: Request) -> Runtime:
    """The dependency `Depends(get_runtime)`. A coroutine: FastAPI runs a plain function
    dependency in its thread pool, a thread hop on every request for one attribute."""
    runtime: Runtime = request.app.state.runtime
    return runtime
