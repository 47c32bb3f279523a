"""An enterprise's standing as a bank or insurer sees it, attested by the gateway.

The attestation is a gateway-signed JWS over the answer and the log size it reflects, so the
asker can later prove what the gateway said and when. Every query, refused ones included, is
an access record (who, when, which enterprise, stated purpose, result).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from contracts.measures import (
    CatalogLike,
    Measure,
    Standing,
    applicable,
    in_force,
    record_periods,
)
from contracts.uscc import is_valid_uscc
from gateway.bulk import BulkInsert
from gateway.errors import BadRequest, Forbidden, GatewayError, NotFound, check_uscc
from gateway.measures.catalog import active_catalog
from gateway.measures.service import Facts, standing_facts, unknown_enterprise
from gateway.models import (
    AccessRecord,
    AccessRight,
    Agency,
    Enterprise,
    LogEntry,
    LogHead,
    table_of,
)
from gateway.registry.rights import GRADE_TYPES, View, require_view
from gateway.signing import GatewaySigner
from keys.jws import parse_compact

if TYPE_CHECKING:
    from gateway.runtime import Runtime

ATTESTATION_TYP = "gateway-attestation+jws"
MAX_BATCH = 1000

# Built once and run on the session's connection: per query, building a statement and the
# ORM's execution path cost more than the database (bench/query.py, bench/RESULTS.md).
_RECORD = BulkInsert(table_of(AccessRecord))
_LOG_SIZE = select(LogHead.size).where(LogHead.id == 1)
_ROLES = select(Agency.roles).where(Agency.id == bindparam("agency_id"))
_QUERY_RIGHT = (
    select(AccessRight.fields, Agency.roles)
    .join(Agency, Agency.id == AccessRight.agency_id)
    .where(
        AccessRight.agency_id == bindparam("agency_id"),
        AccessRight.action == "query",
        AccessRight.contract == bindparam("contract"),
    )
)


_ONE_SNAPSHOT = {"isolation_level": "REPEATABLE READ"}


def read_one_snapshot(session: Session) -> None:
    """Make every statement of the session's transaction read one snapshot of the database;
    call before its first statement. An attested answer and the log size it names must come
    from one state: under PostgreSQL's READ COMMITTED each statement sees what committed
    before it, and a revocation committed between the reads and the size gave "not revoked"
    signed with the size after the revocation. On PostgreSQL: REPEATABLE READ, which psycopg
    sends in the transaction's BEGIN (no round trip of its own); SQLite's write transactions
    (BEGIN IMMEDIATE) hold the write lock from the start, so nothing commits between reads."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options=_ONE_SNAPSHOT)


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
    record_accesses(
        session,
        [
            {
                "at": at,
                "agency_id": agency_id,
                "uscc": uscc,
                "action": action,
                "purpose": purpose,
                "result": result,
            }
        ],
    )


def record_access_alone(
    runtime: Runtime,
    *,
    agency_id: str | None,
    action: str,
    purpose: str | None,
    result: str,
    uscc: str | None = None,
) -> None:
    """One access record in a transaction of its own, stamped now: a refusal, a feed read,
    a download, whatever the outcome of what it records."""
    with runtime.db.transaction() as session:
        record_access(
            session,
            at=runtime.clock.now(),
            agency_id=agency_id,
            uscc=uscc,
            action=action,
            purpose=purpose,
            result=result,
        )


def record_accesses(session: Session, records: Sequence[Mapping[str, Any]]) -> None:
    """Access records (the keyword arguments of `record_access`) in one INSERT statement."""
    if not records:
        return
    rows = [
        {
            "at": r["at"],
            "agency_id": r["agency_id"],
            "uscc": r["uscc"][:18] if r["uscc"] else None,
            "action": r["action"],
            "purpose": (r["purpose"] or None) and r["purpose"][:200],
            "result": r["result"][:48],
        }
        for r in records
    ]
    _RECORD(session.connection(), rows)


def check_purpose(purpose: str | None) -> str:
    if not purpose or not purpose.strip():
        raise BadRequest("missing_purpose", "state the purpose of the query (purpose=…)")
    return purpose.strip()


def check_code(uscc: str) -> None:
    check_uscc(uscc)


def query_view(session: Session, agency_id: str, contract: str) -> tuple[View, frozenset[str]]:
    """The agency's field view of query `contract` and its roles, in one statement; 403
    `not_permitted` without the right (the registry's own refusal)."""
    row = (
        session.connection()
        .execute(_QUERY_RIGHT, {"agency_id": agency_id, "contract": contract})
        .first()
    )
    if row is None:
        return require_view(session, agency_id, "query", contract), roles_of(session, agency_id)
    fields, roles = row
    return View(None if fields is None else frozenset(fields)), frozenset(roles or ())


def roles_of(session: Session, agency_id: str) -> frozenset[str]:
    roles = session.connection().execute(_ROLES, {"agency_id": agency_id}).scalar()
    return frozenset(roles or ())


# A region's measures in force, its products' record periods, and the two as a memo key.
_Key = tuple[tuple[int, ...], tuple[tuple[str, int], ...]]
_InForce = tuple[list[Measure], dict[str, int], _Key]


class _Memo:
    """The measures of one batch, worked out once per region's measures in force and standing
    (the catalog's triggers were most of a batch's time; enterprises share a few of each).
    Equal to `applicable`: the measures in force for a region, given as its catalog, are again
    the ones in force, and the products' record periods in force there are passed along (part
    of the key: two regions may share measures but not periods)."""

    def __init__(self) -> None:
        self.in_force: dict[str, _InForce] = {}
        self.by_role: dict[tuple[_Key, Standing], dict[str, list[Measure]]] = {}

    BY_ROLE_MAX = 50_000  # (region's measures, standing) pairs are few; a bound all the same

    def applicable(
        self, standing: Standing, region: str, on: dt.date, catalog: CatalogLike
    ) -> dict[str, list[Measure]]:
        forces = self.in_force.get(region)
        if forces is None:
            measures = in_force(region, on, catalog)
            periods = dict(record_periods(catalog, region, on))
            key = (tuple(id(m) for m in measures), tuple(sorted(periods.items())))
            forces = self.in_force[region] = (measures, periods, key)
        found = self.by_role.get((forces[2], standing))
        if found is None:
            if len(self.by_role) >= self.BY_ROLE_MAX:
                self.by_role.clear()
            found = applicable(standing, region, on, forces[0], periods=forces[1])
            self.by_role[(forces[2], standing)] = found
        return found


# Memos that outlive a call, by (catalog, date): the measures for a standing are a pure
# function of these, and single queries (grouped by the dozen) rarely met a memo's entry
# again within one group. The catalog object is held with its memo, so its id is not reused
# while the entry lives; bounded by emptying.
_MEMOS: dict[tuple[int, dt.date], tuple[CatalogLike, _Memo]] = {}
MEMOS_MAX = 64


def memo_for(catalog: CatalogLike, on: dt.date) -> _Memo:
    """The shared memo of the measures under `catalog` on `on`."""
    key = (id(catalog), on)
    found = _MEMOS.get(key)
    if found is None or found[0] is not catalog:
        if len(_MEMOS) >= MEMOS_MAX:
            _MEMOS.clear()
        found = _MEMOS[key] = (catalog, _Memo())
    return found[1]


def _answer(
    facts: Facts,
    roles: frozenset[str],
    catalog: CatalogLike,
    on: dt.date,
    view: View | None,
    memo: _Memo | None = None,
) -> dict[str, Any]:
    enterprise, standing, lists = facts
    uscc = enterprise.uscc
    if memo is None:
        by_role = applicable(standing, enterprise.region_code, on, catalog)
    else:
        by_role = memo.applicable(standing, enterprise.region_code, on, catalog)
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
        "accidents_prior_year": list(standing.accident_classes),
        "closure": {"closed_on": enterprise.closed_on.isoformat(), "closure": enterprise.closure}
        if enterprise.closed_on is not None and enterprise.closed_on <= on
        else None,
        "measures": {r: [m.as_dict() for m in ms] for r, ms in sorted(visible.items())},
    }
    return answer if view is None else view.project(answer, keep=("uscc",))


@dataclass(frozen=True)
class Ask:
    """One standing question: whose, about which code, the fields asked for, when."""

    uscc: str
    agency_id: str
    fields: Sequence[str] | None
    on: dt.date


def standings(session: Session, asks: Sequence[Ask]) -> list[dict[str, Any] | GatewayError]:
    """Each ask answered as `standing` would answer it alone, or its refusal (not_permitted,
    field_not_in_view, invalid_uscc, unknown_enterprise), in the order given; the rights,
    ledgers and catalog are read once for all of them. Nothing is written."""
    views: dict[str, tuple[View, frozenset[str]] | GatewayError] = {}
    for agency_id in {ask.agency_id for ask in asks}:
        try:
            views[agency_id] = query_view(session, agency_id, "standing")
        except Forbidden as exc:
            views[agency_id] = exc
    outcomes: list[dict[str, Any] | GatewayError | None] = []
    admitted: list[tuple[int, Ask, View, frozenset[str]]] = []
    for ask in asks:
        granted = views[ask.agency_id]
        if isinstance(granted, GatewayError):
            outcomes.append(granted)
            continue
        try:
            view = granted[0].narrowed(ask.fields)
            check_code(ask.uscc)
        except GatewayError as exc:
            outcomes.append(exc)
            continue
        outcomes.append(None)  # answered below
        admitted.append((len(outcomes) - 1, ask, view, granted[1]))
    if admitted:
        _answer_admitted(session, admitted, outcomes)
    return [outcome for outcome in outcomes if outcome is not None]


def _answer_admitted(
    session: Session,
    admitted: Sequence[tuple[int, Ask, View, frozenset[str]]],
    outcomes: list[dict[str, Any] | GatewayError | None],
) -> None:
    catalog = active_catalog(session)
    by_date: dict[dt.date, list[tuple[int, Ask, View, frozenset[str]]]] = {}
    for item in admitted:
        by_date.setdefault(item[1].on, []).append(item)
    for on, items in by_date.items():
        found = standing_facts(session, [ask.uscc for _, ask, _, _ in items], on)
        memo = memo_for(catalog, on)
        for position, ask, view, roles in items:
            facts = found.get(ask.uscc)
            outcomes[position] = (
                unknown_enterprise(ask.uscc)
                if facts is None
                else _answer(facts, roles, catalog, on, view, memo)
            )


def log_size(session: Session) -> int:
    size: int = session.connection().execute(_LOG_SIZE).scalar_one()
    return size


def attestation(
    signer: GatewaySigner, answer: Any, caller: str, now: dt.datetime, size: int
) -> str:
    """The gateway's signature over the answer, for whom, and the log size it reflects."""
    claims = {"answer": answer, "log_size": size, "issued_at": now.isoformat(), "audience": caller}
    return signer.sign(claims, ATTESTATION_TYP)


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
    return attestation(signer, answer, caller, now, log_size(session))


def batch(
    session: Session,
    codes: Sequence[str],
    caller: str,
    on: dt.date,
    view: View | None = None,
    *,
    roles: frozenset[str] | None = None,
) -> list[dict[str, Any]]:
    """Each code answered as `standing` would (or its problem); the ledgers, the caller's roles
    and the catalog are read once for all of them."""
    valid = {code: is_valid_uscc(code) for code in codes}
    found = standing_facts(session, [code for code, ok in valid.items() if ok], on)
    if roles is None:
        roles = roles_of(session, caller)
    catalog = active_catalog(session)
    memo = memo_for(catalog, on)
    results: list[dict[str, Any]] = []
    for code in codes:
        try:
            if not valid[code]:
                check_code(code)  # raises invalid_uscc
            facts = found.get(code)
            if facts is None:
                raise unknown_enterprise(code)
            answer = _answer(facts, roles, catalog, on, view, memo)
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
    return [_record_view(r) for r in rows]


def _record_view(r: AccessRecord, address: bool = False) -> dict[str, Any]:
    """A record as listed: a refusal repeated within its window is one record, `count` times
    from `at` to `last_at` (gateway.access.refusals)."""
    shown = {
        "id": r.id,
        "at": r.at.isoformat(),
        "agency_id": r.agency_id,
        "action": r.action,
        "purpose": r.purpose,
        "result": r.result,
        "count": r.count,
        "last_at": (r.last_at or r.at).isoformat(),
    }
    if address:
        shown["address"] = r.address
    return shown


def list_access_records(
    session: Session,
    *,
    refused: bool,
    agency_id: str | None,
    address: str | None,
    before: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Every access record, newest first, with the client address (for operators); `refused`
    keeps the refusals only."""
    query = select(AccessRecord)
    if refused:
        query = query.where(AccessRecord.result != "ok")
    if agency_id is not None:
        query = query.where(AccessRecord.agency_id == agency_id)
    if address is not None:
        query = query.where(AccessRecord.address == address)
    if before is not None:
        query = query.where(AccessRecord.id < before)
    rows = session.scalars(query.order_by(AccessRecord.id.desc()).limit(limit))
    return [_record_view(r, address=True) | {"uscc": r.uscc} for r in rows]
