"""`gateway catalog`: the measure catalog's versions, and publishing a new one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from gateway.cli.installation import admin_session
from gateway.cli.root import JsonFlag, console, emit, fail, now
from gateway.cli.tables import print_table

catalog_app = typer.Typer(
    no_args_is_help=True, help="The measure catalog: versions in force, publish a new one."
)


@catalog_app.command("publish")
def catalog_publish(
    file: Annotated[
        Path,
        typer.Argument(
            help='JSON file: {"records": [...], "products": [...], "schemes": [...]} like '
            "contracts/data/measures.json (a section left out: the version in force's)"
        ),
    ],
    as_json: JsonFlag = False,
) -> None:
    """Publish a new catalog version (validated; recorded in the log; the newest is in force)."""
    from gateway.measures.catalog import SECTIONS, publish_catalog, stored_records

    try:
        read = json.loads(file.read_text())
        document = {name: read[name] for name in SECTIONS if name in read}
        document["records"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise fail(f"cannot read a catalog with records from {file}: {exc}") from exc
    with admin_session() as (runtime, session):
        row = publish_catalog(session, runtime.signer, document, source="operator", now=now())
        shown = {
            "version": row.version,
            "sha256": row.sha256,
            "records": len(stored_records(row)),
        }
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
            row["sha256"],
        )
    print_table(table, console)
