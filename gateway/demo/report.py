"""What the demo counts as it runs (`Tally`) and what it prints: its progress bars and the
closing tables of ledgers, refusals, deliveries and feedback."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gateway.cli.tables import print_table
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
    from contracts.dates import local_date
    from gateway.db import Database
    from gateway.ledger.service import counts_by_region_and_grade

    today = local_date(dt.datetime.now(dt.UTC))
    db = Database(settings.effective_database_url, pool_size=1)
    try:
        with db.reader() as session:
            rows = counts_by_region_and_grade(session, today)
            factors = premium_factors(session, today)
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
    print_table(table, console)
    print_table(factor_table(factors), console)
    refused = Table(title="Refused on purpose (RFC 9457 problem codes); nothing of them stored")
    refused.add_column("what was wrong")
    refused.add_column("code")
    for label, code in tally.refusals:
        refused.add_row(label, code)
    print_table(refused, console)
    console.print(
        f"receipts verified against /.well-known/jwks.json: {verified}/{len(tally.receipts)}"
    )


GRADE_ROWS = {
    "1": "一级",
    "2": "二级",
    "3": "三级",
    "small_micro": "小微",
    "none": "未定级",
    "revoked": "已撤销",
    "expired": "已过期",
}


def premium_factors(session: Any, today: dt.date) -> dict[str, dict[str, Counter[float]]]:
    """Per grade as held today: how many enterprises get which liability factor (insurers)
    and which work-injury factor (social insurance), from the catalog in force."""
    from sqlalchemy import select

    from contracts.catalog import premium, shipped_document
    from gateway.measures.catalog import active_catalog
    from gateway.measures.service import standing_facts
    from gateway.models import Enterprise

    catalog = active_catalog(session) or shipped_document()
    codes = list(session.scalars(select(Enterprise.uscc).where(Enterprise.closed_on.is_(None))))
    found: dict[str, dict[str, Counter[float]]] = {}
    for facts, standing, _ in standing_facts(session, codes, today).values():
        row = standing.grade_level or standing.grade_status
        counts = found.setdefault(row, {"liability": Counter(), "work_injury": Counter()})
        for product, role in (("liability", "insurer"), ("work_injury", "social_insurance")):
            counts[product][
                premium(standing, facts.region_code, today, catalog, product, role).factor
            ] += 1
    return found


def factor_table(factors: dict[str, dict[str, Counter[float]]]) -> Table:
    table = Table(
        title="Premium factors by grade today (闽安委〔2017〕1号 五（五）): liability "
        "insurance for insurers, work-injury insurance for social insurance (factor × count)"
    )
    for column in (
        "grade",
        "enterprises",
        "liability (安全生产责任保险)",
        "work injury (工伤保险)",
    ):
        table.add_column(column, justify="left" if column == "grade" else "right")

    def shown(counter: Counter[float]) -> str:
        return "  ".join(f"{factor:.2f}×{n}" for factor, n in sorted(counter.items()))

    for key, label in GRADE_ROWS.items():
        counts = factors.get(key)
        if counts is None:
            continue
        total = sum(counts["liability"].values())
        table.add_row(label, str(total), shown(counts["liability"]), shown(counts["work_injury"]))
    return table


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
