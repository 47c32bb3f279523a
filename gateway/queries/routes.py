"""HTTP: `GET /v1/enterprises/{code}` (one), `POST /v1/enterprises/query` (up to 1,000), and
the access records of an enterprise, newest first."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from contracts.dates import local_date
from gateway.access.refusals import TOKEN_REFUSALS
from gateway.access.routes import admit, client_address, record_refusal, verified_caller
from gateway.access.tokens import Caller
from gateway.errors import GatewayError, PayloadTooLarge
from gateway.queries import service
from gateway.queries.batcher import StandingQueries
from gateway.queries.schemas import (
    BatchAnswer,
    BatchQuery,
    EnterpriseAccessRecords,
    GradeHistoryAnswer,
    StandingAnswer,
)
from gateway.registry.rights import View, require_view
from gateway.routing import DirectRoute
from gateway.runtime import Runtime

router = APIRouter(prefix="/v1/enterprises", tags=["queries"])


FieldsParam = Annotated[
    str | None,
    Query(description="comma-separated fields, within your view (default: all of your view)"),
]
PURPOSE = "why you ask (recorded); a query without one is refused (400 missing_purpose)"
# Required in the document, parsed as optional: a query without a purpose is refused by the
# gateway itself (400 missing_purpose, and recorded), never by FastAPI's parameter checks.
PurposeParam = Annotated[str | None, Query(include_in_schema=False)]


def purpose_parameter() -> dict[str, Any]:
    """The required `purpose` query parameter, as the document names it (`openapi_extra`)."""
    return {
        "name": "purpose",
        "in": "query",
        "required": True,
        "schema": {"type": "string", "title": "Purpose", "description": PURPOSE},
        "description": PURPOSE,
    }


PURPOSE_REQUIRED: dict[str, Any] = {"parameters": [purpose_parameter()]}


def _count(request: Request, agency_id: str | None, result: str, n: int = 1) -> None:
    request.app.state.metrics.queries.labels(agency_id or "-", result).inc(n)


def _record(
    runtime: Runtime,
    *,
    agency_id: str | None,
    codes: list[str],
    action: str,
    purpose: str | None,
    result: str,
) -> None:
    targets: list[str | None] = [*codes] or [None]  # a refusal before any code: one record
    with runtime.db.transaction() as session:
        at = runtime.clock.now()
        service.record_accesses(
            session,
            [
                {
                    "at": at,
                    "agency_id": agency_id,
                    "uscc": code,
                    "action": action,
                    "purpose": purpose,
                    "result": result,
                }
                for code in targets
            ],
        )


# Refusals of a request as such, before any code in it was looked at: no or a bad token, over
# the rate, too many codes. Each is one access record (naming the enterprise when the request
# named one, none for a batch): recorded per code, a refused batch of 1,000 codes wrote 1,000
# rows, and a flood of them as many rows as the rate limit was meant to spare the database.
_PER_REQUEST = frozenset({"missing_token", "invalid_token", "rate_limited", "batch_too_large"})


def _caller(
    runtime: Runtime,
    request: Request,
    *,
    action: str,
    codes: list[str],
    purpose: str | None,
    max_codes: int | None = None,
) -> tuple[Caller, str]:
    """Token, rate, scope, the number of codes (at most `max_codes`) and purpose (no
    database); a refusal is recorded (under the agency once its token verified) before it is
    raised."""
    caller: Caller | None = None
    try:
        caller = verified_caller(request)
        admit(request, caller, "query")
        if max_codes is not None and len(codes) > max_codes:
            raise PayloadTooLarge("batch_too_large", f"at most {max_codes} codes, got {len(codes)}")
        return caller, service.check_purpose(purpose)
    except GatewayError as exc:
        _refused(runtime, request, caller, exc, codes=codes, action=action, purpose=purpose)
        raise


def _refused(
    runtime: Runtime,
    request: Request,
    caller: Caller | None,
    exc: GatewayError,
    *,
    codes: list[str],
    action: str,
    purpose: str | None,
) -> None:
    """Count and record a refusal of the token, rate, scope, size or purpose: for each code,
    unless it refused the request as such (or the request held more codes than a batch may):
    then once."""
    agency_id = caller.agency_id if caller else None
    _count(request, agency_id, exc.code)
    if exc.code in _PER_REQUEST or len(codes) > service.MAX_BATCH:
        codes = codes if len(codes) == 1 else []
    if agency_id is None or exc.code == "rate_limited" or exc.code in TOKEN_REFUSALS:
        # no agency verified (or its token refused), or over its rate: a flood's refusals,
        # folded into one record per address, code and enterprise (gateway.access.refusals)
        record_refusal(
            runtime,
            agency_id,
            action,
            purpose,
            exc,
            address=client_address(request),
            uscc=codes[0] if codes else None,
        )
        return
    _record(
        runtime, agency_id=agency_id, codes=codes, action=action, purpose=purpose, result=exc.code
    )


def _admitted(
    runtime: Runtime,
    request: Request,
    *,
    action: str,
    contract: str,
    codes: list[str],
    purpose: str | None,
    fields: list[str] | None,
    max_codes: int | None = None,
) -> tuple[Caller, str, View, frozenset[str]]:
    """Token, scope, size, purpose, the right to this query and the fields asked for, and
    the caller's roles; a refusal is recorded (for each code) before it is raised."""
    caller, why = _caller(
        runtime, request, action=action, codes=codes, purpose=purpose, max_codes=max_codes
    )
    try:
        with runtime.db.reader() as session:
            view, roles = service.query_view(session, caller.agency_id, contract)
        return caller, why, view.narrowed(fields), roles
    except GatewayError as exc:
        _count(request, caller.agency_id, exc.code)
        _record(
            runtime,
            agency_id=caller.agency_id,
            codes=codes,
            action=action,
            purpose=purpose,
            result=exc.code,
        )
        raise


def _fields(raw: str | None) -> list[str] | None:
    return [f.strip() for f in raw.split(",") if f.strip()] if raw else None


def _single(
    request: Request,
    code: str,
    purpose: str | None,
    fields: str | None,
    *,
    action: str,
    contract: str,
    answer: Callable[[Session, Caller, View, frozenset[str]], dict[str, Any]],
) -> dict[str, Any]:
    """One recorded, attested query about one enterprise: the right, the answer, its record
    and the log size attested in one transaction (a refusal recorded in one of its own)."""
    runtime: Runtime = request.app.state.runtime
    caller, why = _caller(runtime, request, action=action, codes=[code], purpose=purpose)
    now = runtime.clock.now()
    admitted = False
    try:
        with runtime.db.transaction() as session:
            service.read_one_snapshot(session)  # the answer and the attested size: one state
            view, roles = service.query_view(session, caller.agency_id, contract)
            view = view.narrowed(_fields(fields))
            admitted = True
            result = answer(session, caller, view, roles)
            service.record_access(
                session,
                at=now,
                agency_id=caller.agency_id,
                uscc=code,
                action=action,
                purpose=why,
                result="ok",
            )
            attestation = service.attest(session, runtime.signer, result, caller.agency_id, now)
    except GatewayError as exc:
        _count(request, caller.agency_id, exc.code)
        _record(
            runtime,
            agency_id=caller.agency_id,
            codes=[code],
            action=action,
            purpose=why if admitted else purpose,  # as recorded before the right was checked
            result=exc.code,
        )
        raise
    _count(request, caller.agency_id, "ok")
    return {contract: result, "attestation": attestation}


def _optional_text_parameter(name: str, description: str) -> dict[str, Any]:
    """An optional string query parameter as FastAPI documents one it parses itself."""
    schema = {"anyOf": [{"type": "string"}, {"type": "null"}], "description": description}
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema | {"title": name.title()},
        "description": description,
    }


async def get_standing(code: str, request: Request) -> Response:
    """The enterprise's standing (grade, validity, ledger status, list entries, the measures
    for your role) as your `standing` view shows it, with the gateway's attestation. Needs
    scope `query` and a query right; recorded."""
    runtime: Runtime = request.app.state.runtime
    params = request.query_params
    purpose, fields = params.get("purpose"), params.get("fields")
    caller: Caller | None = None
    try:
        caller = verified_caller(request)
        admit(request, caller, "query")
        why = service.check_purpose(purpose)
    except GatewayError as exc:
        await run_in_threadpool(
            _refused, runtime, request, caller, exc, codes=[code], action="query", purpose=purpose
        )
        raise
    ask = service.Ask(code, caller.agency_id, _fields(fields), local_date(runtime.clock.now()))
    desk: StandingQueries = request.app.state.standing_queries
    try:
        body = await desk.ask(ask, purpose=why, sent_purpose=purpose)
    except GatewayError as exc:
        _count(request, caller.agency_id, exc.code)
        raise
    _count(request, caller.agency_id, "ok")
    return Response(body, media_type="application/json")


# The standing query reads its two query parameters itself and is called without FastAPI's
# parameter machinery (gateway.routing.DirectRoute): that machinery cost more of the event loop
# than the route's own code (bench/RESULTS.md); the document names the parameters the same.
router.add_api_route(
    "/{code}",
    get_standing,
    methods=["GET"],
    response_model=StandingAnswer,  # documented; the body is the batcher's bytes as they are
    openapi_extra={
        "parameters": [
            purpose_parameter(),
            _optional_text_parameter(
                "fields", "comma-separated fields, within your view (default: all of your view)"
            ),
        ]
    },
    route_class_override=DirectRoute,
)


@router.get("/{code}/grade-history", openapi_extra=PURPOSE_REQUIRED)
async def get_grade_history(
    code: str, request: Request, purpose: PurposeParam = None, fields: FieldsParam = None
) -> GradeHistoryAnswer:
    """Every grade decision about the enterprise, oldest first, each message's data cut to
    your `grade_history` view; attested and recorded like a standing query."""

    def answer(
        session: Session, caller: Caller, view: View, roles: frozenset[str]
    ) -> dict[str, Any]:
        return service.grade_history(session, code, view)

    answered = await run_in_threadpool(
        _single,
        request,
        code,
        purpose,
        fields,
        action="grade_history",
        contract="grade_history",
        answer=answer,
    )
    return GradeHistoryAnswer.model_validate(answered)


@router.post("/query", response_model_exclude_unset=True)
async def batch_query(body: BatchQuery, request: Request) -> BatchAnswer:
    """Up to 1,000 codes; each answered on its own (invalid codes get their problem), one
    attestation over all of it."""
    runtime: Runtime = request.app.state.runtime

    def run() -> dict[str, Any]:
        caller, why, view, roles = _admitted(
            runtime,
            request,
            action="batch_query",
            contract="standing",
            codes=body.codes,
            purpose=body.purpose,
            fields=body.fields,
            max_codes=service.MAX_BATCH,
        )
        now = runtime.clock.now()
        with runtime.db.transaction() as session:
            service.read_one_snapshot(session)  # the answers and the attested size: one state
            results = service.batch(
                session, body.codes, caller.agency_id, local_date(now), view, roles=roles
            )
            service.record_accesses(
                session,
                [
                    {
                        "at": now,
                        "agency_id": caller.agency_id,
                        "uscc": item["uscc"],
                        "action": "batch_query",
                        "purpose": why,
                        "result": "ok" if item["status"] == 200 else item["problem"]["code"],
                    }
                    for item in results
                ],
            )
            attestation = service.attest(session, runtime.signer, results, caller.agency_id, now)
        _count(request, caller.agency_id, "ok", len(results))
        return {"results": results, "attestation": attestation}

    return BatchAnswer.model_validate(await run_in_threadpool(run))


@router.get(
    "/{code}/access-records", response_model_exclude_unset=True, openapi_extra=PURPOSE_REQUIRED
)
async def get_access_records(
    code: str,
    request: Request,
    purpose: PurposeParam = None,
    before: Annotated[
        int | None, Query(description="cursor: the last id of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> EnterpriseAccessRecords:
    """Who accessed this enterprise's data, newest first: for operators (scope `admin`) and
    for agencies holding an `access_records` query right (regulators, the supervising agency),
    cut to that right's field view. Needs a purpose; recorded (the read is not on the page it
    returns), refusals too."""

    def read(session: Session, caller: Caller) -> dict[str, Any]:
        view = (
            View(None)
            if "admin" in caller.scopes
            else require_view(session, caller.agency_id, "query", "access_records")
        )
        items = service.access_records(session, code, before, limit)
        return {
            "uscc": code,
            "items": [view.project(item, keep=("id", "count", "last_at")) for item in items],
            "next": items[-1]["id"] if len(items) == limit else None,
        }

    answered = await run_in_threadpool(
        recorded_read, request, code, purpose, action="access_records", read=read
    )
    return EnterpriseAccessRecords.model_validate(answered)


def recorded_read(
    request: Request,
    code: str,
    purpose: str | None,
    *,
    action: str,
    read: Callable[[Session, Caller], dict[str, Any]],
) -> dict[str, Any]:
    """A query about one enterprise that is not attested: token, scope and purpose, then
    `read` (which checks the caller's right and raises its refusal) and the access record in
    one transaction; a refusal is recorded in one of its own. Call off the event loop."""
    runtime: Runtime = request.app.state.runtime
    caller, why = _caller(runtime, request, action=action, codes=[code], purpose=purpose)
    try:
        with runtime.db.transaction() as session:
            answer = read(session, caller)
            service.record_access(
                session,
                at=runtime.clock.now(),
                agency_id=caller.agency_id,
                uscc=code,
                action=action,
                purpose=why,
                result="ok",
            )
    except GatewayError as exc:
        _count(request, caller.agency_id, exc.code)
        _record(
            runtime,
            agency_id=caller.agency_id,
            codes=[code],
            action=action,
            purpose=why,
            result=exc.code,
        )
        raise
    _count(request, caller.agency_id, "ok")
    return answer
