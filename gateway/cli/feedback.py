"""`gateway feedback`: the feedback agencies owe on decisions (the API's /v1/feedback)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from gateway.cli.installation import admin_session
from gateway.cli.root import JsonFlag, console, emit, now
from gateway.cli.tables import print_table

feedback_app = typer.Typer(no_args_is_help=True, help="Feedback (measures applied) owed.")


@feedback_app.command("overdue")
def feedback_overdue(
    agency: Annotated[str | None, typer.Option("--agency", help="One agency only.")] = None,
    days: Annotated[int, typer.Option(min=1, max=60, help="Working days allowed.")] = 5,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Pairs to list.")] = 200,
    as_json: JsonFlag = False,
) -> None:
    """Per agency the feedback owed (awaiting, overdue) and given; the overdue pairs."""
    from contracts.dates import local_date
    from gateway.measures.feedback import feedback_owed

    with admin_session(write=False) as (_runtime, session):
        owed = feedback_owed(
            session, local_date(now()), days, agency_id=agency, overdue_only=True, limit=limit
        )
    if as_json:
        emit(owed)
        return
    table = Table("agency", "awaiting", "overdue", "applied", title=f"feedback on {owed['today']}")
    for a in owed["agencies"]:
        table.add_row(a["agency_id"], str(a["awaiting"]), str(a["overdue"]), str(a["applied"]))
    print_table(table, console)
    items = Table("agency", "decision", "type", "enterprise", "deadline", title="overdue")
    for i in owed["items"]:
        items.add_row(i["agency_id"], i["message_id"], i["type"], i["subject"], i["deadline"])
    print_table(items, console)
