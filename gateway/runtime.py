"""What a running gateway holds: settings, database, keys, clock. Built in the app lifespan."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from fastapi import Request
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from gateway.access.ratelimit import RateLimiter
from gateway.clock import Clock, SystemClock
from gateway.db import Database
from gateway.errors import GatewayError, InternalError, PayloadTooLarge
from gateway.publishing.service import Outcome, PublishContext, publish_batch
from gateway.publishing.verify import KeyCache
from gateway.settings import Settings
from gateway.signing import GatewaySigner, load_gateway_signer
from gateway.streaming import StreamSlots

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    db: Database
    signer: GatewaySigner
    clock: Clock = field(default_factory=SystemClock)
    key_cache: KeyCache = field(default_factory=KeyCache)
    rate_limiter: RateLimiter = field(init=False)
    streams: StreamSlots = field(init=False)  # streamed downloads served at once

    def __post_init__(self) -> None:
        self.rate_limiter = RateLimiter(
            self.db, self.settings.rate_limit_per_second, self.settings.rate_limit_burst
        )
        self.streams = StreamSlots(self.settings.streams.max_open)

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
        accepted = iter(self._publish_apart_on_failure(wanted, who))
        refused = Outcome(
            413, error=PayloadTooLarge("payload_too_large", f"item exceeds {limit} bytes")
        )
        return [refused if i in oversized else next(accepted) for i in range(len(raws))]

    def _publish_apart_on_failure(
        self, raws: Sequence[bytes], callers: Sequence[str | None] | None
    ) -> list[Outcome]:
        """All of `raws` in one transaction. publish_batch answers each item's refusal itself;
        if the transaction fails otherwise and not because the database is unavailable (a bug
        or a refusal some item triggers outside its own handling), nothing was stored and the
        two halves are published apart, down to the item that fails alone: it is answered with
        that refusal, or 500, and logged; every other item gets its own answer (a batch
        answers per item; a single publish is not failed by a stranger's message grouped with
        it)."""
        try:
            with self.db.transaction() as session:
                return publish_batch(
                    session, raws, self.publish_context(), self.clock.now(), callers
                )
        except (DisconnectionError, OperationalError, InterfaceError, PoolTimeout):
            raise  # the database unavailable or busy: all fail (503), the clients retry
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise
            failure: Exception = exc
        except Exception as exc:
            failure = exc
        if len(raws) == 1:
            log.error(
                "publishing: an item failed outside its own checks and was not stored (sha256 %s)",
                hashlib.sha256(raws[0]).hexdigest(),
                exc_info=failure,
            )
            if isinstance(failure, GatewayError):
                return [Outcome(failure.status_code, error=failure)]
            detail = "The gateway failed on this message and did not store it; it is logged."
            return [Outcome(500, error=InternalError("internal_error", detail))]
        half = len(raws) // 2
        first, second = (None, None) if callers is None else (callers[:half], callers[half:])
        return [
            *self._publish_apart_on_failure(raws[:half], first),
            *self._publish_apart_on_failure(raws[half:], second),
        ]

    def close(self) -> None:
        self.db.dispose()


async def get_runtime(request: Request) -> Runtime:
    """The dependency `Depends(get_runtime)`. A coroutine: FastAPI runs a plain function
    dependency in its thread pool, a thread hop on every request for one attribute."""
    runtime: Runtime = request.app.state.runtime
    return runtime
