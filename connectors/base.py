"""What every connector shares: the decision being delivered, the enterprise's standing on its
date as the log stood at the decision, with the measures the catalog in force at the decision
attaches to it, and the view contract the output must meet.

A connector turns one accepted message into the document its consumer kind acts on (a premium
adjustment, a credit signal, a public record …). The document is validated against the
connector's view contract (a strict JSON Schema: unknown fields refused) before it is sent; a
document that fails is parked with the reason and never sent (issue 5 §3), so a consumer never
receives a field outside its contract.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import jsonschema_rs
from sqlalchemy.orm import Session

from contracts.measures import Measure, Standing, applicable
from contracts.versions import load_registry
from gateway.measures.catalog import catalog_as_of
from gateway.measures.service import EnterpriseFacts, ListEntry, standing_as_of


class ViewContractError(Exception):
    """The rendered document does not meet the connector's view contract: parked, not sent."""


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
class Context:
    session: Session
    decision: Decision
    enterprise: EnterpriseFacts  # its `enterprises` columns as they were after the decision
    standing: Standing
    measures: Mapping[str, list[Measure]]  # by implementing role, in force on decision.on
    lists: Sequence[ListEntry]  # its list entries in force on decision.on, as of the decision

    def measures_for(self, role: str) -> list[Measure]:
        return list(self.measures.get(role, []))

    def source(self) -> dict[str, Any]:
        return {
            "log_index": self.decision.index,
            "message_id": self.decision.message_id,
            "type": self.decision.type,
        }


def build_context(session: Session, decision: Decision) -> Context:
    """The enterprise and the measure catalog as the log stood just after the decision, not
    as they stand now: a document is the view of its message (protocol.md §4, §5), so every
    attempt, replay and feed read of one message renders the same bytes under the same
    webhook-id, whatever was accepted or published since."""
    enterprise, standing, lists = standing_as_of(
        session, decision.subject, decision.on, decision.index
    )
    catalog = catalog_as_of(session, decision.index)
    measures = applicable(standing, enterprise.region_code, decision.on, catalog)
    return Context(session, decision, enterprise, standing, measures, lists)


def iso(value: dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


def decided_on(ctx: Context) -> dt.date:
    """The date the decision itself names (decided, started, announced, occurred, removed),
    else its issue date: terms run from it."""
    for key in ("decided_on", "term_start", "announced_on", "occurred_on", "removed_on"):
        value = ctx.decision.data.get(key)
        if isinstance(value, str):
            return dt.date.fromisoformat(value)
    return ctx.decision.on


@dataclass(frozen=True)
class Connector:
    """One consumer kind: its name, the agency role it serves, the message types it turns
    into documents, and its view contract."""

    name: str
    role: str
    types: frozenset[str]
    render: Callable[[Context], dict[str, Any]]
    title: str

    @property
    def schema(self) -> dict[str, Any]:
        return view_schema(self.name)

    def document(self, session: Session, decision: Decision) -> dict[str, Any]:
        """The checked document for `decision`; raises ViewContractError if it fails the
        view contract (the caller parks it)."""
        document = self.render(build_context(session, decision))
        errors = list(_validator(self.name).iter_errors(document))
        if errors:
            first = errors[0]
            where = "/" + "/".join(str(p) for p in first.instance_path)
            raise ViewContractError(f"{self.name} view contract v1: {where}: {first.message}"[:480])
        return document


@cache
def view_schema(name: str) -> dict[str, Any]:
    """The connector's view contract (major 1) from the contract registry: the strict producer
    schema under contracts/schemas/views/v1/, checked with the others by `gateway contracts
    check`."""
    return dict(load_registry().get(name, 1).producer)


@cache
def _validator(name: str) -> Any:
    return jsonschema_rs.Draft202012Validator(view_schema(name))
