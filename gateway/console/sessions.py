"""Console sign-in without passwords: one-time login links, the sessions they open, and each
session's CSRF token.

A link is a JWS by the gateway's receipt key (`typ` console-login+jws: no other token of the
gateway verifies as one) naming the agency, a random id and an expiry minutes away. Using it
opens a session whose row keeps the link's id under a unique constraint: a link opens one
session, ever. The browser holds a random cookie; the database only its SHA-256, so a copy of
the database opens no session. Services take the session first and never commit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.errors import BadRequest, Unauthorized
from gateway.models import Agency, ConsoleSession
from gateway.registry.service import get_agency
from gateway.signing import GatewaySigner
from keys import jws

LINK_TYP = "console-login+jws"
LINK_AUDIENCE = "gateway-console"
# Ended and expired sessions are kept this long (their link ids must stay used until the
# links have expired for certain), then purged when someone signs in.
KEEP_ENDED = dt.timedelta(days=2)


@dataclass(frozen=True)
class Link:
    agency_id: str
    link_id: str
    expires_at: dt.datetime


def issue_link(
    session: Session, signer: GatewaySigner, agency_id: str, now: dt.datetime, ttl: dt.timedelta
) -> str:
    """A signed one-time login token for `agency_id` (registered and not disabled: no
    access token is issued to a disabled agency either)."""
    require_active(get_agency(session, agency_id))
    claims = {
        "aud": LINK_AUDIENCE,
        "sub": agency_id,
        "jti": str(uuid.uuid4()),
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
    }
    return signer.sign(claims, LINK_TYP)


def read_link(token: str, signer: GatewaySigner, now: dt.datetime) -> Link:
    """The link's claims once its signature, type, audience and expiry hold; 400 otherwise
    (`link_invalid`, `link_expired`). Whether it was used is `open_session`'s to say."""
    try:
        parsed = jws.parse_compact(token)
        if parsed.header.get("typ") != LINK_TYP:
            raise BadRequest("link_invalid", "this is not a console login link")
        jws.verify_compact(parsed, signer.receipt_key.public_key)
        claims = json.loads(parsed.payload)
    except (jws.JWSError, ValueError) as exc:
        raise BadRequest("link_invalid", "the login link does not verify") from exc
    if claims.get("aud") != LINK_AUDIENCE or not isinstance(claims.get("exp"), int):
        raise BadRequest("link_invalid", "this is not a console login link")
    expires = dt.datetime.fromtimestamp(claims["exp"], dt.UTC)
    if expires <= now:
        raise BadRequest("link_expired", "the login link has expired: ask for a new one")
    return Link(str(claims["sub"]), str(claims["jti"]), expires)


def open_session(
    session: Session, link: Link, now: dt.datetime, lifetime: dt.timedelta
) -> tuple[str, ConsoleSession]:
    """Spend `link` on a new session; returns the cookie value and the row. 400 `link_used`
    when the link already opened one (in this transaction's view or a concurrent one's)."""
    session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now - KEEP_ENDED))
    require_active(get_agency(session, link.agency_id))
    if session.scalar(select(ConsoleSession.link_id).where(ConsoleSession.link_id == link.link_id)):
        raise BadRequest("link_used", "this login link was already used: ask for a new one")
    cookie = secrets.token_urlsafe(32)
    row = ConsoleSession(
        token_hash=_digest(cookie),
        agency_id=link.agency_id,
        link_id=link.link_id,
        created_at=now,
        expires_at=now + lifetime,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError as exc:
        raise BadRequest("link_used", "this login link was already used") from exc
    return cookie, row


def require_active(agency: Agency) -> Agency:
    """401 `agency_disabled` for a disabled agency, as its access tokens are refused
    (gateway.access.revocations)."""
    if agency.status != "active":
        raise Unauthorized(
            "agency_disabled",
            f"agency {agency.id!r} is disabled: it cannot sign in until an operator enables it",
        )
    return agency


@dataclass(frozen=True)
class SignedIn:
    agency_id: str
    name: str
    roles: tuple[str, ...]
    expires_at: dt.datetime
    active: bool  # False: the agency was disabled since it signed in


def find_session(session: Session, cookie: str, now: dt.datetime) -> SignedIn | None:
    """The live session the cookie names (not ended, not expired), with its agency."""
    row = session.execute(
        select(
            ConsoleSession.agency_id,
            ConsoleSession.expires_at,
            Agency.name,
            Agency.roles,
            Agency.status,
        )
        .join(Agency, Agency.id == ConsoleSession.agency_id)
        .where(
            ConsoleSession.token_hash == _digest(cookie),
            ConsoleSession.ended_at.is_(None),
            ConsoleSession.expires_at > now,
        )
    ).first()
    if row is None:
        return None
    return SignedIn(
        row.agency_id, row.name, tuple(row.roles or ()), row.expires_at, row.status == "active"
    )


def end_session(session: Session, cookie: str, now: dt.datetime) -> None:
    """Sign out: the session ends at once (its row stays, keeping its link spent)."""
    found = session.get(ConsoleSession, _digest(cookie))
    if found is not None and found.ended_at is None:
        found.ended_at = now


def csrf_token(cookie: str) -> str:
    """The CSRF token of the session behind `cookie`: derived from the HttpOnly cookie, which
    no other site's page can read, so only the console's own pages can carry it in a form."""
    return hmac.new(cookie.encode(), b"gateway-console-csrf", hashlib.sha256).hexdigest()


def csrf_ok(cookie: str, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(csrf_token(cookie), str(sent))


def _digest(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()
