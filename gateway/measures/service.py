"""An enterprise's standing on a date, read from the ledgers, and the measures it triggers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Row, Select, and_, bindparam, select
from sqlalchemy.orm import Session

from contracts.measures import Standing, applicable
from gateway.errors import NotFound
from gateway.measures.catalog import active_catalog
from gateway.models import Accident, Enterprise, Listing


class ListEntry(NamedTuple):
    list_type: str
    deciding_agency: str
    term_start: dt.date
    term_end: dt.date


class EnterpriseFacts(NamedTuple):
    """The `enterprises` columns a standing shows (a plain tuple: reading a field of a
    SQLAlchemy Row by name first fails a class attribute lookup, an exception each time)."""

    uscc: str
    name: str
    region_code: str
    industry_section: str
    scheme: str
    ledger_status: str
    grade_status: str
    grade_level: str | None
    grade_scheme: str | None
    grade_valid_from: dt.date | None
    grade_valid_to: dt.date | None
    certificate_no: str | None
    reapply_after: dt.date | None


Facts = tuple[EnterpriseFacts, Standing, list[ListEntry]]
_WIDTH = len(EnterpriseFacts._fields)


def _facts_statement(where: ColumnElement[bool]) -> Select[Any]:
    """The enterprise's columns a standing needs, its accidents of the prior 12 months and its
    list entries in force, in one statement (one row per accident x entry)."""
    return (
        select(
            *(getattr(Enterprise, name) for name in EnterpriseFacts._fields),
            Accident.accident_id,
            Accident.accident_class,
            Listing.listing_id,
            Listing.list_type,
            Listing.deciding_agency,
            Listing.term_start,
            Listing.term_end,
        )
        .select_from(Enterprise)
        .outerjoin(
            Accident,
            and_(
                Accident.uscc == Enterprise.uscc,
                Accident.occurred_on > bindparam("year_before"),
                Accident.occurred_on <= bindparam("on"),
            ),
        )
        .outerjoin(
            Listing,
            and_(
                Listing.uscc == Enterprise.uscc,
                Listing.status == "active",
                Listing.term_start <= bindparam("on"),
                Listing.term_end > bindparam("on"),
            ),
        )
        .where(where)
        .order_by(Enterprise.uscc, Accident.accident_id, Listing.listing_id)
    )


# Built once: a standing query runs these for every code it answers, and building and
# compiling a statement per call, and a statement per table, cost more than the database
# (bench/query.py, bench/RESULTS.md).
_FACTS_ONE = _facts_statement(Enterprise.uscc == bindparam("uscc"))
_FACTS_MANY = _facts_statement(Enterprise.uscc.in_(bindparam("codes", expanding=True)))
CHUNK = 500  # codes per IN list


def unknown_enterprise(uscc: str) -> NotFound:
    return NotFound("unknown_enterprise", f"enterprise {uscc} is not in the ledgers")


def standing_facts(session: Session, codes: Collection[str], on: dt.date) -> dict[str, Facts]:
    """For each of `codes` in the ledgers: a row of its `enterprises` columns that a standing
    shows, its standing on `on` and its list entries in force; one statement per 500 codes
    whatever their number. Codes not in the ledgers are left out."""
    session.flush()  # Core statements below: let them see what this session changed
    connection = session.connection()
    wanted = sorted(set(codes))
    window = {"on": on, "year_before": on - dt.timedelta(days=365)}
    rows: list[Row[Any]] = []
    if len(wanted) == 1:
        rows.extend(connection.execute(_FACTS_ONE, {"uscc": wanted[0], **window}))
    else:
        for start in range(0, len(wanted), CHUNK):
            chunk = {"codes": wanted[start : start + CHUNK], **window}
            rows.extend(connection.execute(_FACTS_MANY, chunk))
    collected: dict[str, tuple[EnterpriseFacts, dict[str, str], dict[str, ListEntry]]] = {}
    for row in rows:
        enterprise = collected.get(row[0])
        if enterprise is None:
            enterprise = collected[row[0]] = (EnterpriseFacts._make(row[:_WIDTH]), {}, {})
        accident_id, accident_class, listing_id, *listed = row[_WIDTH:]
        if accident_id is not None:
            enterprise[1][accident_id] = accident_class
        if listing_id is not None:
            enterprise[2][listing_id] = ListEntry(*listed)
    found: dict[str, Facts] = {}
    for uscc, (facts, accidents, lists) in collected.items():
        standing = Standing(
            grade_status=facts.grade_status,
            grade_level=facts.grade_level,
            scheme=facts.grade_scheme or facts.scheme,
            accident_classes=tuple(accidents.values()),
            list_types=tuple(entry.list_type for entry in lists.values()),
        )
        found[uscc] = (facts, standing, list(lists.values()))
    return found


def standing_of(session: Session, uscc: str, on: dt.date) -> tuple[Enterprise, Standing]:
    """The enterprise (ORM, with what this session changed) and its standing on `on`; 404 if
    it is not registered. Queries use `standing_facts`."""
    enterprise = session.get(Enterprise, uscc)
    if enterprise is None:
        raise unknown_enterprise(uscc)
    year_before = on - dt.timedelta(days=365)
    accidents = session.scalars(
        select(Accident.accident_class).where(
            Accident.uscc == uscc, Accident.occurred_on > year_before, Accident.occurred_on <= on
        )
    )
    lists = session.scalars(
        select(Listing.list_type).where(
            Listing.uscc == uscc,
            Listing.status == "active",
            Listing.term_start <= on,
            Listing.term_end > on,
        )
    )
    standing = Standing(
        grade_status=enterprise.grade_status,
        grade_level=enterprise.grade_level,
        scheme=enterprise.grade_scheme or enterprise.scheme,
        accident_classes=tuple(accidents),
        list_types=tuple(lists),
    )
    return enterprise, standing


def measures_for(
    session: Session, uscc: str, on: dt.date, role: str | None = None
) -> dict[str, Any]:
    enterprise, standing = standing_of(session, uscc, on)
    by_role = applicable(
        standing, enterprise.region_code, on, catalog=active_catalog(session), role=role
    )
    return {
        "uscc": uscc,
        "on": on.isoformat(),
        "standing": {
            "grade_status": standing.grade_status,
            "grade_level": standing.grade_level,
            "scheme": standing.scheme,
            "accidents_prior_year": list(standing.accident_classes),
            "lists": list(standing.list_types),
        },
        "measures": {r: [m.as_dict() for m in ms] for r, ms in sorted(by_role.items())},
    }
