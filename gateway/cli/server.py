"""The gateway's own processes: `init` prepares the database and keys, `serve` and `worker`
run the API and the deliveries, `demo` runs a throwaway gateway end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from gateway.cli.installation import configured, open_runtime
from gateway.cli.root import JsonFlag, PortOption, console, emit, err, fail, require_free_port


def init(as_json: JsonFlag = False) -> None:
    """Create or upgrade the database (Alembic) and the gateway's signing keys."""
    from gateway.migrate import current_revision, upgrade
    from gateway.signing import ensure_gateway_keys, load_gateway_signer

    cfg = configured()
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

    cfg = configured()
    if workers > 1 and cfg.effective_database_url.startswith("sqlite"):
        raise fail("several API processes need PostgreSQL (set GATEWAY_DATABASE_URL)")
    require_free_port(host, port)
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
        # uvicorn's C parser and libuv loop: about 1.8x the requests/s of h11 and asyncio for
        # the HTTP layer alone (issue 24, bench/http_stack.py); named, not "auto", so a
        # missing extra fails at start instead of falling back to the slow pair unseen
        http="httptools",
        loop="uvloop",
        # forwarded headers only from the proxies named (uvicorn trusts 127.0.0.1 by default)
        proxy_headers=bool(cfg.forwarded_allow_ips),
        forwarded_allow_ips=cfg.forwarded_allow_ips or None,
    )


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


def demo(
    enterprises: Annotated[
        int, typer.Option(min=1, help="How many enterprises to generate.")
    ] = 400,
    keep: Annotated[
        Path | None, typer.Option(help="Keep the data in this new or empty directory.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed for the data set.")] = 2017,
    with_console: Annotated[
        bool,
        typer.Option(
            "--console",
            help="Keep the gateway running after the summary and print a console login link.",
        ),
    ] = False,
) -> None:
    """Run the main job end to end on the embedded SQLite default, in a temporary directory."""
    from gateway.demo.run import run_demo

    # A kept run holds its agencies' keys and log: a second run there would collide with them.
    if keep is not None and (keep.is_file() or (keep.is_dir() and any(keep.iterdir()))):
        raise fail(f"{keep} is not a new or empty directory; give --keep another one", code=2)

    stay = _serve_console if with_console else None
    raise typer.Exit(
        run_demo(enterprises=enterprises, keep=keep, seed=seed, console=console, stay=stay)
    )


def _serve_console(base: str, cfg: Any) -> None:
    """`gateway demo --console`: a login link for the demo's operator, then serve until
    interrupted."""
    import datetime as dt
    import signal
    import threading

    from gateway.console.sessions import issue_link
    from gateway.runtime import Runtime

    runtime = Runtime.open(cfg)
    try:
        with runtime.db.reader() as session:
            token = issue_link(
                session,
                runtime.signer,
                "fj-dsj",
                runtime.clock.now(),
                dt.timedelta(seconds=cfg.console.link_seconds),
            )
    finally:
        runtime.close()
    console.print(
        f"\nthe demo gateway keeps running at {base}; sign in to its console as the operator "
        f"fj-dsj (one-time link, {cfg.console.link_seconds / 60:.0f} minutes):\n"
        f"{base}/console/login?token={token}\n"
        f"more links: GATEWAY_DATA_DIR={cfg.data_dir} gateway console login AGENCY "
        f"--base-url {base}   ·   Ctrl-C stops it",
        soft_wrap=True,
        highlight=False,
    )
    # Ctrl-C (and a plain `kill`) stop it whatever its parent left it: a process started
    # with SIGINT ignored or blocked (as some launchers and test runners do) never raised
    # KeyboardInterrupt here and had to be killed.
    stop = threading.Event()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    console.print("stopped")
