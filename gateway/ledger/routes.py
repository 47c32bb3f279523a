"""HTTP: ledger listings with filters and keyset pagination, CSV export, change history."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from contracts.dates import local_date
from gateway.access.routes import caller_with
from gateway.ledger.schemas import LedgerHistory, LedgerPage, LedgerSummary
from gateway.ledger.service import (
    LedgerFilter,
    enterprise_row,
    export_csv_in_batches,
    ledger_history,
    ledger_summary,
    list_ledger,
)
from gateway.runtime import ReadSession, Runtime, get_runtime
from gateway.streaming import csv_stream

router = APIRouter(prefix="/v1", tags=["ledgers"])


def ledger_filter(
    ledger: str,
    runtime: Annotated[Runtime, Depends(get_runtime)],
    region: Annotated[
        str | None, Query(description="division code prefix, 1 to 6 digits, e.g. 3502")
    ] = None,
    industry: Annotated[
        str | None, Query(description="GB/T 4754 section letter, A to T (or a to t)")
    ] = None,
    status: Annotated[str | None, Query(description="新增 | 达标 | 未达标")] = None,
    grade: Annotated[str | None, Query(description="1 | 2 | 3 | small_micro")] = None,
    on: Annotated[
        dt.date | None,
        Query(description="the day the ledger is read for (default: today in Fujian)"),
    ] = None,
) -> LedgerFilter:
    day = on if on is not None else local_date(runtime.clock.now())
    return LedgerFilter(
        ledger=ledger, region=region, industry=industry, status=status, grade=grade, on=day
    )


@router.get("/ledgers/{ledger}", dependencies=[Depends(caller_with("ledger.read"))])
async def get_ledger(
    session: ReadSession,
    flt: Annotated[LedgerFilter, Depends(ledger_filter)],
    runtime: Annotated[Runtime, Depends(get_runtime)],
    after: Annotated[
        str | None, Query(description="cursor: the last code of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> LedgerPage:
    """One page of the basic, required or achieved ledger; `next` is null on the last page.
    A filter value no row could have is refused (400 invalid_filter)."""

    def load() -> dict[str, Any]:
        page = list_ledger(session, flt, after=after, limit=limit)
        items = [enterprise_row(r, flt.on) for r in page.rows]
        return {
            "ledger": flt.ledger,
            "on": flt.on.isoformat(),
            "total": page.total,
            "items": items,
            "next": items[-1]["uscc"] if page.more else None,
        }

    return LedgerPage.model_validate(await run_in_threadpool(load))


@router.get(
    "/ledgers/{ledger}/export.csv",
    response_class=StreamingResponse,
    dependencies=[Depends(caller_with("ledger.read"))],
    responses={
        200: {
            "description": "the ledger as CSV, UTF-8 with a byte order mark",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
)
async def export_ledger(
    flt: Annotated[LedgerFilter, Depends(ledger_filter)],
    runtime: Annotated[Runtime, Depends(get_runtime)],
) -> Response:
    """The whole filtered ledger as CSV, streamed in code order, with the columns of a ledger
    page's items. The text is UTF-8 and starts with a byte order mark (U+FEFF), which Excel
    needs to read the Chinese names. A free-text cell (name, scheme, certificate_no) that
    starts with `=`, `+`, `-`, `@`, a tab or a carriage return is prefixed with a single quote
    `'` so that a spreadsheet shows it as text instead of running it as a formula (OWASP CSV
    injection advice); so is such text behind leading quotes (`'=x` becomes `''=x`). A
    program gets the published text back by removing one leading quote from a free-text
    cell whose first character after its leading quotes is one of those. Filters are refused
    as on the ledger page, with a problem instead of a CSV.

    Rows are read a batch at a time, each batch in its own short transaction on the exports'
    own pool, so a client that reads slowly or stops holds no database connection; a process
    serves `GATEWAY_STREAMS__MAX_OPEN` exports at once (503 too_many_streams beyond) and ends
    one at `GATEWAY_STREAMS__DEADLINE_SECONDS` or when its client takes nothing for
    `GATEWAY_STREAMS__STALL_SECONDS` (gateway.streaming)."""
    flt.check()
    slot = runtime.streams.take()
    chunks = export_csv_in_batches(runtime.db.export_reader, flt)
    try:
        # The first chunk is read before answering: a refusal (a filter, text the database
        # cannot take, the database down or busy) is then a problem, not a 200 with a header.
        first = await run_in_threadpool(next, chunks)
    except BaseException:
        chunks.close()
        slot.release()
        raise
    return csv_stream(
        chunks,
        first,
        slot=slot,
        limits=runtime.settings.streams,
        headers={"Content-Disposition": f'attachment; filename="{flt.ledger}-ledger.csv"'},
    )


@router.get("/ledgers/{ledger}/summary", dependencies=[Depends(caller_with("ledger.read"))])
async def get_summary(
    session: ReadSession,
    flt: Annotated[LedgerFilter, Depends(ledger_filter)],
    runtime: Annotated[Runtime, Depends(get_runtime)],
    by: Annotated[str, Query(description="region | industry | grade")] = "region",
) -> LedgerSummary:
    """The filtered ledger counted by region (one level below the region filter: the cities,
    or a city's districts), industry section or grade held that day, and by ledger status
    (新增 / 达标 / 未达标) on the day."""

    def load() -> dict[str, Any]:
        rows = ledger_summary(session, flt, by)
        groups: dict[str, dict[str, int]] = {}
        for key, status, n in rows:
            groups.setdefault(key, {})[status] = n
        return {
            "ledger": flt.ledger,
            "on": flt.on.isoformat(),
            "by": by,
            "total": sum(n for _, _, n in rows),
            "groups": [
                {"key": key, "total": sum(counts.values()), "by_status": counts}
                for key, counts in groups.items()
            ],
        }

    return LedgerSummary.model_validate(await run_in_threadpool(load))


@router.get(
    "/enterprises/{code}/ledger-history", dependencies=[Depends(caller_with("ledger.read"))]
)
async def get_history(
    session: ReadSession, code: str, runtime: Annotated[Runtime, Depends(get_runtime)]
) -> LedgerHistory:
    """Every ledger movement of one enterprise: who, when, which message, why."""

    def load() -> list[dict[str, Any]]:
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

    return LedgerHistory.model_validate({"uscc": code, "changes": await run_in_threadpool(load)})
