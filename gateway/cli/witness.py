"""`gateway witness`: a C2SP tlog witness kept in its own data directory (what a consumer
agency operates): create it, trust a log, show its state, serve it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from gateway.cli.root import JsonFlag, PortOption, console, emit, fail, require_free_port
from gateway.cli.tables import print_table

witness_app = typer.Typer(
    no_args_is_help=True, help="Run a C2SP tlog witness (what a consumer agency operates)."
)


WitnessDir = Annotated[Path, typer.Option("--data", help="The witness's own data directory.")]


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
    print_table(table, console)


@witness_app.command("serve")
def witness_serve(
    data: WitnessDir,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: PortOption = 8100,
) -> None:
    """Serve POST /add-checkpoint (C2SP tlog-witness) for the trusted logs."""
    import uvicorn

    from gateway.witness.app import create_witness_app

    witness = _witness(data)
    require_free_port(host, port)
    uvicorn.run(create_witness_app(witness), host=host, port=port, log_level="info")
