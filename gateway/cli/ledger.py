"""`gateway ledger`: a ledger's first page with filters, or the whole of it as CSV."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from gateway.cli.installation import open_runtime
from gateway.cli.root import JsonFlag, console, emit, fail
from gateway.cli.tables import print_table
from gateway.errors import GatewayError

ledger_app = typer.Typer(no_args_is_help=True, help="Read the enterprise ledgers.")


LedgerOption = Annotated[str, typer.Option(help="basic | required | achieved")]
RegionOption = Annotated[
    str | None, typer.Option(help="Division code prefix, 1 to 6 digits, e.g. 3502.")
]
IndustryOption = Annotated[
    str | None, typer.Option(help="GB/T 4754 section letter, A to T (or a to t).")
]
StatusOption = Annotated[str | None, typer.Option(help="Ledger status: 新增 | 达标 | 未达标")]
OnOption = Annotated[
    str | None,
    typer.Option("--on", help="The day read for, YYYY-MM-DD (default: today in Fujian)."),
]
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
    on: OnOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Show the first page of a ledger, with filters, as of a day."""
    from gateway.ledger.service import enterprise_row, list_ledger

    flt = _filter(ledger, region, industry, status, grade, on)
    runtime = open_runtime()
    try:
        with runtime.db.reader() as session:
            page = list_ledger(session, flt, limit=limit)
            items = [enterprise_row(r, flt.on) for r in page.rows]
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
    print_table(table, console)


@ledger_app.command("summary")
def ledger_summary(
    by: Annotated[str, typer.Option(help="region | industry | grade")] = "region",
    ledger: LedgerOption = "basic",
    region: RegionOption = None,
    industry: IndustryOption = None,
    status: StatusOption = None,
    grade: GradeOption = None,
    on: OnOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Count a ledger by region (one level below --region), industry or grade, and by
    ledger status, as GET /v1/ledgers/{ledger}/summary does."""
    from gateway.ledger.service import ledger_summary as summarize

    flt = _filter(ledger, region, industry, status, grade, on)
    runtime = open_runtime()
    try:
        with runtime.db.reader() as session:
            rows = summarize(session, flt, by)
    except GatewayError as exc:
        raise fail(f"{exc.code}: {exc.detail}") from exc
    finally:
        runtime.close()
    groups: dict[str, dict[str, int]] = {}
    for key, state, n in rows:
        groups.setdefault(key, {})[state] = n
    if as_json:
        emit([{"key": k, "total": sum(c.values()), "by_status": c} for k, c in groups.items()])
        return
    statuses = ("新增", "达标", "未达标")
    table = Table(by, *statuses, "total", title=f"{ledger} ledger on {flt.on}")
    for key, counts in groups.items():
        table.add_row(key, *(str(counts.get(s, 0)) for s in statuses), str(sum(counts.values())))
    print_table(table, console)


@ledger_app.command("export")
def ledger_export(
    output: Annotated[Path, typer.Option("--output", "-o", help="CSV file to write.")],
    ledger: LedgerOption = "basic",
    region: RegionOption = None,
    industry: IndustryOption = None,
    status: StatusOption = None,
    grade: GradeOption = None,
    on: OnOption = None,
) -> None:
    """Export a ledger to CSV as GET /v1/ledgers/{ledger}/export.csv does: UTF-8 with a byte
    order mark, free-text cells that start like a formula prefixed with a quote. The file is
    replaced only when the whole export is written: a refused filter or a failure leaves it
    as it was."""
    import os
    import shutil

    from gateway.ledger.service import export_csv

    flt = _filter(ledger, region, industry, status, grade, on)
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


def _filter(
    ledger: str,
    region: str | None,
    industry: str | None,
    status: str | None,
    grade: str | None,
    on: str | None,
) -> Any:
    import datetime as dt

    from gateway.ledger.service import LedgerFilter

    try:
        day = dt.date.fromisoformat(on) if on is not None else None
    except ValueError as exc:
        raise fail(f"--on {on!r} is not a date like 2026-12-07", 2) from exc
    flt = LedgerFilter(ledger=ledger, region=region, industry=industry, status=status, grade=grade)
    return flt if day is None else LedgerFilter(**{**flt.__dict__, "on": day})
