"""An agency's scopes: granted and withdrawn by operators, each change a gateway entry in the
log. The registry owns them (the access package only reads them when it issues a token), so
imports run one way: registry → access."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gateway.access.tokens import SCOPES
from gateway.errors import BadRequest, NotFound
from gateway.models import AgencyScope
from gateway.registry.service import append_gateway_entry, get_agency
from gateway.signing import GatewaySigner

__all__ = ["grant_scopes", "revoke_scope"]


def grant_scopes(
    session: Session, signer: GatewaySigner, agency_id: str, scopes: list[str], now: dt.datetime
) -> list[str]:
    """Allow `agency_id`'s tokens these scopes; recorded as a gateway entry in the log."""
    get_agency(session, agency_id)
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise BadRequest("unknown_scope", f"scopes are {', '.join(SCOPES)}; unknown: {unknown}")
    have = set(session.scalars(select(AgencyScope.scope).where(AgencyScope.agency_id == agency_id)))
    new = sorted(set(scopes) - have)
    for scope in new:
        session.add(AgencyScope(agency_id=agency_id, scope=scope))
    if new:
        append_gateway_entry(
            session,
            signer,
            entry_type="gateway.scopes.granted",
            data={"agency_id": agency_id, "scopes": new},
            now=now,
        )
    return sorted(have | set(scopes))


def revoke_scope(
    session: Session, signer: GatewaySigner, agency_id: str, scope: str, now: dt.datetime
) -> list[str]:
    """Withdraw a scope (tokens already issued keep it until they expire, minutes at most);
    recorded as a gateway entry in the log."""
    get_agency(session, agency_id)
    found = session.execute(
        delete(AgencyScope).where(AgencyScope.agency_id == agency_id, AgencyScope.scope == scope)
    )
    if not getattr(found, "rowcount", 0):
        raise NotFound("no_such_right", f"{agency_id} holds no scope {scope!r}")
    append_gateway_entry(
        session,
        signer,
        entry_type="gateway.scopes.revoked",
        data={"agency_id": agency_id, "scopes": [scope]},
        now=now,
    )
    return sorted(
        session.scalars(select(AgencyScope.scope).where(AgencyScope.agency_id == agency_id))
    )
