"""Stateless checks of one published JWS, in the order that trusts nothing unverified.

Signature first (with the suite the key's registry record names), then the envelope's
contract, then who may say what. Domain rules that need enterprise state come later.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from contracts.registry import ContractError, parse_json, validate_message
from gateway.errors import BadRequest, Forbidden, Unauthorized, check_uscc
from keys import jws
from keys.suites import InvalidKeyError, UnknownSuiteError, VerifyingKey, get_suite

_NUL_ESCAPE = b"\\u0000"
MESSAGE_TYPS = frozenset({"gateway-message+jws", "application/gateway-message+jws"})


@dataclass(frozen=True)
class KeyRecord:
    """What verification needs of a key's registry row (agency_keys)."""

    kid: str
    agency_id: str
    suite: str
    jwk: Mapping[str, Any]
    status: str
    valid_from: dt.datetime
    valid_to: dt.datetime | None
    agency_status: str = "active"  # the owner's: a disabled agency's messages are refused


@dataclass(frozen=True)
class Verified:
    raw: bytes
    envelope: dict[str, Any]
    kid: str
    issued_at: dt.datetime

    @property
    def message_id(self) -> str:
        return str(self.envelope["id"]).lower()


class KeyCache:
    """Public keys by kid, built once per JWK (a kid is the JWK's own thumbprint)."""

    def __init__(self) -> None:
        self._keys: dict[str, VerifyingKey] = {}

    def get(self, record: KeyRecord) -> VerifyingKey:
        key = self._keys.get(record.kid)
        if key is None:
            try:
                # The registry record names the suite; the JWS header never chooses it.
                key = get_suite(record.suite).public_key_from_jwk(record.jwk)
            except (InvalidKeyError, UnknownSuiteError) as exc:
                raise Unauthorized(
                    "unknown_key", f"registered key {record.kid} is unusable"
                ) from exc
            self._keys[record.kid] = key
        return key


def peek_kid(raw: bytes) -> tuple[jws.ParsedJWS, str]:
    try:
        parsed = jws.parse_compact(raw)
    except jws.JWSError as exc:
        raise BadRequest("malformed_jws", f"the body is not a compact JWS: {exc}") from exc
    kid = parsed.header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise Unauthorized("unknown_key", "the JWS header names no key (kid)")
    if "\x00" in kid:  # no key has one; refused here, before the batch's registry lookup
        raise Unauthorized("unknown_key", "no registered key has a kid with U+0000 (NUL)")
    return parsed, kid


def verify_message(
    raw: bytes,
    *,
    peeked: tuple[jws.ParsedJWS, str] | None = None,
    keys: Mapping[str, KeyRecord],
    rights: Mapping[str, frozenset[str]],
    cache: KeyCache,
    now: dt.datetime,
    max_skew: dt.timedelta,
    caller: str | None = None,
) -> Verified:
    """All checks that need no enterprise state; raises a GatewayError naming the first failure.

    `peeked` is `peek_kid(raw)` when the caller already parsed the JWS to find its key;
    `caller` is the agency of the access token the message came with (None: trusted in-process
    publishing, e.g. the demo's setup), whose key must have signed it.
    """
    parsed, kid = peeked if peeked is not None else peek_kid(raw)
    record = keys.get(kid)
    if record is None:
        raise Unauthorized("unknown_key", f"no registered key has kid {kid}")
    if record.status == "revoked":
        raise Unauthorized("key_revoked", f"key {kid} was revoked and signs nothing any more")
    try:
        jws.verify_compact(parsed, cache.get(record))
    except jws.AlgorithmNotAllowedError as exc:
        raise Unauthorized("algorithm_not_allowed", str(exc)) from exc
    except jws.SignatureInvalidError as exc:
        raise Unauthorized("signature_invalid", "the JWS signature does not verify") from exc
    if record.agency_status != "active":
        raise Forbidden(
            "agency_disabled",
            f"agency {record.agency_id!r} is disabled: its messages are refused until an "
            "operator enables it again",
        )
    if str(parsed.header.get("typ")).lower() not in MESSAGE_TYPS:  # media types: any case
        raise BadRequest(
            "typ_not_accepted",
            "the JWS header must carry typ 'gateway-message+jws' (RFC 8725 §3.11)",
        )
    envelope = _validated_envelope(parsed.payload)
    issued_at = _issued_at(envelope)
    _check_key_window(record, issued_at, now, max_skew)
    if issued_at > now + max_skew:
        raise BadRequest(
            "issued_at_in_future",
            f"issued_at {envelope['issued_at']} is more than {max_skew} ahead of the gateway clock",
        )
    if envelope["issuer"] != record.agency_id:
        raise Forbidden(
            "issuer_mismatch",
            f"issuer {envelope['issuer']!r} does not own key {kid} (owner {record.agency_id!r})",
        )
    if caller is not None and record.agency_id != caller:
        raise Forbidden(
            "key_not_caller",
            f"key {kid} belongs to {record.agency_id!r}, not to {caller!r} whose access token "
            "came with the message: publish with your own agency's key and token",
        )
    if envelope["type"] not in rights.get(record.agency_id, frozenset()):
        raise Forbidden(
            "not_permitted", f"agency {record.agency_id!r} may not publish {envelope['type']}"
        )
    check_uscc(str(envelope["subject"]), "subject", pointer="/subject")
    return Verified(raw=raw, envelope=envelope, kid=kid, issued_at=issued_at)


def _validated_envelope(payload: bytes) -> dict[str, Any]:
    try:
        envelope = parse_json(payload)
        validate_message(envelope)
    except ContractError as exc:
        raise BadRequest(exc.code, exc.message, pointer=exc.pointer) from exc
    # U+0000 reaches a parsed string only through a \u0000 escape (JSON forbids the raw byte)
    pointer = _nul_pointer(envelope, "") if _NUL_ESCAPE in payload else None
    if pointer is not None:
        # The stores cannot hold it (PostgreSQL text); refused per message, before the
        # transaction that the other messages of the batch or group commit share.
        raise BadRequest("invalid_text", "text may not contain U+0000 (NUL)", pointer=pointer)
    return dict(envelope)


def _issued_at(envelope: dict[str, Any]) -> dt.datetime:
    """The envelope's issued_at as a time. validate_message has held it to the gateway's
    date range (contracts.registry.EARLIEST_DATE to LATEST_DATE), so this cannot fail; were
    it to, it is the message's fault, answered 400 for that message alone, never a 500."""
    try:
        return dt.datetime.fromisoformat(str(envelope["issued_at"]))
    except ValueError as exc:
        raise BadRequest("schema_violation", f"/issued_at: {exc}", pointer="/issued_at") from exc


def _nul_pointer(value: Any, pointer: str) -> str | None:
    """The JSON pointer of the first member name or string holding U+0000, or None."""
    if isinstance(value, str):
        return pointer if "\x00" in value else None
    if isinstance(value, dict):
        items: list[tuple[Any, Any]] = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return None
    for key, item in items:
        here = f"{pointer}/{str(key).replace('~', '~0').replace('/', '~1')}"
        found = here if "\x00" in str(key) else _nul_pointer(item, here)
        if found is not None:
            return found
    return None


def _check_key_window(
    record: KeyRecord, issued_at: dt.datetime, now: dt.datetime, max_skew: dt.timedelta
) -> None:
    """The key was valid when the message says it was signed, and its validity has not ended
    by the time it arrives (the skew allowed for clocks aside): `issued_at` is the publisher's
    word, so a retired key's end of validity would mean nothing if a message could backdate."""
    until = record.valid_to.isoformat() if record.valid_to else "∞"
    window = f"{record.valid_from.isoformat()} – {until}"
    if issued_at < record.valid_from or (record.valid_to and issued_at >= record.valid_to):
        raise Unauthorized(
            "key_not_valid", f"key {record.kid} was not valid at issued_at ({window})"
        )
    if record.valid_to and now >= record.valid_to + max_skew:
        raise Unauthorized(
            "key_not_valid",
            f"key {record.kid}'s validity ({window}) ended before the message arrived; "
            "sign with the agency's current key",
        )
