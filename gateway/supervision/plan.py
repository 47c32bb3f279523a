"""The supervision plan (四（一）): per region and year, each enterprise's inspections required
by its classified supervision against those recorded, and who is behind."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from contracts.measures import applicable
from contracts.supervision import ROLE, supervision_of
from gateway.errors import BadRequest
from gateway.measures.catalog import active_catalog
from gateway.measures.service import standing_facts
from gateway.models import Enterprise, Inspection

MAX_LIMIT = 1000


def plan(
    session: Session,
    *,
    region: str,
    year: int,
    today: dt.date,
    behind_only: bool = False,
    after: str | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    """Enterprises of `region` (a division prefix) open in `year`, in code order after
    `after`: their supervision as of the plan's day (today within the year, else its last
    day), inspections required for the year (the minimum) and due by that day (in proportion
    to the days gone), recorded that year, and whether they are behind."""
    if not region.isdigit() or len(region) > 6:
        raise BadRequest("invalid_filter", "region is 1 to 6 digits of a division code")
    if not 2000 <= year <= 2199:
        raise BadRequest("invalid_filter", "year is between 2000 and 2199")
    first, last = dt.date(year, 1, 1), dt.date(year, 12, 31)
    on = min(max(today, first), last)
    elapsed = (on - first).days + 1
    codes = list(
        session.scalars(
            select(Enterprise.uscc)
            .where(
                Enterprise.region_code.startswith(region),
                or_(Enterprise.closed_on.is_(None), Enterprise.closed_on > first),
                Enterprise.registered_on <= last,
            )
            .order_by(Enterprise.uscc)
        )
    )
    counted = session.execute(
        select(Inspection.uscc, func.count())
        .where(Inspection.inspected_on >= first, Inspection.inspected_on <= last)
        .group_by(Inspection.uscc)
    )
    recorded: dict[str, int] = {uscc: n for uscc, n in counted}
    catalog = active_catalog(session)
    items: list[dict[str, Any]] = []
    totals = {"enterprises": 0, "required": 0, "recorded": 0, "behind": 0, "key_supervision": 0}
    for start in range(0, len(codes), 500):
        chunk = codes[start : start + 500]
        for code, (facts, standing, _) in sorted(standing_facts(session, chunk, on).items()):
            measures = applicable(standing, facts.region_code, on, catalog, ROLE).get(ROLE, [])
            supervision = supervision_of(measures)
            required = supervision.inspections_min
            due = math.ceil(required * elapsed / ((last - first).days + 1))
            done = recorded.get(code, 0)
            behind = done < due
            totals["enterprises"] += 1
            totals["required"] += required
            totals["recorded"] += done
            totals["behind"] += behind
            totals["key_supervision"] += supervision.key_supervision
            if (behind or not behind_only) and (after is None or code > after):
                items.append(
                    {
                        "uscc": code,
                        "name": facts.name,
                        "region_code": facts.region_code,
                        "grade_status": standing.grade_status,
                        "grade_level": standing.grade_level,
                        "required_per_year": required,
                        "due_by_now": due,
                        "recorded": done,
                        "behind": behind,
                        "supervision": supervision.as_dict(),
                    }
                )
    page = items[: max(1, min(limit, MAX_LIMIT))]
    return {
        "region": region,
        "year": year,
        "on": on.isoformat(),
        "totals": totals,
        "items": page,
        "next": page[-1]["uscc"] if len(items) > len(page) else None,
    }
