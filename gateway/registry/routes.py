"""HTTP: the agency registry, and the admin API for rights, scopes and rate limits (each
change a gateway-signed log entry, like the CLI's)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from gateway.access.revocations import revocations_of
from gateway.access.routes import caller_with
from gateway.models import Agency
from gateway.registry import rights
from gateway.registry.schemas import (
    Agencies,
    AgencyStatusChanged,
    AgencyStatusIn,
    RateLimitIn,
    RightIn,
    Rights,
)
from gateway.registry.scopes import grant_scopes, revoke_scope
from gateway.registry.service import list_agencies, set_agency_status
from gateway.runtime import ReadSession, Runtime, WriteSession, get_runtime
from gateway.signing import GatewaySigner

router = APIRouter(prefix="/v1/agencies", tags=["registry"])


def agency_views(runtime: Runtime) -> list[dict[str, Any]]:
    with runtime.db.reader() as session:
        return [
            {
                "id": agency.id,
                "name": agency.name,
                "uscc": agency.uscc,
                "roles": agency.roles,
                **status_view(agency),
                "publish": rights,
                "keys": [
                    {
                        "kid": k.kid,
                        "suite": k.suite,
                        "status": k.status,
                        "valid_from": k.valid_from.isoformat(),
                        "valid_to": k.valid_to.isoformat() if k.valid_to else None,
                        "jwk": k.jwk,
                    }
                    for k in keys
                ],
            }
            for agency, keys, rights in list_agencies(session)
        ]


def status_view(agency: Agency) -> dict[str, Any]:
    changed = agency.status_changed_at
    return {
        "status": agency.status,
        "status_changed_at": changed.isoformat() if changed else None,
        "status_reason": agency.status_reason,
    }


@router.get("", dependencies=[Depends(caller_with("admin"))])
async def get_agencies(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Agencies:
    """Registered agencies with their roles, publish rights and public keys."""
    return Agencies.model_validate({"agencies": await run_in_threadpool(agency_views, runtime)})


Admin = Depends(caller_with("admin"))
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def _change(runtime: Runtime, change: Callable[[Session, dt.datetime], Any]) -> Any:
    """For the changes a cache must hear of once committed (status, rate limit): the
    WriteSession commits only after the endpoint returns, too late to invalidate from it."""
    with runtime.db.transaction() as session:
        return change(session, runtime.clock.now())


@router.get("/{agency_id}/rights", dependencies=[Admin])
async def get_rights(session: ReadSession, agency_id: str, runtime: RuntimeDep) -> Rights:
    """What the agency may publish, subscribe to (with field views) and query, its token
    scopes and its rate limit."""

    def read() -> dict[str, Any]:
        return rights.rights_of(session, agency_id)

    return Rights.model_validate(await run_in_threadpool(read))


@router.put("/{agency_id}/rights/{action}/{contract}", dependencies=[Admin])
async def put_right(
    agency_id: str,
    action: Literal["publish", "subscribe", "query", "read"],
    contract: str,
    runtime: RuntimeDep,
    session: WriteSession,
    body: RightIn | None = None,
) -> Rights:
    """Grant (or change the field view of) a right; recorded in the log."""
    changed = await run_in_threadpool(
        rights.grant,
        session,
        runtime.signer,
        agency_id=agency_id,
        action=action,
        contract=contract,
        fields=body.fields if body else None,
        now=runtime.clock.now(),
    )
    return Rights.model_validate(changed)


@router.delete("/{agency_id}/rights/{action}/{contract}", dependencies=[Admin])
async def delete_right(
    agency_id: str,
    action: Literal["publish", "subscribe", "query", "read"],
    contract: str,
    runtime: RuntimeDep,
    session: WriteSession,
) -> Rights:
    """Withdraw a right at once; recorded in the log."""
    changed = await run_in_threadpool(
        rights.revoke,
        session,
        runtime.signer,
        agency_id=agency_id,
        action=action,
        contract=contract,
        now=runtime.clock.now(),
    )
    return Rights.model_validate(changed)


def _scope_granted(
    session: Session, signer: GatewaySigner, agency_id: str, scope: str, now: dt.datetime
) -> dict[str, Any]:
    grant_scopes(session, signer, agency_id, [scope], now)
    return rights.rights_of(session, agency_id)


def _scope_revoked(
    session: Session, signer: GatewaySigner, agency_id: str, scope: str, now: dt.datetime
) -> dict[str, Any]:
    revoke_scope(session, signer, agency_id, scope, now)
    return rights.rights_of(session, agency_id)


@router.put("/{agency_id}/scopes/{scope}", dependencies=[Admin])
async def put_scope(
    agency_id: str, scope: str, runtime: RuntimeDep, session: WriteSession
) -> Rights:
    """Allow the agency's tokens a scope; recorded in the log."""
    now = runtime.clock.now()
    changed = await run_in_threadpool(
        _scope_granted, session, runtime.signer, agency_id, scope, now
    )
    return Rights.model_validate(changed)


@router.delete("/{agency_id}/scopes/{scope}", dependencies=[Admin])
async def delete_scope(
    agency_id: str, scope: str, runtime: RuntimeDep, session: WriteSession
) -> Rights:
    """Withdraw a scope from new tokens (issued ones expire within their lifetime)."""
    now = runtime.clock.now()
    changed = await run_in_threadpool(
        _scope_revoked, session, runtime.signer, agency_id, scope, now
    )
    return Rights.model_validate(changed)


@router.put("/{agency_id}/status", dependencies=[Admin])
async def put_status(
    agency_id: str, body: AgencyStatusIn, runtime: RuntimeDep
) -> AgencyStatusChanged:
    """Disable an agency or enable it again; recorded in the log. This process refuses the
    agency's tokens at once, the others within about a second."""

    def change(session: Session, now: dt.datetime) -> dict[str, Any]:
        agency = set_agency_status(
            session,
            runtime.signer,
            agency_id=agency_id,
            status=body.status,
            reason=body.reason,
            now=now,
        )
        return {"agency_id": agency.id, **status_view(agency)}

    changed: dict[str, Any] = await run_in_threadpool(_change, runtime, change)
    revocations_of(runtime.db).invalidate()
    return AgencyStatusChanged.model_validate(changed)


@router.put("/{agency_id}/rate-limit", dependencies=[Admin])
async def put_rate_limit(agency_id: str, body: RateLimitIn, runtime: RuntimeDep) -> Rights:
    """The agency's own request rate (tokens per second and burst); nulls: the default. This
    process applies it at once, the others within a few seconds."""
    changed = await run_in_threadpool(
        _change,
        runtime,
        lambda session, now: rights.set_rate_limit(
            session,
            runtime.signer,
            agency_id=agency_id,
            per_second=body.per_second,
            burst=body.burst,
            now=now,
        ),
    )
    runtime.rate_limiter.invalidate()
    return Rights.model_validate(changed)
