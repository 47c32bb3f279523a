"""The agency portal (scope `subscribe`; an agency sees its own data only): its subscriptions,
made within its rights, paused, resumed, their secret rotated, their `whpk_` key shown; its
deliveries and dead letters; its pull-feed position; the feedback it owes. The same services
and the same checks as the API's self-service (gateway.delivery.routes)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from connectors import CONNECTORS
from contracts.dates import local_date
from gateway.console.overview import FEEDBACK_DAYS
from gateway.console.web import (
    PREFIX,
    ConsoleError,
    ConsoleUser,
    form_of,
    page,
    pages_of,
    redirect,
    refuse,
    runtime_of,
    subscriber,
)
from gateway.delivery import health, subscriptions
from gateway.delivery.routes import OWN_STATUSES, own_or_admin, view_of
from gateway.errors import Forbidden, GatewayError
from gateway.measures.feedback import feedback_owed
from gateway.models import Delivery, Subscription
from gateway.registry.rights import rights_of

router = APIRouter(prefix=f"{PREFIX}/agency", include_in_schema=False)
Subscriber = Annotated[ConsoleUser, Depends(subscriber)]


@router.get("/", response_class=HTMLResponse)
async def portal(request: Request, user: Subscriber) -> Response:
    runtime = runtime_of(request)
    today = local_date(runtime.clock.now())

    connectors = sorted(n for n, c in CONNECTORS.items() if c.role in user.roles)

    def build(session: Session) -> dict[str, Any]:
        held = rights_of(session, user.agency_id)
        return {
            "subscriptions": health.subscription_health(
                session, runtime.clock.now(), user.agency_id
            ),
            "stuck": health.stuck_deliveries(session, user.agency_id, limit=100),
            "failing": health.failing_deliveries(session, user.agency_id, limit=100),
            "owed": feedback_owed(
                session, today, FEEDBACK_DAYS, agency_id=user.agency_id, limit=100
            ),
            "types": sorted(held["subscribe"]),
            "views": ["fields", "notice", "full", *connectors],
            "notice": request.query_params.get("notice"),
        }

    return await page(request, user, "portal.html", build)


async def _own(request: Request, user: ConsoleUser, sub_id: str) -> None:
    """The subscription is the agency's own (or the user an operator); another agency's is
    refused 403 `not_your_subscription` and recorded, as the API refuses it."""
    runtime = runtime_of(request)

    def check() -> None:
        with runtime.db.reader() as session:
            own_or_admin(session, user.caller, sub_id)

    try:
        await run_in_threadpool(check)
    except Forbidden as exc:
        await refuse(request, user, exc)
    except GatewayError as exc:
        raise ConsoleError(exc.status_code, exc.code, exc.detail) from exc


def _detail(session: Session, request: Request, sub: Subscription) -> dict[str, Any]:
    runtime = runtime_of(request)
    latest = session.scalar(
        select(func.max(Delivery.log_index)).where(Delivery.subscription_id == sub.id)
    )
    unread = session.scalar(
        select(func.count()).where(
            Delivery.subscription_id == sub.id, Delivery.log_index > sub.acked_index
        )
    )
    return {
        "sub": view_of(sub, runtime),
        "recent": health.recent_deliveries(session, sub.id),
        "stuck": health.stuck_deliveries(session, subscription_id=sub.id),
        "latest_index": latest,
        "unread": unread or 0,
        "secret": None,
    }


@router.get("/subscriptions/{sub_id}", response_class=HTMLResponse)
async def subscription_page(request: Request, user: Subscriber, sub_id: str) -> Response:
    await _own(request, user, sub_id)
    return await page(
        request,
        user,
        "subscription.html",
        lambda session: _detail(session, request, subscriptions.get_subscription(session, sub_id)),
    )


@router.post("/subscriptions", response_class=HTMLResponse)
async def create(request: Request, user: Subscriber) -> Response:
    """A subscription for the signed-in agency, within its subscribe rights; its whsec_
    secret (with v1 signing) is shown on the page that answers, once."""
    runtime = runtime_of(request)
    body = await request.body()
    form = await form_of(request, user)
    fields = [v for k, v in _pairs(body) if k == "types"]
    signing = ["v1a", "v1"] if form.get("hmac") == "yes" else ["v1a"]

    def run() -> dict[str, Any]:
        with runtime.db.transaction() as session:
            sub = subscriptions.create_subscription(
                session,
                agency_id=user.agency_id,
                url=form.get("url") or None,
                types=fields,
                now=runtime.clock.now(),
                allowed_hosts=runtime.settings.delivery.allowed_hosts,
                region_prefix=form.get("region_prefix") or None,
                view=form.get("view") or "fields",
                signing=signing,
            )
            session.flush()
            context = _detail(session, request, sub)
            context["secret"] = sub.hmac_secret
            return context

    try:
        context = await run_in_threadpool(run)
    except GatewayError as exc:
        raise ConsoleError(exc.status_code, exc.code, exc.detail) from exc
    return pages_of(request).render(request, user, "subscription.html", context, status=201)


def _pairs(body: bytes) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(body.decode(errors="replace"))


@router.post("/subscriptions/{sub_id}/{change}", response_class=HTMLResponse)
async def change(request: Request, user: Subscriber, sub_id: str, change: str) -> Response:
    """pause / resume (status paused / active, as PATCH allows an agency), rotate (a new
    whsec_ secret, the old one signing beside it for 24 hours, shown once)."""
    await form_of(request, user)
    runtime = runtime_of(request)
    if change not in ("pause", "resume", "rotate"):
        raise ConsoleError(404, "not_found", "no such change")
    await _own(request, user, sub_id)

    def run() -> dict[str, Any] | None:
        with runtime.db.transaction() as session:
            if change == "rotate":
                sub = subscriptions.rotate_hmac_secret(
                    session, sub_id, runtime.clock.now(), dt.timedelta(hours=24)
                )
                context = _detail(session, request, sub)
                context["secret"] = sub.hmac_secret
                return context
            status = OWN_STATUSES[0] if change == "resume" else OWN_STATUSES[1]
            subscriptions.set_status(session, sub_id, status, f"{change}d by {user.agency_id}")
            return None

    try:
        context = await run_in_threadpool(run)
    except GatewayError as exc:
        raise ConsoleError(exc.status_code, exc.code, exc.detail) from exc
    if context is None:
        return redirect(f"{PREFIX}/agency/subscriptions/{sub_id}")
    return pages_of(request).render(request, user, "subscription.html", context)
