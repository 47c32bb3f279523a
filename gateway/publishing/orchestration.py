"""Publishing as a whole: a batch of JWS in one transaction (group-committed single publishes
are batches too), and what happens when that transaction fails for a reason no item's own
checks caught: the items are published apart, down to the one that fails alone."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Sequence

from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from gateway.errors import GatewayError, InternalError, PayloadTooLarge
from gateway.publishing.service import Outcome, PublishContext, publish_batch
from gateway.runtime import Runtime

log = logging.getLogger(__name__)


def publish_context(runtime: Runtime) -> PublishContext:
    return PublishContext(
        signer=runtime.signer,
        key_cache=runtime.key_cache,
        max_skew=dt.timedelta(seconds=runtime.settings.publish.max_future_skew_seconds),
        log_origin=runtime.settings.log_origin,
    )


def publish(
    runtime: Runtime,
    raws: Sequence[bytes],
    too_big: Sequence[int] = (),
    callers: Sequence[str | None] | None = None,
) -> list[Outcome]:
    """Publish in one transaction (committed before this returns); answers per item.
    `callers[i]` is the agency whose access token item i came with (None: in-process)."""
    oversized = set(too_big)
    limit = runtime.settings.publish.max_body_bytes
    wanted = [raw for i, raw in enumerate(raws) if i not in oversized]
    who = None if callers is None else [c for i, c in enumerate(callers) if i not in oversized]
    accepted = iter(_publish_apart_on_failure(runtime, wanted, who))
    refused = Outcome(
        413, error=PayloadTooLarge("payload_too_large", f"item exceeds {limit} bytes")
    )
    return [refused if i in oversized else next(accepted) for i in range(len(raws))]


def _publish_apart_on_failure(
    runtime: Runtime, raws: Sequence[bytes], callers: Sequence[str | None] | None
) -> list[Outcome]:
    """All of `raws` in one transaction. publish_batch answers each item's refusal itself;
    if the transaction fails otherwise and not because the database is unavailable (a bug
    or a refusal some item triggers outside its own handling), nothing was stored and the
    two halves are published apart, down to the item that fails alone: it is answered with
    that refusal, or 500, and logged; every other item gets its own answer (a batch
    answers per item; a single publish is not failed by a stranger's message grouped with
    it)."""
    try:
        with runtime.db.transaction() as session:
            return publish_batch(
                session, raws, publish_context(runtime), runtime.clock.now(), callers
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
        *_publish_apart_on_failure(runtime, raws[:half], first),
        *_publish_apart_on_failure(runtime, raws[half:], second),
    ]
