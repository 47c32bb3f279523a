"""The initialised gateway an admin command works on: its settings, the check that `gateway
init` made the keys and brought the database to the migrations' head, and a session on it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gateway.cli.root import INIT_HINT, fail
from gateway.errors import GatewayError
from gateway.settings import Settings


def settings() -> Settings:
    """The settings from the environment (GATEWAY_*). Commands read them through
    `configured()`, never by calling this directly."""
    return Settings()


def configured() -> Settings:
    """`gateway.cli.settings()`, looked up on the package at each call: replacing that one
    name (as the tests do) reaches every command, wherever it is defined."""
    import gateway.cli  # the package has finished importing by the time a command runs

    return gateway.cli.settings()


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

    cfg = configured()
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
