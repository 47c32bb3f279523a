"""HTTP: `POST /v1/messages` (one JWS, application/jose) and `POST /v1/messages/batch`."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from gateway.access.routes import authenticated, caller_with
from gateway.access.tokens import Caller
from gateway.errors import BadRequest, NotFound, PayloadTooLarge, UnsupportedMediaType
from gateway.logs import log_event
from gateway.models import LogEntry
from gateway.publishing.orchestration import publish
from gateway.publishing.schemas import BatchIn, BatchOut, ReceiptOut, StoredMessage
from gateway.publishing.service import Outcome, Publisher
from gateway.routing import DirectRoute
from gateway.runtime import ReadSession, Runtime, get_runtime
from gateway.transparency.views import reader_of

router = APIRouter(prefix="/v1/messages", tags=["publishing"])
JOSE = "application/jose"


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, refusing more than `limit` bytes before reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge("payload_too_large", f"the body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge("payload_too_large", f"the body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def count_outcomes(request: Request, outcomes: list[Outcome], caller: str) -> None:
    """Metrics per outcome, and one structured log line per message (with the request id)."""
    counts: Counter[tuple[str, str]] = Counter()
    for outcome in outcomes:
        label = {201: "accepted", 200: "duplicate"}.get(outcome.status)
        if label is None:
            label = outcome.error.code if outcome.error else str(outcome.status)
        counts[(outcome.message_type or "unknown", label)] += 1
        log_event(
            "message." + ("refused" if outcome.error else label),
            message_id=outcome.message_id,
            type=outcome.message_type,
            index=outcome.index,
            agency=caller,
            code=outcome.error.code if outcome.error else None,
        )
    counter = request.app.state.metrics.published
    for (message_type, label), n in counts.items():
        counter.labels(message_type, label).inc(n)


def _item(outcome: Outcome, instance: str) -> dict[str, Any]:
    """A BatchItemOut as JSON, without its empty members (built by hand: a model per item
    cost more than publishing it in a batch of 1,000)."""
    item: dict[str, Any] = {"status": outcome.status}
    for name in ("message_id", "index", "leaf_hash", "receipt"):
        value = getattr(outcome, name)
        if value is not None:
            item[name] = value
    if outcome.error is not None:
        item["problem"] = outcome.error.problem(instance)
    return item


async def publish_message(request: Request) -> Response:
    """Publish one signed message; 201 with a receipt, 200 on an identical resend. Needs an
    access token with scope `publish`, of the agency whose key signed the message."""
    runtime: Runtime = request.app.state.runtime  # not a dependency: the hot path
    caller = await authenticated(request, "publish")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != JOSE:
        raise UnsupportedMediaType(
            "unsupported_media_type", f"send the compact JWS with Content-Type: {JOSE}"
        )
    body = await read_limited(request, runtime.settings.publish.max_body_bytes)
    with request.app.state.metrics.publish_seconds.labels("single").time():
        publisher: Publisher = request.app.state.publisher
        outcome = await publisher.submit((body.strip(), caller.agency_id))
    count_outcomes(request, [outcome], caller.agency_id)
    if outcome.error is not None:
        raise outcome.error
    receipt = {  # ReceiptOut, without a model per request
        "message_id": outcome.message_id,
        "index": outcome.index,
        "leaf_hash": outcome.leaf_hash,
        "receipt": outcome.receipt,
    }
    return Response(orjson.dumps(receipt), outcome.status, media_type="application/json")


# Called without FastAPI's parameter machinery (gateway.routing.DirectRoute): the route reads
# its own body, and the single publish is the hot path.
router.add_api_route(
    "",
    publish_message,
    methods=["POST"],
    status_code=201,
    response_model=ReceiptOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {JOSE: {"schema": {"type": "string", "description": "compact JWS"}}},
        }
    },
    responses={200: {"description": "identical resend: the same receipt", "model": ReceiptOut}},
    route_class_override=DirectRoute,
)


@router.post(
    "/batch",
    response_model=BatchOut,
    # the body is read (size-limited) and parsed by hand; the document still names it
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": BatchIn.model_json_schema()}},
        }
    },
)
async def publish_messages(request: Request) -> Response:
    """Publish up to 1,000 JWS in one transaction; each item is answered on its own. Needs
    scope `publish`; every item must be signed by a key of the token's agency."""
    runtime: Runtime = request.app.state.runtime
    caller = await authenticated(request, "publish")
    limits = runtime.settings.publish
    body = await read_limited(request, limits.max_body_bytes * 64)
    try:
        parsed = BatchIn.model_validate(orjson.loads(body))
    except (orjson.JSONDecodeError, ValueError) as exc:
        raise BadRequest(
            "malformed_json", 'the batch body must be {"messages": [JWS, ...]}'
        ) from exc
    if len(parsed.messages) > limits.max_batch_items:
        raise PayloadTooLarge(
            "batch_too_large",
            f"a batch holds at most {limits.max_batch_items} messages, "
            f"this one has {len(parsed.messages)}",
        )
    raws = [m.encode() for m in parsed.messages]
    too_big = [i for i, raw in enumerate(raws) if len(raw) > limits.max_body_bytes]
    with request.app.state.metrics.publish_seconds.labels("batch").time():
        outcomes = await run_in_threadpool(
            publish, runtime, raws, too_big, [caller.agency_id] * len(raws)
        )
    count_outcomes(request, outcomes, caller.agency_id)
    out = {
        "accepted": sum(o.status == 201 for o in outcomes),
        "duplicates": sum(o.status == 200 for o in outcomes),
        "rejected": sum(o.status >= 400 for o in outcomes),
        "results": [_item(o, request.url.path) for o in outcomes],
    }
    return Response(orjson.dumps(out), media_type="application/json")


@router.get("/{message_id}", response_model_exclude_unset=True)
async def get_message(
    session: ReadSession,
    message_id: str,
    runtime: Annotated[Runtime, Depends(get_runtime)],
    caller: Annotated[Caller, Depends(caller_with("ledger.read"))],
) -> StoredMessage:
    """The stored message: its log index and leaf hash, and the exact JWS bytes and receipt
    for a caller that may read it whole (a `read` right for its type, or its issuer); to
    others what their subscribe view shows (`view` `fields`), or only the hashes (`view`
    `hashes`). Its inclusion proof is public: `GET /v1/log/proofs/inclusion?index=`."""

    def load() -> dict[str, Any] | None:
        entry = session.scalars(
            select(LogEntry).where(LogEntry.message_id == message_id.lower())
        ).first()
        if entry is None:
            return None
        reader = reader_of(session, caller.agency_id)
        return {
            "message_id": entry.message_id,
            "index": entry.idx,
            "kind": entry.kind,
            "leaf_hash": entry.leaf_hash.hex(),
            **reader.facts(entry),
        }

    shown = await run_in_threadpool(load)
    if shown is None:
        raise NotFound("not_found", f"no message {message_id} is in the log")
    return StoredMessage.model_validate(shown)
