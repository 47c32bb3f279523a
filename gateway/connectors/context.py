"""A document's facts, read from the database as the log stood just after its decision: the
enterprise and its standing on the decision's day, the catalog in force then, the list entries
with their decisions, and the agencies the facts name (protocol.md §4, §5: the view of the
message, the same bytes at every attempt, replay and feed read)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from connectors import Connector, Decision, DocumentFacts
from connectors.facts import Agency, Listing
from contracts.measures import applicable
from gateway.measures.catalog import catalog_as_of
from gateway.measures.service import standing_as_of
from gateway.models import Agency as AgencyRow
from gateway.models import Listing as ListingRow
from gateway.models import LogEntry

_LISTINGS_UP_TO = (
    select(ListingRow)
    .join(LogEntry, LogEntry.message_id == ListingRow.message_id)
    .where(ListingRow.uscc == bindparam("uscc"), LogEntry.idx <= bindparam("index"))
    .order_by(ListingRow.term_start, ListingRow.listing_id)
)
_AGENCIES = select(AgencyRow.id, AgencyRow.name, AgencyRow.uscc).where(
    AgencyRow.id.in_(bindparam("ids", expanding=True))
)


def document_facts(session: Session, decision: Decision) -> DocumentFacts:
    """Everything a connector renders `decision` from, as of its log index and its day."""
    enterprise, standing, lists = standing_as_of(
        session, decision.subject, decision.on, decision.index
    )
    catalog = catalog_as_of(session, decision.index)
    measures = applicable(standing, enterprise.region_code, decision.on, catalog)
    listings = _listings(session, decision)
    wanted = {
        decision.issuer,
        *(entry.deciding_agency for entry in listings.values()),
        *((enterprise.grade_awarded_by,) if enterprise.grade_awarded_by else ()),
    }
    agencies = {
        row.id: Agency(row.id, row.name, row.uscc)
        for row in session.execute(_AGENCIES, {"ids": sorted(wanted)})
    }
    return DocumentFacts(
        decision=decision,
        enterprise=enterprise,
        standing=standing,
        catalog=catalog,
        measures=measures,
        lists=lists,
        listings=listings,
        agencies=agencies,
    )


def _listings(session: Session, decision: Decision) -> dict[str, Listing]:
    """The enterprise's list entries recorded up to the decision, each as it stood then: one
    removed later reads active."""
    found: dict[str, Listing] = {}
    for row in session.scalars(
        _LISTINGS_UP_TO, {"uscc": decision.subject, "index": decision.index}
    ):
        removed = (
            row.status == "removed"
            and row.removal is not None
            and int(row.removal["log_index"]) <= decision.index
        )
        data = row.data
        found[row.listing_id] = Listing(
            listing_id=row.listing_id,
            list_type=row.list_type,
            deciding_agency=row.deciding_agency,
            decision_no=str(data.get("decision_no", "")),
            decided_on=dt.date.fromisoformat(str(data.get("decided_on", row.term_start))),
            term_start=row.term_start,
            term_end=row.term_end,
            status="removed" if removed else "active",
            removed_on=row.removed_on if removed else None,
            removal_reason=row.removal_reason if removed else None,
        )
    return found


def render_document(
    session: Session, connector: Connector, decision: Decision
) -> dict[str, object]:
    """The connector's checked document for `decision` (ViewContractError if it fails)."""
    return connector.document(document_facts(session, decision))
