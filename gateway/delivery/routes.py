"""HTTP: subscriptions, their pull feed and cursor, dead letters, replays and skips.

Operators (scope `admin`) manage every subscription; an agency with scope `subscribe` manages
its own within its rights (issue 23 §4): creates them, pauses and resumes them, rotates their
secret, reads their feed and dead letters. Replays and skips stay the operator's.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from gateway.access.routes import caller_with
from gateway.access.tokens import Caller
from gateway.delivery import feed, subscriptions
from gateway.delivery.receipts import receipts_for
from gateway.delivery.webhooks import public_key_text
from gateway.errors import BadRequest, Forbidden, GatewayError
from gateway.models import Subscription
from gateway.queries.service import record_access_alone
from gateway.runtime import Runtime, get_runtime

router = APIRouter(prefix="/v1/subscriptions", tags=["delivery"])
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
Admin = Annotated[Caller, Depends(caller_with("admin"))]
Subscriber = Annotated[Caller, Depends(caller_with("subscribe"))]


def own_or_admin(session: Any, caller: Caller, subscription_id: str) -> Subscription:
    """An agency reaches only its own subscriptions; operators reach any."""
    sub = subscriptions.get_subscription(session, subscription_id)
    if sub.agency_id != caller.agency_id and "admin" not in caller.scopes:
        raise Forbidden("not_your_subscription", f"subscription {subscription_id} is not yours")
    return sub


def agency_for(caller: Caller, agency_id: str | None) -> str:
    """Whose subscription a caller makes: anyone's for an operator (who must name it), else
    its own (naming another agency is refused)."""
    if "admin" in caller.scopes:
        if agency_id is None:
            raise BadRequest("invalid_request", "name the agency_id the subscription is for")
        return agency_id
    if agency_id not in (None, caller.agency_id):
        raise Forbidden("not_your_subscription", "an agency subscribes for itself only")
    return caller.agency_id


# What an agency may set its own subscription to; `disabled` is the operator's (and a 410's).
OWN_STATUSES = ("active", "paused")


# max_length: the columns' (PostgreSQL refuses longer text; a longer value was a 500 there)
class SubscriptionIn(BaseModel):
    agency_id: str | None = Field(None, description="operators: whose; agencies: their own")
    url: str | None = Field(
        None, max_length=500, description="push endpoint; omit for a pull-only feed"
    )
    types: list[str]
    region_prefix: str | None = Field(None, max_length=6)
    industry_section: str | None = Field(None, max_length=1)
    grade_level: str | None = Field(None, max_length=16)
    view: str = Field("full", max_length=32)
    signing: list[str] = Field(default_factory=lambda: ["v1a"])
    retry_schedule: list[float] | None = Field(
        None,
        description=f"seconds before each retry, 1 to {subscriptions.MAX_SCHEDULE_ENTRIES} "
        f"delays of 0 to {subscriptions.MAX_RETRY_DELAY_SECONDS} (default: protocol.md §4)",
    )
    rate_limit: float | None = Field(
        None,
        description=f"deliveries per second, {subscriptions.MIN_RATE_LIMIT:.6g} to "
        f"{subscriptions.MAX_RATE_LIMIT:g}; none: unlimited",
    )


class StatusIn(BaseModel):
    # Only the status changes here: a schedule or a rate sent along was ignored with a 200.
    model_config = ConfigDict(extra="forbid")

    status: str
    reason: str | None = Field(None, max_length=300)


class AckIn(BaseModel):
    index: int


class ReplayIn(BaseModel):
    reason: str | None = Field(None, max_length=200, description="why (recorded)")
    from_index: int | None = None
    to_index: int | None = None
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None

    @field_validator("since", "until")
    @classmethod
    def _in_utc(cls, value: dt.datetime | None) -> dt.datetime | None:
        # compared with stored UTC timestamps: a time with an offset must have a UTC one
        try:
            return value.astimezone(dt.UTC) if value is not None else None
        except OverflowError as exc:
            raise ValueError("the time is out of range in UTC") from exc


def view_of(sub: Subscription, runtime: Runtime, *, secret: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": sub.id,
        "agency_id": sub.agency_id,
        "url": sub.url,
        "types": sub.types,
        "filters": {
            "region_prefix": sub.region_prefix,
            "industry_section": sub.industry_section,
            "grade_level": sub.grade_level,
        },
        "view": sub.view,
        "signing": sub.signing,
        "v1a_public_key": public_key_text(runtime.signer.webhook_key),
        "v1a_public_keys": [
            public_key_text(k) for k in runtime.signer.webhook_keys(runtime.clock.now())
        ],
        "status": sub.status,
        "status_reason": sub.status_reason,
        "retry_schedule": sub.retry_schedule,
        "rate_limit": sub.rate_limit,
        "acked_index": sub.acked_index,
    }
    if secret and sub.hmac_secret:
        out["hmac_secret"] = sub.hmac_secret  # shown once, at creation
    return out


@router.post("", status_code=201)
async def create(body: SubscriptionIn, runtime: RuntimeDep, caller: Subscriber) -> dict[str, Any]:
    """Subscribe an agency to message types; push to `url`, or pull-only without one. An
    agency (scope `subscribe`) subscribes itself, within its subscribe rights."""
    agency_id = agency_for(caller, body.agency_id)

    def run() -> dict[str, Any]:
        with runtime.db.transaction() as session:
            sub = subscriptions.create_subscription(
                session,
                agency_id=agency_id,
                url=body.url,
                types=body.types,
                now=runtime.clock.now(),
                allowed_hosts=runtime.settings.delivery.allowed_hosts,
                region_prefix=body.region_prefix,
                industry_section=body.industry_section,
                grade_level=body.grade_level,
                view=body.view,
                signing=body.signing,
                retry_schedule=body.retry_schedule or subscriptions.DEFAULT_SCHEDULE,
                rate_limit=body.rate_limit,
            )
            return view_of(sub, runtime, secret=True)

    return await run_in_threadpool(run)


@router.get("")
async def list_all(
    runtime: RuntimeDep, caller: Subscriber, agency_id: str | None = None
) -> dict[str, Any]:
    """Subscriptions with their delivery counts: an agency's own, or (operators) anyone's."""
    if "admin" not in caller.scopes:
        agency_id = caller.agency_id

    def run() -> dict[str, Any]:
        with runtime.db.reader() as session:
            counts = feed.delivery_counts(session)
            items = [
                view_of(s, runtime) | {"deliveries": counts.get(s.id, {})}
                for s in subscriptions.list_subscriptions(session, agency_id)
            ]
        return {"items": items}

    return await run_in_threadpool(run)


@router.patch("/{subscription_id}")
async def set_status(
    subscription_id: str, body: StatusIn, runtime: RuntimeDep, caller: Subscriber
) -> dict[str, Any]:
    """Pause, disable or re-enable; a re-enabled endpoint catches up in order. An agency
    pauses and resumes (`active`) its own; disabling is the operator's."""
    if "admin" not in caller.scopes and body.status not in OWN_STATUSES:
        raise Forbidden(
            "not_permitted", f"an agency sets its subscription {' or '.join(OWN_STATUSES)}"
        )

    def run() -> dict[str, Any]:
        with runtime.db.transaction() as session:
            own_or_admin(session, caller, subscription_id)
            sub = subscriptions.set_status(session, subscription_id, body.status, body.reason)
            return view_of(sub, runtime)

    return await run_in_threadpool(run)


class RotateIn(BaseModel):
    overlap_hours: float = Field(24, ge=0, le=24 * 30)


@router.post("/{subscription_id}/rotate-secret")
async def rotate_secret(
    subscription_id: str, body: RotateIn, runtime: RuntimeDep, caller: Subscriber
) -> dict[str, Any]:
    """New HMAC secret; both are sent (two v1 signatures) during the overlap window."""

    def run() -> dict[str, Any]:
        with runtime.db.transaction() as session:
            own_or_admin(session, caller, subscription_id)
            sub = subscriptions.rotate_hmac_secret(
                session,
                subscription_id,
                runtime.clock.now(),
                dt.timedelta(hours=body.overlap_hours),
            )
            return view_of(sub, runtime, secret=True) | {
                "previous_valid_until": sub.previous_valid_until.isoformat()
                if sub.previous_valid_until
                else None
            }

    return await run_in_threadpool(run)


@router.get("/{subscription_id}/feed")
async def get_feed(
    subscription_id: str,
    runtime: RuntimeDep,
    caller: Subscriber,
    after: Annotated[int | None, Query(ge=-1, description="cursor: last log index seen")] = None,
    limit: Annotated[int, Query(ge=1, le=feed.MAX_LIMIT)] = 100,
) -> dict[str, Any]:
    """The subscription as a feed; without `after`, from the acknowledged cursor."""

    def run() -> dict[str, Any]:
        # Every feed read is an access record (issue 6 §4), a refused one too.
        result = "error"
        try:
            with runtime.db.reader() as session:
                own_or_admin(session, caller, subscription_id)
                page = feed.read_feed(
                    session, subscription_id, after, limit, runtime.settings.log_origin
                )
            result = "ok"
            return page
        except GatewayError as exc:
            result = exc.code
            raise
        finally:
            record_access_alone(
                runtime,
                agency_id=caller.agency_id,
                action="feed",
                purpose=f"feed {subscription_id}",
                result=result,
            )

    return await run_in_threadpool(run)


@router.post("/{subscription_id}/ack")
async def ack(
    subscription_id: str, body: AckIn, runtime: RuntimeDep, caller: Subscriber
) -> dict[str, int]:
    def run() -> dict[str, int]:
        with runtime.db.transaction() as session:
            own_or_admin(session, caller, subscription_id)
            return {"acked_index": feed.acknowledge(session, subscription_id, body.index)}

    return await run_in_threadpool(run)


@router.get("/{subscription_id}/dead-letters")
async def get_dead(subscription_id: str, runtime: RuntimeDep, caller: Subscriber) -> dict[str, Any]:
    """The subscription's dead deliveries (its own agency's, or any for operators)."""

    def run() -> dict[str, Any]:
        with runtime.db.reader() as session:
            own_or_admin(session, caller, subscription_id)
            return {"items": feed.dead_letters(session, subscription_id)}

    return await run_in_threadpool(run)


@router.post("/{subscription_id}/replay")
async def post_replay(
    subscription_id: str, body: ReplayIn, runtime: RuntimeDep, caller: Admin
) -> dict[str, int]:
    """Deliver again by log-index range or time window; the webhook-id stays the same. Each
    delivery replayed gets an attempt row naming the operator and the reason."""

    def run() -> dict[str, int]:
        with runtime.db.transaction() as session:
            n = feed.replay(
                session,
                subscription_id,
                runtime.clock.now(),
                from_index=body.from_index,
                to_index=body.to_index,
                since=body.since,
                until=body.until,
                operator=caller.agency_id,
                reason=body.reason,
            )
        return {"replayed": n}

    return await run_in_threadpool(run)


class SkipIn(BaseModel):
    log_indexes: list[int] = Field(min_length=1, max_length=500)
    reason: str | None = Field(None, max_length=200, description="why (recorded)")


@router.post("/{subscription_id}/skip")
async def post_skip(
    subscription_id: str, body: SkipIn, runtime: RuntimeDep, caller: Admin
) -> dict[str, int]:
    """Give up on dead or parked deliveries (by log index) for good.

    A dead or parked delivery keeps blocking the later deliveries about its enterprise, so
    they never overtake it (protocol.md §4); replay it to try again, or skip it here to let
    them go without it. Only dead or parked deliveries can be skipped (409 `not_stuck`
    otherwise); each skip is recorded as an attempt naming the operator.
    """

    def run() -> dict[str, int]:
        with runtime.db.transaction() as session:
            n = feed.skip(
                session,
                subscription_id,
                body.log_indexes,
                runtime.clock.now(),
                operator=caller.agency_id,
                reason=body.reason,
            )
        return {"skipped": n}

    return await run_in_threadpool(run)


messages_router = APIRouter(prefix="/v1/messages", tags=["delivery"])


@messages_router.get(
    "/{message_id}/consumer-receipts", dependencies=[Depends(caller_with("admin"))]
)
async def consumer_receipts(message_id: str, runtime: RuntimeDep) -> dict[str, Any]:
    """Receivers' signed acknowledgements of this message, verified when they arrived."""

    def run() -> list[dict[str, Any]]:
        with runtime.db.reader() as session:
            return receipts_for(session, message_id)

    return {"message_id": message_id.lower(), "receipts": await run_in_threadpool(run)}
