"""The agency registry and the admin API over rights, scopes, status and rate limits: what
its routes take and answer. Times are ISO 8601 strings (UTC)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class RightIn(BaseModel):
    fields: list[str] | None = Field(
        default=None, description="the field view; null or absent: the whole contract"
    )


class AgencyStatusIn(BaseModel):
    status: Literal["active", "disabled"] = Field(
        description="disabled: no token is issued to the agency, its tokens and messages are "
        "refused, its push deliveries wait; active: enabled again"
    )
    reason: str | None = Field(default=None, max_length=500, description="why, for the log")


class RateLimitIn(BaseModel):
    per_second: float | None = Field(default=None, description="null with burst: the default")
    burst: int | None = None


class AgencyKey(BaseModel):
    kid: str
    suite: str
    status: str
    valid_from: str
    valid_to: str | None
    jwk: dict[str, Any] = Field(description="the public key (RFC 7517)")


class Agency(BaseModel):
    id: str
    name: str
    uscc: str
    roles: list[str]
    status: str = Field(description="`active` or `disabled`")
    status_changed_at: str | None
    status_reason: str | None
    publish: list[str] = Field(description="message types it may publish")
    keys: list[AgencyKey]


class Agencies(BaseModel):
    agencies: list[Agency]


class AgencyStatusChanged(BaseModel):
    agency_id: str
    status: str = Field(description="`active` or `disabled`")
    status_changed_at: str | None
    status_reason: str | None


class RateLimit(BaseModel):
    per_second: float
    burst: int


class Rights(BaseModel):
    agency_id: str
    publish: list[str]
    subscribe: dict[str, list[str] | None] = Field(
        description="message type: the data fields it sees (null: all of them)"
    )
    query: dict[str, list[str] | None] = Field(
        description="query view (e.g. `standing`): its fields (null: all of them)"
    )
    read: list[str] = Field(description="message types it may read whole (the JWS)")
    scopes: list[str]
    rate_limit: RateLimit | None = Field(description="null: the default")
