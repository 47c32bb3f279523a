"""`gateway token`: an agency's access token from a running gateway (OAuth client credentials
with private_key_jwt, signed by the agency's own key), for curl and scripts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from gateway.cli.root import GatewayUrlOption, JsonFlag, console, emit, fail


def token(
    agency: Annotated[str, typer.Argument(help="The agency's id (the assertion's iss and sub).")],
    key: Annotated[Path, typer.Option(help="The agency's private key file (PEM).")],
    scope: Annotated[
        str,
        typer.Option(help="Scopes asked for, space-separated: publish subscribe query …"),
    ] = "query",
    url: GatewayUrlOption = "http://127.0.0.1:8000",
    as_json: JsonFlag = False,
) -> None:
    """Print an access token: `export TOKEN=$(gateway token fj-cib --key fj-cib.pem)`, then
    `curl -H "authorization: Bearer $TOKEN" …`. --json adds its type, scope and expiry."""
    import httpx

    from gateway.access.assertion import request_token
    from keys.store import KeyFileError, read_key_file

    try:
        signing_key = read_key_file(key)
    except (OSError, KeyFileError) as exc:
        raise fail(f"cannot read the key {key}: {exc}") from exc
    token_url = url.rstrip("/") + "/v1/oauth/token"
    try:
        with httpx.Client(timeout=30) as http:
            response = request_token(http, token_url, signing_key, agency, scope)
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach the gateway at {url}: {exc}") from exc
    try:
        body = response.json()
    except ValueError as exc:
        raise fail(f"the gateway at {url} answered {response.status_code} without JSON") from exc
    if response.status_code != 200:
        reason = body.get("error_description") or body.get("detail") or body
        raise fail(f"{body.get('code') or body.get('error')}: {reason}")
    if as_json:
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=int(body["expires_in"]))
        emit(body | {"expires_at": expires.isoformat(timespec="seconds")})
    else:
        console.print(body["access_token"], soft_wrap=True)
