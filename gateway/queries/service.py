"""An enterprise's standing as a bank or insurer sees it, attested by the gateway.

The attestation is a gateway-signed JWS over the answer and the log size it reflects, so the
asker can later prove what the gateway said and when. Every query, refused ones included, is
an access record (who, when, which enterprise, stated purpose, result).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts.measures import applicable
from contracts.uscc import is_valid_uscc
from gateway.errors import BadRequest, NotFound
from gateway.measures.service import standing_of
from gateway.models import AccessRecord, Agency, Enterprise, Listing, LogEntry
from gateway.registry.rights import GRADE_TYPES, View
from gateway.signing import GatewaySigner
from gateway.tlog import tree_size
from keys.jws import parse_compact

ATTESTATION_TYP = "gateway-attestation+jws"
MAX_BATCH = 1000


def record_access(
    session: Session,
    *,
    at: dt.datetime,
    agency_id: str | None,
    uscc: str | None,
    action: str,
    purpose: str | None,
    result: str,
) -> None:
    session.add(
        AccessRecord(
            at=at,
            agency_id=agency_id,
            uscc=uscc[:18] if uscc else None,
            action=action,
            purpose=(purpose or None) and purpose[:200],
            result=result[:48],
        )
    )


def check_purpose(purpose: str | None) -> str:
    if not purpose or not purpose.strip():
        raise BadRequest("missing_purpose", "state the purpose of the query (purpose=…)")
    return purpose.strip()


def check_code(uscc: str) -> None:
    if not is_valid_uscc(uscc):
        raise BadRequest("invalid_uscc", f"{uscc!r} is not a valid unified social credit code")


def standing(
    session: Session, uscc: str, caller_agency: str, on: dt.date, view: View | None = None
) -> dict[str, Any]:
    """The enterprise's standing as `caller_agency` sees it: projected to `view` (the caller's
    `standing` field view; None: every field), the code always included."""
    check_code(uscc)
    enterprise, facts = standing_of(session, uscc, on)
    agency = session.get(Agency, caller_agency)
    roles = set(agency.roles) if agency else set()
    lists = session.scalars(
        select(Listing).where(
            Listing.uscc == uscc,
            Listing.status == "active",
            Listing.term_start <= on,
            Listing.term_end > on,
        )
    )
    by_role = applicable(facts, enterprise.region_code, on)
    visible = by_role if "operator" in roles else {r: m for r, m in by_role.items() if r in roles}
    answer = {
        "uscc": uscc,
        "name": enterprise.name,
        "region_code": enterprise.region_code,
        "ledger_status": enterprise.ledger_status,
        "grade": {
            "status": enterprise.grade_status,
            "level": enterprise.grade_level,
            "scheme": enterprise.grade_scheme,
            "valid_from": enterprise.grade_valid_from.isoformat()
            if enterprise.grade_valid_from
            else None,
            "valid_to": enterprise.grade_valid_to.isoformat()
            if enterprise.grade_valid_to
            else None,
            "certificate_no": enterprise.certificate_no,
            "reapply_after": enterprise.reapply_after.isoformat()
            if enterprise.reapply_after
            else None,
        },
        "lists": [
            {
                "list_type": entry.list_type,
                "deciding_agency": entry.deciding_agency,
                "term_start": entry.term_start.isoformat(),
                "term_end": entry.term_end.isoformat(),
            }
            for entry in lists
        ],
        "accidents_prior_year": list(facts.accident_classes),
        "measures": {r: [m.as_dict() for m in ms] for r, ms in sorted(visible.items())},
    }
    return answer if view is None else view.project(answer, keep=("uscc",))


def grade_history(session: Session, uscc: str, view: View) -> dict[str, Any]:
    """Every grade decision about the enterprise in log order, each message's `data` cut to
    the caller's `grade_history` view."""
    check_code(uscc)
    if session.get(Enterprise, uscc) is None:
        raise NotFound("unknown_enterprise", f"no enterprise {uscc} is registered")
    rows = session.execute(
        select(LogEntry.idx, LogEntry.message_id, LogEntry.type, LogEntry.issuer, LogEntry.jws)
        .where(LogEntry.subject == uscc, LogEntry.kind == "message", LogEntry.type.in_(GRADE_TYPES))
        .order_by(LogEntry.idx)
    )
    events = []
    for idx, message_id, message_type, issuer, token in rows:
        envelope = json.loads(parse_compact(token).payload)
        events.append(
            {
                "index": idx,
                "message_id": message_id,
                "type": message_type,
                "issuer": issuer,
                "issued_at": envelope["issued_at"],
                "data": view.project(envelope["data"]),
            }
        )
    return {"uscc": uscc, "events": events}


def attest(
    session: Session, signer: GatewaySigner, answer: Any, caller: str, now: dt.datetime
) -> str:
    """The gateway's signature over the answer, for whom, and the log size it reflects."""
    claims = {
        "answer": answer,
        "log_size": tree_size(session),
        "issued_at": now.isoformat(),
        "audience": caller,
    }
    return signer.sign(claims, ATTESTATION_TYP)


def batch(
    session: Session, codes: Sequence[str], caller: str, on: dt.date, view: View | None = None
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for code in codes:
        try:
            answer = standing(session, code, caller, on, view)
            results.append({"uscc": code, "status": 200, "standing": answer})
        except (BadRequest, NotFound) as exc:
            results.append({"uscc": code, "status": exc.status_code, "problem": exc.problem()})
    return results


def access_records(
    session: Session, uscc: str, before: int | None, limit: int
) -> list[dict[str, Any]]:
    query = select(AccessRecord).where(AccessRecord.uscc == uscc)
    if before is not None:
        query = query.where(AccessRecord.id < before)
    rows = session.scalars(query.order_by(AccessRecord.id.desc()).limit(limit))
    return [
        {
            "id": r.id,
            "at": r.at.isoformat(),
            "agency_id": r.agency_id,
            "action": r.action,
            "purpose": r.purpose,
            "result": r.result,
        }
        for r in rows
    ]
