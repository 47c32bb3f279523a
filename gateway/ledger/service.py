"""Reading the ledgers: filtered, keyset-paginated listings, CSV export and change history."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from gateway.errors import BadRequest, NotFound
from gateway.models import Enterprise, LedgerChange

LedgerName = Literal["basic", "required", "achieved"]
LEDGERS: tuple[str, ...] = ("basic", "required", "achieved")
STATUSES = ("新增", "达标", "未达标")
CSV_COLUMNS = (
    "uscc",
    "name",
    "region_code",
    "industry_section",
    "scheme",
    "required",
    "ledger_status",
    "grade_status",
    "grade_level",
    "grade_valid_from",
    "grade_valid_to",
    "certificate_no",
    "reapply_after",
    "updated_at",
)


@dataclass(frozen=True)
class LedgerFilter:
    ledger: str = "basic"
    region: str | None = None  # administrative division prefix: "35", "3502", "350203"
    industry: str | None = None  # GB/T 4754 section letter
    status: str | None = None  # 新增 | 达标 | 未达标
    grade: str | None = None  # "1" | "2" | "3" | "small_micro"

    def check(self) -> None:
        if self.ledger not in LEDGERS:
            raise BadRequest("invalid_filter", f"ledger must be one of {', '.join(LEDGERS)}")
        if self.status is not None and self.status not in STATUSES:
            raise BadRequest("invalid_filter", f"status must be one of {', '.join(STATUSES)}")
        if self.region is not None and not (self.region.isdigit() and len(self.region) <= 6):
            raise BadRequest("invalid_filter", "region is a prefix of a 6-digit division code")

    def statement(self) -> Select[Enterprise]:
        query = select(Enterprise)
        if self.ledger == "required":
            query = query.where(Enterprise.required.is_(True))
        elif self.ledger == "achieved":
            query = query.where(Enterprise.grade_status == "active")
        if self.region:
            query = query.where(Enterprise.region_code.startswith(self.region, autoescape=True))
        if self.industry:
            query = query.where(Enterprise.industry_section == self.industry.upper())
        if self.status:
            query = query.where(Enterprise.ledger_status == self.status)
        if self.grade:
            query = query.where(
                Enterprise.grade_status == "active", Enterprise.grade_level == self.grade
            )
        return query


def list_ledger(
    session: Session, flt: LedgerFilter, *, after: str | None = None, limit: int = 100
) -> tuple[list[Enterprise], int]:
    """A page ordered by code (keyset after `after`) and the total matching the filter."""
    flt.check()
    query = flt.statement()
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    if after:
        query = query.where(Enterprise.uscc > after)
    rows = list(session.scalars(query.order_by(Enterprise.uscc).limit(limit)))
    return rows, total


def enterprise_row(ent: Enterprise) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for column in CSV_COLUMNS:
        value = getattr(ent, column)
        row[column] = value.isoformat() if hasattr(value, "isoformat") else value
    return row


def export_csv(session: Session, flt: LedgerFilter) -> Iterator[str]:
    """CSV lines (header first), streamed in code order, 1,000 rows per query."""
    flt.check()
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    after = ""
    while True:
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        page = list(
            session.scalars(
                flt.statement().where(Enterprise.uscc > after).order_by(Enterprise.uscc).limit(1000)
            )
        )
        if not page:
            return
        for ent in page:
            writer.writerow(enterprise_row(ent))
        after = page[-1].uscc


def ledger_history(session: Session, uscc: str) -> list[LedgerChange]:
    if session.get(Enterprise, uscc) is None:
        raise NotFound("unknown_enterprise", f"enterprise {uscc} is not in the ledgers")
    return list(
        session.scalars(
            select(LedgerChange).where(LedgerChange.uscc == uscc).order_by(LedgerChange.id)
        )
    )


def counts_by_region_and_grade(session: Session) -> list[tuple[str, str, str, int]]:
    """(city code, ledger status, grade level or '-', count) for the demo summary."""
    city = func.substr(Enterprise.region_code, 1, 4)
    rows = session.execute(
        select(city, Enterprise.ledger_status, Enterprise.grade_level, func.count())
        .group_by(city, Enterprise.ledger_status, Enterprise.grade_level)
        .order_by(city)
    )
    return [(f"{c}00", s, lvl or "-", n) for c, s, lvl, n in rows]
