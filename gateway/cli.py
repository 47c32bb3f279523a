"""The `gateway` command: init, serve, agency, key, publish, ledger, demo. `--help` everywhere.

Tables for people, `--json` for scripts. Admin commands work on the local database directly.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from gateway.errors import GatewayError
from gateway.settings import Settings

DEBUG_VARIABLE = "GATEWAY_DEBUG"
INIT_HINT = "run `gateway init` first"


class GatewayGroup(TyperGroup):
    """The root command. A user's mistake (an uninitialised data directory, an unreachable
    database, a bad setting, a missing file) ends in one `error:` line and a hint, exit 1;
    GATEWAY_DEBUG=1 lets it through with its traceback. Anything else keeps its traceback."""

    def invoke(self, ctx: Any) -> Any:  # typer's own click Context
        try:
            return super().invoke(ctx)
        except Exception as exc:
            explained = explain(exc)
            if explained is None or os.environ.get(DEBUG_VARIABLE, "") not in ("", "0"):
                raise
            message, hint = explained
            raise fail(message if hint is None else f"{message}; {hint}") from exc


app = typer.Typer(no_args_is_help=True, help=__doc__, add_completion=False, cls=GatewayGroup)
agency_app = typer.Typer(no_args_is_help=True, help="Register agencies and their publish rights.")
key_app = typer.Typer(no_args_is_help=True, help="Agency public keys: add, rotate, revoke.")
ledger_app = typer.Typer(no_args_is_help=True, help="Read the enterprise ledgers.")
app.add_typer(agency_app, name="agency")
app.add_typer(key_app, name="key")
app.add_typer(ledger_app, name="ledger")
witness_app = typer.Typer(
    no_args_is_help=True, help="Run a C2SP tlog witness (what a consumer agency operates)."
)
app.add_typer(witness_app, name="witness")
subscription_app = typer.Typer(no_args_is_help=True, help="Agency subscriptions (push or pull).")
catalog_app = typer.Typer(
    no_args_is_help=True, help="The measure catalog: versions in force, publish a new one."
)
app.add_typer(catalog_app, name="catalog")
app.add_typer(subscription_app, name="subscription")
WitnessDir = Annotated[Path, typer.Option("--data", help="The witness's own data directory.")]
console = Console()
err = Console(stderr=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
PortOption = Annotated[int, typer.Option(min=1, max=65535, help="TCP port, 1 to 65535.")]
# Every suite name, sm2-sm3 too: without its optional wheel keys.suites says how to install it.
SuiteName = Literal["ed25519", "es256", "sm2-sm3"]
SuiteOption = Annotated[SuiteName, typer.Option(help="Signature suite.")]


def settings() -> Settings:
    return Settings()


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    return typer.Exit(code)


def explain(exc: Exception) -> tuple[str, str | None] | None:
    """(one sentence, a hint or None) for the errors a user's mistake raises; None for a bug."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError
    from sqlalchemy.exc import ArgumentError, OperationalError, ProgrammingError

    from keys.jws import JWSError
    from keys.keypair import InvalidKeyError
    from keys.note import NoteError
    from keys.store import KeyFileError
    from keys.suites import UnknownSuiteError

    if isinstance(exc, GatewayError):
        return f"{exc.code}: {exc.detail}", None
    if isinstance(exc, ValidationError):
        return _invalid_settings(exc), "see Configuration in the README"
    if isinstance(exc, SettingsError):
        example = """GATEWAY_DELIVERY__ALLOWED_HOSTS='["127.0.0.1"]'"""
        return (
            f"cannot read the settings: {exc}",
            f"list and group settings are JSON, e.g. {example}",
        )
    if isinstance(exc, ArgumentError):  # NoSuchModuleError (an unknown scheme) is one too
        hint = (
            "e.g. postgresql://user@host/db, or unset it for the SQLite file in the data directory"
        )
        return f"GATEWAY_DATABASE_URL is not a usable database URL: {exc}", hint
    if isinstance(exc, (OperationalError, ProgrammingError)):
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        if "no such table" in reason or ("relation" in reason and "does not exist" in reason):
            return "the database holds no gateway tables", INIT_HINT
        hint = (
            "check GATEWAY_DATABASE_URL and that the database server runs and the database exists"
        )
        return f"cannot use the database: {reason}", hint
    if isinstance(exc, (KeyFileError, UnknownSuiteError, InvalidKeyError, NoteError, JWSError)):
        return str(exc), None
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror or exc}{where}", None
    return None


def _invalid_settings(exc: Any) -> str:
    """Each invalid setting by its environment variable (nested groups joined with `__`)."""
    problems = []
    for error in exc.errors():
        names = [str(part) for part in error["loc"] if not isinstance(part, int)]
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"GATEWAY_{'__'.join(names).upper()}: {message}" if names else message)
    return "invalid settings: " + "; ".join(problems)


def emit(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@contextmanager
def admin_session(write: bool = True) -> Iterator[tuple[Any, Any]]:
    """The local database for an admin command: one transaction (or a read), the runtime
    closed afterwards, a GatewayError turned into `error: code: detail` and exit 1."""
    runtime = open_runtime()
    try:
        with runtime.db.transaction() if write else runtime.db.reader() as session:
            yield runtime, session
    except GatewayError as exc:
        raise fail(f"{exc.code}: {exc.detail}") from exc
    finally:
        runtime.close()


def open_runtime() -> Any:
    from gateway.runtime import Runtime

    cfg = settings()
    require_initialised(cfg)
    return Runtime.open(cfg)


def require_keys(cfg: Settings) -> None:
    from gateway.signing import LOG_KEY_FILE, RECEIPT_KEY_FILE, WEBHOOK_KEY_FILE

    for name in (RECEIPT_KEY_FILE, LOG_KEY_FILE, WEBHOOK_KEY_FILE):
        if not (cfg.key_dir / name).exists():
            raise fail(f"{cfg.key_dir} holds no gateway key {name}; {INIT_HINT}")


def require_initialised(cfg: Settings) -> None:
    """Refuse, creating nothing, unless `gateway init` has made the keys and brought the
    database to the migrations' head: opening a missing SQLite file would create it empty."""
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import make_url

    from gateway.migrate import alembic_config, current_revision

    require_keys(cfg)
    url = cfg.effective_database_url
    parsed = make_url(url)
    file = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if file not in (None, "", ":memory:") and not Path(str(file)).exists():
        raise fail(f"there is no database file {file}; {INIT_HINT}")
    revision = current_revision(url)
    scripts = ScriptDirectory.from_config(alembic_config(url))
    head = scripts.get_current_head()
    if revision == head:
        return
    where = parsed.render_as_string(hide_password=True)
    if revision is None:
        raise fail(f"the database {where} holds no gateway tables; {INIT_HINT}")
    if revision not in {script.revision for script in scripts.walk_revisions()}:
        raise fail(
            f"the database {where} is at revision {revision}, which this version of the gateway"
            " does not know (a newer one migrated it): run that version"
        )
    raise fail(
        f"the database {where} is at revision {revision}, not {head}; run `gateway init` to"
        " upgrade it"
    )


@app.command()
def init(as_json: JsonFlag = False) -> None:
    """Create or upgrade the database (Alembic) and the gateway's signing keys."""
    from gateway.migrate import current_revision, upgrade
    from gateway.signing import ensure_gateway_keys, load_gateway_signer

    cfg = settings()
    # Migrating first: an unreachable database or a bad URL leaves no data directory behind
    # (make_engine creates the SQLite file's directory itself).
    upgrade(cfg.effective_database_url)
    created, key_dir = ensure_gateway_keys(cfg)
    signer = load_gateway_signer(cfg)
    from gateway.app import record_shipped_catalog

    runtime = open_runtime()
    try:
        record_shipped_catalog(runtime)
    finally:
        runtime.close()
    result = {
        "database": cfg.effective_database_url.split("@")[-1],
        "revision": current_revision(cfg.effective_database_url),
        "keys": str(key_dir),
        "keys_created": created,
        "receipt_kid": signer.receipt_key.kid,
    }
    if as_json:
        emit(result)
        return
    for name, value in result.items():
        console.print(f"[bold]{name}[/bold]: {value}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: PortOption = 8000,
    workers: Annotated[
        int, typer.Option(min=1, help="API processes (PostgreSQL for more than 1).")
    ] = 1,
) -> None:
    """Run the HTTP API (migrates the database and creates keys first if needed)."""
    import uvicorn

    from gateway.migrate import upgrade
    from gateway.signing import ensure_gateway_keys

    cfg = settings()
    if workers > 1 and cfg.effective_database_url.startswith("sqlite"):
        raise fail("several API processes need PostgreSQL (set GATEWAY_DATABASE_URL)")
    upgrade(cfg.effective_database_url)
    ensure_gateway_keys(cfg)
    uvicorn.run(
        "gateway.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=False,
    )


@agency_app.command("add")
def agency_add(
    agency_id: Annotated[str, typer.Argument(help="Short id, e.g. fj-yjt")],
    name: Annotated[str, typer.Option(help="Official name.")],
    uscc: Annotated[str, typer.Option(help="The agency's unified social credit code.")],
    role: Annotated[list[str], typer.Option(help="Role (repeatable), e.g. grading_authority.")],
    publish: Annotated[
        list[str] | None, typer.Option(help="Message type it may publish (repeatable).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Register an agency; publish rights are denied unless granted here or by `agency grant`."""
    from gateway.registry import service

    with admin_session() as (runtime, session):
        service.add_agency(
            session,
            runtime.signer,
            agency_id=agency_id,
            name=name,
            uscc=uscc,
            roles=role,
            now=now(),
        )
        rights = service.grant_publish(session, runtime.signer, agency_id, publish or [], now())
    if as_json:
        emit({"id": agency_id, "roles": role, "publish": rights})
    else:
        console.print(f"registered [bold]{agency_id}[/bold] ({name}); may publish: {rights or '-'}")


def _view_spec(spec: str) -> tuple[str, list[str] | None]:
    """`grade.revoked` (every field) or `grade.revoked=reason_code,decided_on` (a view). An
    `=` naming no field is refused, as the API refuses an empty view: read as the whole
    contract it would grant the most where the least was written."""
    contract, equals, fields = spec.partition("=")
    names = [f.strip() for f in fields.split(",") if f.strip()]
    if equals and not names:
        raise fail(
            f"{spec!r} names no field (invalid_fields): write {contract.strip()} for the whole"
            f" contract, or {contract.strip()}=FIELD,FIELD for a view"
        )
    return contract.strip(), names or None


@agency_app.command("grant")
def agency_grant(
    agency_id: str,
    types: Annotated[list[str] | None, typer.Argument(help="Message types it may publish.")] = None,
    subscribe: Annotated[
        list[str] | None,
        typer.Option(help="TYPE or TYPE=field,field: subscribe, seeing those data fields."),
    ] = None,
    query: Annotated[
        list[str] | None,
        typer.Option(help="standing|grade_history, optionally =field,field (e.g. grade.level)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Allow an agency to publish types, subscribe to types and ask queries, each with an
    optional field view (deny by default; every change is a log entry)."""
    from gateway.registry import rights

    wanted: list[tuple[str, str, list[str] | None]] = [("publish", t, None) for t in types or []]
    wanted += [("subscribe", *_view_spec(spec)) for spec in subscribe or []]
    wanted += [("query", *_view_spec(spec)) for spec in query or []]
    if not wanted:
        raise fail("name something to grant: TYPES, --subscribe or --query")
    with admin_session() as (runtime, session):
        for action, contract, fields in wanted:
            granted = rights.grant(
                session,
                runtime.signer,
                agency_id=agency_id,
                action=action,
                contract=contract,
                fields=fields,
                now=now(),
            )
    _show_rights(granted, as_json)


@agency_app.command("revoke")
def agency_revoke(
    agency_id: str,
    publish: Annotated[list[str] | None, typer.Option(help="Message type.")] = None,
    subscribe: Annotated[list[str] | None, typer.Option(help="Message type.")] = None,
    query: Annotated[list[str] | None, typer.Option(help="standing | grade_history")] = None,
    scope: Annotated[list[str] | None, typer.Option(help="Token scope.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Withdraw rights or scopes at once (each a log entry)."""
    from gateway.access.tokens import revoke_scope
    from gateway.registry import rights

    wanted = [("publish", c) for c in publish or []] + [("subscribe", c) for c in subscribe or []]
    wanted += [("query", c) for c in query or []]
    if not wanted and not scope:
        raise fail("name something to revoke: --publish, --subscribe, --query or --scope")
    with admin_session() as (runtime, session):
        for action, contract in wanted:
            rights.revoke(
                session,
                runtime.signer,
                agency_id=agency_id,
                action=action,
                contract=contract,
                now=now(),
            )
        for name in scope or []:
            revoke_scope(session, runtime.signer, agency_id, name, now())
        left = rights.rights_of(session, agency_id)
    _show_rights(left, as_json)


@agency_app.command("rights")
def agency_rights(agency_id: str, as_json: JsonFlag = False) -> None:
    """What an agency may publish, subscribe to and query (with field views), its scopes and
    rate limit."""
    from gateway.registry import rights

    with admin_session(write=False) as (_, session):
        shown = rights.rights_of(session, agency_id)
    _show_rights(shown, as_json)


@agency_app.command("rate-limit")
def agency_rate_limit(
    agency_id: str,
    per_second: Annotated[float | None, typer.Option(help="Requests per second.")] = None,
    burst: Annotated[int | None, typer.Option(help="Requests at once.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Set an agency's own request rate (both options), or without options return it to the
    default (GATEWAY_RATE_LIMIT_PER_SECOND / _BURST). Running API processes apply it within
    seconds."""
    from gateway.registry import rights

    if (per_second is None) != (burst is None):
        raise fail(
            "give both --per-second and --burst to set the agency's rate, or neither to"
            " return it to the default",
            code=2,
        )
    with admin_session() as (runtime, session):
        shown = rights.set_rate_limit(
            session,
            runtime.signer,
            agency_id=agency_id,
            per_second=per_second,
            burst=burst,
            now=now(),
        )
    _show_rights(shown, as_json)


def _show_rights(shown: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit(shown)
        return
    table = Table("right", "contract", "fields", title=f"rights of {shown['agency_id']}")
    for message_type in shown["publish"]:
        table.add_row("publish", message_type, "")
    for action in ("subscribe", "query"):
        for contract, fields in shown[action].items():
            table.add_row(action, contract, "all" if fields is None else ", ".join(fields))
    console.print(table)
    limit = shown["rate_limit"]
    rate = f"{limit['per_second']:g}/s, burst {limit['burst']}" if limit else "default"
    console.print(f"scopes: {', '.join(shown['scopes']) or '-'}; rate limit: {rate}")


@agency_app.command("scopes")
def agency_scopes(
    agency_id: str,
    scopes: Annotated[
        list[str], typer.Argument(help="publish subscribe query ledger.read admin witness")
    ],
) -> None:
    """Allow an agency's access tokens these scopes (recorded in the log). The first operator
    is made this way: `gateway agency add ops … --role operator` then `scopes ops admin`."""
    from gateway.access.tokens import grant_scopes

    with admin_session() as (runtime, session):
        granted = grant_scopes(session, runtime.signer, agency_id, scopes, now())
    console.print(f"{agency_id} tokens may carry: {', '.join(granted)}")


@agency_app.command("list")
def agency_list(as_json: JsonFlag = False) -> None:
    """Registered agencies, their roles, rights and keys."""
    from gateway.registry.routes import agency_views

    runtime = open_runtime()
    try:
        views = agency_views(runtime)
    finally:
        runtime.close()
    if as_json:
        emit(views)
        return
    table = Table("id", "name", "roles", "may publish", "keys (status)")
    for view in views:
        keys = "\n".join(f"{k['kid'][:12]}… {k['suite']} {k['status']}" for k in view["keys"])
        table.add_row(
            view["id"], view["name"], ", ".join(view["roles"]), "\n".join(view["publish"]), keys
        )
    console.print(table)


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

    cfg = settings()
    require_keys(cfg)
    key = rotate_webhook_key(cfg, dt.timedelta(hours=overlap_hours), now())
    console.print(f"new v1a key {public_key_text(key)}; the old one signs for {overlap_hours} h")


@app.command()
def publish(
    file: Annotated[
        Path, typer.Argument(help="JSON envelope (id and issued_at filled if absent).")
    ],
    key: Annotated[Path, typer.Option(help="The agency's private key file (PEM).")],
    url: Annotated[str, typer.Option(help="Gateway base URL.")] = "http://127.0.0.1:8000",
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
    envelope.setdefault("contract", 1)
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


@catalog_app.command("publish")
def catalog_publish(
    file: Annotated[
        Path, typer.Argument(help='JSON file: {"records": [...]} like contracts/data/measures.json')
    ],
    as_json: JsonFlag = False,
) -> None:
    """Publish a new catalog version (validated; recorded in the log; the newest is in force)."""
    from gateway.measures.catalog import publish_catalog

    try:
        records = json.loads(file.read_text())["records"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise fail(f"cannot read a catalog with records from {file}: {exc}") from exc
    with admin_session() as (runtime, session):
        row = publish_catalog(session, runtime.signer, records, source="operator", now=now())
        shown = {"version": row.version, "sha256": row.sha256, "records": len(row.records)}
    if as_json:
        emit(shown)
    else:
        console.print(f"catalog version {shown['version']} in force ({shown['records']} records)")


@catalog_app.command("versions")
def catalog_list(as_json: JsonFlag = False) -> None:
    """Every catalog version, the newest in force."""
    from gateway.measures.catalog import versions

    with admin_session(write=False) as (_, session):
        rows = versions(session)
    if as_json:
        emit(rows)
        return
    table = Table("version", "source", "records", "recorded", "sha256")
    for row in rows:
        table.add_row(
            str(row["version"]),
            row["source"],
            str(row["records"]),
            row["created_at"],
            row["sha256"][:16] + "…",
        )
    console.print(table)


LedgerOption = Annotated[str, typer.Option(help="basic | required | achieved")]
RegionOption = Annotated[
    str | None, typer.Option(help="Division code prefix, 1 to 6 digits, e.g. 3502.")
]
IndustryOption = Annotated[
    str | None, typer.Option(help="GB/T 4754 section letter, A to T (or a to t).")
]
StatusOption = Annotated[str | None, typer.Option(help="Ledger status: 新增 | 达标 | 未达标")]
GradeOption = Annotated[
    str | None, typer.Option(help="Active grade level: 1 | 2 | 3 | small_micro")
]


@ledger_app.command("list")
def ledger_list(
    ledger: LedgerOption = "basic",
    region: RegionOption = None,
    industry: IndustryOption = None,
    status: StatusOption = None,
    grade: GradeOption = None,
    limit: Annotated[
        int, typer.Option(min=1, max=1000, help="Rows to show, 1 to 1000 (as the API's limit).")
    ] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Show the first page of a ledger, with filters."""
    from gateway.ledger.service import LedgerFilter, enterprise_row, list_ledger

    runtime = open_runtime()
    flt = LedgerFilter(ledger=ledger, region=region, industry=industry, status=status, grade=grade)
    try:
        with runtime.db.reader() as session:
            page = list_ledger(session, flt, limit=limit)
            items = [enterprise_row(r) for r in page.rows]
    except GatewayError as exc:
        raise fail(f"{exc.code}: {exc.detail}") from exc
    finally:
        runtime.close()
    total = page.total
    if as_json:
        emit({"total": total, "items": items})
        return
    table = Table(
        "code",
        "name",
        "region",
        "ind.",
        "status",
        "grade",
        "valid to",
        title=f"{ledger} ledger: {total} enterprises",
    )
    for r in items:
        grade_text = r["grade_level"] if r["grade_status"] == "active" else r["grade_status"]
        table.add_row(
            r["uscc"],
            r["name"],
            r["region_code"],
            r["industry_section"],
            r["ledger_status"],
            grade_text or "-",
            r["grade_valid_to"] or "-",
        )
    console.print(table)


@ledger_app.command("export")
def ledger_export(
    output: Annotated[Path, typer.Option("--output", "-o", help="CSV file to write.")],
    ledger: LedgerOption = "basic",
    region: RegionOption = None,
    industry: IndustryOption = None,
    status: StatusOption = None,
    grade: GradeOption = None,
) -> None:
    """Export a ledger to CSV as GET /v1/ledgers/{ledger}/export.csv does: UTF-8 with a byte
    order mark, free-text cells that start like a formula prefixed with a quote. The file is
    replaced only when the whole export is written: a refused filter or a failure leaves it
    as it was."""
    import os
    import shutil

    from gateway.ledger.service import LedgerFilter, export_csv

    flt = LedgerFilter(ledger=ledger, region=region, industry=industry, status=status, grade=grade)
    try:
        flt.check()
    except GatewayError as exc:
        raise fail(f"{exc.code}: {exc.detail}") from exc
    # Written beside the target (same file system) so that the rename is atomic (POSIX
    # rename(2)): whoever reads the file sees the old export or the new one, never a part.
    partial = output.with_name(f".{output.name}.{uuid.uuid4().hex[:8]}.part")
    runtime = open_runtime()
    try:
        with runtime.db.reader() as session, partial.open("x", encoding="utf-8") as handle:
            for chunk in export_csv(session, flt):
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        if output.exists():
            shutil.copymode(output, partial)
        partial.replace(output)
    except GatewayError as exc:
        raise fail(f"{exc.code}: {exc.detail}") from exc
    except OSError as exc:
        raise fail(f"cannot write {output}: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
        runtime.close()
    console.print(f"wrote {output}")


@app.command()
def audit(as_json: JsonFlag = False) -> None:
    """Recompute the Merkle tree from the stored entries; exit 1 naming the first bad index."""
    from rich.progress import Progress

    from gateway.tlog import tree_size
    from gateway.transparency.audit import audit_log
    from gateway.transparency.service import log_vkey

    runtime = open_runtime()
    vkey = log_vkey(runtime.settings.log_origin, runtime.signer.log_key)
    try:
        with runtime.db.reader() as session:
            size = tree_size(session)
            with Progress(console=err, transient=True, disable=as_json) as progress:
                task = progress.add_task("auditing the log", total=size)
                report = audit_log(
                    session, log_vkey=vkey, progress=lambda n: progress.advance(task, n)
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


@app.command()
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

    try:
        checks = check_bundle(
            _json_object(bundle, "an evidence bundle"),
            gateway_jwks=_json_object(gateway_jwks, "a JWK set"),
            log_vkey=log_vkey.read_text().strip(),
            publisher_jwk=_json_object(publisher_jwk, "a JWK"),
        )
    except (OSError, ValueError, KeyError) as exc:
        raise fail(f"cannot read the inputs: {exc}") from exc
    if as_json:
        emit([{"check": c.name, "ok": c.ok, "detail": c.detail} for c in checks])
    else:
        table = Table("check", "result", "detail")
        for c in checks:
            table.add_row(c.name, "[green]ok[/green]" if c.ok else "[red]FAILED[/red]", c.detail)
        console.print(table)
    if not all(c.ok for c in checks) or len(checks) < 7:
        raise typer.Exit(1)


def _json_object(path: Path, what: str) -> dict[str, Any]:
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise fail(f"{path} does not hold {what} (a JSON object)")
    return data


@subscription_app.command("add")
def subscription_add(
    agency_id: str,
    types: Annotated[list[str], typer.Option("--type", help="Message type (repeatable).")],
    url: Annotated[str | None, typer.Option(help="Push endpoint; omit for pull only.")] = None,
    region: Annotated[str | None, typer.Option(help="Division code prefix filter.")] = None,
    view: Annotated[str, typer.Option(help="full | notice")] = "full",
    hmac: Annotated[bool, typer.Option(help="Also sign v1 (HMAC, whsec_ secret).")] = False,
    rate_limit: Annotated[
        float | None, typer.Option(help="Deliveries per second at most (default: no limit).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Subscribe an agency; prints the subscription (and its whsec_ secret, once)."""
    from gateway.delivery.routes import view_of
    from gateway.delivery.subscriptions import create_subscription

    with admin_session() as (runtime, session):
        sub = create_subscription(
            session,
            agency_id=agency_id,
            url=url,
            types=types,
            now=now(),
            allowed_hosts=runtime.settings.delivery.allowed_hosts,
            region_prefix=region,
            view=view,
            signing=["v1a", "v1"] if hmac else ["v1a"],
            rate_limit=rate_limit,
        )
        out = view_of(sub, runtime, secret=True)
    if as_json:
        emit(out)
        return
    for name, value in out.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items() if v is not None)
        elif isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        shown = "-" if value is None or value == "" else str(value)
        console.print(f"[bold]{name}[/bold]: {escape(shown)}", soft_wrap=True)


@subscription_app.command("list")
def subscription_list(as_json: JsonFlag = False) -> None:
    """Subscriptions with their status and delivery counts."""
    from gateway.delivery.feed import delivery_counts
    from gateway.delivery.routes import view_of
    from gateway.delivery.subscriptions import list_subscriptions

    runtime = open_runtime()
    try:
        with runtime.db.reader() as session:
            counts = delivery_counts(session)
            items = [
                view_of(s, runtime) | {"deliveries": counts.get(s.id, {})}
                for s in list_subscriptions(session)
            ]
    finally:
        runtime.close()
    if as_json:
        emit(items)
        return
    table = Table()
    # The whole id, never cut: `subscription status`, `dead-letters` and `replay` take it.
    table.add_column("id", no_wrap=True, min_width=36)
    for column in ("agency", "url", "types", "status", "deliveries"):
        table.add_column(column)
    for i in items:
        table.add_row(
            i["id"],
            i["agency_id"],
            i["url"] or "(pull)",
            "\n".join(i["types"]),
            i["status"],
            ", ".join(f"{k} {v}" for k, v in sorted(i["deliveries"].items())),
        )
    console.print(table)


@subscription_app.command("status")
def subscription_status(
    subscription_id: str,
    status: Annotated[str, typer.Argument(help="active | paused | disabled")],
    reason: Annotated[str | None, typer.Option(help="Why (kept on the subscription).")] = None,
) -> None:
    """Pause, disable or re-enable a subscription; re-enabled, it catches up in order."""
    from gateway.delivery.subscriptions import set_status

    with admin_session() as (_runtime, session):
        set_status(session, subscription_id, status, reason)
    console.print(f"{subscription_id}: {status}")


@subscription_app.command("dead-letters")
def subscription_dead(subscription_id: str, as_json: JsonFlag = False) -> None:
    """Deliveries that exhausted their retries."""
    from gateway.delivery.feed import dead_letters

    with admin_session(write=False) as (_runtime, session):
        rows = dead_letters(session, subscription_id)
    if as_json:
        emit(rows)
        return
    table = Table("log index", "message", "enterprise", "attempts", "last error")
    for r in rows:
        table.add_row(
            str(r["log_index"]),
            r["message_id"],
            r["enterprise"],
            str(r["attempts"]),
            r["last_error"] or "",
        )
    console.print(table)


@subscription_app.command("replay")
def subscription_replay(
    subscription_id: str,
    from_index: Annotated[int | None, typer.Option(help="First log index.")] = None,
    to_index: Annotated[int | None, typer.Option(help="Last log index (inclusive).")] = None,
    operator: Annotated[str, typer.Option(help="Who replays (recorded).")] = "cli",
) -> None:
    """Queue deliveries again (same webhook-id); one: --from-index N --to-index N."""
    from gateway.delivery.feed import replay

    with admin_session() as (_runtime, session):
        n = replay(
            session,
            subscription_id,
            now(),
            from_index=from_index,
            to_index=to_index,
            operator=operator,
        )
    console.print(f"replaying {n} deliveries")


@app.command()
def worker() -> None:
    """Deliver due messages until interrupted (run several on one PostgreSQL database)."""
    import signal
    import threading

    from gateway.delivery.worker import run_until
    from gateway.logs import configure_logging

    runtime = open_runtime()
    logs = runtime.settings.observability
    configure_logging(logs.log_format, level=logs.log_level, batch_seconds=logs.log_batch_seconds)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    err.print("delivery worker running; Ctrl-C to stop")
    try:
        run_until(runtime, stop)
    except KeyboardInterrupt:
        stop.set()
    finally:
        runtime.close()


def _witness(data: Path) -> Any:
    from gateway.witness.service import Witness

    meta = data / "witness.json"
    if not meta.exists():
        raise fail(f"{data} holds no witness; run `gateway witness init --data {data}` first")
    return Witness.open(data, json.loads(meta.read_text())["name"])


@witness_app.command("init")
def witness_init(
    data: WitnessDir,
    name: Annotated[str, typer.Option(help="Witness name, e.g. witness.fj-picc.example/w1")],
    as_json: JsonFlag = False,
) -> None:
    """Create the witness's Ed25519 key and state; prints its verifier key for the gateway.
    Run again with the same name it only prints the vkey: a witness is never renamed."""
    from gateway.witness.service import Witness, check_name
    from keys.note import NoteError

    try:
        check_name(name)  # before anything is written
    except NoteError as exc:
        raise fail(f"--name cannot name a witness ({exc}): non-empty, no spaces, no +", 2) from exc
    meta = data / "witness.json"
    if meta.exists():
        held = json.loads(meta.read_text()).get("name")
        if held != name:
            raise fail(
                f"{data} already holds the witness {held!r}; its key and cosigned state are"
                f" that name's. Give --name {held}, or start over with another --data directory"
            )
    data.mkdir(parents=True, exist_ok=True)
    witness = Witness.open(data, name)
    if not meta.exists():
        meta.write_text(json.dumps({"name": name}) + "\n")
    emit({"name": name, "vkey": witness.vkey}) if as_json else console.print(witness.vkey)


@witness_app.command("trust")
def witness_trust(
    data: WitnessDir,
    log_vkey: Annotated[str, typer.Option(help="The log's verifier key (GET /v1/log/vkey).")],
) -> None:
    """Trust a log: its checkpoints signed by this key will be cosigned if consistent."""
    from keys.note import NoteError, parse_vkey

    try:
        origin = parse_vkey(log_vkey.strip()).name
    except NoteError as exc:
        raise fail(str(exc)) from exc
    _witness(data).state.trust(origin, log_vkey.strip())
    console.print(f"trusting log {origin}")


@witness_app.command("status")
def witness_status(data: WitnessDir, as_json: JsonFlag = False) -> None:
    """The logs this witness follows and the latest size it cosigned for each."""
    logs = _witness(data).state.logs()
    rows = [{"origin": log.origin, "size": log.size} for log in logs]
    if as_json:
        emit(rows)
        return
    table = Table("log origin", "cosigned size")
    for row in rows:
        table.add_row(row["origin"], str(row["size"]))
    console.print(table)


@witness_app.command("serve")
def witness_serve(
    data: WitnessDir,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: PortOption = 8100,
) -> None:
    """Serve POST /add-checkpoint (C2SP tlog-witness) for the trusted logs."""
    import uvicorn

    from gateway.witness.app import create_witness_app

    uvicorn.run(create_witness_app(_witness(data)), host=host, port=port, log_level="info")


@app.command()
def demo(
    enterprises: Annotated[
        int, typer.Option(min=1, help="How many enterprises to generate.")
    ] = 400,
    keep: Annotated[
        Path | None, typer.Option(help="Keep the data in this new or empty directory.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed for the data set.")] = 2017,
) -> None:
    """Run the main job end to end on the embedded SQLite default, in a temporary directory."""
    from gateway.demo.run import run_demo

    # A kept run holds its agencies' keys and log: a second run there would collide with them.
    if keep is not None and (keep.is_file() or (keep.is_dir() and any(keep.iterdir()))):
        raise fail(f"{keep} is not a new or empty directory; give --keep another one", code=2)

    raise typer.Exit(run_demo(enterprises=enterprises, keep=keep, seed=seed, console=console))


contracts_app = typer.Typer(
    no_args_is_help=True, help="Message and view contracts: list them, prove them compatible."
)
app.add_typer(contracts_app, name="contracts")


@contracts_app.command("list")
def contracts_list(as_json: JsonFlag = False) -> None:
    """Every contract and its majors: live or retired, and which released revision it is."""
    from contracts.versions import load_registry

    contracts = [contract.summary() for contract in load_registry().contracts()]
    if as_json:
        emit(contracts)
        return
    table = Table("contract", "kind", "major", "status", "revision", "released")
    for contract in contracts:
        for version in contract["versions"]:
            table.add_row(
                contract["name"],
                contract["kind"],
                str(version["major"]),
                "live" if version["live"] else "retired",
                version["revision"] or "unreleased",
                str(version["released_revisions"]),
            )
    console.print(table)


@contracts_app.command("check")
def contracts_check(as_json: JsonFlag = False) -> None:
    """Prove every live producer schema compatible with its consumer schema and with each
    released revision of its major. Exit 1 listing the breaks (JSON pointer and reason)."""
    from contracts.checks import check_registry
    from contracts.versions import load_registry

    reports = check_registry(load_registry())
    broken = [report for report in reports if not report.compatible]
    if as_json:
        emit({"compatible": not broken, "contracts": [r.as_dict() for r in reports]})
    else:
        table = Table("contract", "kind", "major", "revision", "compared", "result")
        for r in reports:
            result = "[green]compatible[/green]" if r.compatible else f"[red]{len(r.breaks)} breaks"
            revision = r.revision or "unreleased"
            table.add_row(r.name, r.kind, str(r.major), revision, str(r.compared), result)
        console.print(table)
        if broken:
            breaks = Table("contract", "against", "pointer", "reason", title="breaks")
            for r in broken:
                for b in r.breaks:
                    breaks.add_row(f"{r.name} v{r.major}", b.against, b.pointer or "/", b.reason)
            console.print(breaks)
    if broken:
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
