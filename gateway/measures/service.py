"""An enterprise's standing on a date, read from the ledgers, and the measures it triggers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

from sqlalchemy import Row, bindparam, select
from sqlalchemy.orm import Session

from contracts.measures import Standing, applicable
from gateway.errors import NotFound
from gateway.measures.catalog import active_catalog
from gateway.models import Accident, Enterprise, Listing

# Built once: a standing query runs these for every code it answers, and building and
# compiling a statement per call cost more than running it (bench/query.py).
_CODES = bindparam("codes", expanding=True)
_ENTERPRISES = select(Enterprise.__table__).where(Enterprise.uscc.in_(_CODES))
_ACCIDENTS = (
    select(Accident.uscc, Accident.accident_class)
    .where(
        Accident.uscc.in_(_CODES),
        Accident.occurred_on > bindparam("year_before"),
        Accident.occurred_on <= bindparam("on"),
    )
    .order_by(Accident.uscc, Accident.accident_id)
)
_LISTINGS = (
    select(
        Listing.uscc,
        Listing.list_type,
        Listing.deciding_agency,
        Listing.term_start,
        Listing.term_end,
    )
    .where(
        Listing.uscc.in_(_CODES),
        Listing.status == "active",
        Listing.term_start <= bindparam("on"),
        Listing.term_end > bindparam("on"),
    )
    .order_by(Listing.uscc, Listing.listing_id)
)
CHUNK = 500  # codes per IN list


def unknown_enterprise(uscc: str) -> NotFound:
    return NotFound("unknown_enterprise", f"enterprise {uscc} is not in the ledgers")


def standing_facts(
    session: Session, codes: Collection[str], on: dt.date
) -> dict[str, tuple[Row[Any], Standing, list[Row[Any]]]]:
    """For each of `codes` in the ledgers: its `enterprises` row, its standing on `on` and its
    list entries in force (list_type, deciding_agency, term_start, term_end), in three
    queries per 500 codes whatever their number. Codes not in the ledgers are left out."""
    connection = session.connection()
    wanted = sorted(set(codes))
    found: dict[str, tuple[Row[Any], Standing, list[Row[Any]]]] = {}
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        params = {"codes": chunk, "on": on, "year_before": on - dt.timedelta(days=365)}
        enterprises = connection.execute(_ENTERPRISES, params).all()
        if not enterprises:
            continue
        accidents: dict[str, list[str]] = {}
        for uscc, accident_class in connection.execute(_ACCIDENTS, params):
            accidents.setdefault(uscc, []).append(accident_class)
        lists: dict[str, list[Row[Any]]] = {}
        for entry in connection.execute(_LISTINGS, params):
            lists.setdefault(entry.uscc, []).append(entry)
        for enterprise in enterprises:
            entries = lists.get(enterprise.uscc, [])
            standing = Standing(
                grade_status=enterprise.grade_status,
                grade_level=enterprise.grade_level,
                scheme=enterprise.grade_scheme or enterprise.scheme,
                accident_classes=tuple(accidents.get(enterprise.uscc, ())),
                list_types=tuple(entry.list_type for entry in entries),
            )
            found[enterprise.uscc] = (enterprise, standing, entries)
    return found


def standing_of(session: Session, uscc: str, on: dt.date) -> tuple[Row[Any], Standing]:
    """The enterprise's `enterprises` row and its standing on `on`; 404 if not registered."""
    facts = standing_facts(session, (uscc,), on).get(uscc)
    if facts is None:
        raise unknown_enterprise(uscc)
    return facts[0], facts[1]


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
