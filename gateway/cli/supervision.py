"""`gateway supervision` and `gateway draw`: the supervision plan of a region and year, and a
random draw verified from the log alone (docs/draws.md)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from gateway.cli.installation import admin_session
from gateway.cli.root import JsonFlag, console, emit, fail, now
from gateway.cli.tables import print_table

supervision_app = typer.Typer(
    no_args_is_help=True, help="Classified supervision: who must be inspected how often."
)
draw_app = typer.Typer(no_args_is_help=True, help="Random draws (双随机): verify one.")


@supervision_app.command("plan")
def supervision_plan(
    region: Annotated[str, typer.Option(help="Division code prefix, 1 to 6 digits.")],
    year: Annotated[int, typer.Option(min=2000, max=2199, help="The plan's year.")],
    behind_only: Annotated[bool, typer.Option("--behind-only", help="Only who is behind.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Rows to show.")] = 100,
    as_json: JsonFlag = False,
) -> None:
    """Inspections required by each enterprise's classified supervision against those
    recorded this year, due by today in proportion; who is behind."""
    from contracts.dates import local_date
    from gateway.supervision.plan import plan

    with admin_session(write=False) as (_, session):
        found = plan(
            session,
            region=region,
            year=year,
            today=local_date(now()),
            behind_only=behind_only,
            limit=limit,
        )
    if as_json:
        emit(found)
        return
    totals = found["totals"]
    table = Table(
        title=f"Supervision plan {region} {year} as of {found['on']}: {totals['enterprises']} "
        f"enterprises, {totals['behind']} behind"
    )
    table.add_column("code", no_wrap=True, min_width=18)  # an id is never cut
    table.add_column("name", overflow="fold")
    for column in ("grade", "required/yr", "due", "recorded", "behind", "key", "penalties"):
        table.add_column(column, overflow="fold")
    for item in found["items"]:
        supervision = item["supervision"]
        table.add_row(
            item["uscc"],
            item["name"],
            item["grade_level"] or item["grade_status"],
            str(item["required_per_year"]),
            str(item["due_by_now"]),
            str(item["recorded"]),
            "yes" if item["behind"] else "",
            "yes" if supervision["key_supervision"] else "",
            supervision["penalty_scale"],
        )
    print_table(table, console)


class DrawRefused(Exception):
    """A draw `gateway draw verify` cannot check, with a stable code (issue 21 §5)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code, self.detail = code, detail


@draw_app.command("verify")
def draw_verify(
    draw_id: Annotated[str, typer.Argument(help="The draw's id.")],
    as_json: JsonFlag = False,
) -> None:
    """Recompute a completed draw from the log alone — the checkpoint, the request, the
    reveal, the candidates (the ledger as of the request's log size), the seed, the
    selection and the inspectors — and compare the candidates the gateway's database drew
    from. Exit 1 naming the first difference. A draw that cannot be checked exits 1 with a
    stable code: unknown_draw, draw_not_completed, seed_checkpoint_missing (no stored
    checkpoint of the size the result names) or size_not_committed (the log holds fewer
    entries than that size); with --json, `code` is that, `draw_differs` or null."""
    try:
        differences, summary = _verify(draw_id)
    except DrawRefused as refused:
        if as_json:
            emit(
                {
                    "draw_id": draw_id,
                    "verified": False,
                    "code": refused.code,
                    "detail": refused.detail,
                    "differences": [],
                }
            )
            raise typer.Exit(1) from None
        raise fail(f"{refused.code}: {refused.detail}") from None
    if as_json:
        emit(
            {
                "draw_id": draw_id,
                "verified": not differences,
                "code": "draw_differs" if differences else None,
                "differences": differences,
            }
        )
    elif differences:
        console.print(
            f"[red]draw {draw_id} does not verify:[/red] {differences[0]}", soft_wrap=True
        )
    else:
        console.print(f"draw {draw_id} verifies: {summary}")
    if differences:
        raise typer.Exit(1)


def _verify(draw_id: str) -> tuple[list[str], str]:
    """The differences keys.draw_verify finds, and a one-line summary; DrawRefused when the
    draw cannot be checked at all."""
    from sqlalchemy import select

    from gateway.models import Checkpoint, Draw, LogEntry
    from gateway.transparency.checkpoints import with_cosignatures
    from gateway.transparency.service import log_vkey
    from keys.draw_verify import verify_draw

    with admin_session(write=False) as (runtime, session):
        draw = session.get(Draw, draw_id)
        if draw is None:
            raise DrawRefused("unknown_draw", f"no draw {draw_id!r}")
        if draw.status != "completed" or draw.result is None:
            raise DrawRefused(
                "draw_not_completed", f"draw {draw_id} is {draw.status}: nothing to verify yet"
            )
        size = int(draw.result["seed_checkpoint_size"])
        checkpoint = session.get(Checkpoint, size)
        if checkpoint is None:
            raise DrawRefused(
                "seed_checkpoint_missing", f"no stored checkpoint of size {size}, the draw's seed"
            )
        leaves = list(
            session.scalars(select(LogEntry.jws).where(LogEntry.idx < size).order_by(LogEntry.idx))
        )
        if len(leaves) != size:
            raise DrawRefused(
                "size_not_committed",
                f"the seed checkpoint names size {size}; the log holds {len(leaves)} below it",
            )
        note = with_cosignatures(session, checkpoint)
        vkey = log_vkey(runtime.settings.log_origin, runtime.signer.log_key)
        jwk = runtime.signer.receipt_key.public_key.jwk()
        result: dict[str, Any] = dict(draw.result)
        result["claimed_candidates"] = [row[0] for row in draw.candidates]
        differences = verify_draw(
            leaves=leaves,
            request_index=draw.request_index,
            seed_checkpoint=note,
            log_vkey=vkey,
            secret_hex=str(draw.result["secret"]),
            result=result,
            gateway_jwk=jwk,
        )
        selected = sum(len(s["selected"]) for s in draw.result["strata"])
        summary = (
            f"{len(leaves)} log entries, {selected} selected of {len(draw.candidates)} candidates"
        )
    return differences, summary
