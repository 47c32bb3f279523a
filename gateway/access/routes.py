"""HTTP: `POST /v1/oauth/token`, and the bearer-token dependency the other routes use."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from gateway.access.refusals import TOKEN_REFUSALS, Refusal
from gateway.access.revocations import check_not_revoked
from gateway.access.schemas import OAuthError, TokenAnswer
from gateway.access.tokens import Caller, issue_token, require_scope, verify_access_token
from gateway.errors import (
    NO_STORE,
    GatewayError,
    PayloadTooLarge,
    Unauthorized,
    oauth_error_response,
)
from gateway.logs import log_event
from gateway.runtime import Runtime, get_runtime
from keys import jws

router = APIRouter(prefix="/v1/oauth", tags=["access"])
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


DEFAULT_PORTS = {"http": 80, "https": 443}
# A server bound to every interface may report the wildcard itself as its address (Granian
# does: the bound address, not the connection's; uvicorn reports the connection's), which no
# client can name: there, as on a Unix socket, only GATEWAY_PUBLIC_URL names the endpoint.
UNSPECIFIED_ADDRESSES = frozenset({"0.0.0.0", "::"})  # noqa: S104 -- compared, never bound
MAX_FORM_FIELDS = 16  # grant_type, client_assertion_type, client_assertion, scope, and room


def token_audience(request: Request, runtime: Runtime) -> str | None:
    """What a client assertion's `aud` must name: the token endpoint under the configured
    public URL, or else under the address this server listens on (the connection's own
    socket, as the server reports it). Never under a request header: with `Host` chosen by
    the client, an assertion made for another relying party would be accepted here
    (RFC 7523 §3: the audience identifies this authorization server). None where there is
    no address to name (a Unix socket, or a wildcard the server reports as its address):
    there only `public_url` lets agencies log in. The port may come as text (Granian gives
    the scope's ports as strings, where ASGI says integers)."""
    base = runtime.settings.public_url
    if base:
        return base.rstrip("/") + "/v1/oauth/token"
    # The socket is plain HTTP (TLS ends at a proxy, which needs GATEWAY_PUBLIC_URL): never the
    # scheme a request claims, which X-Forwarded-Proto could set (issue 20 finding 10).
    scheme = "http"
    server = request.scope.get("server")
    if not server or server[0] in UNSPECIFIED_ADDRESSES:
        return None
    host, port = server[0], None if server[1] is None else int(server[1])
    if ":" in host:  # IPv6
        host = f"[{host}]"
    authority = host if port is None or DEFAULT_PORTS.get(scheme) == port else f"{host}:{port}"
    return f"{scheme}://{authority}/v1/oauth/token"


@router.post(
    "/token",
    response_model=TokenAnswer,
    responses={
        400: {"model": OAuthError, "description": "RFC 6749 §5.2 error"},
        401: {"model": OAuthError, "description": "RFC 6749 §5.2 error (invalid_client)"},
        413: {"model": OAuthError, "description": "a body over its bound, or too many fields"},
        429: {
            "model": OAuthError,
            "description": "too many refused requests from the client's address (Retry-After)",
        },
    },
    openapi_extra={
        "requestBody": {
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "grant_type": {"type": "string", "enum": ["client_credentials"]},
                            "client_assertion_type": {"type": "string"},
                            "client_assertion": {"type": "string"},
                            "scope": {"type": "string"},
                        },
                        "required": ["grant_type", "client_assertion_type", "client_assertion"],
                    }
                }
            }
        }
    },
)
async def token(request: Request, runtime: RuntimeDep) -> Response:
    """OAuth 2.0 client credentials with `private_key_jwt` (RFC 7523): a short-lived,
    gateway-signed access token carrying the scopes granted to the agency. Refusals are
    RFC 6749 §5.2 errors (`application/json`, `error`, `error_description`) that also carry
    the problem members (`code`, `status`, `detail`) every other route answers with."""
    address = client_address(request)
    try:
        runtime.refusals.check_address(address)  # before anything of the request is read
        form = await read_form(request)
    except GatewayError as exc:
        await refused(request, None, "token", None, exc)
        return oauth_error_response(exc, request.url.path)
    audience = token_audience(request, runtime)

    def run() -> dict[str, Any]:
        try:
            return issue(runtime)
        except GatewayError as exc:  # every refused login is an access record too
            record_refusal(runtime, None, "token", claimed_issuer(form), exc, address=address)
            raise

    def issue(runtime: Runtime) -> dict[str, Any]:
        with runtime.db.transaction() as session:
            issued = issue_token(
                session,
                runtime.signer,
                grant_type=form.get("grant_type"),
                assertion_type=form.get("client_assertion_type"),
                assertion=form.get("client_assertion"),
                requested_scope=form.get("scope"),
                audience=audience,
                now=runtime.clock.now(),
                ttl=dt.timedelta(seconds=runtime.settings.access_token_ttl_seconds),
            )
        return {
            "access_token": issued.access_token,
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
            "scope": issued.scope,
        }

    try:
        answer = await run_in_threadpool(run)
    except GatewayError as exc:
        return oauth_error_response(exc, request.url.path)
    return JSONResponse(answer, headers=NO_STORE)


async def read_form(request: Request) -> dict[str, str]:
    """The token request's form (RFC 6749 §4.4.2: four fields at most), each field's first
    value. Its size is bounded before it is read (gateway.bodies); its field count here,
    before it is parsed: 3 million fields took 400 MB."""
    body = await request.body()
    fields = body.count(b"&") + 1
    if fields > MAX_FORM_FIELDS:
        raise PayloadTooLarge(
            "too_many_fields",
            f"a token request has at most {MAX_FORM_FIELDS} form fields, not {fields}",
            error="invalid_request",
        )
    parsed = parse_qs(body.decode(errors="replace"), max_num_fields=MAX_FORM_FIELDS)
    return {name: values[0] for name, values in parsed.items()}


def caller_with(scope: str) -> Callable[[Request], Awaitable[Caller]]:
    """A dependency: the verified caller of this request, holding `scope` (or `admin`); a
    refusal is recorded."""

    async def dependency(request: Request) -> Caller:
        return await authenticated(request, scope)

    return dependency


async def authenticated(request: Request, scope: str) -> Caller:
    """`authenticate` for async routes: a refusal is recorded, naming the agency whenever its
    token verified, and raised."""
    caller: Caller | None = None
    try:
        caller = verified_caller(request)
        admit(request, caller, scope)
        return caller
    except GatewayError as exc:
        what = f"{request.method} {request.url.path}"
        await refused(request, caller.agency_id if caller else None, "auth", what, exc)
        raise


def client_address(request: Request) -> str | None:
    """The client's address as the server saw it (a proxy's forwarded one only from the
    proxies GATEWAY_FORWARDED_ALLOW_IPS names)."""
    return request.client.host if request.client else None


async def refused(
    request: Request,
    agency_id: str | None,
    action: str,
    what: str | None,
    exc: GatewayError,
    uscc: str | None = None,
) -> None:
    """`record_refusal` from the event loop: counting a repeat is a few dictionary steps, and
    only a refusal's first record in its window is written (in a thread)."""
    runtime: Runtime = request.app.state.runtime
    address = client_address(request)
    first = note_refusal(runtime, agency_id, action, what, exc, address=address, uscc=uscc)
    if first is not None:
        await run_in_threadpool(runtime.refusals.write_first, runtime.db, *first)


def record_refusal(
    runtime: Runtime,
    agency_id: str | None,
    action: str,
    what: str | None,
    exc: GatewayError,
    *,
    address: str | None = None,
    uscc: str | None = None,
) -> None:
    """A refused login or call, recorded: its address's budget spent when no agency was
    verified, counted into its access record (written now if it is the first in its window,
    with a log line). Call off the event loop."""
    first = note_refusal(runtime, agency_id, action, what, exc, address=address, uscc=uscc)
    if first is not None:
        runtime.refusals.write_first(runtime.db, *first)


def note_refusal(
    runtime: Runtime,
    agency_id: str | None,
    action: str,
    what: str | None,
    exc: GatewayError,
    *,
    address: str | None,
    uscc: str | None,
) -> tuple[Refusal, dt.datetime] | None:
    """Spend and count a refusal; the record to write now, if it is its window's first."""
    unverified = agency_id is None or exc.code in TOKEN_REFUSALS
    if unverified and exc.code != "rate_limited":  # a 429 has spent the budget already
        runtime.refusals.spend(address)
    at = runtime.clock.now()
    refusal = Refusal(address, agency_id, uscc, action, what, exc.code)
    first = runtime.refusals.note(refusal, at)
    if first is None:
        return None
    log_event(
        "access.refused", action=action, agency=agency_id, what=what, code=exc.code, address=address
    )
    return first, at


def claimed_issuer(form: dict[str, str]) -> str | None:
    """Who the assertion claims to be (unverified: for the record of a refusal only)."""
    try:
        claims = json.loads(jws.parse_compact(form.get("client_assertion", "")).payload)
    except (jws.JWSError, ValueError):
        return None
    return f"claimed iss {str(claims.get('iss'))[:64]}" if isinstance(claims, dict) else None


def verified_caller(request: Request) -> Caller:
    """Who sent `request`: the agency its bearer token names, once the token verified (a
    gateway token, unexpired); raises rate_limited (an address that spent its refusals),
    missing_token or invalid_token. Nothing is admitted yet: `admit` spends the rate and
    checks the scope."""
    runtime: Runtime = request.app.state.runtime
    # An address that has spent its refusals is refused before its token is even read.
    runtime.refusals.check_address(client_address(request))
    kind, _, token = request.headers.get("authorization", "").partition(" ")
    if kind.lower() != "bearer" or not token:
        raise Unauthorized(
            "missing_token", "send Authorization: Bearer <access token>", error="invalid_token"
        )
    return verify_access_token(token.strip(), runtime.signer, runtime.clock.now())


def admit(request: Request, caller: Caller, scope: str) -> None:
    """Refuse a token obtained with a key revoked since (401 token_revoked), spend one of the
    verified caller's requests (429 past its rate) and require `scope` (or `admin`)."""
    runtime: Runtime = request.app.state.runtime
    check_not_revoked(runtime.db, caller)
    runtime.rate_limiter.take(caller.agency_id)
    require_scope(caller, scope)


def authenticate(request: Request, scope: str) -> Caller:
    """The verified caller of `request`, holding `scope` (or `admin`); raises otherwise. A
    caller that must record its refusals under the agency uses `verified_caller` and `admit`."""
    caller = verified_caller(request)
    admit(request, caller, scope)
    return caller
