"""The gateway's receipt for a published message (protocol.md §2), checked before it is
handed out: the gateway's signature (JWKS, by kid), `typ`, and that it names exactly the bytes
that were sent: their id and their RFC 6962 leaf hash."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from credit_gateway_client.errors import VerificationError
from credit_gateway_client.jose import PublicKey, parse_compact, verify_compact
from credit_gateway_client.merkle import leaf_hash

__all__ = ["RECEIPT_TYP", "Receipt", "verify_receipt"]

RECEIPT_TYP = "gateway-receipt+jws"


@dataclass(frozen=True)
class Receipt:
    """A verified receipt. `message` is the compact JWS that was published (keep it: resend
    exactly it, never a re-signed copy); `jws` the receipt itself (keep it as proof);
    `duplicate` is True when the gateway had the message already (200, the same receipt)."""

    message_id: str
    index: int
    leaf_hash: str  # hex, as in the receipt
    accepted_at: str
    issuer: str
    type: str
    subject: str
    log: str
    jws: str
    message: str
    duplicate: bool = False


def verify_receipt(
    receipt: str,
    message: str,
    gateway_key: Callable[[str], PublicKey],
    *,
    expected: Mapping[str, Any] | None = None,
    duplicate: bool = False,
) -> Receipt:
    """The Receipt of `receipt` over the published `message`; VerificationError unless the
    gateway key of its kid signed it with typ gateway-receipt+jws, it names the message's id
    and leaf hash, and its claims equal `expected` (e.g. the answer's `index`)."""
    kid = str(parse_compact(receipt).header.get("kid", ""))
    claims = verify_compact(receipt, gateway_key(kid), typ=RECEIPT_TYP).claims()
    envelope = parse_compact(message).claims()
    wanted = {
        "message_id": str(envelope.get("id", "")).lower(),
        "leaf_hash": leaf_hash(message.encode()).hex(),
        "issuer": envelope.get("issuer"),
        "type": envelope.get("type"),
        "subject": envelope.get("subject"),
    }
    # what the receipt must say about these bytes, then what the answer around it said
    for name, value in [*wanted.items(), *(expected or {}).items()]:
        if claims.get(name) != value:
            raise VerificationError(
                "receipt_mismatch", f"the receipt's {name} is {claims.get(name)!r}, not {value!r}"
            )
    try:
        return Receipt(
            message_id=str(claims["message_id"]),
            index=int(claims["index"]),
            leaf_hash=str(claims["leaf_hash"]),
            accepted_at=str(claims["accepted_at"]),
            issuer=str(claims["issuer"]),
            type=str(claims["type"]),
            subject=str(claims["subject"]),
            log=str(claims["log"]),
            jws=receipt,
            message=message,
            duplicate=duplicate,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise VerificationError("receipt_mismatch", f"the receipt lacks a claim: {exc}") from exc
