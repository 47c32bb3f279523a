"""HTTP: ledger listings with filters and keyset pagination, CSV export, change history."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from gateway.access.routes import caller_with
from gateway.ledger.service import (
    LedgerFilter,
    enterprise_row,
    export_csv,
    ledger_history,
    list_ledger,
)
from gateway.runtime import Runtime, get_runtime

router = APIRouter(prefix="/v1", tags=["ledgers"])


def ledger_filter(
    ledger: str,
    region: Annotated[str | None, Query(description="division code prefix, e.g. 3502")] = None,
    industry: Annotated[str | None, Query(description="GB/T 4754 section letter")] = None,
    status: Annotated[str | None, Query(description="新增 | 达标 | 未达标")] = None,
    grade: Annotated[str | None, Query(description="1 | 2 | 3 | small_micro")] = None,
) -> LedgerFilter:
    return LedgerFilter(ledger=ledger, region=region, industry=industry, status=status, grade=grade)


@router.get("/ledgers/{ledger}", dependencies=[Depends(caller_with("ledger.read"))])
async def get_ledger(
    flt: Annotated[LedgerFilter, Depends(ledger_filter)],
    runtime: Annotated[Runtime, Depends(get_runtime)],
    after: Annotated[
        str | None, Query(description="cursor: the last code of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """One page of the basic, required or achieved ledger."""

    def load() -> dict[str, Any]:
        with runtime.db.reader() as session:
            rows, total = list_ledger(session, flt, after=after, limit=limit)
            items = [enterprise_row(r) for r in rows]
        more = len(items) == limit
        return {
            "ledger": flt.ledger,
            "total": total,
            "items": items,
            "next": items[-1]["uscc"] if items and more else None,
        }

    return await run_in_threadpool(load)


@router.get(
    "/ledgers/{ledger}/export.csv",
    response_class=StreamingResponse,
    dependencies=[Depends(caller_with("ledger.read"))],
)
async def export_ledger(
    flt: Annotated[LedgerFilter, Depends(ledger_filter)],
    runtime: Annotated[Runtime, Depends(get_runtime)],
) -> StreamingResponse:
    """The whole filtered ledger as CSV (UTF-8), streamed."""
    flt.check()

    def generate() -> Any:
        with runtime.db.reader() as session:
            yield from export_csv(session, flt)

    return StreamingResponse(
        generate(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{flt.ledger}-ledger.csv"'},
    )


@router.get(
    "/enterprises/{code}/ledger-history", dependencies=[Depends(caller_with("ledger.read"))]
)
async def get_history(
    code: str, runtime: Annotated[Runtime, Depends(get_runtime)]
) -> dict[str, Any]:
    """Every ledger movement of one enterprise: who, when, which message, why."""

    def load() -> list[dict[str, Any]]:
        with runtime.db.reader() as session:
            return [
                {
                    "ledger": c.ledger,
                    "change": c.change,
                    "from_status": c.from_status,
                    "to_status": c.to_status,
                    "from_level": c.from_level,
                    "to_level": c.to_level,
                    "actor": c.actor,
                    "at": c.at.isoformat(),
                    "message_id": c.message_id,
                    "log_index": c.log_index,
                    "reason": c.reason,
                }
                for c in ledger_history(session, code)
            ]

    return {"uscc": code, "changes": await run_in_threadpool(load)}
