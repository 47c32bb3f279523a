"""HTTP: subscriptions, their pull feed and cursor, dead letters, replays and skips.

Operators (scope `admin`) manage every subscription; an agency with scope `subscribe` manages
its own within its rights (issue 23 §4): creates them, pauses and resumes them, rotates their
secret, reads their feed and dead letters. Replays and skips stay the operator's.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from gateway.access.routes import caller_with
from gateway.access.tokens import Caller
from gateway.delivery import feed, subscriptions
from gateway.delivery.receipts import receipts_for
from gateway.delivery.schemas import (
    Acked,
    AckIn,
    ConsumerReceipts,
    DeadLetters,
    FeedPage,
    Replayed,
    ReplayIn,
    RotateIn,
    SkipIn,
    Skipped,
    SubscriptionIn,
    SubscriptionList,
    SubscriptionOut,
    SubscriptionRotated,
    SubscriptionStatusIn,
)
from gateway.delivery.webhooks import public_key_text
from gateway.errors import BadRequest, Forbidden, GatewayError
from gateway.models import Subscription
from gateway.queries.service import record_access_alone
from gateway.runtime import ReadSession, Runtime, WriteSession, get_runtime

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


@router.post("", status_code=201, response_model_exclude_unset=True)
async def create(
    body: SubscriptionIn, runtime: RuntimeDep, caller: Subscriber, session: WriteSession
) -> SubscriptionOut:
    """Subscribe an agency to message types; push to `url`, or pull-only without one. An
    agency (scope `subscribe`) subscribes itself, within its subscribe rights."""
    agency_id = agency_for(caller, body.agency_id)

    def run() -> dict[str, Any]:
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

    return SubscriptionOut.model_validate(await run_in_threadpool(run))


@router.get("", response_model_exclude_unset=True)
async def list_all(
    session: ReadSession, runtime: RuntimeDep, caller: Subscriber, agency_id: str | None = None
) -> SubscriptionList:
    """Subscriptions with their delivery counts: an agency's own, or (operators) anyone's."""
    if "admin" not in caller.scopes:
        agency_id = caller.agency_id

    def run() -> dict[str, Any]:
        counts = feed.delivery_counts(session)
        items = [
            view_of(s, runtime) | {"deliveries": counts.get(s.id, {})}
            for s in subscriptions.list_subscriptions(session, agency_id)
        ]
        return {"items": items}

    return SubscriptionList.model_validate(await run_in_threadpool(run))


@router.patch("/{subscription_id}", response_model_exclude_unset=True)
async def set_status(
    subscription_id: str,
    body: SubscriptionStatusIn,
    runtime: RuntimeDep,
    caller: Subscriber,
    session: WriteSession,
) -> SubscriptionOut:
    """Pause, disable or re-enable; a re-enabled endpoint catches up in order. An agency
    pauses and resumes (`active`) its own; disabling is the operator's."""
    if "admin" not in caller.scopes and body.status not in OWN_STATUSES:
        raise Forbidden(
            "not_permitted", f"an agency sets its subscription {' or '.join(OWN_STATUSES)}"
        )

    def run() -> dict[str, Any]:
        own_or_admin(session, caller, subscription_id)
        sub = subscriptions.set_status(session, subscription_id, body.status, body.reason)
        return view_of(sub, runtime)

    return SubscriptionOut.model_validate(await run_in_threadpool(run))


@router.post("/{subscription_id}/rotate-secret", response_model_exclude_unset=True)
async def rotate_secret(
    subscription_id: str,
    body: RotateIn,
    runtime: RuntimeDep,
    caller: Subscriber,
    session: WriteSession,
) -> SubscriptionRotated:
    """New HMAC secret; both are sent (two v1 signatures) during the overlap window."""

    def run() -> dict[str, Any]:
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

    return SubscriptionRotated.model_validate(await run_in_threadpool(run))


@router.get("/{subscription_id}/feed")
async def get_feed(
    subscription_id: str,
    runtime: RuntimeDep,
    caller: Subscriber,
    after: Annotated[int | None, Query(ge=-1, description="cursor: last log index seen")] = None,
    limit: Annotated[int, Query(ge=1, le=feed.MAX_LIMIT)] = 100,
) -> FeedPage:
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

    return FeedPage.model_validate(await run_in_threadpool(run))


@router.post("/{subscription_id}/ack")
async def ack(
    subscription_id: str,
    body: AckIn,
    runtime: RuntimeDep,
    caller: Subscriber,
    session: WriteSession,
) -> Acked:
    def run() -> int:
        own_or_admin(session, caller, subscription_id)
        return feed.acknowledge(session, subscription_id, body.index)

    return Acked(acked_index=await run_in_threadpool(run))


@router.get("/{subscription_id}/dead-letters")
async def get_dead(
    session: ReadSession, subscription_id: str, runtime: RuntimeDep, caller: Subscriber
) -> DeadLetters:
    """The subscription's dead deliveries (its own agency's, or any for operators)."""

    def run() -> dict[str, Any]:
        own_or_admin(session, caller, subscription_id)
        return {"items": feed.dead_letters(session, subscription_id)}

    return DeadLetters.model_validate(await run_in_threadpool(run))


@router.post("/{subscription_id}/replay")
async def post_replay(
    subscription_id: str, body: ReplayIn, runtime: RuntimeDep, caller: Admin, session: WriteSession
) -> Replayed:
    """Deliver again by log-index range or time window; the webhook-id stays the same. Each
    delivery replayed gets an attempt row naming the operator and the reason."""

    def run() -> int:
        return feed.replay(
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

    return Replayed(replayed=await run_in_threadpool(run))


@router.post("/{subscription_id}/skip")
async def post_skip(
    subscription_id: str, body: SkipIn, runtime: RuntimeDep, caller: Admin, session: WriteSession
) -> Skipped:
    """Give up on dead or parked deliveries (by log index) for good.

    A dead or parked delivery keeps blocking the later deliveries about its enterprise, so
    they never overtake it (protocol.md §4); replay it to try again, or skip it here to let
    them go without it. Only dead or parked deliveries can be skipped (409 `not_stuck`
    otherwise); each skip is recorded as an attempt naming the operator.
    """

    def run() -> int:
        return feed.skip(
            session,
            subscription_id,
            body.log_indexes,
            runtime.clock.now(),
            operator=caller.agency_id,
            reason=body.reason,
        )

    return Skipped(skipped=await run_in_threadpool(run))


messages_router = APIRouter(prefix="/v1/messages", tags=["delivery"])


@messages_router.get(
    "/{message_id}/consumer-receipts", dependencies=[Depends(caller_with("admin"))]
)
async def consumer_receipts(
    session: ReadSession, message_id: str, runtime: RuntimeDep
) -> ConsumerReceipts:
    """Receivers' signed acknowledgements of this message, verified when they arrived."""

    def run() -> list[dict[str, Any]]:
        return receipts_for(session, message_id)

    receipts = await run_in_threadpool(run)
    return ConsumerReceipts.model_validate({"message_id": message_id.lower(), "receipts": receipts})
