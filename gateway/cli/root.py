"""The root `gateway` group and what every command shares: the handler that turns a user's
mistake into one `error:` line, the consoles, JSON output, the common options and the clock."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from gateway.errors import GatewayError

# The root's --help text, word for word what it was as cli.py's docstring.
HELP = (
    "The `gateway` command: init, serve, agency, key, publish, ledger, demo."
    " `--help` everywhere.\n"
    "\n"
    "Tables for people, `--json` for scripts. Admin commands work on the local database"
    " directly.\n"
)

DEBUG_VARIABLE = "GATEWAY_DEBUG"
INIT_HINT = "run `gateway init` first"


class GatewayGroup(TyperGroup):
    """The root command. A user's mistake (an uninitialised data directory, an unreachable
    database, a bad setting, a missing file) ends in one `error:` line and a hint, exit 1;
    GATEWAY_DEBUG=1 lets it through with its traceback. Anything else keeps its traceback."""

    def invoke(self, ctx: Any) -> Any:  # typer's own click Context
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            # the reader went away (`gateway uscc make --count 100 | head`): stop quietly, as
            # Unix tools do; stdout goes to devnull so that flushing it at exit cannot fail
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(141) from None  # 128 + SIGPIPE, as a shell reports it
        except Exception as exc:
            explained = explain(exc)
            if explained is None or os.environ.get(DEBUG_VARIABLE, "") not in ("", "0"):
                raise
            message, hint = explained
            raise fail(message if hint is None else f"{message}; {hint}") from exc


app = typer.Typer(no_args_is_help=True, help=HELP, add_completion=False, cls=GatewayGroup)
console = Console()
err = Console(stderr=True)


JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
PortOption = Annotated[int, typer.Option(min=1, max=65535, help="TCP port, 1 to 65535.")]
# Every suite name, sm2-sm3 too: without its optional wheel keys.suites says how to install it.
SuiteName = Literal["ed25519", "es256", "sm2-sm3"]
SuiteOption = Annotated[SuiteName, typer.Option(help="Signature suite.")]


GatewayUrlOption = Annotated[
    str, typer.Option(envvar="GATEWAY_URL", help="Gateway base URL (or GATEWAY_URL).")
]


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    return typer.Exit(code)


def require_free_port(host: str, port: int) -> None:
    """Refuse in one line, before anything starts, a port another process listens on (uvicorn
    would log six lines and exit) or one this user may not bind."""
    import errno
    import socket

    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as exc:
        raise fail(f"cannot listen on {host}: {exc.strerror}; give --host an address") from exc
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise fail(
                    f"port {port} on {host} is in use (another gateway or program listens"
                    " there): stop it or choose another with --port"
                ) from exc
            if exc.errno == errno.EACCES:
                raise fail(f"port {port} needs privileges to bind: use one above 1023") from exc
            raise fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


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
    if isinstance(exc, ModuleNotFoundError) and exc.name and _is_database_driver(exc):
        return (
            f"GATEWAY_DATABASE_URL needs the database driver {exc.name!r}, which is not installed",
            "the gateway runs on SQLite (built in) and PostgreSQL (postgresql://…, driver"
            " psycopg, installed with the gateway); for another driver, pip install it",
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


def _is_database_driver(exc: ModuleNotFoundError) -> bool:
    """Whether the missing module was imported by a SQLAlchemy dialect (a driver)."""
    frames = traceback_frames(exc)
    return any("sqlalchemy/dialects" in frame or "sqlalchemy/engine" in frame for frame in frames)


def traceback_frames(exc: BaseException) -> list[str]:
    import traceback

    return [frame.filename for frame in traceback.extract_tb(exc.__traceback__)]


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
