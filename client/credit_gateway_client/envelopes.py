"""Envelopes (protocol.md §1.1) made ready to publish: `id`, `issued_at`, `issuer` and
`contract` filled when absent, then signed as a compact JWS of typ gateway-message+jws."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from typing import Any

from credit_gateway_client.jose import AgencyKey

__all__ = ["MESSAGE_TYP", "fill_envelope", "newest_majors", "sign_envelope"]

MESSAGE_TYP = "gateway-message+jws"


def newest_majors(contracts: Mapping[str, Any]) -> dict[str, int]:
    """From `GET /v1/contracts`: each message type's newest live major, the one to publish in
    (`gateway publish` fills the same)."""
    majors: dict[str, int] = {}
    for contract in contracts.get("contracts", []):
        if not isinstance(contract, Mapping) or contract.get("kind") != "message":
            continue
        live = [
            v["major"]
            for v in contract.get("versions", [])
            if isinstance(v, Mapping) and v.get("live") and isinstance(v.get("major"), int)
        ]
        if live:
            majors[str(contract["name"])] = max(live)
    return majors


def fill_envelope(
    envelope: Mapping[str, Any], *, issuer: str, contract: int | None, now: dt.datetime
) -> dict[str, Any]:
    """A copy with a new UUID `id`, `issued_at` = `now` (full precision: a message dated to
    the second could fall before its key's registration), `issuer` and `contract`, each only
    where the caller left it out."""
    filled = dict(envelope)
    filled.setdefault("id", str(uuid.uuid4()))
    filled.setdefault("issued_at", now.isoformat())
    filled.setdefault("issuer", issuer)
    if "contract" not in filled and contract is not None:
        filled["contract"] = contract
    return filled


def sign_envelope(envelope: Mapping[str, Any], key: AgencyKey) -> str:
    """The compact JWS of `envelope` as I-JSON (RFC 7493: UTF-8, no NaN), typ
    gateway-message+jws. Its bytes are the message: keep them to resend."""
    payload = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return key.sign_compact(payload.encode("utf-8"), typ=MESSAGE_TYP)
