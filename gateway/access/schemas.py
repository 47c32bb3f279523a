"""The token endpoint's answers (RFC 6749 §5.1) and refusals (§5.2, with the problem members
every other route answers with)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TokenAnswer(BaseModel):
    """RFC 6749 §5.1 access token response."""

    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int = Field(description="seconds")
    scope: str = Field(description="the scopes granted, space-separated")


class OAuthError(BaseModel):
    """RFC 6749 §5.2 error response, with the gateway's problem members beside it."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(
        description="invalid_client, invalid_scope, unsupported_grant_type or invalid_request"
    )
    error_description: str
    code: str = Field(description="the gateway's stable problem code, e.g. wrong_audience")
    status: int
    detail: str
