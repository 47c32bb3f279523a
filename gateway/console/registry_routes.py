"""Operator pages of the registry and the log: agencies with their keys, rights (field views),
scopes and rate limits, granted and revoked through forms (each change a log entry, by the
registry's own services); checkpoints, witnesses, and an evidence bundle checked as
`gateway verify` checks it."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from gateway.access.tokens import SCOPES
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
from gateway.errors import GatewayError
from gateway.models import AgencyKey, Checkpoint
from gateway.registry import rights
from gateway.registry.scopes import grant_scopes, revoke_scope
from gateway.registry.service import get_agency, list_agencies
from gateway.transparency.bundle_check import check_bundle
from gateway.transparency.service import log_vkey
from gateway.transparency.witnessing import witness_report

router = APIRouter(prefix=PREFIX, include_in_schema=False)
Operator = Annotated[ConsoleUser, Depends(operator)]


@router.get("/agencies", response_class=HTMLResponse)
async def agencies_page(request: Request, user: Operator) -> Response:
    def build(session: Session) -> dict[str, Any]:
        return {
            "agencies": [
                {"agency": a, "keys": keys, "rights": rights.rights_of(session, a.id)}
                for a, keys, _ in list_agencies(session)
            ]
        }

    return await page(request, user, "agencies.html", build)


@router.get("/agencies/{agency_id}", response_class=HTMLResponse)
async def agency_page(request: Request, user: Operator, agency_id: str) -> Response:
    def build(session: Session) -> dict[str, Any]:
        agency = get_agency(session, agency_id)
        keys = session.scalars(
            select(AgencyKey).where(AgencyKey.agency_id == agency_id).order_by(AgencyKey.created_at)
        )
        return {
            "agency": agency,
            "keys": list(keys),
            "rights": rights.rights_of(session, agency_id),
            "all_scopes": SCOPES,
            "notice": request.query_params.get("notice"),
        }

    return await page(request, user, "agency.html", build)


@router.post("/agencies/{agency_id}/{change}")
async def change_rights(request: Request, user: Operator, agency_id: str, change: str) -> Response:
    """grant / revoke a right (with its field view), grant-scope / revoke-scope: the same
    services as the admin API, each change a gateway entry in the log."""
    form = await form_of(request, user)
    runtime = runtime_of(request)
    action, contract = form.get("action", ""), form.get("contract", "").strip()
    fields_text = form.get("fields", "").strip()
    fields = [f.strip() for f in fields_text.split(",") if f.strip()] if fields_text else None

    def run(session: Session) -> None:
        now = runtime.clock.now()
        if change == "grant":
            rights.grant(
                session,
                runtime.signer,
                agency_id=agency_id,
                action=action,
                contract=contract,
                fields=fields,
                now=now,
            )
        elif change == "revoke":
            rights.revoke(
                session,
                runtime.signer,
                agency_id=agency_id,
                action=action,
                contract=contract,
                now=now,
            )
        elif change == "grant-scope":
            grant_scopes(session, runtime.signer, agency_id, [form.get("scope", "")], now)
        elif change == "revoke-scope":
            revoke_scope(session, runtime.signer, agency_id, form.get("scope", ""), now)
        else:
            raise ConsoleError(404, "not_found", "no such change")

    def transact() -> None:
        with runtime.db.transaction() as session:
            run(session)

    try:
        await run_in_threadpool(transact)
    except GatewayError as exc:
        raise ConsoleError(exc.status_code, exc.code, exc.detail) from exc
    return redirect(f"{PREFIX}/agencies/{agency_id}", notice="Done")


@router.get("/log", response_class=HTMLResponse)
async def log_page(request: Request, user: Operator) -> Response:
    runtime = runtime_of(request)
    report = await run_in_threadpool(witness_report, runtime)

    def build(session: Session) -> dict[str, Any]:
        checkpoints = session.scalars(select(Checkpoint).order_by(Checkpoint.size.desc()).limit(10))
        return {"checkpoints": list(checkpoints), "report": report, "checks": None}

    return await page(request, user, "log.html", build)


@router.post("/log/verify", response_class=HTMLResponse)
async def verify_bundle(request: Request, user: Operator) -> Response:
    """The checks of `gateway verify` on an uploaded evidence bundle, against this gateway's
    JWKS and log key and the publisher's key (as pasted, or else as registered by its kid)."""
    form = await form_of(request, user)
    runtime = runtime_of(request)

    def run() -> dict[str, Any]:
        try:
            bundle = json.loads(form.get("bundle", ""))
            jwk_text = form.get("publisher_jwk", "").strip()
            publisher = json.loads(jwk_text) if jwk_text else None
        except ValueError as exc:
            raise ConsoleError(400, "malformed_json", f"not JSON: {exc}") from exc
        if not isinstance(bundle, dict) or not isinstance(bundle.get("jws"), str):
            raise ConsoleError(400, "malformed_json", "an evidence bundle is a JSON object")
        with runtime.db.reader() as session:
            if publisher is None:
                publisher = _registered_key(session, bundle["jws"])
            checkpoints = list(
                session.scalars(select(Checkpoint).order_by(Checkpoint.size.desc()).limit(10))
            )
        checks = check_bundle(
            bundle,
            gateway_jwks=runtime.signer.jwks(),
            log_vkey=log_vkey(runtime.settings.log_origin, runtime.signer.log_key),
            publisher_jwk=publisher or {},
        )
        return {"checkpoints": checkpoints, "report": witness_report(runtime), "checks": checks}

    context = await run_in_threadpool(run)
    return pages_of(request).render(request, user, "log.html", context)


def _registered_key(session: Session, token: str) -> dict[str, Any] | None:
    from keys import jws

    try:
        kid = jws.parse_compact(token).header.get("kid")
    except jws.JWSError:
        return None
    key = session.get(AgencyKey, kid) if isinstance(kid, str) else None
    return dict(key.jwk) if key is not None else None
