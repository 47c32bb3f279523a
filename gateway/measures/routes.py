"""HTTP: the measure catalog and the measures that apply to an enterprise."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from contracts.measures import in_force
from gateway.access.routes import caller_with
from gateway.errors import BadRequest
from gateway.measures import catalog as catalog_versions
from gateway.measures.feedback import feedback_for
from gateway.measures.service import measures_for
from gateway.runtime import Runtime, get_runtime

router = APIRouter(prefix="/v1", tags=["measures"])
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
EARLIEST = dt.date.min + dt.timedelta(days=366)


def _day(on: str | None, runtime: Runtime) -> dt.date:
    if on is None:
        return runtime.clock.now().date()
    try:
        day = dt.date.fromisoformat(on)
    except ValueError as exc:
        raise BadRequest("invalid_date", f"on must be a date like 2026-06-01, not {on!r}") from exc
    if day < EARLIEST:  # the measures look back 12 months from `on`
        raise BadRequest("invalid_date", f"on must be {EARLIEST.isoformat()} or later")
    return day


@router.get("/measures")
async def catalog(
    runtime: RuntimeDep,
    region: Annotated[str, Query(pattern=r"^\d{6}$", description="six-digit division code")],
    on: Annotated[str | None, Query(description="date (default: today)")] = None,
    role: str | None = None,
) -> dict[str, Any]:
    """The measures in force for a region on a date (a city's override replaces the default),
    from the catalog version in force."""
    day = _day(on, runtime)

    def load() -> dict[str, Any]:
        with runtime.db.reader() as session:
            found = catalog_versions.latest(session)
            measures = in_force(region, day, catalog_versions.active_catalog(session))
        return {
            "region": region,
            "on": day.isoformat(),
            "catalog_version": found.version if found else None,
            "measures": [m.as_dict() for m in measures if role is None or m.role == role],
        }

    return await run_in_threadpool(load)


class CatalogIn(BaseModel):
    records: list[Any] = Field(description="every measure record of the new catalog")


@router.get("/measures/catalog")
async def catalog_history(runtime: RuntimeDep) -> dict[str, Any]:
    """Every catalog version (the newest is in force), each also a log entry."""

    def load() -> dict[str, Any]:
        with runtime.db.reader() as session:
            return {"versions": catalog_versions.versions(session)}

    return await run_in_threadpool(load)


@router.put("/measures/catalog", dependencies=[Depends(caller_with("admin"))])
async def publish_catalog(body: CatalogIn, runtime: RuntimeDep) -> dict[str, Any]:
    """Publish a new catalog version (the whole catalog; validated; recorded in the log). The
    same records as the version in force change nothing."""

    def run() -> dict[str, Any]:
        with runtime.db.transaction() as session:
            row = catalog_versions.publish_catalog(
                session, runtime.signer, body.records, source="operator", now=runtime.clock.now()
            )
            return {"version": row.version, "sha256": row.sha256, "records": len(row.records)}

    return await run_in_threadpool(run)


@router.get("/enterprises/{code}/measures", dependencies=[Depends(caller_with("query"))])
async def enterprise_measures(
    code: str,
    runtime: RuntimeDep,
    on: Annotated[str | None, Query(description="date (default: today)")] = None,
    role: str | None = None,
) -> dict[str, Any]:
    """What each agency role applies to this enterprise: its current grade, the accidents of
    the 12 months before `on` and the list entries active on `on`, against the catalog in
    force on `on`."""
    day = _day(on, runtime)

    def load() -> dict[str, Any]:
        with runtime.db.reader() as session:
            return measures_for(session, code, day, role)

    return await run_in_threadpool(load)


@router.get("/messages/{message_id}/feedback", dependencies=[Depends(caller_with("admin"))])
async def decision_feedback(
    message_id: str,
    runtime: RuntimeDep,
    deadline_working_days: Annotated[int, Query(ge=1, le=60)] = 5,
) -> dict[str, Any]:
    """For a decision: each subscribed agency, whether it was delivered, the measures it
    reported applying (measure.applied), and who is overdue after the deadline."""
    today = runtime.clock.now().date()

    def load() -> dict[str, Any]:
        with runtime.db.reader() as session:
            return feedback_for(session, message_id, today, deadline_working_days)

    return await run_in_threadpool(load)
