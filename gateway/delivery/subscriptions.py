"""Subscriptions: who receives which messages, filtered how, signed how, seen through which view."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Sequence
from typing import TypeGuard

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors import CONNECTORS
from contracts.registry import MESSAGE_TYPES
from gateway.delivery import heads
from gateway.delivery.webhooks import new_hmac_secret
from gateway.errors import BadRequest, Forbidden, NotFound, ServiceUnavailable
from gateway.models import Agency, Subscription
from gateway.outbound.ssrf import (
    InvalidEndpoint,
    ResolutionTimeout,
    UnsafeEndpoint,
    check_endpoint,
)
from gateway.registry.rights import subscribe_views

# protocol.md §4: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h.
DEFAULT_SCHEDULE = (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
# What a subscription may ask instead: each delay finite, from 0 to a week (the default's
# longest is a day), at most 50 attempts (the default makes 10); and a rate from one delivery
# an hour to 10,000 a second. NaN, Infinity or 1e308 made the next attempt's time impossible
# to compute (issue 20, finding 3).
MAX_SCHEDULE_ENTRIES = 50
MAX_RETRY_DELAY_SECONDS = 7 * 86400
MIN_RATE_LIMIT, MAX_RATE_LIMIT = 1 / 3600, 10_000.0
# full: the data and the publisher's JWS (only where every type's view is the whole data);
# fields: the data cut to the agency's field view per type; notice: that something happened.
VIEWS = ("full", "fields", "notice")
SCHEMES = ("v1a", "v1")
STATUSES = ("active", "paused", "disabled")
LOOKUP_SECONDS = 5.0  # the endpoint's name must resolve (and be vetted) within this


def create_subscription(
    session: Session,
    *,
    agency_id: str,
    url: str | None,
    types: Sequence[str],
    now: dt.datetime,
    allowed_hosts: Collection[str],
    region_prefix: str | None = None,
    industry_section: str | None = None,
    grade_level: str | None = None,
    view: str = "full",
    signing: Sequence[str] = ("v1a",),
    retry_schedule: Sequence[float] = DEFAULT_SCHEDULE,
    rate_limit: float | None = None,
) -> Subscription:
    if session.get(Agency, agency_id) is None:
        raise NotFound("unknown_agency", f"no agency {agency_id!r} is registered")
    unknown = sorted(set(types) - set(MESSAGE_TYPES))
    if unknown or not types:
        raise BadRequest("unknown_type", f"subscribe to known message types; unknown: {unknown}")
    if view not in VIEWS and view not in CONNECTORS:
        raise BadRequest(
            "invalid_view",
            f"view must be one of {', '.join(VIEWS)} or a connector: {', '.join(CONNECTORS)}",
        )
    connector = CONNECTORS.get(view)
    if connector is not None:
        agency = session.get(Agency, agency_id)
        if agency is not None and connector.role not in agency.roles:
            raise Forbidden(
                "view_not_permitted",
                f"the {view} connector serves agencies with role {connector.role}; "
                f"{agency_id} has {', '.join(agency.roles)}",
            )
        outside = sorted(set(types) - connector.types)
        if outside:
            raise BadRequest(
                "invalid_view",
                f"the {view} connector makes documents from {', '.join(sorted(connector.types))}"
                f"; not from {', '.join(outside)}",
            )
    views = subscribe_views(session, [agency_id])
    denied = sorted(t for t in set(types) if (agency_id, t) not in views)
    if denied:
        raise Forbidden(
            "not_permitted",
            f"agency {agency_id!r} may not subscribe to {', '.join(denied)} "
            "(grant it first: `gateway agency grant --subscribe`)",
        )
    cut = sorted(t for t in set(types) if views[(agency_id, t)].fields is not None)
    if view == "full" and cut:
        raise Forbidden(
            "view_not_permitted",
            f"the full view carries every field and the publisher's JWS, but {agency_id!r} "
            f"sees only some fields of {', '.join(cut)}: subscribe with view 'fields'",
        )
    if connector is not None and cut:  # its documents are made from the whole message
        raise Forbidden(
            "view_not_permitted",
            f"the {view} connector reads every field of the messages it is made from, but "
            f"{agency_id!r} sees only some fields of {', '.join(cut)}: subscribe with view "
            "'fields', or grant the whole contract first",
        )
    if not signing or set(signing) - set(SCHEMES):
        raise BadRequest("invalid_signing", "signing is v1a (Ed25519), v1 (HMAC) or both")
    if url is not None and len(url) > 500:
        raise BadRequest("invalid_url", "the endpoint URL is longer than 500 characters")
    if industry_section is not None and len(industry_section) != 1:
        raise BadRequest("invalid_filter", "industry_section is one GB/T 4754 section letter")
    if grade_level is not None and len(grade_level) > 16:
        raise BadRequest("invalid_filter", "grade_level is 1, 2, 3 or small_micro")
    if region_prefix is not None and not (region_prefix.isdigit() and len(region_prefix) <= 6):
        raise BadRequest("invalid_filter", "region_prefix is a prefix of a 6-digit division code")
    check_schedule(retry_schedule)
    if rate_limit is not None and not within(rate_limit, MIN_RATE_LIMIT, MAX_RATE_LIMIT):
        raise BadRequest(
            "invalid_rate_limit",
            f"rate_limit is deliveries per second, from {MIN_RATE_LIMIT:.6g} (one an hour) "
            f"to {MAX_RATE_LIMIT:g}; not {rate_limit!r}",
        )
    if url is not None:
        try:
            check_endpoint(url, allowed_hosts, LOOKUP_SECONDS)
        except InvalidEndpoint as exc:
            raise BadRequest("invalid_endpoint", str(exc)) from exc
        except UnsafeEndpoint as exc:
            raise BadRequest("unsafe_endpoint", str(exc)) from exc
        except ResolutionTimeout as exc:
            raise ServiceUnavailable(
                "endpoint_lookup_timeout",
                f"{exc}: the endpoint's name could not be checked now; try again later",
            ) from exc
    subscription = Subscription(
        id=str(uuid.uuid4()),
        agency_id=agency_id,
        url=url,
        types=sorted(set(types)),
        region_prefix=region_prefix,
        industry_section=industry_section.upper() if industry_section else None,
        grade_level=grade_level,
        view=view,
        signing=list(signing),
        hmac_secret=new_hmac_secret() if "v1" in signing else None,
        status="active",
        retry_schedule=list(retry_schedule),
        acked_index=-1,
        created_at=now,
        rate_limit=rate_limit,
        queued=0,
        consecutive_failures=0,
    )
    session.add(subscription)
    return subscription


def within(value: object, low: float, high: float) -> TypeGuard[int | float]:
    """Whether `value` is a real number (not a bool) from `low` to `high`: NaN fails every
    comparison, and infinities and huge integers fail the bounds."""
    return isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high


def check_schedule(schedule: Sequence[object]) -> None:
    if not 1 <= len(schedule) <= MAX_SCHEDULE_ENTRIES:
        raise BadRequest(
            "invalid_schedule",
            f"the retry schedule lists 1 to {MAX_SCHEDULE_ENTRIES} delays, not {len(schedule)}",
        )
    wrong = next((s for s in schedule if not within(s, 0, MAX_RETRY_DELAY_SECONDS)), None)
    if wrong is not None:
        raise BadRequest(
            "invalid_schedule",
            f"each retry delay is a number of seconds from 0 to {MAX_RETRY_DELAY_SECONDS} "
            f"(a week); not {wrong!r}",
        )


def retry_delay(schedule: Sequence[object], attempt: int) -> float:
    """The schedule's delay (seconds) before attempt number `attempt` + 1. A delay the checks
    above would refuse (a row stored before they were made) is read as the default ladder's
    for that attempt, so no row can make its next attempt's time impossible to compute."""
    value = schedule[attempt] if attempt < len(schedule) else None
    if within(value, 0, MAX_RETRY_DELAY_SECONDS):
        return float(value)
    return float(DEFAULT_SCHEDULE[min(attempt, len(DEFAULT_SCHEDULE) - 1)])


def attempts_allowed(schedule: Sequence[object]) -> int:
    """How many attempts the schedule makes (at most MAX_SCHEDULE_ENTRIES, whatever a row
    stored before that bound holds)."""
    return min(len(schedule), MAX_SCHEDULE_ENTRIES)


def get_subscription(session: Session, subscription_id: str) -> Subscription:
    found = session.get(Subscription, subscription_id)
    if found is None:
        raise NotFound("unknown_subscription", f"no subscription {subscription_id}")
    return found


def set_status(
    session: Session, subscription_id: str, status: str, reason: str | None = None
) -> Subscription:
    if status not in STATUSES:
        raise BadRequest("invalid_status", f"status must be one of {', '.join(STATUSES)}")
    subscription = get_subscription(session, subscription_id)
    subscription.status, subscription.status_reason = status, reason
    heads.refresh(session, [subscription_id])  # paused: its queues wait; active: they are due
    return subscription


def list_subscriptions(session: Session, agency_id: str | None = None) -> list[Subscription]:
    query = select(Subscription).order_by(Subscription.created_at)
    if agency_id:
        query = query.where(Subscription.agency_id == agency_id)
    return list(session.scalars(query))


def rotate_hmac_secret(
    session: Session, subscription_id: str, now: dt.datetime, overlap: dt.timedelta
) -> Subscription:
    """A new `whsec_` secret; the old one keeps signing beside it until `now + overlap`."""
    subscription = get_subscription(session, subscription_id)
    if "v1" not in subscription.signing or not subscription.hmac_secret:
        raise BadRequest("invalid_signing", "this subscription does not sign with v1 (HMAC)")
    subscription.previous_hmac_secret = subscription.hmac_secret
    subscription.previous_valid_until = now + overlap
    subscription.hmac_secret = new_hmac_secret()
    return subscription
