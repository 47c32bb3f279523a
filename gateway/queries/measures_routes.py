"""HTTP: the measures that apply to one enterprise, a recorded query cut to the caller's
standing view (the measure catalog's own routes: gateway.measures.routes)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from contracts.dates import local_date
from gateway.access.tokens import Caller
from gateway.measures.service import day_asked, measures_for
from gateway.queries.routes import PURPOSE_REQUIRED, PurposeParam, recorded_read
from gateway.queries.schemas import EnterpriseMeasures
from gateway.queries.service import query_view
from gateway.registry.rights import View
from gateway.runtime import Runtime, get_runtime

router = APIRouter(prefix="/v1", tags=["measures"])
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


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


@router.get(
    "/enterprises/{code}/measures",
    response_model_exclude_unset=True,
    openapi_extra=PURPOSE_REQUIRED,
)
async def enterprise_measures(
    code: str,
    request: Request,
    runtime: RuntimeDep,
    purpose: PurposeParam = None,
    on: Annotated[str | None, Query(description="date (default: today)")] = None,
    role: str | None = None,
) -> EnterpriseMeasures:
    """What applies to this enterprise: its current grade, the accidents of the 12 months
    before `on` and the list entries active on `on`, and the measures for your roles, against
    the catalog in force on `on`. Needs scope `query`, a `standing` query right (the answer
    is cut to its field view) and a purpose; recorded like a standing query. Operators (scope
    `admin`, or the `operator` role) see every role's measures."""
    day = day_asked(on, local_date(runtime.clock.now()))  # the request's own shape first

    def read(session: Session, caller: Caller) -> dict[str, Any]:
        if "admin" in caller.scopes:
            view, roles = View(None), None
        else:
            view, held = query_view(session, caller.agency_id, "standing")
            roles = None if "operator" in held else held
        return visible_measures(measures_for(session, code, day, role), view, roles)

    answered = await run_in_threadpool(
        recorded_read, request, code, purpose, action="measures", read=read
    )
    return EnterpriseMeasures.model_validate(answered)
