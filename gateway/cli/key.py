"""`gateway key`: agency key pairs made locally, agency public keys registered, rotated and
revoked, and the gateway's own webhook key rotated."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from gateway.cli.installation import admin_session, configured, require_keys
from gateway.cli.root import JsonFlag, SuiteOption, console, emit, fail, now

key_app = typer.Typer(no_args_is_help=True, help="Agency public keys: add, rotate, revoke.")


def read_jwk(path: Path) -> dict[str, Any]:
    try:
        jwk = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise fail(f"cannot read a JWK from {path}: {exc}") from exc
    if not isinstance(jwk, dict):
        raise fail(f"{path} does not hold a JWK object")
    return jwk


@key_app.command("generate")
def key_generate(
    out: Annotated[Path, typer.Argument(help="Private key file to write (PKCS#8 PEM, 0600).")],
    suite: SuiteOption = "ed25519",
) -> None:
    """Make an agency key pair: OUT (private) and OUT.jwk.json (public, to register)."""
    from keys.store import generate_key_file

    public = out.with_name(out.name + ".jwk.json")
    if not out.parent.is_dir():
        raise fail(f"there is no directory {out.parent} to write {out.name} in")
    for path in (out, public):
        if path.exists() or path.is_symlink():
            raise fail(f"{path} already exists; a key file is never overwritten: name another")
    key = generate_key_file(out, suite)
    public.write_text(json.dumps(key.public_key.jwk(), indent=2) + "\n")
    console.print(f"wrote {out} and {public}; kid {key.kid}")


@key_app.command("add")
def key_add(
    agency_id: str,
    jwk: Annotated[Path, typer.Option(help="Public JWK file.")],
    suite: SuiteOption = "ed25519",
    as_json: JsonFlag = False,
) -> None:
    """Register a public key for an agency; its kid is the RFC 7638 thumbprint."""
    from gateway.registry import service

    with admin_session() as (runtime, session):
        key = service.add_key(
            session,
            runtime.signer,
            agency_id=agency_id,
            jwk=read_jwk(jwk),
            suite=suite,
            now=now(),
        )
        kid = key.kid
    emit({"kid": kid}) if as_json else console.print(f"added key {kid} for {agency_id}")


@key_app.command("rotate")
def key_rotate(
    agency_id: str,
    jwk: Annotated[Path, typer.Option(help="The new public JWK file.")],
    suite: SuiteOption = "ed25519",
    overlap_hours: Annotated[
        float, typer.Option(min=0, help="Hours the old keys stay valid (0: retire them now).")
    ] = 24.0,
) -> None:
    """Add a new key and retire the active ones after an overlap window."""
    from gateway.registry import service

    with admin_session() as (runtime, session):
        new, retired = service.rotate_key(
            session,
            runtime.signer,
            agency_id=agency_id,
            jwk=read_jwk(jwk),
            suite=suite,
            now=now(),
            overlap=dt.timedelta(hours=overlap_hours),
        )
        summary = f"new key {new.kid}; retiring {[k.kid for k in retired]}"
    console.print(summary)


@key_app.command("revoke")
def key_revoke(
    kid: Annotated[
        str,
        typer.Argument(
            help="The key's kid. One starting with - goes last, after `--`:"
            " gateway key revoke --reason lost -- -KID"
        ),
    ],
    reason: Annotated[str, typer.Option(help="Why (recorded in the log).")],
) -> None:
    """Revoke a key at once; messages signed with it are refused from now on."""
    from gateway.registry import service

    with admin_session() as (runtime, session):
        service.revoke_key(session, runtime.signer, kid=kid, reason=reason, now=now())
    console.print(f"revoked {kid}")


@key_app.command("rotate-webhook")
def key_rotate_webhook(
    overlap_hours: Annotated[
        float, typer.Option(min=0, help="Hours the old key still signs.")
    ] = 24.0,
) -> None:
    """New gateway v1a (Ed25519) webhook key; both sign during the overlap. Restart the
    gateway and workers to use it."""
    from gateway.delivery.webhooks import public_key_text
    from gateway.signing import rotate_webhook_key

    cfg = configured()
    require_keys(cfg)
    key = rotate_webhook_key(cfg, dt.timedelta(hours=overlap_hours), now())
    console.print(f"new v1a key {public_key_text(key)}; the old one signs for {overlap_hours} h")
