"""HTTP: every access record for operators, refusals included (each enterprise's own list,
for the agencies with the right: gateway.queries.routes)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from gateway.access.routes import caller_with
from gateway.queries.schemas import AccessRecords
from gateway.queries.service import list_access_records
from gateway.runtime import ReadSession, Runtime, get_runtime

router = APIRouter(prefix="/v1/access-records", tags=["queries"])


@router.get("", dependencies=[Depends(caller_with("admin"))])
async def get_access_records(
    session: ReadSession,
    runtime: Annotated[Runtime, Depends(get_runtime)],
    refused: Annotated[bool, Query(description="only the refusals")] = False,
    agency_id: Annotated[str | None, Query(max_length=64)] = None,
    address: Annotated[str | None, Query(max_length=64, description="client address")] = None,
    before: Annotated[
        int | None, Query(ge=0, description="cursor: the last id of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AccessRecords:
    """Access records, newest first (scope `admin`): who, from which address, what, with what
    result. A refusal repeated within its window (GATEWAY_REFUSALS__WINDOW_SECONDS) is one
    record, `count` times from `at` to `last_at`; its count is brought up to date every few
    seconds."""

    def read() -> list[dict[str, Any]]:
        return list_access_records(
            session,
            refused=refused,
            agency_id=agency_id,
            address=address,
            before=before,
            limit=limit,
        )

    items = await run_in_threadpool(read)
    next_page = items[-1]["id"] if len(items) == limit else None
    return AccessRecords.model_validate({"items": items, "next": next_page})
