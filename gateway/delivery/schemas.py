"""Subscriptions, their pull feed and cursor, dead letters and delivery health: what the
delivery routes take and answer. Times are ISO 8601 strings as stored (UTC)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from gateway.delivery import subscriptions

Number = int | float  # as stored: a schedule of [1, 5] is answered [1, 5], not [1.0, 5.0]


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


class SubscriptionStatusIn(BaseModel):
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


class RotateIn(BaseModel):
    overlap_hours: float = Field(24, ge=0, le=24 * 30)


class SkipIn(BaseModel):
    log_indexes: list[int] = Field(min_length=1, max_length=500)
    reason: str | None = Field(None, max_length=200, description="why (recorded)")


class Filters(BaseModel):
    region_prefix: str | None
    industry_section: str | None
    grade_level: str | None


class SubscriptionOut(BaseModel):
    id: str
    agency_id: str
    url: str | None = Field(description="push endpoint; null: a pull-only feed")
    types: list[str]
    filters: Filters
    view: str
    signing: list[str] = Field(description="`v1a` (Ed25519), `v1` (HMAC) or both")
    v1a_public_key: str = Field(description="the key v1a signatures verify with now")
    v1a_public_keys: list[str] = Field(description="every key a v1a signature may carry now")
    status: str
    status_reason: str | None
    retry_schedule: list[Number]
    rate_limit: Number | None
    acked_index: int
    hmac_secret: str | None = Field(
        default=None, description="the v1 secret: shown once, at creation or rotation"
    )


class SubscriptionRotated(SubscriptionOut):
    previous_valid_until: str | None = Field(
        description="the previous secret is still signed with until then"
    )


class SubscriptionListed(SubscriptionOut):
    deliveries: dict[str, int] = Field(
        description="deliveries by status, and `consumer_receipts` received"
    )


class SubscriptionList(BaseModel):
    items: list[SubscriptionListed]


class ParkedItem(BaseModel):
    sequence: str
    reason: str


class FeedPage(BaseModel):
    subscription: str
    after: int
    items: list[dict[str, Any]] = Field(description="CloudEvents, as pushed (protocol.md §4)")
    parked: list[ParkedItem] = Field(
        description="documents the connector's view contract refused: never sent"
    )
    next: int = Field(description="the cursor to pass as `after` (and to acknowledge)")
    has_more: bool


class Acked(BaseModel):
    acked_index: int


class DeadLetter(BaseModel):
    delivery_id: int
    log_index: int
    message_id: str
    enterprise: str | None
    attempts: int
    last_error: str | None


class DeadLetters(BaseModel):
    items: list[DeadLetter]


class Replayed(BaseModel):
    replayed: int


class Skipped(BaseModel):
    skipped: int


class ConsumerReceipt(BaseModel):
    agency_id: str
    kid: str
    received_at: str
    jws: str


class ConsumerReceipts(BaseModel):
    message_id: str
    receipts: list[ConsumerReceipt]


class SubscriptionHealth(BaseModel):
    subscription_id: str
    agency_id: str
    endpoint_host: str | None
    status: str
    attempts_24h: int
    succeeded_24h: int
    success_rate_24h: float | None
    mean_latency_ms_24h: float | None
    breaker_open_until: str | None
    consecutive_failures: int
    last_error: str | None
    last_error_at: str | None
    next_attempt_at: str | None
    deliveries: dict[str, int]


class HealthReport(BaseModel):
    subscriptions: list[SubscriptionHealth]


class DeliveryRow(BaseModel):
    subscription_id: str
    agency_id: str
    endpoint_host: str | None
    log_index: int
    message_id: str
    type: str
    enterprise: str | None
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: str | None


class FailingReport(BaseModel):
    subscriptions: list[SubscriptionHealth]
    deliveries: list[DeliveryRow]


class StuckDeliveries(BaseModel):
    items: list[DeliveryRow]
