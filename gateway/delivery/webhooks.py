"""Standard Webhooks signatures and CloudEvents bodies (protocol.md §4).

Signed content is `{webhook-id}.{webhook-timestamp}.{body}`; `v1` is base64 HMAC-SHA256 with
the subscription's `whsec_` secret, `v1a` base64 Ed25519 with the gateway's webhook key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from keys.suites import SigningKey

SECRET_PREFIX = "whsec_"  # noqa: S105 -- the format's prefix, not a secret
PUBLIC_PREFIX = "whpk_"


def new_hmac_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def public_key_text(key: SigningKey) -> str:
    """The v1a verification key as Standard Webhooks writes it (`whpk_` + base64)."""
    return PUBLIC_PREFIX + base64.b64encode(key.public_key.raw_public_bytes()).decode()


def signed_content(webhook_id: str, timestamp: int, body: bytes) -> bytes:
    return f"{webhook_id}.{timestamp}.".encode() + body


def signature_header(
    webhook_id: str,
    timestamp: int,
    body: bytes,
    *,
    schemes: Sequence[str],
    hmac_secrets: Sequence[str],
    ed25519_keys: Sequence[SigningKey],
) -> str:
    """The `webhook-signature` value; during a rotation both secrets or keys sign."""
    content = signed_content(webhook_id, timestamp, body)
    parts = []
    if "v1a" in schemes:
        for key in ed25519_keys:  # two during a key rotation's overlap
            parts.append("v1a," + base64.b64encode(key.sign(content)).decode())
    if "v1" in schemes:
        for text in hmac_secrets:
            secret = base64.b64decode(text.removeprefix(SECRET_PREFIX))
            digest = hmac.new(secret, content, hashlib.sha256).digest()
            parts.append("v1," + base64.b64encode(digest).decode())
    return " ".join(parts)


def cloud_event(
    *,
    source: str,
    message_id: str,
    message_type: str,
    subject: str,
    time: str,
    sequence: int,
    subseq: int,
    leaf_hash: bytes,
    data: Mapping[str, Any],
    jws: str | None,
    dataschema: str | None = None,
) -> bytes:
    """CloudEvents 1.0 structured JSON; `sequence` is the log index zero-padded to 20 digits,
    `leafhash` its leaf hash, `subseq` the subscription's own consecutive count (a gap in it is
    a missed delivery)."""
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": message_id,
        "source": source,
        "type": message_type,
        "subject": subject,
        "time": time,
        "datacontenttype": "application/json",
        "sequence": f"{sequence:020d}",  # sorts as text (the extension's rule)
        "subseq": subseq,
        "leafhash": leaf_hash.hex(),
        "data": dict(data),
    }
    if dataschema is not None:  # a connector's document: the view contract it meets
        event["dataschema"] = dataschema
    if jws is not None:
        event["jws"] = jws  # the publisher's own signature travels with the full view
    return orjson.dumps(event)
