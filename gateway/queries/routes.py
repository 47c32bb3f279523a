"""HTTP: `GET /v1/enterprises/{code}` (one), `POST /v1/enterprises/query` (up to 1,000), and
the access records of an enterprise, newest first."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from gateway.access.routes import authenticate
from gateway.access.tokens import Caller
from gateway.errors import GatewayError, PayloadTooLarge
from gateway.queries import service
from gateway.runtime import Runtime

router = APIRouter(prefix="/v1/enterprises", tags=["queries"])


class BatchQuery(BaseModel):
    codes: list[str]
    purpose: str | None = None


def _recorded(
    runtime: Runtime, request: Request, action: str, codes: list[str], purpose: str | None
) -> tuple[Caller, str]:
    """Authenticate and check the purpose; a refusal is recorded before it is raised."""
    caller: Caller | None = None
    try:
        caller = authenticate(request, "query")
        return caller, service.check_purpose(purpose)
    except GatewayError as exc:
        with runtime.db.transaction() as session:
            for code in codes or [None]:  # type: ignore[list-item]
                service.record_access(
                    session,
                    at=runtime.clock.now(),
                    agency_id=caller.agency_id if caller else None,
                    uscc=code,
                    action=action,
                    purpose=purpose,
                    result=exc.code,
                )
        raise


@router.get("/{code}")
async def get_standing(
    code: str,
    request: Request,
    purpose: Annotated[str | None, Query(description="why you ask (recorded)")] = None,
) -> dict[str, Any]:
    """The enterprise's standing (grade, validity, ledger status, list entries, the measures
    for your role) with the gateway's attestation. Needs scope `query`; recorded."""
    runtime: Runtime = request.app.state.runtime

    def run() -> dict[str, Any]:
        caller, why = _recorded(runtime, request, "query", [code], purpose)
        now = runtime.clock.now()
        try:
            with runtime.db.transaction() as session:
                answer = service.standing(session, code, caller.agency_id, now.date())
                service.record_access(
                    session,
                    at=now,
                    agency_id=caller.agency_id,
                    uscc=code,
                    action="query",
                    purpose=why,
                    result="ok",
                )
                attestation = service.attest(session, runtime.signer, answer, caller.agency_id, now)
        except GatewayError as exc:
            with runtime.db.transaction() as session:
                service.record_access(
                    session,
                    at=now,
                    agency_id=caller.agency_id,
                    uscc=code,
                    action="query",
                    purpose=why,
                    result=exc.code,
                )
            raise
        return {"standing": answer, "attestation": attestation}

    return await run_in_threadpool(run)


@router.post("/query")
async def batch_query(body: BatchQuery, request: Request) -> dict[str, Any]:
    """Up to 1,000 codes; each answered on its own (invalid codes get their problem), one
    attestation over all of it."""
    runtime: Runtime = request.app.state.runtime

    def run() -> dict[str, Any]:
        if len(body.codes) > service.MAX_BATCH:
            error = PayloadTooLarge(
                "batch_too_large", f"at most {service.MAX_BATCH} codes, got {len(body.codes)}"
            )
            with runtime.db.transaction() as session:
                service.record_access(
                    session,
                    at=runtime.clock.now(),
                    agency_id=None,
                    uscc=None,
                    action="batch_query",
                    purpose=body.purpose,
                    result=error.code,
                )
            raise error
        caller, why = _recorded(runtime, request, "batch_query", body.codes, body.purpose)
        now = runtime.clock.now()
        with runtime.db.transaction() as session:
            results = service.batch(session, body.codes, caller.agency_id, now.date())
            for item in results:
                service.record_access(
                    session,
                    at=now,
                    agency_id=caller.agency_id,
                    uscc=item["uscc"],
                    action="batch_query",
                    purpose=why,
                    result="ok" if item["status"] == 200 else item["problem"]["code"],
                )
            attestation = service.attest(session, runtime.signer, results, caller.agency_id, now)
        return {"results": results, "attestation": attestation}

    return await run_in_threadpool(run)


@router.get("/{code}/access-records")
async def get_access_records(
    code: str,
    request: Request,
    before: Annotated[
        int | None, Query(description="cursor: the last id of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Who accessed this enterprise's data, newest first (regulators: scope `admin`)."""
    runtime: Runtime = request.app.state.runtime

    def run() -> dict[str, Any]:
        authenticate(request, "admin")
        with runtime.db.reader() as session:
            items = service.access_records(session, code, before, limit)
        return {
            "uscc": code,
            "items": items,
            "next": items[-1]["id"] if len(items) == limit else None,
        }

    return await run_in_threadpool(run)
