"""Registry operations; each change is also a gateway-signed entry in the log (issue 3 §7).

Services take the session first and never commit: the caller's transaction does.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts.registry import MESSAGE_TYPES
from gateway.errors import BadRequest, Conflict, NotFound, check_uscc
from gateway.models import Agency, AgencyKey, LogEntry, PublishRight
from gateway.signing import ENTRY_TYP, GatewaySigner
from gateway.transparency.tlog import Appender
from keys.suites import InvalidKeyError, UnknownSuiteError, get_suite

ROLES = (
    "grading_authority",
    "credit_disclosure",
    "market_regulator",
    "bank",
    "insurer",
    "social_insurance",  # floats work-injury insurance (工伤保险), domain.md §2
    "listing_department",
    "work_safety_supervisor",  # classified supervision, inspections (四（一）, 四（二）)
    "implementing_agency",
    "operator",  # runs the exchange platform: subscriptions, replays (scope admin)
)
AGENCY_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
GATEWAY_ISSUER = "gateway"


def append_gateway_entry(
    session: Session,
    signer: GatewaySigner,
    *,
    entry_type: str,
    data: Mapping[str, Any],
    now: dt.datetime,
    subject: str | None = None,
) -> int:
    """Sign `data` as a gateway entry and append it to the log; returns its index."""
    entry_id = str(uuid.uuid4())
    claims = {
        "id": entry_id,
        "type": entry_type,
        "issuer": GATEWAY_ISSUER,
        "issued_at": now.isoformat(),
        "data": dict(data),
    }
    token = signer.sign(claims, ENTRY_TYP).encode()
    appender = Appender(session)
    index, leaf = appender.append(token)
    appender.finish()
    session.add(
        LogEntry(
            idx=index,
            kind="gateway",
            message_id=entry_id,
            type=entry_type,
            issuer=GATEWAY_ISSUER,
            subject=subject,
            issued_at=now,
            accepted_at=now,
            jws=token,
            leaf_hash=leaf,
            receipt="",
        )
    )
    return index


def add_agency(
    session: Session,
    signer: GatewaySigner,
    *,
    agency_id: str,
    name: str,
    uscc: str,
    roles: Iterable[str],
    now: dt.datetime,
) -> Agency:
    roles = list(roles)
    if not AGENCY_ID.match(agency_id) or agency_id == GATEWAY_ISSUER:
        raise BadRequest("invalid_agency_id", f"agency id {agency_id!r} is not a valid id")
    check_uscc(uscc, "the agency's code")
    unknown = sorted(set(roles) - set(ROLES))
    if unknown or not roles:
        raise BadRequest("invalid_role", f"roles must be among {', '.join(ROLES)}; got {unknown}")
    if session.get(Agency, agency_id) is not None:
        raise Conflict("agency_exists", f"agency {agency_id!r} is already registered")
    agency = Agency(id=agency_id, name=name, uscc=uscc, roles=roles, created_at=now)
    session.add(agency)
    append_gateway_entry(
        session,
        signer,
        entry_type="gateway.agency.registered",
        data={"agency_id": agency_id, "name": name, "uscc": uscc, "roles": roles},
        now=now,
    )
    return agency


def get_agency(session: Session, agency_id: str) -> Agency:
    agency = session.get(Agency, agency_id)
    if agency is None:
        raise NotFound("unknown_agency", f"no agency {agency_id!r} is registered")
    return agency


AGENCY_STATUSES = ("active", "disabled")


def set_agency_status(
    session: Session,
    signer: GatewaySigner,
    *,
    agency_id: str,
    status: str,
    reason: str | None,
    now: dt.datetime,
) -> Agency:
    """Disable an agency (no token is issued to it, its tokens and messages are refused) or
    enable it again; each change a `gateway.agency.disabled` / `.enabled` log entry. Asking
    for the status it already has changes nothing and logs nothing."""
    if status not in AGENCY_STATUSES:
        raise BadRequest("invalid_status", f"an agency is active or disabled, not {status!r}")
    if reason is not None and (len(reason) > 500 or not reason.strip()):
        raise BadRequest("invalid_reason", "a reason is a sentence of at most 500 characters")
    agency = get_agency(session, agency_id)
    if agency.status == status:
        return agency
    agency.status, agency.status_changed_at, agency.status_reason = status, now, reason
    append_gateway_entry(
        session,
        signer,
        entry_type="gateway.agency.disabled" if status == "disabled" else "gateway.agency.enabled",
        data={"agency_id": agency_id, "reason": reason},
        now=now,
    )
    return agency


def grant_publish(
    session: Session, signer: GatewaySigner, agency_id: str, types: Iterable[str], now: dt.datetime
) -> list[str]:
    """Allow `agency_id` to publish `types` (deny by default); returns the full granted list."""
    get_agency(session, agency_id)
    wanted = set(types)
    unknown = sorted(wanted - set(MESSAGE_TYPES))
    if unknown:
        raise BadRequest("unknown_type", f"unknown message types: {', '.join(unknown)}")
    have = set(publish_rights(session, agency_id))
    for message_type in sorted(wanted - have):
        session.add(PublishRight(agency_id=agency_id, message_type=message_type))
    if wanted - have:
        append_gateway_entry(
            session,
            signer,
            entry_type="gateway.rights.granted",
            data={"agency_id": agency_id, "publish": sorted(wanted - have)},
            now=now,
        )
    return sorted(have | wanted)


def publish_rights(session: Session, agency_id: str) -> list[str]:
    rows = session.scalars(
        select(PublishRight.message_type).where(PublishRight.agency_id == agency_id)
    )
    return sorted(rows)


def add_key(
    session: Session,
    signer: GatewaySigner,
    *,
    agency_id: str,
    jwk: Mapping[str, Any],
    suite: str,
    now: dt.datetime,
    valid_from: dt.datetime | None = None,
    valid_to: dt.datetime | None = None,
) -> AgencyKey:
    """Register a public key; the kid is its RFC 7638 thumbprint, never chosen by the caller."""
    get_agency(session, agency_id)
    try:
        public = get_suite(suite).public_key_from_jwk(jwk)
    except (UnknownSuiteError, InvalidKeyError) as exc:
        raise BadRequest("invalid_key", str(exc)) from exc
    if session.get(AgencyKey, public.kid) is not None:
        raise Conflict("key_exists", f"key {public.kid} is already registered")
    start = valid_from or now
    if valid_to is not None and valid_to <= start:
        raise BadRequest("invalid_key", "valid_to must be after valid_from")
    key = AgencyKey(
        kid=public.kid,
        agency_id=agency_id,
        suite=suite,
        jwk=public.jwk(),
        status="active",
        valid_from=start,
        valid_to=valid_to,
        created_at=now,
    )
    session.add(key)
    append_gateway_entry(
        session,
        signer,
        entry_type="gateway.key.added",
        data={
            "agency_id": agency_id,
            "kid": public.kid,
            "suite": suite,
            "jwk": public.jwk(),
            "valid_from": start.isoformat(),
            "valid_to": valid_to.isoformat() if valid_to else None,
        },
        now=now,
    )
    return key


def rotate_key(
    session: Session,
    signer: GatewaySigner,
    *,
    agency_id: str,
    jwk: Mapping[str, Any],
    suite: str,
    now: dt.datetime,
    overlap: dt.timedelta,
) -> tuple[AgencyKey, list[AgencyKey]]:
    """Add a new key and retire the agency's active ones after `overlap` (both valid meanwhile).
    A negative overlap is refused (invalid_overlap): it would date their end in the past,
    before some of them began."""
    if overlap < dt.timedelta(0):
        raise BadRequest(
            "invalid_overlap", f"the overlap must be 0 or more, not {overlap.total_seconds()} s"
        )
    new = add_key(session, signer, agency_id=agency_id, jwk=jwk, suite=suite, now=now)
    retired = list(
        session.scalars(
            select(AgencyKey).where(
                AgencyKey.agency_id == agency_id,
                AgencyKey.status == "active",
                AgencyKey.kid != new.kid,
            )
        )
    )
    until = now + overlap
    for key in retired:
        key.status = "retired"
        key.valid_to = until if key.valid_to is None else min(key.valid_to, until)
    append_gateway_entry(
        session,
        signer,
        entry_type="gateway.key.rotated",
        data={
            "agency_id": agency_id,
            "new_kid": new.kid,
            "retired": [k.kid for k in retired],
            "retired_valid_to": until.isoformat(),
        },
        now=now,
    )
    return new, retired


def revoke_key(
    session: Session, signer: GatewaySigner, *, kid: str, reason: str, now: dt.datetime
) -> AgencyKey:
    """Revoke a key at once: every later message under it is refused with `key_revoked`."""
    key = session.get(AgencyKey, kid)
    if key is None:
        raise NotFound("unknown_key", f"no key {kid!r} is registered")
    if key.status == "revoked":
        return key
    key.status = "revoked"
    key.revoked_at = now
    key.revocation_reason = reason
    append_gateway_entry(
        session,
        signer,
        entry_type="gateway.key.revoked",
        data={"agency_id": key.agency_id, "kid": kid, "reason": reason},
        now=now,
    )
    return key


def list_agencies(session: Session) -> list[tuple[Agency, list[AgencyKey], list[str]]]:
    agencies = list(session.scalars(select(Agency).order_by(Agency.id)))
    keys: dict[str, list[AgencyKey]] = {}
    for key in session.scalars(select(AgencyKey).order_by(AgencyKey.created_at)):
        keys.setdefault(key.agency_id, []).append(key)
    rights: dict[str, list[str]] = {}
    for right in session.scalars(select(PublishRight).order_by(PublishRight.message_type)):
        rights.setdefault(right.agency_id, []).append(right.message_type)
    return [(a, keys.get(a.id, []), rights.get(a.id, [])) for a in agencies]
