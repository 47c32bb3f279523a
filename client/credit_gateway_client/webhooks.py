"""Receiving push deliveries: Standard Webhooks signatures, `v1a` (Ed25519, the gateway's
`whpk_…` key) and `v1` (HMAC-SHA256, the subscription's `whsec_…` secret), over
`{webhook-id}.{webhook-timestamp}.{body}` (protocol.md §4.3); and the consumer receipt a
receiver may answer with (protocol.md §4.4)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from credit_gateway_client.errors import UnexpectedResponse, WebhookVerificationError
from credit_gateway_client.events import Event
from credit_gateway_client.jose import AgencyKey

__all__ = [
    "CONSUMER_RECEIPT_TYP",
    "TOLERANCE_SECONDS",
    "WebhookKey",
    "consumer_receipt",
    "verify_webhook",
]

TOLERANCE_SECONDS = 300  # Standard Webhooks: reject timestamps more than 5 minutes away
CONSUMER_RECEIPT_TYP = "gateway-consumer-receipt+jws"
WebhookKey = str | Ed25519PublicKey  # "whpk_…", "whsec_…", or the v1a key itself


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookVerificationError("malformed_signature", f"{what} is not base64") from exc


def _keys(
    key_or_secret: WebhookKey | Sequence[WebhookKey],
) -> tuple[list[Ed25519PublicKey], list[bytes]]:
    given = [key_or_secret] if isinstance(key_or_secret, str | Ed25519PublicKey) else key_or_secret
    v1a: list[Ed25519PublicKey] = []
    v1: list[bytes] = []
    for item in given:
        if isinstance(item, Ed25519PublicKey):
            v1a.append(item)
        elif item.startswith("whpk_"):
            v1a.append(Ed25519PublicKey.from_public_bytes(base64.b64decode(item[5:])))
        elif item.startswith("whsec_"):
            v1.append(base64.b64decode(item[6:]))
        else:
            raise ValueError("a webhook key is 'whpk_…' (v1a) or a secret 'whsec_…' (v1)")
    if not v1a and not v1:
        raise ValueError("no webhook key or secret given")
    return v1a, v1


def verify_webhook(
    headers: Mapping[str, str],
    body: bytes,
    key_or_secret: WebhookKey | Sequence[WebhookKey],
    *,
    tolerance: float = TOLERANCE_SECONDS,
    now: float | None = None,
) -> Event:
    """The delivered event, once its signature checks out; WebhookVerificationError (code
    `missing_header`, `timestamp_out_of_tolerance`, `no_valid_signature`, `malformed_body`)
    otherwise: answer such a request 4xx and do not act on it.

    Give the raw body bytes as received. Each kind of key given must be matched by a valid
    signature of its scheme: a `whpk_` key by a `v1a` one, a `whsec_` secret by a `v1` one;
    several keys of one kind (a rotation's overlap) need only one to match."""
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        webhook_id = lower["webhook-id"]
        timestamp = lower["webhook-timestamp"]
        signatures = lower["webhook-signature"].split()
    except KeyError as exc:
        raise WebhookVerificationError("missing_header", f"no {exc.args[0]} header") from None
    if not timestamp.isdigit():
        raise WebhookVerificationError(
            "timestamp_out_of_tolerance", "webhook-timestamp is no number"
        )
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance:
        raise WebhookVerificationError(
            "timestamp_out_of_tolerance", f"webhook-timestamp {timestamp} is too far from now"
        )
    v1a_keys, v1_secrets = _keys(key_or_secret)
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    offered = [part.partition(",")[::2] for part in signatures]
    if v1a_keys and not any(
        _ed25519_ok(key, _b64(sig, "a v1a signature"), signed)
        for scheme, sig in offered
        if scheme == "v1a"
        for key in v1a_keys
    ):
        raise WebhookVerificationError("no_valid_signature", "no v1a signature by the gateway key")
    if v1_secrets and not any(
        hmac.compare_digest(
            hmac.new(secret, signed, hashlib.sha256).digest(), _b64(sig, "a v1 signature")
        )
        for scheme, sig in offered
        if scheme == "v1"
        for secret in v1_secrets
    ):
        raise WebhookVerificationError("no_valid_signature", "no v1 signature with the secret")
    try:
        return Event.from_json(json.loads(body))
    except (ValueError, UnexpectedResponse) as exc:
        raise WebhookVerificationError("malformed_body", f"not a CloudEvent: {exc}") from exc


def _ed25519_ok(key: Ed25519PublicKey, signature: bytes, signed: bytes) -> bool:
    try:
        key.verify(signature, signed)
    except InvalidSignature:
        return False
    return True


def consumer_receipt(key: AgencyKey, event: Event) -> str:
    """The body of a 2xx answer that proves receipt: a compact JWS by the agency's own
    registered key over the event's `message_id` and hex `leaf_hash` (protocol.md §4.4)."""
    claims = {"message_id": event.id, "leaf_hash": event.leaf_hash}
    return key.sign_compact(json.dumps(claims).encode(), typ=CONSUMER_RECEIPT_TYP)
