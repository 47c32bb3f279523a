"""HTTP: the public log API (protocol.md §3); no token needed for any of it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from gateway.errors import BadRequest
from gateway.models import Checkpoint
from gateway.runtime import Runtime, get_runtime
from gateway.tlog import tree_size
from gateway.transparency import service

router = APIRouter(tags=["log"])
NOTE = "text/plain; charset=utf-8"
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def latest_checkpoint(runtime: Runtime) -> Checkpoint:
    """The checkpoint of the current size; signed and stored on first request for a size."""
    with runtime.db.reader() as session:
        found = service.stored_checkpoint(session, tree_size(session))
    if found is not None:
        return found
    with runtime.db.transaction() as session:
        return service.checkpoint_for(
            session, runtime.settings.log_origin, runtime.signer.log_key, runtime.clock.now()
        )


@router.get("/v1/log/checkpoint", response_class=PlainTextResponse)
async def get_checkpoint(runtime: RuntimeDep) -> PlainTextResponse:
    """The latest C2SP checkpoint, a signed note over origin, size and root hash."""
    checkpoint = await run_in_threadpool(latest_checkpoint, runtime)
    return PlainTextResponse(checkpoint.note, media_type=NOTE)


@router.get("/v1/log/vkey", response_class=PlainTextResponse)
async def get_vkey(runtime: RuntimeDep) -> PlainTextResponse:
    """The log's signed-note verifier key (`name+keyid+base64(0x01 || Ed25519 key)`)."""
    vkey = service.log_vkey(runtime.settings.log_origin, runtime.signer.log_key)
    return PlainTextResponse(vkey + "\n", media_type=NOTE)


@router.get("/v1/log/proofs/inclusion")
async def get_inclusion(
    runtime: RuntimeDep,
    tree_size: Annotated[int, Query(ge=1, description="size of the tree the proof is for")],
    index: Annotated[int | None, Query(ge=0)] = None,
    message_id: Annotated[str | None, Query(max_length=36)] = None,
) -> dict[str, Any]:
    """RFC 6962 inclusion proof (audit path, leaf sibling first) by index or message id."""

    def load() -> dict[str, Any]:
        with runtime.db.reader() as session:
            idx = index
            if idx is None:
                if message_id is None:
                    raise BadRequest("invalid_request", "give index or message_id")
                idx = service.index_of(session, message_id)
            return service.inclusion(session, idx, tree_size)

    return await run_in_threadpool(load)


@router.get("/v1/log/proofs/consistency")
async def get_consistency(
    runtime: RuntimeDep,
    first: Annotated[int, Query(ge=1)],
    second: Annotated[int, Query(ge=1)],
) -> dict[str, Any]:
    """RFC 6962 consistency proof between two tree sizes."""

    def load() -> dict[str, Any]:
        with runtime.db.reader() as session:
            return service.consistency(session, first, second)

    return await run_in_threadpool(load)


@router.get("/v1/log/entries")
async def get_entries(
    runtime: RuntimeDep,
    start: Annotated[int, Query(ge=0)],
    end: Annotated[int, Query(ge=1, description="exclusive; at most 1,000 after start")],
) -> dict[str, Any]:
    """Log entries `[start, end)`: the exact JWS bytes (the leaves) and their leaf hashes."""

    def load() -> list[dict[str, Any]]:
        with runtime.db.reader() as session:
            return service.entries(session, start, end)

    return {"entries": await run_in_threadpool(load)}


@router.get("/v1/messages/{message_id}/bundle")
async def get_bundle(message_id: str, runtime: RuntimeDep) -> dict[str, str]:
    """Evidence bundle: the JWS, the receipt and a c2sp.org/tlog-proof for offline checks."""

    def load() -> dict[str, str]:
        checkpoint = latest_checkpoint(runtime)
        with runtime.db.reader() as session:
            return service.bundle(session, message_id, checkpoint).as_dict()

    return await run_in_threadpool(load)
