"""Consumer receipts: a receiver may answer 2xx with a compact JWS, signed by its registered
key, over `{"message_id": …, "leaf_hash": …}`; verified, it is kept as proof of receipt."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.models import AgencyKey, ConsumerReceipt
from keys import jws
from keys.suites import InvalidKeyError, UnknownSuiteError, get_suite


def looks_like_jws(text: str) -> bool:
    return text.count(".") == 2 and text.startswith("ey") and " " not in text


def verify_consumer_receipt(
    session: Session, token: str, *, agency_id: str, message_id: str, leaf_hash: str
) -> tuple[str | None, str]:
    """(kid, "ok") when valid; (None, why not) otherwise."""
    try:
        parsed = jws.parse_compact(token)
    except jws.JWSError as exc:
        return None, f"not a compact JWS: {exc}"
    kid = str(parsed.header.get("kid", ""))
    key = session.get(AgencyKey, kid)
    if key is None or key.agency_id != agency_id or key.status == "revoked":
        return None, f"kid {kid!r} is not an active key of {agency_id}"
    try:
        jws.verify_compact(parsed, get_suite(key.suite).public_key_from_jwk(key.jwk))
        claims: Any = json.loads(parsed.payload)
    except (jws.JWSError, InvalidKeyError, UnknownSuiteError, ValueError) as exc:
        return None, f"signature or payload invalid: {exc}"
    if not isinstance(claims, dict):
        return None, "payload is not an object"
    if str(claims.get("message_id", "")).lower() != message_id:
        return None, "receipt names another message"
    if claims.get("leaf_hash") != leaf_hash:
        return None, "receipt names another leaf hash"
    return kid, "ok"


def store(
    session: Session,
    *,
    delivery_id: int,
    message_id: str,
    agency_id: str,
    kid: str,
    token: str,
    now: dt.datetime,
) -> None:
    session.add(
        ConsumerReceipt(
            delivery_id=delivery_id,
            message_id=message_id,
            agency_id=agency_id,
            kid=kid,
            jws=token,
            received_at=now,
        )
    )


def receipts_for(session: Session, message_id: str) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(ConsumerReceipt)
        .where(ConsumerReceipt.message_id == message_id.lower())
        .order_by(ConsumerReceipt.id)
    )
    return [
        {
            "agency_id": r.agency_id,
            "kid": r.kid,
            "received_at": r.received_at.isoformat(),
            "jws": r.jws,
        }
        for r in rows
    ]
