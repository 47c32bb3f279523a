"""`gateway console`: a one-time link that signs an agency in to the browser console."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from gateway.cli.installation import admin_session, configured
from gateway.cli.root import console, now

console_app = typer.Typer(no_args_is_help=True, help="The browser console at /console/.")


@console_app.command("login")
def console_login(
    agency_id: str,
    base_url: Annotated[
        str | None,
        typer.Option(help="The gateway's address (default: GATEWAY_PUBLIC_URL, else :8000)."),
    ] = None,
) -> None:
    """Print a one-time login link for AGENCY (signed, single use, valid for
    GATEWAY_CONSOLE__LINK_SECONDS): whoever opens it acts as that agency, with its rights."""
    from gateway.console.sessions import issue_link

    cfg = configured()
    base = (base_url or cfg.public_url or "http://127.0.0.1:8000").rstrip("/")
    with admin_session(write=False) as (runtime, session):
        token = issue_link(
            session,
            runtime.signer,
            agency_id,
            now(),
            dt.timedelta(seconds=cfg.console.link_seconds),
        )
    console.print(f"{base}/console/login?token={token}", soft_wrap=True, highlight=False)
