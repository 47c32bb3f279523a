"""Rectification orders, accidents and list entries: the records a message adds to an
enterprise beside its ledgers, each checked against its rules before anything is written."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts.accidents import classify_accident
from contracts.listings import ListingRuleError, check_listing_added, check_listing_removed
from contracts.rectifications import (
    RectificationRuleError,
    check_order,
    check_overdue,
    check_verification,
)
from gateway.errors import Unprocessable
from gateway.ledger.state import Applied, ensure_stored, enterprise_of, rules_on, touch
from gateway.models import Accident, Agency, Inspection, Listing, Rectification

# 认定部门 (domain.md §2): the department that imposed the penalty decides a listing; the
# listing_department role is how the registry says an agency may.
LIST_DECIDER_ROLE = "listing_department"


def order_rectification(session: Session, applied: Applied) -> None:
    ent = enterprise_of(session, applied)
    data = applied.data
    if session.get(Rectification, (ent.uscc, data["rectification_id"])) is not None:
        raise Unprocessable(
            "invalid_transition", f"rectification {data['rectification_id']} was already ordered"
        )
    kind = str(data.get("kind", "hazard"))  # major 1 orders are all hazards
    try:
        check_order(data, kind)
    except RectificationRuleError as exc:
        raise Unprocessable("rule_violation", exc.message, pointer=exc.pointer) from exc
    if kind != "hazard":
        _check_finding(session, applied, kind)
    ordered_on, deadline = (dt.date.fromisoformat(data[k]) for k in ("ordered_on", "deadline"))
    ensure_stored(session, ent)
    session.add(
        Rectification(
            uscc=ent.uscc,
            rectification_id=data["rectification_id"],
            kind=kind,
            hazard_level=data.get("hazard_level"),
            ordered_on=ordered_on,
            deadline=deadline,
            status="ordered",
            data=dict(data),
            message_id=str(applied.envelope["id"]).lower(),
        )
    )
    touch(ent, applied)


# What an inspection must have found for an order of each kind (四（二）).
_FOUND = {
    "system_not_running": ("system_running", False, "the system not running"),
    "safety_conditions_degraded": ("safety_conditions_degraded", True, "degraded conditions"),
}


def _check_finding(session: Session, applied: Applied, kind: str) -> None:
    """四（二）: an order for degraded conditions or a system not running follows an
    inspection of this enterprise that found it, cited by inspection_message_id."""
    cited = applied.data.get("inspection_message_id")
    field, value, what = _FOUND[kind]
    found = (
        session.scalars(
            select(Inspection).where(
                Inspection.uscc == applied.subject, Inspection.message_id == str(cited).lower()
            )
        ).first()
        if cited is not None
        else None
    )
    if found is None:
        raise Unprocessable(
            "finding_missing",
            f"an order of kind {kind} cites the inspection.recorded of this enterprise that "
            f"found {what} (inspection_message_id)",
            pointer="/data/inspection_message_id",
        )
    if found.findings.get(field) is not value:
        raise Unprocessable(
            "finding_missing",
            f"inspection {found.inspection_id} did not find {what}",
            pointer="/data/inspection_message_id",
        )


def verify_rectification(session: Session, applied: Applied) -> None:
    """The re-check of an order (整改复查): passed closes it, failed is what lets its grade be
    revoked for degraded conditions or a system not running (四（二）). A passed order is
    done; a failed one may be checked again."""
    ent = enterprise_of(session, applied)
    order = session.get(Rectification, (ent.uscc, applied.data["rectification_id"]))
    if order is None:
        raise Unprocessable(
            "unknown_reference",
            f"no rectification {applied.data['rectification_id']} was ordered for {ent.uscc}",
            pointer="/data/rectification_id",
        )
    if order.status == "passed":
        raise Unprocessable(
            "invalid_transition",
            f"rectification {order.rectification_id} already passed its re-check on "
            f"{order.verified_on}",
        )
    try:
        check_verification(order.data, applied.data, order.verified_on)
    except RectificationRuleError as exc:
        raise Unprocessable("rule_violation", exc.message, pointer=exc.pointer) from exc
    order.status = str(applied.data["result"])
    order.verified_on = dt.date.fromisoformat(applied.data["verified_on"])
    order.verification_message_id = str(applied.envelope["id"]).lower()
    touch(ent, applied)


def mark_rectification_overdue(session: Session, applied: Applied) -> None:
    ent = enterprise_of(session, applied)
    order = session.get(Rectification, (ent.uscc, applied.data["rectification_id"]))
    if order is None:
        raise Unprocessable(
            "unknown_reference",
            f"no rectification {applied.data['rectification_id']} was ordered for {ent.uscc}",
            pointer="/data/rectification_id",
        )
    if order.status == "overdue":
        raise Unprocessable("invalid_transition", "this rectification is already overdue")
    if order.status == "passed":
        raise Unprocessable(
            "invalid_transition",
            f"this rectification passed its re-check on {order.verified_on}: nothing is overdue",
        )
    try:
        check_overdue(order.data, applied.data)
    except RectificationRuleError as exc:
        raise Unprocessable("rule_violation", exc.message) from exc
    order.status = "overdue"
    touch(ent, applied)


# What the accidents table holds (32-bit counts, NUMERIC(18, 2) yuan); larger figures are not
# a credible report and would fail the whole transaction on PostgreSQL.
MAX_COUNT = 2**31 - 1
MAX_LOSS_CNY = 10**16


def report_accident(session: Session, applied: Applied) -> None:
    ent = enterprise_of(session, applied)
    data = applied.data
    for field, limit in (
        ("deaths", MAX_COUNT),
        ("serious_injuries", MAX_COUNT),
        ("direct_loss_cny", MAX_LOSS_CNY),
    ):
        if float(data[field]) >= limit:
            raise Unprocessable(
                "implausible_figure",
                f"{field} {data[field]} is beyond any accident report (limit {limit})",
                pointer=f"/data/{field}",
            )
    computed = classify_accident(
        int(data["deaths"]), int(data["serious_injuries"]), float(data["direct_loss_cny"])
    )
    if computed.value != data["accident_class"]:
        raise Unprocessable(
            "accident_class_mismatch",
            f"an accident with {data['deaths']} deaths, {data['serious_injuries']} serious "
            f"injuries and a loss of {data['direct_loss_cny']} CNY is {computed.value} under "
            f"State Council Order 493, not {data['accident_class']}",
            pointer="/data/accident_class",
        )
    if session.get(Accident, (ent.uscc, data["accident_id"])) is not None:
        raise Unprocessable(
            "invalid_transition", f"accident {data['accident_id']} was already reported"
        )
    ensure_stored(session, ent)
    session.add(
        Accident(
            uscc=ent.uscc,
            accident_id=data["accident_id"],
            occurred_on=dt.date.fromisoformat(data["occurred_on"]),
            accident_class=computed.value,
            deaths=int(data["deaths"]),
            serious_injuries=int(data["serious_injuries"]),
            direct_loss_cny=Decimal(str(data["direct_loss_cny"])),
            message_id=str(applied.envelope["id"]).lower(),
        )
    )
    touch(ent, applied)


def add_listing(session: Session, applied: Applied) -> None:
    ent = enterprise_of(session, applied)
    data = applied.data
    if session.get(Listing, (ent.uscc, data["listing_id"])) is not None:
        raise Unprocessable("invalid_transition", f"listing {data['listing_id']} already exists")
    term_start = dt.date.fromisoformat(data["term_start"])
    try:
        check_listing_added(data, rules_on(ent.region_code, term_start))
    except ListingRuleError as exc:
        raise Unprocessable("list_term_invalid", exc.message) from exc
    _check_decider(session, str(data["deciding_agency"]), str(data["list_type"]))
    ensure_stored(session, ent)
    session.add(
        Listing(
            uscc=ent.uscc,
            listing_id=data["listing_id"],
            list_type=data["list_type"],
            deciding_agency=data["deciding_agency"],
            term_start=term_start,
            term_end=dt.date.fromisoformat(data["term_end"]),
            status="active",
            data=dict(data),
            message_id=str(applied.envelope["id"]).lower(),
        )
    )
    touch(ent, applied)


def remove_listing(session: Session, applied: Applied) -> None:
    ent = enterprise_of(session, applied)
    listing = session.get(Listing, (ent.uscc, applied.data["listing_id"]))
    if listing is None:
        raise Unprocessable(
            "unknown_reference",
            f"no listing {applied.data['listing_id']} exists for {ent.uscc}",
            pointer="/data/listing_id",
        )
    if listing.status != "active":
        raise Unprocessable(
            "invalid_transition", f"listing {listing.listing_id} was already removed"
        )
    removed_on = dt.date.fromisoformat(applied.data["removed_on"])
    try:
        check_listing_removed(listing.data, applied.data, rules_on(ent.region_code, removed_on))
    except ListingRuleError as exc:
        raise Unprocessable("list_term_invalid", exc.message) from exc
    if (
        applied.data["removal_reason"] == "early_removal"
        and listing.list_type == "black"
        and "credit_repair" not in applied.data
    ):
        # 2023 rules: an early removal from the black list rests on credit repair (信用修复)
        raise Unprocessable(
            "rule_violation",
            "an early removal from the black list names its credit repair (credit_repair: "
            "applied_on, completed_on, measures)",
            pointer="/data/credit_repair",
        )
    listing.status, listing.removed_on = "removed", removed_on
    listing.removal_reason = str(applied.data["removal_reason"])
    listing.removal = {
        "message_id": str(applied.envelope["id"]).lower(),
        "log_index": applied.index,
        "data": dict(applied.data),
    }
    touch(ent, applied)


def _check_decider(session: Session, agency_id: str, list_type: str) -> None:
    """A listing names a registered agency that may decide lists (domain.md §2, 认定部门)."""
    roles = session.scalar(select(Agency.roles).where(Agency.id == agency_id))
    if roles is None:
        raise Unprocessable(
            "unknown_decider",
            f"deciding_agency {agency_id!r} is not a registered agency",
            pointer="/data/deciding_agency",
        )
    if LIST_DECIDER_ROLE not in roles:
        raise Unprocessable(
            "unknown_decider",
            f"deciding_agency {agency_id!r} has no {LIST_DECIDER_ROLE} role and may not decide "
            f"a {list_type} list entry",
            pointer="/data/deciding_agency",
        )
