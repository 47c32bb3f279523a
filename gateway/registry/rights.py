"""Access rights below the scopes: which message types an agency may subscribe to, which queries
it may ask, and the fields it sees in each (protocol.md §6: "a projection per contract").

A right is a row (agency, action, contract, fields); `fields` None is the whole contract. No
row, no access: deny by default, admins included. Every grant and revocation is a
gateway-signed entry in the log, like the publish rights and scopes. `read` (per message
type, no field view) shows the stored messages themselves, the publisher's JWS: without it a
caller with `ledger.read` sees hashes and its subscribe view (gateway.transparency.views).

Field names are a contract's own: for a message type the members of its `data`; for the
`standing` query the answer's members, `grade` sub-members as `grade.level`; for
`grade_history` the members of the grade messages' `data`; for `access_records` (who accessed
an enterprise's data: regulators and the supervising agency) the members of a record.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from contracts.registry import MESSAGE_TYPES, schema_for
from gateway.errors import BadRequest, Forbidden, NotFound
from gateway.models import AccessRight, AgencyScope, PublishRight, RateLimit
from gateway.registry.service import append_gateway_entry, get_agency, publish_rights
from gateway.signing import GatewaySigner

ACTIONS = ("publish", "subscribe", "query", "read")
GRADE_FIELDS = (
    "status",
    "level",
    "scheme",
    "valid_from",
    "valid_to",
    "certificate_no",
    "reapply_after",
)
STANDING_FIELDS = (
    "name",
    "region_code",
    "ledger_status",
    "grade",
    *(f"grade.{f}" for f in GRADE_FIELDS),
    "lists",
    "accidents_prior_year",
    "closure",
    "measures",
)
GRADE_TYPES = tuple(t for t in MESSAGE_TYPES if t.startswith("grade."))
QUERY_CONTRACTS = ("standing", "grade_history", "access_records")
ACCESS_RECORD_FIELDS = ("at", "agency_id", "action", "purpose", "result")


def contract_fields(action: str, contract: str) -> tuple[str, ...]:
    """The field names a view of this contract may name; raises for an unknown contract."""
    if action in ("subscribe", "read"):
        if contract not in MESSAGE_TYPES:
            raise BadRequest("unknown_type", f"{contract!r} is not a message type")
        if action == "read":
            return ()  # the message as signed: no field view
        return tuple(schema_for(contract, 1).get("properties", {}))
    if action == "query":
        if contract == "standing":
            return STANDING_FIELDS
        if contract == "grade_history":
            names: dict[str, None] = {}
            for grade_type in GRADE_TYPES:
                names.update(dict.fromkeys(schema_for(grade_type, 1).get("properties", {})))
            return tuple(names)
        if contract == "access_records":  # who looked at an enterprise: for regulators
            return ACCESS_RECORD_FIELDS
        raise BadRequest(
            "unknown_contract", f"queries are {', '.join(QUERY_CONTRACTS)}; not {contract!r}"
        )
    raise BadRequest("invalid_action", f"rights are for {', '.join(ACTIONS)}; not {action!r}")


@dataclass(frozen=True)
class View:
    """The fields an agency sees of one contract (None: all of them)."""

    fields: frozenset[str] | None

    def allows(self, names: Iterable[str]) -> list[str]:
        """The names outside this view (empty when all are inside)."""
        if self.fields is None:
            return []
        return sorted(
            n for n in names if n not in self.fields and n.split(".")[0] not in self.fields
        )

    def project(self, document: Mapping[str, Any], keep: Iterable[str] = ()) -> dict[str, Any]:
        """`document` with only the view's members (and `keep`, which every view has)."""
        if self.fields is None:
            return dict(document)
        out: dict[str, Any] = {k: document[k] for k in keep if k in document}
        for name in sorted(self.fields):
            parent, _, child = name.partition(".")
            if parent not in document:
                continue
            if not child:
                out[parent] = document[parent]
            elif isinstance(document[parent], Mapping) and child in document[parent]:
                if not isinstance(out.get(parent), dict):
                    out[parent] = {}
                out[parent][child] = document[parent][child]
        return out

    def narrowed(self, wanted: Sequence[str] | None) -> View:
        """This view cut down to `wanted` (which must lie inside it)."""
        if not wanted:
            return self
        outside = self.allows(wanted)
        if outside:
            raise Forbidden(
                "field_not_in_view",
                f"your view does not include {', '.join(outside)}; ask for fields within it",
            )
        return View(frozenset(wanted))


def view_of(session: Session, agency_id: str, action: str, contract: str) -> View | None:
    row = session.get(AccessRight, (agency_id, action, contract))
    if row is None:
        return None
    return View(None if row.fields is None else frozenset(row.fields))


def require_view(session: Session, agency_id: str, action: str, contract: str) -> View:
    view = view_of(session, agency_id, action, contract)
    if view is None:
        raise Forbidden("not_permitted", f"agency {agency_id!r} may not {action} {contract}")
    return view


def subscribe_views(session: Session, agency_ids: Iterable[str]) -> dict[tuple[str, str], View]:
    """Every subscribe right of these agencies, by (agency, message type): one query."""
    rows = session.scalars(
        select(AccessRight).where(
            AccessRight.action == "subscribe", AccessRight.agency_id.in_(set(agency_ids))
        )
    )
    return {
        (r.agency_id, r.contract): View(None if r.fields is None else frozenset(r.fields))
        for r in rows
    }


def grant(
    session: Session,
    signer: GatewaySigner,
    *,
    agency_id: str,
    action: str,
    contract: str,
    fields: Sequence[str] | None,
    now: dt.datetime,
) -> dict[str, Any]:
    """Allow `agency_id` to `action` `contract`, seeing `fields` (None: all); replaces an
    earlier view of the same contract. Returns the agency's rights."""
    from gateway.registry.service import grant_publish

    get_agency(session, agency_id)
    if action == "publish":
        if fields is not None:
            raise BadRequest("invalid_fields", "a publish right has no field view")
        grant_publish(session, signer, agency_id, [contract], now)
        return rights_of(session, agency_id)
    allowed = contract_fields(action, contract)
    if action == "read" and fields is not None:
        raise BadRequest("invalid_fields", "a read right shows the message as signed: no fields")
    if fields is not None:
        if not fields:
            raise BadRequest("invalid_fields", "a view needs at least one field (or null: all)")
        unknown = sorted(set(fields) - set(allowed))
        if unknown:
            raise BadRequest(
                "unknown_field",
                f"{contract} has no field {', '.join(unknown)}; its fields: {', '.join(allowed)}",
            )
    stored = None if fields is None else sorted(set(fields))
    row = session.get(AccessRight, (agency_id, action, contract))
    if row is None:
        session.add(
            AccessRight(agency_id=agency_id, action=action, contract=contract, fields=stored)
        )
    elif row.fields == stored:
        return rights_of(session, agency_id)
    else:
        row.fields = stored
    session.flush()
    append_gateway_entry(
        session,
        signer,
        entry_type="gateway.rights.granted",
        data={"agency_id": agency_id, action: contract, "fields": stored},
        now=now,
    )
    return rights_of(session, agency_id)


def revoke(
    session: Session,
    signer: GatewaySigner,
    *,
    agency_id: str,
    action: str,
    contract: str,
    now: dt.datetime,
) -> dict[str, Any]:
    """Withdraw a right at once (a later delivery or query sees its absence)."""
    get_agency(session, agency_id)
    if action == "publish":
        found = session.execute(
            delete(PublishRight).where(
                PublishRight.agency_id == agency_id, PublishRight.message_type == contract
            )
        )
    elif action in ACTIONS:
        found = session.execute(
            delete(AccessRight).where(
                AccessRight.agency_id == agency_id,
                AccessRight.action == action,
                AccessRight.contract == contract,
            )
        )
    else:
        raise BadRequest("invalid_action", f"rights are for {', '.join(ACTIONS)}; not {action!r}")
    if not getattr(found, "rowcount", 0):
        raise NotFound("no_such_right", f"{agency_id} holds no {action} right for {contract}")
    append_gateway_entry(
        session,
        signer,
        entry_type="gateway.rights.revoked",
        data={"agency_id": agency_id, action: contract},
        now=now,
    )
    return rights_of(session, agency_id)


def rights_of(session: Session, agency_id: str) -> dict[str, Any]:
    """Everything an agency may do: publish types, subscribe and query views, token scopes,
    its rate limit (None: the default)."""
    get_agency(session, agency_id)
    views: dict[str, dict[str, list[str] | None]] = {"subscribe": {}, "query": {}, "read": {}}
    for row in session.scalars(
        select(AccessRight)
        .where(AccessRight.agency_id == agency_id)
        .order_by(AccessRight.action, AccessRight.contract)
    ):
        views.setdefault(row.action, {})[row.contract] = row.fields
    limit = session.get(RateLimit, agency_id)
    return {
        "agency_id": agency_id,
        "publish": publish_rights(session, agency_id),
        "subscribe": views["subscribe"],
        "query": views["query"],
        "read": sorted(views["read"]),
        "scopes": sorted(
            session.scalars(select(AgencyScope.scope).where(AgencyScope.agency_id == agency_id))
        ),
        "rate_limit": {"per_second": limit.per_second, "burst": limit.burst} if limit else None,
    }


MAX_BURST = 2**31 - 1  # the column is a 32-bit INTEGER
# Requests a second, bounded like a subscription's delivery rate (gateway.delivery
# .subscriptions): 1e308 was stored as a limit no bucket arithmetic can use.
MIN_RATE, MAX_RATE = 1 / 3600, 10_000.0


def set_rate_limit(
    session: Session,
    signer: GatewaySigner,
    *,
    agency_id: str,
    per_second: float | None,
    burst: int | None,
    now: dt.datetime,
) -> dict[str, Any]:
    """The agency's own request rate; None for both returns it to the default."""
    get_agency(session, agency_id)
    row = session.get(RateLimit, agency_id)
    if per_second is None and burst is None:
        if row is not None:
            session.delete(row)
    else:
        # NaN compares false with everything and infinity is no limit: neither is a rate
        if (
            per_second is None
            or isinstance(per_second, bool)
            or not math.isfinite(per_second)
            or not MIN_RATE <= per_second <= MAX_RATE
            or burst is None
            or not 1 <= burst <= MAX_BURST
        ):
            raise BadRequest(
                "invalid_rate_limit",
                f"per_second is requests a second, from {MIN_RATE:.6g} (one an hour) to "
                f"{MAX_RATE:g}, and burst between 1 and {MAX_BURST}; not {per_second!r} and "
                f"{burst!r}",
            )
        if row is None:
            session.add(RateLimit(agency_id=agency_id, per_second=per_second, burst=burst))
        else:
            row.per_second, row.burst = per_second, burst
    session.flush()
    append_gateway_entry(
        session,
        signer,
        entry_type="gateway.rate_limit.set",
        data={"agency_id": agency_id, "per_second": per_second, "burst": burst},
        now=now,
    )
    return rights_of(session, agency_id)
