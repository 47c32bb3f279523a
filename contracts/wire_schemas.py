"""JSON Schemas (2020-12) of the bodies around the contracts on the wire (protocol.md §1-5): the
signed envelope of one type, the CloudEvents delivery body and its notice view, the feed page,
the receipt, the problem document and the batch. The AsyncAPI document is built from them.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from contracts.versions import DRAFT_2020_12

__all__ = [
    "DRAFT_2020_12",
    "batch_results_schema",
    "batch_schema",
    "cloud_event_schema",
    "delivery_data",
    "envelope_for",
    "feed_page_schema",
    "problem_schema",
    "receipt_schema",
    "webhook_headers_schema",
]

JWS_COMPACT = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"  # RFC 7515 §7.1
HEX_SHA256 = "^[0-9a-f]{64}$"
_NOTICE_FIELDS = ("type", "subject", "issuer", "issued_at")


def envelope_for(
    envelope: Mapping[str, Any], message_type: str, major: int, data: Any
) -> dict[str, Any]:
    """The envelope schema narrowed to one type and major, its `data` the type's schema."""
    schema = copy.deepcopy(dict(envelope))
    schema.pop("$id", None)
    schema["title"] = f"{message_type} v{major}: the signed envelope"
    props = schema["properties"]
    props["type"] = {"description": props["type"]["description"], "const": message_type}
    props["contract"] = {"description": props["contract"]["description"], "const": major}
    props["data"] = _embedded(data)
    return schema


def cloud_event_schema(
    envelope: Mapping[str, Any], message_type: str | Sequence[str], data: Any
) -> dict[str, Any]:
    """A CloudEvents 1.0 structured body as the gateway sends it (push and feed alike).
    Tolerant like every consumer schema: CloudEvents receivers must ignore unknown attributes."""
    props = envelope["properties"]
    kind = (
        {"const": message_type}
        if isinstance(message_type, str)
        else {"type": "string", "enum": list(message_type)}
    )
    return {
        "$schema": DRAFT_2020_12,
        "title": "CloudEvents 1.0 structured body (protocol.md §4)",
        "type": "object",
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {"description": "The message id (the envelope's `id`).", **_plain(props["id"])},
            "source": {
                "description": "The gateway's log origin.",
                "type": "string",
                "minLength": 1,
            },
            "type": {"description": "The message type.", **kind},
            "subject": {"description": "The enterprise's USCC.", **_plain(props["subject"])},
            "time": {
                "description": "When the gateway accepted the message (RFC 3339).",
                "type": "string",
                "format": "date-time",
            },
            "datacontenttype": {"const": "application/json"},
            "sequence": {
                "description": "The message's log index, decimal, zero-padded to 20 digits so "
                "that it sorts as text (CloudEvents `sequence`).",
                "type": "string",
                "pattern": "^[0-9]{20}$",
            },
            "subseq": {
                "description": "This subscription's own delivery count 1, 2, 3 …: a gap is a "
                "missed delivery.",
                "type": "integer",
                "minimum": 1,
            },
            "leafhash": {
                "description": "Hex RFC 6962 leaf hash of the publisher's JWS in the log.",
                "type": "string",
                "pattern": HEX_SHA256,
            },
            "data": data,
            "jws": {
                "description": "With the full view: the publisher's compact JWS (proof of origin).",
                "type": "string",
                "pattern": JWS_COMPACT,
            },
        },
        "required": [
            "specversion",
            "id",
            "source",
            "type",
            "subject",
            "time",
            "datacontenttype",
            "sequence",
            "subseq",
            "leafhash",
            "data",
        ],
    }


def delivery_data(envelope: Mapping[str, Any], message_type: str, consumer: Any) -> dict[str, Any]:
    """`data` of a delivery, as the subscription's view and its agency's right allow: the whole
    message (the type's consumer schema), a projection on some of its fields (the same schema,
    no field required), or the notice (no content: who published what about whom, when)."""
    props = envelope["properties"]
    projection = {k: v for k, v in _embedded(consumer).items() if k not in ("$id", "required")}
    projection["title"] = f"{message_type}: the fields the agency's right names"
    notice = {
        "title": f"{message_type}: notice view (no content)",
        "type": "object",
        "properties": {
            "type": {"const": message_type},
            **{name: _plain(props[name]) for name in _NOTICE_FIELDS[1:]},
        },
        "required": list(_NOTICE_FIELDS),
    }
    return {"anyOf": [_embedded(consumer), projection, notice]}


def feed_page_schema(item: Mapping[str, Any], max_limit: int) -> dict[str, Any]:
    return {
        "$schema": DRAFT_2020_12,
        "title": "A page of a subscription's pull feed (protocol.md §5)",
        "type": "object",
        "properties": {
            "subscription": {"type": "string"},
            "after": {"description": "The cursor this page starts after.", "type": "integer"},
            "items": {"type": "array", "maxItems": max_limit, "items": _embedded(item)},
            "next": {"description": "The cursor to pass as `after` next.", "type": "integer"},
            "has_more": {"type": "boolean"},
        },
        "required": ["subscription", "after", "items", "next", "has_more"],
    }


def receipt_schema() -> dict[str, Any]:
    return {
        "$schema": DRAFT_2020_12,
        "title": "Receipt (protocol.md §2)",
        "type": "object",
        "properties": {
            "message_id": {"type": "string"},
            "index": {"description": "The message's log index.", "type": "integer", "minimum": 0},
            "leaf_hash": {"type": "string", "pattern": HEX_SHA256},
            "receipt": {
                "description": "Compact JWS by the gateway (GET /.well-known/jwks.json).",
                "type": "string",
                "pattern": JWS_COMPACT,
            },
        },
        "required": ["message_id", "index", "leaf_hash", "receipt"],
    }


def problem_schema() -> dict[str, Any]:
    return {
        "$schema": DRAFT_2020_12,
        "title": "Problem details (RFC 9457) with a stable `code`",
        "type": "object",
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "code": {"description": "Stable, machine-readable (protocol.md §1).", "type": "string"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
        },
        "required": ["type", "title", "status", "code", "detail"],
    }


def batch_schema(max_items: int) -> dict[str, Any]:
    return {
        "$schema": DRAFT_2020_12,
        "title": "A batch of signed messages",
        "type": "object",
        "properties": {
            "messages": {
                "type": "array",
                "maxItems": max_items,
                "items": {"type": "string", "pattern": JWS_COMPACT},
            }
        },
        "required": ["messages"],
    }


def batch_results_schema() -> dict[str, Any]:
    receipt = receipt_schema()["properties"]
    item = {
        "type": "object",
        "properties": {
            "status": {
                "description": "201, 200 (identical resend) or the problem's status.",
                "type": "integer",
            },
            "message_id": {"type": ["string", "null"]},
            "index": {"type": ["integer", "null"]},
            "leaf_hash": {"anyOf": [receipt["leaf_hash"], {"type": "null"}]},
            "receipt": {"anyOf": [receipt["receipt"], {"type": "null"}]},
            "problem": {"anyOf": [_embedded(problem_schema()), {"type": "null"}]},
        },
        "required": ["status"],
    }
    return {
        "$schema": DRAFT_2020_12,
        "title": "Per-item answers to a batch, in its order",
        "type": "object",
        "properties": {
            "accepted": {"type": "integer", "minimum": 0},
            "duplicates": {"type": "integer", "minimum": 0},
            "rejected": {"type": "integer", "minimum": 0},
            "results": {"type": "array", "items": item},
        },
        "required": ["accepted", "duplicates", "rejected", "results"],
    }


def webhook_headers_schema() -> dict[str, Any]:
    """Standard Webhooks headers (protocol.md §4), in the AsyncAPI Schema Object's draft-07
    subset so that the AsyncAPI schema itself checks it."""
    return {
        "type": "object",
        "properties": {
            "webhook-id": {
                "description": "`msg_<message id>.<subscription id>`: the same on every retry "
                "and replay of one message to one subscription; deduplicate on it.",
                "type": "string",
            },
            "webhook-timestamp": {
                "description": "Unix seconds of this attempt (every attempt is signed afresh).",
                "type": "string",
                "pattern": "^[0-9]+$",
            },
            "webhook-signature": {
                "description": "Space-separated `v1a,<base64 Ed25519>` (key `whpk_…` on the "
                "subscription) and/or `v1,<base64 HMAC-SHA256>` (secret `whsec_…`) over "
                "`{webhook-id}.{webhook-timestamp}.{body}`; two of a kind during a rotation.",
                "type": "string",
                "pattern": "^v1a?,[A-Za-z0-9+/=]+( v1a?,[A-Za-z0-9+/=]+)*$",
            },
            "content-type": {"type": "string", "enum": ["application/cloudevents+json"]},
        },
        "required": ["webhook-id", "webhook-timestamp", "webhook-signature"],
    }


def _embedded(schema: Any) -> Any:
    """A schema placed inside another: its `$schema` goes (the outer one names the dialect),
    its `$id` stays, making it an embedded resource (2020-12 §9.2)."""
    if not isinstance(schema, Mapping):
        return schema
    return {k: copy.deepcopy(v) for k, v in schema.items() if k != "$schema"}


def _plain(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k not in ("description", "title")}
