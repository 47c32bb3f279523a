"""The transparency log from outside: `publish` signs a message into it over HTTP, `audit`
recomputes its tree locally, `verify` checks one message's evidence bundle offline."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from gateway.cli.installation import open_runtime
from gateway.cli.root import GatewayUrlOption, JsonFlag, console, emit, err, fail, now
from gateway.cli.tables import print_table


def publish(
    file: Annotated[
        Path, typer.Argument(help="JSON envelope (id and issued_at filled if absent).")
    ],
    key: Annotated[Path, typer.Option(help="The agency's private key file (PEM).")],
    url: GatewayUrlOption = "http://127.0.0.1:8000",
    as_json: JsonFlag = False,
) -> None:
    """Sign a JSON envelope with KEY and publish it; prints the receipt or the problem.

    The same key logs in first (OAuth client credentials with private_key_jwt, as the
    envelope's issuer), since publishing needs that agency's access token."""
    import httpx

    from gateway.access.assertion import request_token
    from keys.jws import sign_compact
    from keys.store import KeyFileError, read_key_file

    try:
        envelope = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise fail(f"cannot read a JSON envelope from {file}: {exc}") from exc
    if not isinstance(envelope, dict):
        raise fail(f"{file} does not hold a JSON object")
    envelope.setdefault("id", str(uuid.uuid4()))
    # Full precision: cut to the second, a message published in the second its key was
    # registered would be dated before the key (key_not_valid).
    envelope.setdefault("issued_at", now().isoformat())
    from contracts.registry import SERVED_MAJORS, latest_major

    message_type = str(envelope.get("type"))
    served = message_type in SERVED_MAJORS
    envelope.setdefault("contract", latest_major(message_type) if served else 1)
    try:
        signing_key = read_key_file(key)
    except (OSError, KeyFileError) as exc:
        raise fail(f"cannot read the key {key}: {exc}") from exc
    token = sign_compact(
        json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode(),
        signing_key,
        typ="gateway-message+jws",
    )
    base = url.rstrip("/")
    try:
        with httpx.Client(timeout=30) as http:
            login = request_token(
                http, f"{base}/v1/oauth/token", signing_key, str(envelope.get("issuer")), "publish"
            )
            response = login
            body = login.json()
            if login.status_code == 200:
                response = http.post(
                    f"{base}/v1/messages",
                    content=token,
                    headers={
                        "Content-Type": "application/jose",
                        "Authorization": f"Bearer {body['access_token']}",
                    },
                )
                body = response.json()
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach the gateway at {url}: {exc}") from exc
    except ValueError as exc:
        raise fail(f"the gateway answered {response.status_code} without JSON") from exc
    if as_json:
        emit({"status": response.status_code, **body})
    elif response.status_code < 300:
        console.print(
            f"[green]{response.status_code}[/green] accepted {body['message_id']} "
            f"at index {body['index']}\nreceipt: {body['receipt']}"
        )
    else:
        err.print(f"[red]{response.status_code} {body.get('code')}[/red]: {body.get('detail')}")
    if response.status_code >= 400:
        raise typer.Exit(1)


def audit(
    checkpoint: Annotated[
        list[Path] | None,
        typer.Option(
            "--checkpoint",
            help="A checkpoint held outside the database (a signed note an agency or a "
            "witness kept); the log must contain it. Repeatable.",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Recompute the Merkle tree, the entries' columns and receipts from the stored entries,
    and check them against the stored checkpoints, the witnesses' cosignatures and any
    checkpoint held outside; exit 1 naming the first bad index."""
    from rich.progress import Progress

    from gateway.transparency.audit import Outside, WitnessKey, audit_log
    from gateway.transparency.service import log_vkey
    from gateway.transparency.tlog import tree_size
    from keys import note

    outside = []
    for path in checkpoint or []:
        try:
            outside.append(Outside(path.read_text(encoding="utf-8"), str(path)))
        except (OSError, UnicodeError) as exc:
            raise fail(f"cannot read the checkpoint {path}: {exc}") from exc
    runtime = open_runtime()
    vkey = log_vkey(runtime.settings.log_origin, runtime.signer.log_key)
    witnesses = []
    for endpoint in runtime.settings.witnesses.endpoints:
        parsed = note.parse_vkey(endpoint.vkey)
        witnesses.append(WitnessKey(parsed.name, parsed.public_key))
    try:
        with runtime.db.reader() as session:
            size = tree_size(session)
            with Progress(console=err, transient=True, disable=as_json) as progress:
                task = progress.add_task("auditing the log", total=size)
                report = audit_log(
                    session,
                    log_vkey=vkey,
                    progress=lambda n: progress.advance(task, n),
                    receipt_key=runtime.signer.receipt_key.public_key,
                    origin=runtime.settings.log_origin,
                    outside=outside,
                    witnesses=witnesses,
                )
    finally:
        runtime.close()
    result = {
        "ok": report.ok,
        "size": report.size,
        "entries_checked": report.entries_checked,
        "checkpoints_checked": report.checkpoints_checked,
        "first_bad_index": report.first_bad_index,
        "problems": [{"index": i, "problem": p} for i, p in report.problems],
    }
    if as_json:
        emit(result)
    elif report.ok:
        console.print(
            f"[green]log consistent[/green]: {report.entries_checked} entries, "
            f"{report.checkpoints_checked} checkpoints checked"
        )
    else:
        for index, problem in report.problems:
            err.print(f"[red]index {index}[/red]: {problem}")
    if not report.ok:
        raise typer.Exit(1)


def verify(
    bundle: Annotated[
        Path, typer.Argument(help="Evidence bundle JSON (GET /v1/messages/ID/bundle).")
    ],
    gateway_jwks: Annotated[Path, typer.Option(help="The gateway's JWKS file.")],
    log_vkey: Annotated[Path, typer.Option(help="The log's verifier key file (GET /v1/log/vkey).")],
    publisher_jwk: Annotated[Path, typer.Option(help="The publishing agency's public JWK file.")],
    as_json: JsonFlag = False,
) -> None:
    """Check an evidence bundle offline; prints every check and exits 1 if any fails."""
    from gateway.transparency.bundle_check import check_bundle

    evidence = _json_object(bundle, "an evidence bundle", ("tlog_proof",), BUNDLE_HINT)
    if "jws" not in evidence and "leaf_hash" not in evidence:  # the message, or its hash
        raise fail(f"{bundle} is not an evidence bundle ({BUNDLE_HINT}): it has no 'jws'")
    inputs = (
        evidence,
        _json_object(gateway_jwks, "a JWK set", ("keys",), "GET /.well-known/jwks.json"),
        _json_object(publisher_jwk, "a public JWK", ("kty",), "the agency's .jwk.json file"),
    )
    try:
        checks = check_bundle(
            inputs[0],
            gateway_jwks=inputs[1],
            log_vkey=log_vkey.read_text().strip(),
            publisher_jwk=inputs[2],
        )
    except (OSError, ValueError, KeyError) as exc:
        raise fail(f"cannot read the inputs: {exc}") from exc
    if as_json:
        emit([{"check": c.name, "ok": c.ok, "detail": c.detail} for c in checks])
    else:
        table = Table("check", "result", "detail")
        for c in checks:
            result = Text("ok", style="green") if c.ok else Text("FAILED", style="red")
            table.add_row(c.name, result, c.detail)
        print_table(table, console)
    if not all(c.ok for c in checks) or checks[-1].name != "inclusion in the checkpoint":
        raise typer.Exit(1)


BUNDLE_HINT = "GET /v1/messages/ID/bundle"


def _json_object(
    path: Path, what: str, members: tuple[str, ...] = (), source: str | None = None
) -> dict[str, Any]:
    """The JSON object in `path`, refused in one sentence (what it should be, where it comes
    from) when it is not JSON, not an object, or lacks one of `members`."""
    where = f" (from {source})" if source else ""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise fail(f"cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise fail(f"{path} is not JSON, so not {what}{where}: {exc}") from exc
    if not isinstance(data, dict):
        raise fail(f"{path} is not {what}{where}: its JSON is not an object")
    missing = [m for m in members if m not in data]
    if missing:
        raise fail(f"{path} is not {what}{where}: it has no {', '.join(map(repr, missing))}")
    return data
