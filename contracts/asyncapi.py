"""The AsyncAPI 3.0.0 document of the gateway's channels, generated from the contract registry:
publishing, push delivery per message type, and the pull feed, from an agency's point of view
(it sends messages; it receives deliveries and feed pages).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from contracts.versions import ContractRegistry, ContractVersion, envelope_schema
from contracts.wire_schemas import (
    batch_results_schema,
    batch_schema,
    cloud_event_schema,
    delivery_data,
    envelope_for,
    feed_page_schema,
    problem_schema,
    receipt_schema,
    webhook_headers_schema,
)

__all__ = ["ASYNCAPI_VERSION", "SCHEMA_FORMAT", "asyncapi_document"]

ASYNCAPI_VERSION = "3.0.0"
# AsyncAPI's format table names JSON Schema draft-07 only, which cannot say what our 2020-12
# contracts say; a Multi Format Schema Object may name any format (AsyncAPI 3.0.0 §4.3.8).
SCHEMA_FORMAT = "application/schema+json;version=draft-2020-12"
_HTTP_BINDING = "0.3.0"


def asyncapi_document(
    registry: ContractRegistry,
    *,
    base_url: str,
    api_version: str = "0.1.0",
    max_feed_limit: int = 500,
    max_batch_items: int = 1000,
) -> dict[str, Any]:
    """The document for a gateway at `base_url` (e.g. `https://gateway.example`)."""
    live = registry.versions(live_only=True)
    messages = [v for v in live if v.kind == "message"]
    envelope = envelope_schema()
    batch = ["batch", "batchResults", "problem"]
    channels: dict[str, Any] = {
        "publish": _publish_channel(messages),
        "publishBatch": _channel("/v1/messages/batch", "gateway", batch),
        "feed": _feed_channel(),
    }
    operations: dict[str, Any] = {
        "publishBatch": _operation(
            "send",
            "publishBatch",
            sends=["batch"],
            replies=["batchResults", "problem"],
            method="POST",
            security="publishToken",
            description=f"Publish up to {max_batch_items} signed messages at once; each is "
            "answered on its own.",
        ),
        "readFeed": _feed_operation(max_feed_limit),
    }
    shared = _shared_messages(envelope, messages, max_feed_limit, max_batch_items)
    for version in messages:
        _add_message_type(version, envelope, channels, operations, shared)
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": _info(api_version),
        "defaultContentType": "application/json",
        "servers": _servers(base_url),
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": _contract_schemas(live),
            "messages": shared,
            "securitySchemes": _security(base_url.rstrip("/")),
        },
    }


def _add_message_type(
    version: ContractVersion,
    envelope: dict[str, Any],
    channels: dict[str, Any],
    operations: dict[str, Any],
    messages: dict[str, Any],
) -> None:
    """Publishing and push delivery of one message type at one major."""
    key = _key(version)
    channels[f"delivery.{key}"] = _delivery_channel(key)
    messages[f"publish.{key}"] = _publish_message(envelope, version)
    messages[f"delivery.{key}"] = _delivery_message(envelope, version)
    operations[f"publish.{key}"] = _operation(
        "send",
        "publish",
        sends=[key],
        replies=["receipt", "problem"],
        method="POST",
        security="publishToken",
        description=f"Publish a signed {version.name} (contract major {version.major}): 201 "
        "and a receipt, 200 and the same receipt for an identical resend, else a problem.",
    )
    operations[f"receive.{key}"] = _operation(
        "receive",
        f"delivery.{key}",
        sends=["event"],
        replies=["consumerReceipt"],
        description=f"Receive {version.name} at the subscription's url and answer 2xx "
        "(optionally with a signed consumer receipt). Failures are retried (protocol.md §4), "
        "410 disables the endpoint, 429/503 with Retry-After are honoured; one enterprise's "
        "messages arrive in log order.",
    )


def _info(api_version: str) -> dict[str, Any]:
    return {
        "title": "Work-safety credit and incentive data-exchange gateway",
        "version": api_version,
        "description": (
            "Agencies publish signed decisions about enterprises and learn of them by push "
            "(CloudEvents, Standard Webhooks signatures) or from a pull feed. Every message "
            "type is a versioned contract: a strict producer schema (what publishing accepts) "
            "and a tolerant consumer schema (unknown fields ignored); see GET /v1/contracts. "
            "Schemas are JSON Schema 2020-12."
        ),
        "license": {"name": "Apache-2.0"},
    }


def _key(version: ContractVersion) -> str:
    return f"{version.name}.v{version.major}"


def _ref(*path: str) -> dict[str, str]:
    # RFC 6901 escaping; our keys hold dots but never "/" or "~".
    return {"$ref": "#/" + "/".join(path)}


def _multi(schema: dict[str, Any]) -> dict[str, Any]:
    return {"schemaFormat": SCHEMA_FORMAT, "schema": schema}


def _servers(base_url: str) -> dict[str, Any]:
    url = urlsplit(base_url)
    gateway: dict[str, Any] = {
        "host": url.netloc,
        "protocol": url.scheme or "https",
        "description": "The gateway's HTTP API.",
    }
    if url.path.strip("/"):
        gateway["pathname"] = url.path.rstrip("/")
    agency = {
        "host": "{endpoint}",
        "protocol": "https",
        "description": "An agency's webhook endpoint: where its subscription's url points.",
        "variables": {"endpoint": {"description": "host[:port] of the subscription's url"}},
    }
    return {"gateway": gateway, "agency": agency}


def _channel(address: str | None, server: str, messages: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "address": address,
        "servers": [_ref("servers", server)],
        "messages": {name: _ref("components", "messages", name) for name in messages},
        **extra,
    }


def _publish_channel(messages: list[ContractVersion]) -> dict[str, Any]:
    channel = _channel("/v1/messages", "gateway", ["receipt", "problem"])
    channel["messages"] = {
        _key(v): _ref("components", "messages", f"publish.{_key(v)}") for v in messages
    } | channel["messages"]
    channel["description"] = "POST one compact JWS (`Content-Type: application/jose`)."
    return channel


def _delivery_channel(key: str) -> dict[str, Any]:
    channel = _channel(None, "agency", ["consumerReceipt"])
    channel["messages"] = {"event": _ref("components", "messages", f"delivery.{key}")} | channel[
        "messages"
    ]
    channel["description"] = (
        "The subscription's url (its address is known only at run time). A subscription with "
        "no url reads the same events from the feed."
    )
    return channel


def _feed_channel() -> dict[str, Any]:
    return _channel(
        "/v1/subscriptions/{subscription_id}/feed",
        "gateway",
        ["feedPage", "problem"],
        parameters={"subscription_id": {"description": "The subscription's id."}},
        description="A subscription as a feed, ascending by log index (protocol.md §5).",
    )


def _operation(
    action: str,
    channel: str,
    *,
    sends: list[str],
    replies: list[str],
    description: str,
    method: str | None = None,
    security: str | None = None,
) -> dict[str, Any]:
    """An operation on `channel`; `sends` and `replies` name messages of that channel."""
    operation: dict[str, Any] = {
        "action": action,
        "channel": _ref("channels", channel),
        "messages": [_ref("channels", channel, "messages", m) for m in sends],
        "description": description,
    }
    if replies:
        operation["reply"] = {
            "channel": _ref("channels", channel),
            "messages": [_ref("channels", channel, "messages", m) for m in replies],
        }
    if method is not None:
        operation["bindings"] = {"http": {"method": method, "bindingVersion": _HTTP_BINDING}}
    if security is not None:
        operation["security"] = [_ref("components", "securitySchemes", security)]
    return operation


def _feed_operation(max_limit: int) -> dict[str, Any]:
    operation = _operation(
        "receive",
        "feed",
        sends=["feedPage"],
        replies=[],
        method="GET",
        security="subscribeToken",
        description="Read the feed: GET with `after` (the last log index seen; default: the "
        "acknowledged cursor) and `limit`; POST …/ack moves the cursor. Items are the delivery "
        "events.",
    )
    operation["bindings"]["http"]["query"] = {
        "type": "object",
        "properties": {
            "after": {"type": "integer", "minimum": -1},
            "limit": {"type": "integer", "minimum": 1, "maximum": max_limit, "default": 100},
        },
    }
    return operation


def _publish_message(envelope: dict[str, Any], version: ContractVersion) -> dict[str, Any]:
    return {
        "name": version.name,
        "title": str(version.producer.get("title", version.name)),
        "summary": f"A signed {version.name} message, contract major {version.major}.",
        "description": (
            "The body is a compact JWS (RFC 7515) signed by a registered key of the issuing "
            "agency; its payload is the JSON envelope described here, `data` following the "
            "type's strict producer schema (unknown fields are refused)."
        ),
        "contentType": "application/jose",
        "payload": _multi(envelope_for(envelope, version.name, version.major, version.producer)),
    }


def _delivery_message(envelope: dict[str, Any], version: ContractVersion) -> dict[str, Any]:
    data = delivery_data(envelope, version.name, version.consumer)
    return {
        "name": version.name,
        "title": f"{version.name} delivered",
        "summary": f"A {version.name} event (CloudEvents 1.0, Standard Webhooks signatures).",
        "description": (
            "`data` is the whole message (the type's tolerant consumer schema; the publisher's "
            "JWS travels in `jws`), the fields the agency's subscribe right names, or the "
            "notice view, as the subscription and the right allow."
        ),
        "contentType": "application/cloudevents+json",
        "headers": webhook_headers_schema(),
        "payload": _multi(cloud_event_schema(envelope, version.name, data)),
    }


def _shared_messages(
    envelope: dict[str, Any], messages: list[ContractVersion], max_limit: int, max_items: int
) -> dict[str, Any]:
    item = cloud_event_schema(envelope, sorted({v.name for v in messages}), {"type": "object"})
    return {
        "receipt": {"name": "receipt", "payload": _multi(receipt_schema())},
        "problem": {
            "name": "problem",
            "contentType": "application/problem+json",
            "payload": _multi(problem_schema()),
        },
        "batch": {"name": "batch", "payload": _multi(batch_schema(max_items))},
        "batchResults": {"name": "batchResults", "payload": _multi(batch_results_schema())},
        "feedPage": {"name": "feedPage", "payload": _multi(feed_page_schema(item, max_limit))},
        "consumerReceipt": {
            "name": "consumerReceipt",
            "summary": "A receiver's signed receipt (optional 2xx body).",
            "description": "Compact JWS by the agency's registered key over `message_id` and "
            "`leaf_hash`; the gateway verifies and keeps it as proof of receipt.",
            "contentType": "application/jose",
            "payload": _multi({"type": "string"}),
        },
    }


def _contract_schemas(live: list[ContractVersion]) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for version in live:
        schemas[f"{_key(version)}.producer"] = _multi(version.producer)
        schemas[f"{_key(version)}.consumer"] = _multi(version.consumer)
    return schemas


def _security(base_url: str) -> dict[str, Any]:
    def token(scope: str, what: str) -> dict[str, Any]:
        return {
            "type": "oauth2",
            "description": f"Bearer token with scope `{scope}` ({what}), from the token "
            "endpoint by client credentials with `private_key_jwt` (RFC 7523).",
            "flows": {
                "clientCredentials": {
                    "tokenUrl": f"{base_url}/v1/oauth/token",
                    "availableScopes": {scope: what},
                }
            },
            "scopes": [scope],
        }

    return {
        "publishToken": token("publish", "publish messages signed by the agency's keys"),
        "subscribeToken": token("subscribe", "read the agency's own subscription feeds"),
    }
