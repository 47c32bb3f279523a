"""What a connector renders from: the accepted decision and the enterprise's facts as the log
stood just after it, on its day. Plain values gathered by the gateway (gateway.connectors);
no database, no I/O here (style.md: connectors are renderers)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from contracts.catalog import Catalog
from contracts.measures import Measure, Standing


class ListEntry(NamedTuple):
    list_type: str
    deciding_agency: str
    term_start: dt.date
    term_end: dt.date


class EnterpriseFacts(NamedTuple):
    """The `enterprises` columns a standing or a document shows (a plain tuple: reading a
    field of a SQLAlchemy Row by name first fails a class attribute lookup, an exception
    each time)."""

    uscc: str
    name: str
    region_code: str
    industry_section: str
    scheme: str
    ledger_status: str
    grade_status: str
    grade_level: str | None
    grade_scheme: str | None
    grade_valid_from: dt.date | None
    grade_valid_to: dt.date | None
    certificate_no: str | None
    reapply_after: dt.date | None
    required: bool
    registered_on: dt.date
    legal_representative: str | None
    address: str | None
    new_until: dt.date | None
    closed_on: dt.date | None
    closure: str | None
    self_assessment_year: int | None
    grade_authority: str | None
    announcement_no: str | None
    grade_awarded_by: str | None
    grade_decision: dict[str, Any] | None
    grade_held_since: dt.date | None


@dataclass(frozen=True)
class Decision:
    """The accepted message a document is made from."""

    index: int
    message_id: str
    type: str
    issuer: str
    subject: str
    issued_at: str
    data: Mapping[str, Any]

    @property
    def on(self) -> dt.date:
        """The date the decision speaks for: its issue date."""
        return dt.datetime.fromisoformat(self.issued_at).date()


@dataclass(frozen=True)
class Agency:
    """A registered agency as documents name it: id, name and unified social credit code."""

    id: str
    name: str
    uscc: str


@dataclass(frozen=True)
class Listing:
    """A list entry with its decision, as the log stood after the document's decision."""

    listing_id: str
    list_type: str
    deciding_agency: str
    decision_no: str
    decided_on: dt.date
    term_start: dt.date
    term_end: dt.date
    status: str  # active | removed (removed after the decision reads active)
    removed_on: dt.date | None = None
    removal_reason: str | None = None


@dataclass(frozen=True)
class DocumentFacts:
    decision: Decision
    enterprise: EnterpriseFacts  # as after the decision, held to its day (ledger status too)
    standing: Standing
    catalog: Catalog | None  # the version in force at the decision (None: the shipped one)
    measures: Mapping[str, list[Measure]]  # by implementing role, in force on decision.on
    lists: Sequence[ListEntry]  # its list entries in force on decision.on
    listings: Mapping[str, Listing] = field(default_factory=dict)  # by listing id
    agencies: Mapping[str, Agency] = field(default_factory=dict)  # those the facts name

    def measures_for(self, role: str) -> list[Measure]:
        return list(self.measures.get(role, []))

    def agency(self, agency_id: str) -> dict[str, Any]:
        """{"id", "name", "uscc"} of a registered agency (the id alone if not found)."""
        found = self.agencies.get(agency_id)
        if found is None:
            return {"id": agency_id, "name": agency_id, "uscc": None}
        return {"id": found.id, "name": found.name, "uscc": found.uscc}

    def source(self) -> dict[str, Any]:
        return {
            "log_index": self.decision.index,
            "message_id": self.decision.message_id,
            "type": self.decision.type,
        }
