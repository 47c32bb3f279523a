"""inspection.recorded, applied inside the publish transaction: an inspection by a work-safety
supervisor of an open enterprise, its deducted items from the catalog, a random draw's
inspection only of an enterprise that draw selected, and penalties at the statutory upper
limit where classified supervision says so (四（一）: 一律依法按规定上限处罚)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts.catalog import shipped_document
from contracts.measures import applicable
from contracts.supervision import ROLE, supervision_of
from gateway.errors import Forbidden, Unprocessable
from gateway.ledger.state import Applied, ensure_stored, enterprise_of, touch
from gateway.measures.catalog import active_catalog
from gateway.measures.service import standing_facts
from gateway.models import Agency, Draw, Inspection


def record_inspection(session: Session, applied: Applied) -> None:
    ent = enterprise_of(session, applied)
    data = applied.data
    issuer = str(applied.envelope["issuer"])
    roles = session.scalar(select(Agency.roles).where(Agency.id == issuer)) or []
    if ROLE not in roles:
        raise Forbidden(
            "role_required",
            f"inspections are recorded by a {ROLE}; {issuer} holds {', '.join(roles) or 'none'}",
        )
    if session.get(Inspection, (ent.uscc, data["inspection_id"])) is not None:
        raise Unprocessable(
            "invalid_transition", f"inspection {data['inspection_id']} was already recorded"
        )
    on = dt.date.fromisoformat(data["inspected_on"])
    findings = data["findings"]
    _check_findings(session, findings)
    _check_draw(session, ent.uscc, data, on)
    _check_penalties(session, ent.uscc, data, on)
    ensure_stored(session, ent)
    session.add(
        Inspection(
            uscc=ent.uscc,
            inspection_id=data["inspection_id"],
            kind=data["kind"],
            inspected_on=on,
            draw_id=data.get("draw_id"),
            inspectors=list(data["inspectors"]),
            findings=dict(findings),
            message_id=str(applied.envelope["id"]).lower(),
        )
    )
    touch(ent, applied)


def _check_findings(session: Session, findings: Mapping[str, Any]) -> None:
    known = (active_catalog(session) or shipped_document()).finding_codes()
    unknown = sorted(set(findings.get("deducted_items", ())) - known)
    if unknown:
        raise Unprocessable(
            "unknown_finding",
            f"deducted item {unknown[0]!r} is not a finding of the catalog in force "
            f"({', '.join(sorted(known))})",
            pointer="/data/findings/deducted_items",
        )
    if int(findings.get("major_hazards_found", 0)) > int(findings["hazards_found"]):
        raise Unprocessable(
            "rule_violation",
            "major_hazards_found counts some of hazards_found: it cannot be more",
            pointer="/data/findings/major_hazards_found",
        )


def _check_draw(session: Session, uscc: str, data: Mapping[str, Any], on: dt.date) -> None:
    """A random draw's inspection names its draw, which selected this enterprise; other
    kinds name no draw (双随机: the object of the inspection is drawn, not chosen)."""
    draw_id = data.get("draw_id")
    if data["kind"] != "random_draw":
        if draw_id is not None:
            raise Unprocessable(
                "rule_violation",
                f"an inspection of kind {data['kind']} comes from no draw",
                pointer="/data/draw_id",
            )
        return
    draw = session.get(Draw, draw_id) if draw_id is not None else None
    if draw is None or draw.status != "completed" or draw.result is None:
        raise Unprocessable(
            "not_drawn",
            f"a random-draw inspection names a completed draw; {draw_id!r} is none",
            pointer="/data/draw_id",
        )
    if uscc not in draw.result.get("assignments", {}):
        raise Unprocessable(
            "not_drawn", f"draw {draw_id} did not select {uscc}", pointer="/subject"
        )
    period = draw.request["period"]
    if not period["from"] <= on.isoformat() <= period["to"]:
        raise Unprocessable(
            "rule_violation",
            f"draw {draw_id} is for {period['from']} to {period['to']}, not {on}",
            pointer="/data/inspected_on",
        )


def _check_penalties(session: Session, uscc: str, data: Mapping[str, Any], on: dt.date) -> None:
    """四（一）: where classified supervision puts an enterprise at the upper-limit penalty
    scale (not started, below the lowest grade, black-listed), every penalty is at it."""
    penalties = data.get("penalties") or []
    if not penalties:
        return
    enterprise, standing, _ = standing_facts(session, [uscc], on)[uscc]
    catalog = active_catalog(session)
    measures = applicable(standing, enterprise.region_code, on, catalog, ROLE).get(ROLE, [])
    if supervision_of(measures).penalty_scale != "upper_limit":
        return
    below = [p["decision_no"] for p in penalties if not p["at_upper_limit"]]
    if below:
        raise Unprocessable(
            "rule_violation",
            f"{uscc} is under the upper-limit penalty scale on {on} (闽安委〔2017〕1号 四（一）: "
            f"一律依法按规定上限处罚); penalty {below[0]} is not at the upper limit",
            pointer="/data/penalties",
        )
