"""Operator pages (scope `admin`): overview, ledgers, an enterprise, deliveries with replay
and skip, feedback. Each reads through the feature services; what the API records when it
answers the same question (access records of an enterprise's data, operators' replays and
skips) the page records too."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from contracts.dates import local_date
from contracts.uscc import is_valid_uscc
from gateway.console import overview as views
from gateway.console.web import (
    PREFIX,
    ConsoleError,
    ConsoleUser,
    form_of,
    operator,
    page,
    pages_of,
    redirect,
    runtime_of,
)
from gateway.delivery import feed, health
from gateway.errors import GatewayError
from gateway.ledger import service as ledgers
from gateway.ledger.routes import export_ledger
from gateway.measures.feedback import feedback_owed
from gateway.measures.service import measures_for
from gateway.models import Enterprise
from gateway.queries import service as queries
from gateway.registry.rights import View

router = APIRouter(prefix=PREFIX, include_in_schema=False)
Operator = Annotated[ConsoleUser, Depends(operator)]
DEFAULT_PURPOSE = "console: operator review"


@router.get("/overview", response_class=HTMLResponse)
async def overview_page(request: Request, user: Operator) -> Response:
    runtime = runtime_of(request)
    return await page(
        request,
        user,
        "overview.html",
        lambda session: views.overview(session, runtime.clock.now(), runtime.settings),
    )


def _filter(request: Request, params: dict[str, str | None]) -> ledgers.LedgerFilter:
    runtime = runtime_of(request)
    try:
        on = params.get("on")
        day = dt.date.fromisoformat(on) if on else None
    except ValueError as exc:
        raise ConsoleError(400, "invalid_date", "the day is not a date like 2026-12-07") from exc
    return ledgers.LedgerFilter(
        ledger=params.get("ledger") or "basic",
        region=params.get("region") or None,
        industry=params.get("industry") or None,
        status=params.get("status") or None,
        grade=params.get("grade") or None,
        on=day or local_date(runtime.clock.now()),
    )


FILTERS = ("ledger", "region", "industry", "status", "grade", "on")


@router.get("/ledgers", response_class=HTMLResponse)
async def ledgers_page(request: Request, user: Operator) -> Response:
    """Counts by region (one level below the filter) × status, by grade and by industry, a
    chart beside each table, the first enterprises, the filters of the API's ledger pages."""
    params = {name: request.query_params.get(name) for name in FILTERS}
    flt = _filter(request, params)

    def build(session: Session) -> dict[str, Any]:
        page_rows = ledgers.list_ledger(session, flt, limit=50)
        summaries = ledgers.ledger_summaries(session, flt, ("region", "grade", "industry"))
        return {
            "flt": flt,
            "params": {k: v or "" for k, v in params.items()},
            "query_string": request.url.query,
            "statuses": views.STATUSES,
            "by_region": views.status_table(summaries["region"]),
            "by_grade": views.status_table(summaries["grade"]),
            "by_industry": views.status_table(summaries["industry"]),
            "region_digits": ledgers.summary_region_digits(flt),
            "total": page_rows.total,
            "rows": [ledgers.enterprise_row(r, flt.on) for r in page_rows.rows],
        }

    return await page(request, user, "ledgers.html", build)


@router.get("/ledgers/export.csv")
async def ledgers_export(request: Request, user: Operator) -> Response:
    """The filtered ledger as the API's export makes it (the same streaming and limits)."""
    flt = _filter(request, {name: request.query_params.get(name) for name in FILTERS})
    try:
        return await export_ledger(flt, runtime_of(request))
    except GatewayError as exc:
        raise ConsoleError(exc.status_code, exc.code, exc.detail) from exc


@router.get("/enterprises", response_class=HTMLResponse)
async def find_enterprise(request: Request, user: Operator, code: str | None = None) -> Response:
    if code:
        # encoded: the purpose is the access record's why, whole with any `&`, `#` or `+`
        query = urlencode({"purpose": request.query_params.get("purpose") or DEFAULT_PURPOSE})
        return redirect(f"{PREFIX}/enterprises/{quote(code.strip().upper(), safe='')}?{query}")
    return await page(request, user, "enterprise_search.html", lambda _: {})


@router.get("/enterprises/{code}", response_class=HTMLResponse)
async def enterprise_page(
    request: Request,
    user: Operator,
    code: str,
    purpose: Annotated[str, Query(max_length=200)] = DEFAULT_PURPOSE,
) -> Response:
    """Identity, grade timeline, ledger history, list entries, measures in force per role,
    every message about it with its delivery to each subscription, and its access records.
    The grade history, measures and access records are recorded reads, as over the API."""
    runtime = runtime_of(request)
    if not is_valid_uscc(code):
        raise ConsoleError(400, "invalid_uscc", f"{code} is not a valid unified social credit code")
    now = runtime.clock.now()
    today = local_date(now)

    def read() -> dict[str, Any]:
        with runtime.db.transaction() as session:
            entity = session.get(Enterprise, code)
            if entity is None:
                raise ConsoleError(404, "unknown_enterprise", f"{code} is not in the ledgers")
            messages = ledgers.messages_about(session, code)
            context = {
                "code": code,
                "purpose": purpose,
                "row": ledgers.enterprise_row(entity, today),
                "timeline": queries.grade_history(session, code, View(None))["events"],
                "history": ledgers.ledger_history(session, code),
                "listings": ledgers.listings_of(session, code),
                "measures": measures_for(session, code, today)["measures"],
                "messages": messages,
                "deliveries": health.delivery_states(session, [m.idx for m in messages]),
                "access": queries.access_records(session, code, None, 50),
            }
            queries.record_accesses(
                session,
                [
                    {
                        "at": now,
                        "agency_id": user.agency_id,
                        "uscc": code,
                        "action": action,
                        "purpose": purpose,
                        "result": "ok",
                    }
                    for action in ("grade_history", "measures", "access_records")
                ],
            )
            return context

    try:
        context = await run_in_threadpool(read)
    except GatewayError as exc:
        raise ConsoleError(exc.status_code, exc.code, exc.detail) from exc
    return pages_of(request).render(request, user, "enterprise.html", context)


@router.get("/deliveries", response_class=HTMLResponse)
async def deliveries_page(request: Request, user: Operator) -> Response:
    """Per agency and subscription: success rate and latency over 24 h, breaker, last
    error, next attempt; the failing deliveries; dead letters with replay and skip."""
    runtime = runtime_of(request)

    def build(session: Session) -> dict[str, Any]:
        return {
            "subscriptions": health.subscription_health(session, runtime.clock.now()),
            "failing": health.failing_deliveries(session, limit=100),
            "stuck": health.stuck_deliveries(session, limit=200),
            "notice": request.query_params.get("notice"),
        }

    return await page(request, user, "deliveries.html", build)


@router.post("/deliveries/{action}")
async def act_on_delivery(request: Request, user: Operator, action: str) -> Response:
    """Replay or skip one dead or parked delivery: the form asks for a reason and a
    confirmation; each is recorded as an attempt row naming the operator and the reason,
    as the API's replay and skip are."""
    form = await form_of(request, user)
    if action not in ("replay", "skip"):
        raise ConsoleError(404, "not_found", "no such action")
    reason = (form.get("reason") or "").strip()
    if form.get("confirm") != "yes" or not reason:
        raise ConsoleError(400, "invalid_request", "confirm the action and give a reason")
    try:
        subscription_id, index = form["subscription_id"], int(form["log_index"])
    except (KeyError, ValueError) as exc:
        raise ConsoleError(400, "invalid_request", "which delivery?") from exc
    runtime = runtime_of(request)

    def run() -> int:
        with runtime.db.transaction() as session:
            now = runtime.clock.now()
            if action == "replay":
                return feed.replay(
                    session,
                    subscription_id,
                    now,
                    from_index=index,
                    to_index=index,
                    operator=user.agency_id,
                    reason=reason,
                )
            return feed.skip(
                session, subscription_id, [index], now, operator=user.agency_id, reason=reason
            )

    try:
        done = await run_in_threadpool(run)
    except GatewayError as exc:
        raise ConsoleError(exc.status_code, exc.code, exc.detail) from exc
    word = "Replayed" if action == "replay" else "Skipped"
    return redirect(f"{PREFIX}/deliveries", notice=f"{word}: {done}")


@router.get("/feedback", response_class=HTMLResponse)
async def feedback_page(request: Request, user: Operator, agency: str | None = None) -> Response:
    """Decisions awaiting measures and who is overdue, across all decisions and per agency."""
    runtime = runtime_of(request)
    today = local_date(runtime.clock.now())

    def build(session: Session) -> dict[str, Any]:
        owed = feedback_owed(session, today, views.FEEDBACK_DAYS, agency_id=agency, limit=300)
        return {"owed": owed, "agency": agency or ""}

    return await page(request, user, "feedback.html", build)
