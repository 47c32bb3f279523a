"""An enterprise's standing on a date, read from the ledgers, and the measures it triggers."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts.measures import Standing, applicable
from gateway.errors import NotFound
from gateway.models import Accident, Enterprise, Listing


def standing_of(session: Session, uscc: str, on: dt.date) -> tuple[Enterprise, Standing]:
    enterprise = session.get(Enterprise, uscc)
    if enterprise is None:
        raise NotFound("unknown_enterprise", f"enterprise {uscc} is not in the ledgers")
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
    by_role = applicable(standing, enterprise.region_code, on, role=role)
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
