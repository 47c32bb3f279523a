"""Reading the ledgers: filtered, keyset-paginated listings, CSV export and change history.

Every reading is of one day (`LedgerFilter.on`, today in Fujian unless asked): the status and
the achieved ledger are computed for that day (contracts.ledgers), so a lapsed grade is not
达标 and 新增 ends, whether or not a message said so."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Callable, Generator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select
from sqlalchemy.orm import Session

from contracts.dates import local_date
from contracts.grades import SMALL_MICRO
from contracts.ledgers import ACHIEVED, NEW, NOT_ACHIEVED, STATUSES, grade_held_on, status_on
from gateway.errors import BadRequest, NotFound
from gateway.models import Enterprise, LedgerChange, Listing, LogEntry

LedgerName = Literal["basic", "required", "achieved"]
LEDGERS: tuple[str, ...] = ("basic", "required", "achieved")
GRADES = ("1", "2", "3", SMALL_MICRO)  # contracts.grades: 一级 / 二级 / 三级 and 小微企业
SECTIONS = "ABCDEFGHIJKLMNOPQRST"  # GB/T 4754-2017 门类, as enterprise.registered allows
# ASCII digits only: str.isdigit() also takes full-width (３５) and Arabic-Indic (٣٥) digits.
REGION_PREFIX = re.compile(r"[0-9]{1,6}")
CSV_COLUMNS = (
    "uscc",
    "name",
    "legal_representative",
    "region_code",
    "industry_section",
    "scheme",
    "required",
    "registered_on",
    "ledger_status",
    "grade_status",
    "grade_level",
    "grade_valid_from",
    "grade_valid_to",
    "certificate_no",
    "reapply_after",
    "self_assessment_year",
    "self_assessment_report_published",
    "closed_on",
    "closure",
    "updated_at",
)
# Columns whose values the gateway itself makes (codes, enums, dates, a flag): never a formula.
# Every other column is free text from an agency's message and is defused (see defuse_cell).
OWN_COLUMNS = frozenset(
    {
        "uscc",
        "region_code",
        "industry_section",
        "required",
        "ledger_status",
        "grade_status",
        "grade_level",
        "grade_valid_from",
        "grade_valid_to",
        "reapply_after",
        "registered_on",
        "self_assessment_year",
        "self_assessment_report_published",
        "closed_on",
        "closure",
        "updated_at",
    }
)
# OWASP "CSV Injection": a cell starting with one of these is run as a formula by spreadsheets.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Excel reads a CSV without a byte order mark in the locale's code page and garbles Chinese.
UTF8_BOM = "\ufeff"
EXPORT_BATCH = 1000  # rows per query of an export


def status_sql(on: dt.date) -> ColumnElement[str]:
    """contracts.ledgers.status_on as SQL, for filters and counts of one day."""
    return case((held_sql(on), ACHIEVED), (new_sql(on), NEW), else_=NOT_ACHIEVED)


def open_sql(on: dt.date) -> ColumnElement[bool]:
    return or_(Enterprise.closed_on.is_(None), Enterprise.closed_on > on)


def held_sql(on: dt.date) -> ColumnElement[bool]:
    """contracts.ledgers.grade_held_on as SQL: the achieved ledger of the day."""
    return and_(
        Enterprise.grade_status == "active",
        or_(Enterprise.grade_valid_to.is_(None), Enterprise.grade_valid_to >= on),
        or_(Enterprise.grade_held_since.is_(None), Enterprise.grade_held_since <= on),
        open_sql(on),
    )


def new_sql(on: dt.date) -> ColumnElement[bool]:
    return and_(
        Enterprise.grade_status == "none",
        open_sql(on),
        or_(Enterprise.new_until.is_(None), Enterprise.new_until > on),
    )


@dataclass(frozen=True)
class LedgerFilter:
    ledger: str = "basic"
    region: str | None = None  # administrative division prefix: "35", "3502", "350203"
    industry: str | None = None  # GB/T 4754 section letter
    status: str | None = None  # 新增 | 达标 | 未达标
    grade: str | None = None  # "1" | "2" | "3" | "small_micro"
    # the day the ledgers are read for (the caller's today in Fujian; see contracts.dates)
    on: dt.date = field(default_factory=lambda: local_date(dt.datetime.now(dt.UTC)))

    def check(self) -> None:
        """Refuse (400 invalid_filter, saying what is allowed) any value no row could match, so
        a typo is not mistaken for an empty ledger and no odd text reaches the database."""
        if self.ledger not in LEDGERS:
            raise BadRequest("invalid_filter", f"ledger must be one of {', '.join(LEDGERS)}")
        if self.status is not None and self.status not in STATUSES:
            raise BadRequest("invalid_filter", f"status must be one of {', '.join(STATUSES)}")
        if self.region is not None and not REGION_PREFIX.fullmatch(self.region):
            raise BadRequest(
                "invalid_filter",
                "region must be 1 to 6 ASCII digits, a prefix of a division code such as 3502",
            )
        if self.industry is not None and self.section is None:
            raise BadRequest(
                "invalid_filter", "industry must be one GB/T 4754 section letter, A to T"
            )
        if self.grade is not None and self.grade not in GRADES:
            raise BadRequest("invalid_filter", f"grade must be one of {', '.join(GRADES)}")

    @property
    def section(self) -> str | None:
        """The industry filter as the upper-case section letter; None if it is not one. ASCII
        is checked first: "ı".upper() is "I" and "ſ".upper() is "S"."""
        if self.industry is None or not self.industry.isascii():
            return None
        letter = self.industry.upper()
        return letter if len(letter) == 1 and letter in SECTIONS else None

    def statement(self) -> Select[Enterprise]:
        """The enterprises of the ledger on the day: the required ledger holds the required
        enterprises not closed by then, the achieved one those holding a grade valid that
        day; the basic ledger keeps every enterprise, closed ones too."""
        query = select(Enterprise)
        if self.ledger == "required":
            query = query.where(Enterprise.required.is_(True), open_sql(self.on))
        elif self.ledger == "achieved":
            query = query.where(held_sql(self.on))
        if self.region:
            query = query.where(Enterprise.region_code.startswith(self.region, autoescape=True))
        if self.industry:
            query = query.where(Enterprise.industry_section == self.section)
        if self.status:
            query = query.where(status_sql(self.on) == self.status)
        if self.grade:
            query = query.where(held_sql(self.on), Enterprise.grade_level == self.grade)
        return query


@dataclass(frozen=True)
class LedgerPage:
    rows: list[Enterprise]
    total: int  # every row matching the filter, on all pages
    more: bool  # a row follows the last one here: only then is there a next page


def list_ledger(
    session: Session, flt: LedgerFilter, *, after: str | None = None, limit: int = 100
) -> LedgerPage:
    """A page ordered by code (keyset after `after`). One row past `limit` is read to learn
    whether another page exists, so a ledger ending on a page boundary hands out no cursor to
    an empty page."""
    flt.check()
    query = flt.statement()
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    if after:
        query = query.where(Enterprise.uscc > after)
    rows = list(session.scalars(query.order_by(Enterprise.uscc).limit(limit + 1)))
    return LedgerPage(rows=rows[:limit], total=total, more=len(rows) > limit)


def enterprise_row(ent: Enterprise, on: dt.date) -> dict[str, Any]:
    """A ledger item as of `on`: its status that day, a grade past its valid_to shown
    `expired` (lapsed), and whether the report of the year before `on` was published."""
    row: dict[str, Any] = {}
    since = ent.grade_held_since
    held = grade_held_on(ent.grade_status, ent.grade_valid_to, ent.closed_on, on, since)
    computed = {
        "ledger_status": status_on(
            ent.grade_status, ent.grade_valid_to, ent.new_until, ent.closed_on, on, since
        ),
        "grade_status": "expired"
        if ent.grade_status == "active" and not held and not (since and on < since)
        else ent.grade_status,
        "self_assessment_report_published": ent.self_assessment_year is not None
        and ent.self_assessment_year >= on.year - 1,
    }
    for column in CSV_COLUMNS:
        value = computed[column] if column in computed else getattr(ent, column)
        row[column] = value.isoformat() if hasattr(value, "isoformat") else value
    return row


def defuse_cell(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula, prefixed with a single quote
    (OWASP "CSV Injection"): the cell then shows as the text it is. Text that already starts
    with quotes before such a character gets one more, so that removing one leading quote
    wherever quotes precede = + - @ tab or CR gives back exactly the published text."""
    if isinstance(value, str) and value.lstrip("'").startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_row(ent: Enterprise, on: dt.date) -> dict[str, Any]:
    return {
        column: value if column in OWN_COLUMNS else defuse_cell(value)
        for column, value in enterprise_row(ent, on).items()
    }


def export_csv(session: Session, flt: LedgerFilter) -> Generator[str, None, None]:
    """The export in one transaction of `session` (the CLI's: one consistent snapshot)."""
    return _csv_chunks(flt, lambda after: _export_page(session, flt, after))


def export_csv_in_batches(
    sessions: Callable[[], AbstractContextManager[Session]], flt: LedgerFilter
) -> Generator[str, None, None]:
    """The export with each batch of rows read in a transaction of its own from `sessions()`
    (Database.export_reader), which is over, its connection back in the pool, before the
    batch's text is yielded: a client that reads slowly or not at all holds no connection
    (issue 20, finding 1). Keyset by code, so each row goes out once, in code order, as it
    stood when its batch was read."""

    def read_page(after: str) -> list[Enterprise]:
        with sessions() as session:
            return _export_page(session, flt, after)

    return _csv_chunks(flt, read_page)


def _export_page(session: Session, flt: LedgerFilter, after: str) -> list[Enterprise]:
    return list(
        session.scalars(
            flt.statement()
            .where(Enterprise.uscc > after)
            .order_by(Enterprise.uscc)
            .limit(EXPORT_BATCH)
        )
    )


def _csv_chunks(
    flt: LedgerFilter, read_page: Callable[[str], list[Enterprise]]
) -> Generator[str, None, None]:
    """CSV text in chunks, streamed in code order, 1,000 rows per query: a UTF-8 byte order
    mark and the header first, then the rows (commas, quotes and line breaks quoted as RFC
    4180 says). Free-text cells starting with = + - @, a tab or a carriage return get a
    leading single quote (defuse_cell). The filter is checked and the first rows are read before the
    first chunk is yielded, so a caller that takes one chunk before answering learns of any
    refusal while it can still send an error instead of a CSV."""
    flt.check()
    buffer = io.StringIO()
    buffer.write(UTF8_BOM)
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    # The csv module quotes a field holding a character of its line terminator, here "\n"
    # only: a bare CR went out unquoted and readers ended the row there (or read a forged
    # row after it). A row with a CR anywhere is written with every field quoted.
    quoting_writer = csv.DictWriter(
        buffer, fieldnames=CSV_COLUMNS, lineterminator="\n", quoting=csv.QUOTE_ALL
    )
    writer.writeheader()
    after: str | None = ""
    while after is not None:
        page = read_page(after)
        for ent in page:
            row = csv_row(ent, flt.on)
            has_cr = any(isinstance(value, str) and "\r" in value for value in row.values())
            (quoting_writer if has_cr else writer).writerow(row)
        after = page[-1].uscc if len(page) == EXPORT_BATCH else None
        del page  # a thousand rows not held while the client takes its time
        chunk = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        yield chunk


def ledger_history(session: Session, uscc: str) -> list[LedgerChange]:
    if session.get(Enterprise, uscc) is None:
        raise NotFound("unknown_enterprise", f"enterprise {uscc} is not in the ledgers")
    return list(
        session.scalars(
            select(LedgerChange).where(LedgerChange.uscc == uscc).order_by(LedgerChange.id)
        )
    )


def counts_by_region_and_grade(session: Session, on: dt.date) -> list[tuple[str, str, str, int]]:
    """(city code, ledger status on `on`, grade level held that day or '-', count)."""
    city = func.substr(Enterprise.region_code, 1, 4)
    status = status_sql(on)
    level = case((held_sql(on), Enterprise.grade_level), else_=None)
    rows = session.execute(
        select(city, status, level, func.count()).group_by(city, status, level).order_by(city)
    )
    return [(f"{c}00", s, lvl or "-", n) for c, s, lvl, n in rows]


SUMMARY_KEYS = ("region", "industry", "grade")


def summary_region_digits(flt: LedgerFilter) -> int:
    """How many digits of the division code a summary by region groups on: the cities (4)
    of the province, the districts (6) of a city: one level below the region filter."""
    return min(6, max(4, len(flt.region or "") + 2))


def ledger_summary(session: Session, flt: LedgerFilter, by: str) -> list[tuple[str, str, int]]:
    """(key, ledger status on the day, count) for the filtered ledger, grouped `by` region
    (division code, one level below the filter, padded to 6 digits), industry (section
    letter) or grade (the level held that day, '-' for none)."""
    return ledger_summaries(session, flt, (by,))[by]


def ledger_summaries(
    session: Session, flt: LedgerFilter, keys: Sequence[str]
) -> dict[str, list[tuple[str, str, int]]]:
    """`ledger_summary` for several keys at once, from one pass over the filtered ledger
    (grouped by every key and the status together, then added up per key): the console's
    ledgers page asks for three, and each pass computes every enterprise's status on the day."""
    flt.check()
    for by in keys:
        if by not in SUMMARY_KEYS:
            raise BadRequest("invalid_filter", f"summaries are by {', '.join(SUMMARY_KEYS)}")
    digits = summary_region_digits(flt)
    columns: dict[str, ColumnElement[Any]] = {
        "region": func.substr(Enterprise.region_code, 1, digits),
        "industry": Enterprise.industry_section.expression,
        "grade": case((held_sql(flt.on), Enterprise.grade_level), else_=None),
    }
    wanted = [columns[by] for by in keys]
    status = status_sql(flt.on)
    rows = session.execute(
        flt.statement().with_only_columns(*wanted, status, func.count()).group_by(*wanted, status)
    )
    sums: dict[str, dict[tuple[str, str], int]] = {by: {} for by in keys}
    for row in rows:
        *values, state, n = row
        for by, value in zip(keys, values, strict=True):
            name = str(value or "-")
            if by == "region":
                name = name.ljust(6, "0")
            counted = sums[by]
            counted[(name, str(state))] = counted.get((name, str(state)), 0) + int(n)
    return {
        by: sorted((name, state, n) for (name, state), n in counted.items())
        for by, counted in sums.items()
    }


def listings_of(session: Session, uscc: str) -> list[Listing]:
    """The enterprise's black and red list entries, active and removed, newest first."""
    return list(
        session.scalars(
            select(Listing).where(Listing.uscc == uscc).order_by(Listing.term_start.desc())
        )
    )


def messages_about(session: Session, uscc: str, limit: int = 200) -> list[LogEntry]:
    """The messages published about the enterprise, in log order (the first `limit`)."""
    return list(
        session.scalars(
            select(LogEntry)
            .where(LogEntry.subject == uscc, LogEntry.kind == "message")
            .order_by(LogEntry.idx)
            .limit(limit)
        )
    )
