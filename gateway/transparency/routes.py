"""HTTP: the log API (protocol.md §3): checkpoints, proofs and the vkey public; entries and
bundles for `ledger.read`, cut to the caller's rights (gateway.transparency.views)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from gateway.access.routes import caller_with
from gateway.access.tokens import Caller
from gateway.errors import BadRequest, NotFound
from gateway.runtime import ReadSession, Runtime, get_runtime
from gateway.transparency import service
from gateway.transparency.checkpoints import latest_checkpoint, latest_cosigned, with_cosignatures
from gateway.transparency.schemas import (
    Bundle,
    ConsistencyProof,
    InclusionProof,
    LogEntries,
    WitnessReport,
)
from gateway.transparency.views import reader_of
from gateway.transparency.witnessing import witness_report

router = APIRouter(tags=["log"])
NOTE = "text/plain; charset=utf-8"
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
LedgerReader = Annotated[Caller, Depends(caller_with("ledger.read"))]


@router.get("/v1/log/checkpoint", response_class=PlainTextResponse)
async def get_checkpoint(
    runtime: RuntimeDep,
    cosigned: Annotated[
        bool, Query(description="the latest checkpoint that meets the witness quorum")
    ] = False,
) -> PlainTextResponse:
    """The latest C2SP checkpoint (signed note over origin, size and root hash) with the
    witness cosignatures collected for it so far."""

    def load() -> str:
        if not cosigned:
            checkpoint = latest_checkpoint(runtime)
        else:
            with runtime.db.reader() as session:
                found = latest_cosigned(session, runtime.settings.witnesses.quorum)
            if found is None:
                raise NotFound(
                    "no_cosigned_checkpoint", "no checkpoint meets the witness quorum yet"
                )
            checkpoint = found
        with runtime.db.reader() as session:
            return with_cosignatures(session, checkpoint)

    return PlainTextResponse(await run_in_threadpool(load), media_type=NOTE)


@router.get("/v1/log/witnesses")
async def get_witnesses(runtime: RuntimeDep) -> WitnessReport:
    """Each configured witness: the size it last cosigned, how long ago, its last error."""
    return WitnessReport.model_validate(await run_in_threadpool(witness_report, runtime))


@router.get("/v1/log/vkey", response_class=PlainTextResponse)
async def get_vkey(runtime: RuntimeDep) -> PlainTextResponse:
    """The log's signed-note verifier key (`name+keyid+base64(0x01 || Ed25519 key)`)."""
    vkey = service.log_vkey(runtime.settings.log_origin, runtime.signer.log_key)
    return PlainTextResponse(vkey + "\n", media_type=NOTE)


@router.get("/v1/log/proofs/inclusion")
async def get_inclusion(
    session: ReadSession,
    runtime: RuntimeDep,
    tree_size: Annotated[int, Query(ge=1, description="size of the tree the proof is for")],
    index: Annotated[int | None, Query(ge=0)] = None,
    message_id: Annotated[str | None, Query(max_length=36)] = None,
) -> InclusionProof:
    """RFC 6962 inclusion proof (audit path, leaf sibling first) by index or message id."""

    def load() -> dict[str, Any]:
        idx = index
        if idx is None:
            if message_id is None:
                raise BadRequest("invalid_request", "give index or message_id")
            idx = service.index_of(session, message_id)
        return service.inclusion(session, idx, tree_size)

    return InclusionProof.model_validate(await run_in_threadpool(load))


@router.get("/v1/log/proofs/consistency")
async def get_consistency(
    session: ReadSession,
    runtime: RuntimeDep,
    first: Annotated[int, Query(ge=1)],
    second: Annotated[int, Query(ge=1)],
) -> ConsistencyProof:
    """RFC 6962 consistency proof between two tree sizes."""

    def load() -> dict[str, Any]:
        return service.consistency(session, first, second)

    return ConsistencyProof.model_validate(await run_in_threadpool(load))


@router.get("/v1/log/entries", response_model_exclude_unset=True)
async def get_entries(
    session: ReadSession,
    runtime: RuntimeDep,
    caller: LedgerReader,
    start: Annotated[int, Query(ge=0)],
    end: Annotated[int, Query(ge=1, description="exclusive; at most 1,000 after start")],
) -> LogEntries:
    """Log entries `[start, end)` with their leaf hashes: the exact JWS bytes (the leaves) of
    the gateway's own entries and of the messages the caller may read whole (a `read` right
    for the type, or its own); of the others what its subscribe view shows, or only hashes."""

    def load() -> list[dict[str, Any]]:
        return service.entries(session, start, end, reader_of(session, caller.agency_id))

    return LogEntries.model_validate({"entries": await run_in_threadpool(load)})


@router.get("/v1/messages/{message_id}/bundle", response_model_exclude_unset=True)
async def get_bundle(message_id: str, runtime: RuntimeDep, caller: LedgerReader) -> Bundle:
    """Evidence bundle: the JWS, the receipt and a c2sp.org/tlog-proof for offline checks;
    without a `read` right for the type, the leaf hash and the proof with what the caller's
    subscribe view shows, never the JWS."""

    def load() -> dict[str, Any]:
        checkpoint = latest_checkpoint(runtime)
        with runtime.db.reader() as session:
            cosigned = with_cosignatures(session, checkpoint)
            reader = reader_of(session, caller.agency_id)
            return service.bundle(session, message_id, checkpoint, cosigned, reader)

    return Bundle.model_validate(await run_in_threadpool(load))
