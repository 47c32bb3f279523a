"""Signing in by a one-time link, signing out, and the language switch.

The link's GET only shows whom it signs in as; the button POSTs it, and that POST opens the
session: a link fetched by a preview or a scanner is not spent, and the session cookie
(HttpOnly, SameSite=Strict, Secure under https) is set in answer to a same-site request, so
the browser sends it on the next page (a cross-site redirect chain would not carry it).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from gateway.access.routes import record_refusal
from gateway.console.sessions import end_session, open_session, read_link, require_active
from gateway.console.web import (
    COOKIE,
    LANG_COOKIE,
    PREFIX,
    SECURITY_HEADERS,
    ConsoleError,
    ConsoleUser,
    form_of,
    pages_of,
    redirect,
    runtime_of,
    safe_next,
    signed_in,
)
from gateway.errors import GatewayError
from gateway.registry.service import get_agency

router = APIRouter(prefix=PREFIX, include_in_schema=False)
User = Annotated[ConsoleUser, Depends(signed_in)]


def _secure(request: Request) -> bool:
    public = runtime_of(request).settings.public_url or ""
    return public.startswith("https://") or request.url.scheme == "https"


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, token: str | None = None) -> Response:
    """Without a token: how to get a link. With one: whom it signs in as, and the button."""
    runtime = runtime_of(request)
    agency = None
    if token:

        def check() -> tuple[str, str]:
            link = read_link(token, runtime.signer, runtime.clock.now())
            with runtime.db.reader() as session:
                found = require_active(get_agency(session, link.agency_id))
                return found.id, found.name

        try:
            agency = await run_in_threadpool(check)
        except GatewayError as exc:
            raise ConsoleError(exc.status_code, exc.code, exc.detail) from exc
    context = {"token": token, "agency": agency, "signed_out": "signed_out" in request.query_params}
    return pages_of(request).render(request, None, "login.html", context)


@router.post("/login")
async def login(request: Request) -> Response:
    """Spend the link on a session; its refusal (used, expired, forged) is an access record,
    as a refused token request is."""
    runtime = runtime_of(request)
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode(errors="replace")).items()}
    token = form.get("token", "")
    lifetime = dt.timedelta(seconds=runtime.settings.console.session_seconds)

    def run() -> str:
        now = runtime.clock.now()
        claimed = None
        try:
            link = read_link(token, runtime.signer, now)
            claimed = link.agency_id
            with runtime.db.transaction() as session:
                cookie, _ = open_session(session, link, now, lifetime)
            return cookie
        except GatewayError as exc:
            record_refusal(runtime, claimed, "console_login", "POST /console/login", exc)
            raise

    try:
        cookie = await run_in_threadpool(run)
    except GatewayError as exc:
        raise ConsoleError(exc.status_code, exc.code, exc.detail) from exc
    response = RedirectResponse(f"{PREFIX}/", status_code=303, headers=SECURITY_HEADERS)
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=int(lifetime.total_seconds()),
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


@router.post("/logout")
async def logout(request: Request, user: User) -> Response:
    await form_of(request, user)
    runtime = runtime_of(request)

    def run() -> None:
        with runtime.db.transaction() as session:
            end_session(session, user.cookie, runtime.clock.now())

    await run_in_threadpool(run)
    response = redirect(f"{PREFIX}/login?signed_out=1")
    response.delete_cookie(COOKIE, path=PREFIX, httponly=True, samesite="strict")
    return response


@router.get("/lang/{lang}")
async def switch_language(lang: str, next: str | None = None) -> Response:
    """Show the console in `lang` (zh or en) from now on, back where the switch was."""
    response = redirect(safe_next(next))
    if lang in ("zh", "en"):
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, path=PREFIX, samesite="strict")
    return response


@router.get("/")
async def home(user: User) -> Response:
    """Operators start at the overview, other agencies at their portal."""
    return redirect(f"{PREFIX}/overview" if user.operator else f"{PREFIX}/agency/")
