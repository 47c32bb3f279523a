"""HTTP: the measure catalog, its versions, and the feedback on a decision. (The measures that
apply to one enterprise are a recorded query: gateway.queries.measures_routes.)"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from contracts.catalog import shipped_document
from contracts.dates import local_date
from contracts.measures import in_force
from gateway.access.routes import caller_with
from gateway.measures import catalog as catalog_versions
from gateway.measures.feedback import feedback_for, feedback_owed
from gateway.measures.schemas import (
    CatalogIn,
    CatalogPublished,
    CatalogVersions,
    DecisionFeedback,
    FeedbackOverview,
    MeasuresInForce,
)
from gateway.measures.service import day_asked
from gateway.runtime import ReadSession, Runtime, WriteSession, get_runtime

router = APIRouter(prefix="/v1", tags=["measures"])
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def _day(on: str | None, runtime: Runtime) -> dt.date:
    return day_asked(on, local_date(runtime.clock.now()))


@router.get("/measures")
async def catalog(
    session: ReadSession,
    runtime: RuntimeDep,
    region: Annotated[str, Query(pattern=r"^\d{6}$", description="six-digit division code")],
    on: Annotated[str | None, Query(description="date (default: today)")] = None,
    role: str | None = None,
) -> MeasuresInForce:
    """The measures in force for a region on a date (a city's override replaces the default),
    from the catalog version in force."""
    day = _day(on, runtime)

    def load() -> dict[str, Any]:
        found = catalog_versions.latest(session)
        catalog = catalog_versions.active_catalog(session) or shipped_document()
        measures = in_force(region, day, catalog.measures)
        products = [
            rule.as_dict()
            for name in sorted({p.product for p in catalog.products})
            for rule in [catalog.product_rule(name, "", region, day)]
            if rule.in_force(region, day) and (role is None or rule.role == role)
        ]
        return {
            "region": region,
            "on": day.isoformat(),
            "catalog_version": found.version if found else None,
            "measures": [m.as_dict() for m in measures if role is None or m.role == role],
            "products": products,
            "schemes": [scheme.as_dict() for scheme in catalog.schemes],
            "findings": [finding.as_dict() for finding in catalog.findings],
        }

    return MeasuresInForce.model_validate(await run_in_threadpool(load))


@router.get("/measures/catalog")
async def catalog_history(session: ReadSession, runtime: RuntimeDep) -> CatalogVersions:
    """Every catalog version (the newest is in force), each also a log entry."""

    def load() -> dict[str, Any]:
        return {"versions": catalog_versions.versions(session)}

    return CatalogVersions.model_validate(await run_in_threadpool(load))


@router.put("/measures/catalog", dependencies=[Depends(caller_with("admin"))])
async def publish_catalog(
    body: CatalogIn, runtime: RuntimeDep, session: WriteSession
) -> CatalogPublished:
    """Publish a new catalog version (the whole catalog; validated; recorded in the log). The
    same records as the version in force change nothing."""

    def run() -> dict[str, Any]:
        row = catalog_versions.publish_catalog(
            session,
            runtime.signer,
            body.model_dump(exclude_none=True),
            source="operator",
            now=runtime.clock.now(),
        )
        return {
            "version": row.version,
            "sha256": row.sha256,
            "records": len(catalog_versions.stored_records(row)),
        }

    return CatalogPublished.model_validate(await run_in_threadpool(run))


@router.get("/messages/{message_id}/feedback", dependencies=[Depends(caller_with("admin"))])
async def decision_feedback(
    session: ReadSession,
    message_id: str,
    runtime: RuntimeDep,
    deadline_working_days: Annotated[int, Query(ge=1, le=60)] = 5,
) -> DecisionFeedback:
    """For a decision: each subscribed agency, whether it was delivered, the measures it
    reported applying (measure.applied), and who is overdue after the deadline."""
    today = local_date(runtime.clock.now())

    def load() -> dict[str, Any]:
        return feedback_for(session, message_id, today, deadline_working_days)

    return DecisionFeedback.model_validate(await run_in_threadpool(load))


@router.get("/feedback", dependencies=[Depends(caller_with("admin"))])
async def feedback_overview(
    session: ReadSession,
    runtime: RuntimeDep,
    agency_id: Annotated[str | None, Query(description="one agency's feedback only")] = None,
    overdue: Annotated[bool, Query(description="list only the overdue pairs")] = False,
    deadline_working_days: Annotated[int, Query(ge=1, le=60)] = 5,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> FeedbackOverview:
    """Across every decision sent to an agency: per agency how much feedback it owes
    (awaiting, overdue after the deadline) and has given, and the owed pairs of decision and
    agency, oldest first."""
    today = local_date(runtime.clock.now())

    def load() -> dict[str, Any]:
        return feedback_owed(
            session,
            today,
            deadline_working_days,
            agency_id=agency_id,
            overdue_only=overdue,
            limit=limit,
        )

    return FeedbackOverview.model_validate(await run_in_threadpool(load))
