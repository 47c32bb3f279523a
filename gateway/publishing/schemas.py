"""Publishing's request and answers: a receipt per accepted message, a batch answered per
item, and a stored message as a caller may see it. The hot paths build their JSON by hand
(orjson) in exactly these shapes; the models are the document's."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from gateway.transparency.schemas import VIEW, View


class ReceiptOut(BaseModel):
    message_id: str
    index: int
    leaf_hash: str = Field(description="hex SHA-256(0x00 || JWS bytes), RFC 6962 leaf hash")
    receipt: str = Field(description="compact JWS signed by the gateway (see JWKS)")


class BatchIn(BaseModel):
    messages: list[str] = Field(description="compact JWS strings, at most 1,000")


class BatchItemOut(BaseModel):
    status: int
    message_id: str | None = None
    index: int | None = None
    leaf_hash: str | None = None
    receipt: str | None = None
    problem: dict[str, Any] | None = None


class BatchOut(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    results: list[BatchItemOut]


class StoredMessage(BaseModel):
    """A stored message: its log index and leaf hash; the JWS and receipt for whom may read
    it whole, else what its subscribe view shows (`fields`) or nothing (`hashes`); absent
    keys are not shown to this caller."""

    message_id: str
    index: int
    kind: str
    leaf_hash: str
    view: View = Field(description=VIEW)
    type: str | None = None
    issuer: str | None = None
    subject: str | None = None
    issued_at: str | None = None
    accepted_at: str | None = None
    receipt: str | None = None
    jws: str | None = Field(default=None, description="the exact JWS, for `raw` only")
    data: dict[str, Any] | None = Field(default=None, description="for `fields` only")
