"""What a running gateway holds: settings, database, keys, clock, caches. Built in the app
lifespan; resources only (publishing's orchestration is gateway.publishing.orchestration)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated

import anyio
from fastapi import Depends, Request
from sqlalchemy.orm import Session

from gateway.access.ratelimit import RateLimiter
from gateway.access.refusals import Refusals
from gateway.clock import Clock, SystemClock
from gateway.db import Database, UnitOfWork
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
                log_node_cache_mib=pools.log_node_cache_mib,
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


async def write_session(request: Request) -> AsyncIterator[Session]:
    """The request's write transaction (`WriteSession`), for routes that are not hot paths
    (publishing and standing queries keep their group commits). Declared with
    `scope="function"`: committed once the endpoint has returned and its answer is made,
    before the answer is sent, so a 201 never goes out ahead of its commit; rolled back if
    the endpoint raises.

    The endpoint is `async` and hands its database work to the thread pool once
    (`await run_in_threadpool(service_function, session, ...)`), and never opens another write
    transaction. On SQLite the session holds the process's writer lock from its first
    statement to its end: a second hop to the pool, or a plain `def` endpoint (FastAPI checks
    its answer in the pool after it returns), would wait for a worker thread while holding
    the lock, and with every worker waiting for the lock that never ends. The session ends
    in a thread of its own, as FastAPI ends a plain dependency's."""
    runtime: Runtime = request.app.state.runtime
    async with _ended_off_loop(runtime.db.unit_of_work()) as session:
        yield session


async def read_session(request: Request) -> AsyncIterator[Session]:
    """The request's read-only transaction (`ReadSession`), on the readers' engine (on
    SQLite beside the writer, WAL): as `write_session`, one hop to the thread pool, and
    ended once the answer is made."""
    runtime: Runtime = request.app.state.runtime
    async with _ended_off_loop(runtime.db.unit_of_work(read_only=True)) as session:
        yield session


@asynccontextmanager
async def _ended_off_loop(work: UnitOfWork) -> AsyncIterator[Session]:
    """`work.session`, then `work.end` in a thread of its own (shielded from cancellation:
    the SQLite writer lock must always be given back)."""
    try:
        yield work.session
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(work.end, exc, limiter=anyio.CapacityLimiter(1))
        raise
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(work.end, limiter=anyio.CapacityLimiter(1))


WriteSession = Annotated[Session, Depends(write_session, scope="function")]
ReadSession = Annotated[Session, Depends(read_session, scope="function")]
