"""`gateway contracts`: the message and view contracts, and the proof that they are
compatible."""

from __future__ import annotations

import typer
from rich.table import Table
from rich.text import Text

from gateway.cli.root import JsonFlag, console, emit
from gateway.cli.tables import print_table

contracts_app = typer.Typer(
    no_args_is_help=True, help="Message and view contracts: list them, prove them compatible."
)


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
    print_table(table, console)


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
            result = (
                Text("compatible", style="green")
                if r.compatible
                else Text(f"{len(r.breaks)} breaks", style="red")
            )
            revision = r.revision or "unreleased"
            table.add_row(r.name, r.kind, str(r.major), revision, str(r.compared), result)
        print_table(table, console)
        if broken:
            breaks = Table("contract", "against", "pointer", "reason", title="breaks")
            for r in broken:
                for b in r.breaks:
                    breaks.add_row(f"{r.name} v{r.major}", b.against, b.pointer or "/", b.reason)
            print_table(breaks, console)
    if broken:
        raise typer.Exit(1)
