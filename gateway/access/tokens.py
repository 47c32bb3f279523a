"""Client assertions in, access tokens out (RFC 6749 §4.4, RFC 7523, RFC 9068).

The assertion is a JWT signed by one of the agency's registered keys, verified with the suite
that key's record names (never the header's choice): `iss` = `sub` = the agency id, `aud` =
the token endpoint, `exp` at most five minutes ahead, `nbf` and `iat` (if sent) not in the
future, `jti` used once. The access token is a
short-lived JWT signed by the gateway's receipt key, `typ` `at+jwt`, carrying the scopes.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.access.assertion import ASSERTION_TYPE
from gateway.errors import BadRequest, Forbidden, GatewayError, Unauthorized
from gateway.models import Agency, AgencyKey, AgencyScope, UsedAssertion
from gateway.signing import GatewaySigner
from keys import jws
from keys.suites import InvalidKeyError, UnknownSuiteError, get_suite

SCOPES = ("publish", "subscribe", "query", "ledger.read", "admin", "witness", "supervise")
MAX_ASSERTION_LIFETIME = dt.timedelta(minutes=5)
MAX_CLOCK_SKEW = dt.timedelta(seconds=60)  # how far an agency's clock may run ahead of ours
TOKEN_TYP = "at+jwt"  # noqa: S105 -- RFC 9068 media type, not a secret
TOKEN_AUDIENCE = "gateway"  # noqa: S105


def _client_error(code: str, detail: str, error: str = "invalid_client") -> GatewayError:
    # RFC 6749 §5.2 names the OAuth error; `code` stays our stable problem code.
    return (Unauthorized if error == "invalid_client" else BadRequest)(code, detail, error=error)


def _claims(token: str, session: Session) -> tuple[dict[str, Any], AgencyKey]:
    try:
        parsed = jws.parse_compact(token)
    except jws.JWSError as exc:
        raise _client_error(
            "malformed_assertion", f"the client assertion is not a JWS: {exc}"
        ) from exc
    kid = parsed.header.get("kid")
    known = isinstance(kid, str) and "\x00" not in kid  # no key has one (nor can a column)
    key = session.get(AgencyKey, kid) if known else None
    if key is None:
        raise _client_error("unknown_key", "the client assertion's kid is not a registered key")
    if key.status == "revoked":
        raise _client_error("key_revoked", f"key {key.kid} was revoked")
    try:
        jws.verify_compact(parsed, get_suite(key.suite).public_key_from_jwk(key.jwk))
    except jws.AlgorithmNotAllowedError as exc:
        raise _client_error("algorithm_not_allowed", str(exc)) from exc
    except (jws.JWSError, InvalidKeyError, UnknownSuiteError) as exc:
        raise _client_error(
            "signature_invalid", "the client assertion's signature does not verify"
        ) from exc
    try:
        claims = json.loads(parsed.payload)
    except ValueError as exc:
        raise _client_error(
            "malformed_assertion", "the client assertion payload is not JSON"
        ) from exc
    if not isinstance(claims, dict):
        raise _client_error("malformed_assertion", "the client assertion payload is not an object")
    return claims, key


def _instant(claims: dict[str, Any], name: str) -> dt.datetime:
    """A NumericDate claim (RFC 7519 §2) as a time."""
    value = claims.get(name)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _client_error("malformed_assertion", f"the assertion needs a numeric {name}")
    try:
        return dt.datetime.fromtimestamp(value, dt.UTC)
    except (OverflowError, ValueError, OSError) as exc:  # beyond any date, or NaN
        raise _client_error("malformed_assertion", f"{name} is not a usable time") from exc


def _check_times(claims: dict[str, Any], now: dt.datetime) -> dt.datetime:
    """The assertion's expiry, once its times hold (RFC 7523 §3): `exp` ahead, by at most
    five minutes; `nbf` and `iat`, when present, not later than now (with a little skew)."""
    expires = _instant(claims, "exp")
    if expires <= now:
        raise _client_error("assertion_expired", "the client assertion has expired")
    if expires - now > MAX_ASSERTION_LIFETIME:
        raise _client_error("assertion_too_long", "exp may be at most 5 minutes ahead")
    for name in ("nbf", "iat"):
        if name in claims and _instant(claims, name) > now + MAX_CLOCK_SKEW:
            raise _client_error(
                "assertion_not_yet_valid", f"the assertion's {name} is later than now"
            )
    return expires


@dataclass(frozen=True)
class Issued:
    access_token: str
    expires_in: int
    scope: str


def issue_token(
    session: Session,
    signer: GatewaySigner,
    *,
    grant_type: str | None,
    assertion_type: str | None,
    assertion: str | None,
    requested_scope: str | None,
    audience: str | None,
    now: dt.datetime,
    ttl: dt.timedelta,
) -> Issued:
    if grant_type != "client_credentials":
        raise _client_error(
            "unsupported_grant_type",
            "grant_type must be client_credentials",
            "unsupported_grant_type",
        )
    if assertion_type != ASSERTION_TYPE or not assertion:
        raise _client_error(
            "malformed_assertion",
            f"send client_assertion_type {ASSERTION_TYPE} and a client_assertion",
        )
    claims, key = _claims(assertion, session)
    agency = key.agency_id
    if claims.get("iss") != agency or claims.get("sub") != agency:
        raise _client_error(
            "issuer_mismatch", f"iss and sub must both be {agency!r}, the key's agency"
        )
    audiences = claims.get("aud")
    audiences = [audiences] if isinstance(audiences, str) else audiences
    if audience is None:
        raise _client_error("wrong_audience", "set GATEWAY_PUBLIC_URL to name the token endpoint")
    if not isinstance(audiences, list) or audience not in audiences:
        raise _client_error("wrong_audience", f"aud must name the token endpoint {audience}")
    expires = _check_times(claims, now)
    if key.valid_from > now or (key.valid_to is not None and now >= key.valid_to):
        raise _client_error("key_not_valid", f"key {key.kid} is not valid now")
    owner = session.get(Agency, agency)
    if owner is None or owner.status != "active":
        raise _client_error(
            "agency_disabled", f"agency {agency!r} is disabled: no access token is issued to it"
        )
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 200:
        raise _client_error("malformed_assertion", "the assertion needs a jti")
    session.execute(delete(UsedAssertion).where(UsedAssertion.expires_at < now))
    try:
        with session.begin_nested():
            session.add(UsedAssertion(jti=jti, agency_id=agency, expires_at=expires))
    except IntegrityError as exc:
        raise _client_error(
            "assertion_replayed", "this client assertion (jti) was already used"
        ) from exc
    granted = set(session.scalars(select(AgencyScope.scope).where(AgencyScope.agency_id == agency)))
    wanted = set(requested_scope.split()) if requested_scope else granted
    if not wanted or not wanted <= granted:
        raise _client_error(
            "scope_not_granted",
            f"{agency} may ask for {sorted(granted) or 'no scope'}, not {sorted(wanted - granted)}",
            "invalid_scope",
        )
    scope = " ".join(sorted(wanted))
    token_claims = {
        "iss": TOKEN_AUDIENCE,
        "sub": agency,
        "client_id": agency,
        "aud": TOKEN_AUDIENCE,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
        "jti": str(uuid.uuid4()),
        "scope": scope,
        "client_key": key.kid,  # revoking that key revokes this token (access.revocations)
    }
    return Issued(signer.sign(token_claims, TOKEN_TYP), int(ttl.total_seconds()), scope)


@dataclass(frozen=True)
class Caller:
    agency_id: str
    scopes: frozenset[str]
    issued_at: int = 0  # the token's iat (Unix seconds)
    key: str | None = None  # the agency key its client assertion was signed with


# Tokens that verified, by (gateway key id, token), with their expiry: a token is sent with
# every call and its Ed25519 verification was the largest part of a standing query (0.19 ms of
# 1.2, bench/RESULTS.md). Only a verified token enters; a hit is still checked for expiry, so
# the cache changes no answer. Bounded: emptied when full.
_VERIFIED: dict[tuple[str, str], tuple[Caller, int]] = {}
VERIFIED_TOKENS_MAX = 10_000


def verify_access_token(token: str, signer: GatewaySigner, now: dt.datetime) -> Caller:
    key = (signer.receipt_key.kid, token)
    hit = _VERIFIED.get(key)
    if hit is not None and hit[1] > now.timestamp():
        return hit[0]
    caller, exp = _verify_access_token(token, signer, now)
    if len(_VERIFIED) >= VERIFIED_TOKENS_MAX:
        _VERIFIED.clear()
    _VERIFIED[key] = (caller, exp)
    return caller


def _verify_access_token(token: str, signer: GatewaySigner, now: dt.datetime) -> tuple[Caller, int]:
    def refuse(detail: str) -> Unauthorized:
        return Unauthorized("invalid_token", detail, error="invalid_token")

    try:
        parsed = jws.parse_compact(token)
        if parsed.header.get("kid") != signer.receipt_key.kid:
            raise refuse("the token is not signed by this gateway")
        jws.verify_compact(parsed, signer.receipt_key.public_key)
        claims = json.loads(parsed.payload)
    except (jws.JWSError, ValueError) as exc:
        raise refuse(f"the access token does not verify: {exc}") from exc
    if parsed.header.get("typ") != TOKEN_TYP or claims.get("aud") != TOKEN_AUDIENCE:
        raise refuse("not an access token of this gateway")
    if not isinstance(claims.get("exp"), int) or claims["exp"] <= now.timestamp():
        raise refuse("the access token has expired")
    issued_at, key = claims.get("iat"), claims.get("client_key")
    caller = Caller(
        str(claims["sub"]),
        frozenset(str(claims.get("scope", "")).split()),
        issued_at if isinstance(issued_at, int) else 0,
        key if isinstance(key, str) else None,
    )
    return caller, claims["exp"]


def require_scope(caller: Caller, scope: str) -> None:
    if scope not in caller.scopes and "admin" not in caller.scopes:
        raise Forbidden(
            "insufficient_scope", f"this call needs the {scope!r} scope", error="insufficient_scope"
        )
