"""HTTP: delivery health across subscriptions, for operators (scope `admin`): each
subscription's last 24 hours, the deliveries failing now, every dead or parked delivery."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from gateway.access.routes import caller_with
from gateway.delivery import health
from gateway.delivery.schemas import FailingReport, HealthReport, StuckDeliveries
from gateway.runtime import ReadSession, Runtime, get_runtime

router = APIRouter(
    prefix="/v1/deliveries", tags=["delivery"], dependencies=[Depends(caller_with("admin"))]
)
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
AgencyParam = Annotated[str | None, Query(description="one agency's subscriptions only")]
LimitParam = Annotated[int, Query(ge=1, le=health.MAX_ROWS)]


@router.get("/health")
async def get_health(
    session: ReadSession, runtime: RuntimeDep, agency_id: AgencyParam = None
) -> HealthReport:
    """Per subscription over the last 24 hours: attempts, success rate, mean latency, the
    last error; its circuit breaker, next attempt and deliveries by status."""

    def read() -> dict[str, Any]:
        rows = health.subscription_health(session, runtime.clock.now(), agency_id)
        return {"subscriptions": [row.as_dict() for row in rows]}

    return HealthReport.model_validate(await run_in_threadpool(read))


@router.get("/failing")
async def get_failing(
    session: ReadSession,
    runtime: RuntimeDep,
    agency_id: AgencyParam = None,
    limit: LimitParam = 100,
) -> FailingReport:
    """The endpoints failing now (failures in a row, an open breaker, disabled) with their
    last error, and the deliveries waiting for a retry after a failed attempt."""

    def read() -> dict[str, Any]:
        rows = health.subscription_health(session, runtime.clock.now(), agency_id)
        failing = health.failing_deliveries(session, agency_id, limit)
        return {
            "subscriptions": [row.as_dict() for row in rows if row.failing],
            "deliveries": failing,
        }

    return FailingReport.model_validate(await run_in_threadpool(read))


@router.get("/dead-letters")
async def get_dead_letters(
    session: ReadSession,
    runtime: RuntimeDep,
    agency_id: AgencyParam = None,
    limit: LimitParam = 100,
) -> StuckDeliveries:
    """Dead and parked deliveries of every subscription, by log index (replay or skip them
    per subscription: `POST /v1/subscriptions/{id}/replay`, `…/skip`)."""

    def read() -> dict[str, Any]:
        return {"items": health.stuck_deliveries(session, agency_id, limit=limit)}

    return StuckDeliveries.model_validate(await run_in_threadpool(read))
