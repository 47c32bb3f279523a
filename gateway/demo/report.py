"""What the demo counts as it runs (`Tally`) and what it prints: its progress bars and the
closing tables of ledgers, refusals, deliveries and feedback."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gateway.demo.dataset import CITIES
from gateway.settings import Settings


@dataclass
class Tally:
    accepted: int = 0
    duplicates: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    refusals: list[tuple[str, str]] = field(default_factory=list)
    receipts: list[tuple[bytes, str]] = field(default_factory=list)  # (jws, receipt)
    unexpected: list[str] = field(default_factory=list)


def progress_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def print_summary(
    settings: Settings, tally: Tally, verified: int, ledger_total: int, console: Console
) -> None:
    from gateway.db import Database
    from gateway.ledger.service import counts_by_region_and_grade

    db = Database(settings.effective_database_url, pool_size=1)
    try:
        with db.reader() as session:
            rows = counts_by_region_and_grade(session)
    finally:
        db.dispose()
    per_city: dict[str, Counter[str]] = {}
    for region, status, grade, n in rows:
        counts = per_city.setdefault(region[:4] + "00", Counter())
        counts[status] += n
        counts["total"] += n
        if grade != "-":
            counts[f"level {grade}"] += n
    table = Table(title=f"Ledgers by city ({ledger_total} enterprises in the basic ledger)")
    columns = {
        "新增": "新增",
        "达标": "达标",
        "未达标": "未达标",
        "level 1": "一级",
        "level 2": "二级",
        "level 3": "三级",
        "level small_micro": "小微",
    }
    table.add_column("city")
    table.add_column("total", justify="right")
    for label in columns.values():
        table.add_column(label, justify="right")
    for city, name in CITIES.items():
        counts = per_city.get(city, Counter())
        table.add_row(name, str(counts["total"]), *(str(counts[c]) for c in columns))
    console.print(table)
    refused = Table(title="Refused on purpose (RFC 9457 problem codes); nothing of them stored")
    refused.add_column("what was wrong")
    refused.add_column("code")
    for label, code in tally.refusals:
        refused.add_row(label, code)
    console.print(refused)
    console.print(
        f"receipts verified against /.well-known/jwks.json: {verified}/{len(tally.receipts)}"
    )


def feedback_table(feedback: dict[str, Any]) -> Table:
    """发起—响应—反馈: who acted on the revocation, which measure, and who is still due."""
    decision = feedback["decision"]
    table = Table(
        "agency",
        "delivered",
        "measures applied",
        "state",
        title=f"Feedback on the revocation of {decision['subject']} "
        f"(deadline {feedback['deadline']}, 5 working days)",
    )
    for agency in feedback["agencies"]:
        measures = ", ".join(m["measure_code"] for m in agency["measures"]) or "-"
        delivered = "yes" if agency["delivered_at"] else "no"
        table.add_row(agency["agency_id"], delivered, measures, agency["state"])
    return table


def delivery_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(
        title="Push deliveries: verified = signatures checked by the receiver; retried = 503s "
        "answered before success; receipts = the receiver's signed receipts kept"
    )
    for column in rows[0] if rows else []:
        table.add_column(column, justify="left" if column in ("receiver", "view") else "right")
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    return table
