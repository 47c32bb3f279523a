"""Publishing's request and answers: a receipt per accepted message, a batch answered per
item, and a stored message as a caller may see it. The hot paths build their JSON by hand
(orjson) in exactly these shapes; the models are the document's."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from gateway.transparency.schemas import MessageFacts

# A receipt the gateway gave (docs/protocol.md §2): the message, its log index and leaf hash.
RECEIPT_EXAMPLE: dict[str, JsonValue] = {
    "message_id": "7cc31130-de06-44c1-8a2b-490cc20329a5",
    "index": 1000,
    "leaf_hash": "328f91d970bba2df2a4cd429af9f8dd244441ccfc722e08d9ec7357364082463",
    "receipt": (
        "eyJhbGciOiJFZERTQSIsImtpZCI6ImI0NzRfQjdwMGp3UmZka3JRdmJMdGpHV2Y4Z290MElDODdxWTVoMDkw"
        "U2ciLCJ0eXAiOiJnYXRld2F5LXJlY2VpcHQrandzIn0.eyJtZXNzYWdlX2lkIjoiN2NjMzExMzAtZGUwNi00"
        "NGMxLThhMmItNDkwY2MyMDMyOWE1IiwiaW5kZXgiOjEwMDAsImxlYWZfaGFzaCI6IjMyOGY5MWQ5NzBiYmEy"
        "ZGYyYTRjZDQyOWFmOWY4ZGQyNDQ0NDFjY2ZjNzIyZTA4ZDllYzczNTczNjQwODI0NjMiLCJhY2NlcHRlZF9h"
        "dCI6IjIwMjYtMTItMDdUMDg6NDg6MDEuNTM0NTI2KzAwOjAwIiwiaXNzdWVyIjoiZmoteWp0IiwidHlwZSI6"
        "ImdyYWRlLnJldm9rZWQiLCJzdWJqZWN0IjoiOTEzNTAyMDNBWTRDTDEyVDJQIiwibG9nIjoiZ2F0ZXdheS5l"
        "eGFtcGxlL2xvZyJ9.lJrJC8gPdolDnAUE68ruGM2wDa3zq_9PQ--qe-wvVr-RheYGoYiGCh3uk0HGkiNRONg"
        "dWnhQLKZPviUOKdsEDQ"
    ),
}


class ReceiptOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [RECEIPT_EXAMPLE]})

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


class StoredMessage(MessageFacts):
    """A stored message: its log index and leaf hash; the JWS and receipt for whom may read
    it whole, else what its subscribe view shows (`fields`) or nothing (`hashes`); absent
    keys are not shown to this caller."""

    message_id: str
    index: int
    kind: str
    leaf_hash: str
