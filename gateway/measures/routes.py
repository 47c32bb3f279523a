"""HTTP: the measure catalog and the measures that apply to an enterprise."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from contracts.catalog import shipped_document
from contracts.dates import local_date
from contracts.measures import in_force
from gateway.access.routes import caller_with
from gateway.access.tokens import Caller
from gateway.errors import BadRequest
from gateway.measures import catalog as catalog_versions
from gateway.measures.feedback import feedback_for
from gateway.measures.service import measures_for
from gateway.queries.routes import recorded_read
from gateway.queries.service import query_view
from gateway.registry.rights import View
from gateway.runtime import Runtime, get_runtime

router = APIRouter(prefix="/v1", tags=["measures"])
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
EARLIEST = dt.date.min + dt.timedelta(days=366)


def _day(on: str | None, runtime: Runtime) -> dt.date:
    if on is None:
        return local_date(runtime.clock.now())
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

    return await run_in_threadpool(load)


class CatalogIn(BaseModel):
    records: list[Any] = Field(description="every measure record of the new catalog")
    products: list[Any] | None = Field(
        default=None,
        description="the premium products and how their floats combine (left out: the "
        "version in force's)",
    )
    schemes: list[Any] | None = Field(
        default=None,
        description="the grading schemes accepted (left out: the version in force's)",
    )
    findings: list[Any] | None = Field(
        default=None,
        description="the deducted items inspections may name (left out: the version in force's)",
    )


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

    return await run_in_threadpool(run)


# The members of the answer and the `standing` query fields that show the same facts: the
# answer is cut to the caller's standing view, so this route shows nothing the standing query
# would not.
STANDING_FIELD_OF = {
    "grade_status": "grade.status",
    "grade_level": "grade.level",
    "scheme": "grade.scheme",
    "accidents_prior_year": "accidents_prior_year",
    "lists": "lists",
}


def visible_measures(
    answer: dict[str, Any], view: View, roles: frozenset[str] | None
) -> dict[str, Any]:
    """`measures_for`'s answer as a caller sees it: the standing facts inside its view, and
    the measures (if in its view) of its own roles (None: every role, for operators)."""
    standing = {
        name: value
        for name, value in answer["standing"].items()
        if not view.allows([STANDING_FIELD_OF[name]])
    }
    shown: dict[str, Any] = {"uscc": answer["uscc"], "on": answer["on"], "standing": standing}
    if not view.allows(["measures"]):
        shown["measures"] = {
            role: measures
            for role, measures in answer["measures"].items()
            if roles is None or role in roles
        }
    return shown


@router.get("/enterprises/{code}/measures")
async def enterprise_measures(
    code: str,
    request: Request,
    runtime: RuntimeDep,
    purpose: Annotated[str | None, Query(description="why you ask (recorded)")] = None,
    on: Annotated[str | None, Query(description="date (default: today)")] = None,
    role: str | None = None,
) -> dict[str, Any]:
    """What applies to this enterprise: its current grade, the accidents of the 12 months
    before `on` and the list entries active on `on`, and the measures for your roles, against
    the catalog in force on `on`. Needs scope `query`, a `standing` query right (the answer
    is cut to its field view) and a purpose; recorded like a standing query. Operators (scope
    `admin`, or the `operator` role) see every role's measures."""
    day = _day(on, runtime)  # the request's own shape, checked before anything else

    def read(session: Session, caller: Caller) -> dict[str, Any]:
        if "admin" in caller.scopes:
            view, roles = View(None), None
        else:
            view, held = query_view(session, caller.agency_id, "standing")
            roles = None if "operator" in held else held
        return visible_measures(measures_for(session, code, day, role), view, roles)

    return await run_in_threadpool(
        recorded_read, request, code, purpose, action="measures", read=read
    )


@router.get("/messages/{message_id}/feedback", dependencies=[Depends(caller_with("admin"))])
async def decision_feedback(
    message_id: str,
    runtime: RuntimeDep,
    deadline_working_days: Annotated[int, Query(ge=1, le=60)] = 5,
) -> dict[str, Any]:
    """For a decision: each subscribed agency, whether it was delivered, the measures it
    reported applying (measure.applied), and who is overdue after the deadline."""
    today = local_date(runtime.clock.now())

    def load() -> dict[str, Any]:
        with runtime.db.reader() as session:
            return feedback_for(session, message_id, today, deadline_working_days)

    return await run_in_threadpool(load)
