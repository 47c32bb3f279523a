"""What every console page shares: the signed-in agency (session cookie, scopes read from the
database at each request, the agency's rate), refusals recorded as the API records them, forms
with their CSRF token, templates in the chosen language, and the security headers.

Errors are pages here, not problem JSON: `ConsoleError` (a status and a sentence, or a
redirect) is rendered by the handler `install_console` adds.
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from gateway.access.routes import record_refusal
from gateway.access.tokens import Caller, require_scope
from gateway.console import i18n
from gateway.console.sessions import SignedIn, csrf_ok, csrf_token, find_session
from gateway.errors import Forbidden, GatewayError, Unauthorized
from gateway.models import AgencyScope
from gateway.routing import add_routes
from gateway.runtime import Runtime

COOKIE = "gw_console"
LANG_COOKIE = "gw_lang"
PREFIX = "/console"
MAX_FORM_BYTES = 2 * 1024 * 1024  # an evidence bundle is a few kilobytes; room for a JWK set
# No inline script or style anywhere (charts are SVG attributes, interaction console.js).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # a login link's token never travels on in a Referer
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class ConsoleError(Exception):
    """A page that cannot be shown: its status and why (`code` as the API would name it), or
    a redirect to `location` (status 303)."""

    def __init__(self, status: int, code: str, detail: str, location: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.location = status, code, detail, location


@dataclass(frozen=True)
class ConsoleUser:
    """The signed-in agency of this request, with its scopes as the database holds them now."""

    agency_id: str
    name: str
    roles: tuple[str, ...]
    scopes: frozenset[str]
    expires_at: dt.datetime
    cookie: str

    @property
    def caller(self) -> Caller:
        return Caller(self.agency_id, self.scopes)

    @property
    def operator(self) -> bool:
        return "admin" in self.scopes

    @property
    def csrf(self) -> str:
        return csrf_token(self.cookie)


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def language(request: Request) -> str:
    lang = request.cookies.get(LANG_COOKIE, i18n.DEFAULT)
    return lang if lang in i18n.LANGUAGES else i18n.DEFAULT


def _lookup(runtime: Runtime, cookie: str) -> tuple[SignedIn, frozenset[str]] | None:
    with runtime.db.reader() as session:
        found = find_session(session, cookie, runtime.clock.now())
        if found is None:
            return None
        scopes = session.scalars(
            select(AgencyScope.scope).where(AgencyScope.agency_id == found.agency_id)
        )
        return found, frozenset(scopes)


async def signed_in(request: Request) -> ConsoleUser:
    """The dependency every console page starts from: its live session, or back to the
    sign-in page (an expired or ended session too). Spends one of the agency's requests."""
    runtime = runtime_of(request)
    cookie = request.cookies.get(COOKIE)
    found = await run_in_threadpool(_lookup, runtime, cookie) if cookie else None
    if found is None:
        raise ConsoleError(303, "signed_out", "sign in", location=f"{PREFIX}/login")
    signed, scopes = found
    user = ConsoleUser(
        signed.agency_id, signed.name, signed.roles, scopes, signed.expires_at, str(cookie)
    )
    if not signed.active:  # disabled since it signed in: refused as its tokens are
        await refuse(
            request,
            user,
            Unauthorized("agency_disabled", f"agency {signed.agency_id!r} is disabled"),
        )
    try:
        runtime.rate_limiter.take(signed.agency_id)
    except GatewayError as exc:
        raise ConsoleError(exc.status_code, exc.code, exc.detail) from exc
    return user


async def admit(request: Request, user: ConsoleUser, scope: str) -> None:
    """`scope` (or admin) required, as for the API call behind the page; a refusal is an
    access record and a log line, as the API's are (gateway.access.routes.authenticated)."""
    try:
        require_scope(user.caller, scope)
    except GatewayError as exc:
        await refuse(request, user, exc)


async def refuse(request: Request, user: ConsoleUser, exc: GatewayError) -> None:
    """Record a refusal of `user` as the API records one (action `auth`) and raise it."""
    what = f"{request.method} {request.url.path}"
    await run_in_threadpool(record_refusal, runtime_of(request), user.agency_id, "auth", what, exc)
    raise ConsoleError(exc.status_code, exc.code, exc.detail) from exc


async def operator(request: Request) -> ConsoleUser:
    """A signed-in operator (scope `admin`): every operator page."""
    user = await signed_in(request)
    await admit(request, user, "admin")
    return user


async def subscriber(request: Request) -> ConsoleUser:
    """A signed-in agency with scope `subscribe` (or admin): the agency portal."""
    user = await signed_in(request)
    await admit(request, user, "subscribe")
    return user


async def form_of(request: Request, user: ConsoleUser) -> dict[str, str]:
    """The posted form (URL-encoded) once its CSRF token is the session's; a form without it
    is refused 403 `csrf_failed` and recorded."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise ConsoleError(413, "payload_too_large", "the form is too large")
    fields = {k: v[0] for k, v in parse_qs(body.decode(errors="replace")).items()}
    if not csrf_ok(user.cookie, fields.get("csrf")):
        await refuse(
            request,
            user,
            Forbidden("csrf_failed", "the form did not carry this session's CSRF token"),
        )
    return fields


@dataclass(frozen=True)
class Pages:
    """The console's templates, made once per app (in `install_console`)."""

    env: Environment

    def render(
        self,
        request: Request,
        user: ConsoleUser | None,
        template: str,
        context: Mapping[str, Any],
        status: int = 200,
    ) -> HTMLResponse:
        lang = language(request)
        html = self.env.get_template(template).render(
            {
                **context,
                "_": i18n.translator(lang),
                "lang": lang,
                "user": user,
                "path": request.url.path,
                "query": request.url.query,
                "when": i18n.local_time,
                "ago": lambda seconds: i18n.duration(seconds, lang),
            }
        )
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def pages_of(request: Request) -> Pages:
    pages: Pages = request.app.state.console_pages
    return pages


async def page(
    request: Request,
    user: ConsoleUser | None,
    template: str,
    build: Callable[[Session], Mapping[str, Any]],
) -> HTMLResponse:
    """Render `template` with what `build` reads in one read-only transaction (off the event
    loop); a refusal of a service becomes an error page with its status."""
    runtime = runtime_of(request)

    def read() -> Mapping[str, Any]:
        with runtime.db.reader() as session:
            return build(session)

    try:
        context = await run_in_threadpool(read)
    except GatewayError as exc:
        raise ConsoleError(exc.status_code, exc.code, exc.detail) from exc
    return pages_of(request).render(request, user, template, context)


def redirect(location: str, *, notice: str | None = None) -> RedirectResponse:
    """303 See Other to a console page (after a form), with a notice for the next page."""
    if notice:
        location += ("&" if "?" in location else "?") + "notice=" + quote(notice)
    return RedirectResponse(location, status_code=303, headers=SECURITY_HEADERS)


def safe_next(target: str | None) -> str:
    """A place inside the console to return to; anything else (another site) is home."""
    if target and target.startswith(PREFIX + "/") and not target.startswith("//"):
        return target
    return PREFIX + "/"


def _error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConsoleError)
    if exc.location is not None:
        return redirect(exc.location)
    return pages_of(request).render(
        request,
        None,
        "error.html",
        {"status": exc.status, "code": exc.code, "detail": exc.detail},
        status=exc.status,
    )


def install_console(app: FastAPI) -> None:
    """Add the console to `app`: its routes under /console/, its static files, its error
    pages. Nothing is read from the database here; the templates are compiled on first use."""
    from gateway.console.routes import router

    env = Environment(
        loader=PackageLoader("gateway.console", "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    app.state.console_pages = Pages(env)
    static = importlib.resources.files("gateway.console") / "static"
    app.mount(f"{PREFIX}/static", StaticFiles(directory=str(static)), name="console-static")
    add_routes(app, router)
    app.add_exception_handler(ConsoleError, _error_handler)
