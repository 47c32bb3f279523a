"""What every connector shares: a name, the agency role it serves, the message types it turns
into documents, its view contract, and the check every document passes before it leaves.

A connector turns one accepted message's facts (connectors.facts, gathered by the gateway) into
the document its consumer kind acts on (a premium adjustment, a credit signal, a public
record …). The document is validated against the connector's view contract (a strict JSON
Schema: unknown fields refused) before it is sent; a document that fails is parked with the
reason and never sent, so a consumer never receives a field outside its contract. Pure: facts
in, document out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import jsonschema_rs

from connectors.facts import DocumentFacts
from contracts.versions import load_registry


class ViewContractError(Exception):
    """The rendered document does not meet the connector's view contract: parked, not sent."""


def iso(value: dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


def decided_on(facts: DocumentFacts) -> dt.date:
    """The date the decision itself names (decided, started, announced, occurred, removed,
    verified, closed), else its issue date: terms run from it."""
    for key in (
        "decided_on",
        "term_start",
        "announced_on",
        "occurred_on",
        "removed_on",
        "verified_on",
        "closed_on",
        "expired_on",
    ):
        value = facts.decision.data.get(key)
        if isinstance(value, str):
            return dt.date.fromisoformat(value)
    return facts.decision.on


@dataclass(frozen=True)
class Connector:
    """One consumer kind: its name, the agency role it serves, the message types it turns
    into documents, its view contract's major, and its renderer."""

    name: str
    role: str
    types: frozenset[str]
    render: Callable[[DocumentFacts], dict[str, Any]]
    title: str
    major: int = 1

    @property
    def schema(self) -> dict[str, Any]:
        return view_schema(self.name, self.major)

    def document(self, facts: DocumentFacts) -> dict[str, Any]:
        """The checked document for the facts; raises ViewContractError if it fails the
        view contract (the caller parks it)."""
        document = self.render(facts)
        errors = list(_validator(self.name, self.major).iter_errors(document))
        if errors:
            first = errors[0]
            where = "/" + "/".join(str(p) for p in first.instance_path)
            raise ViewContractError(
                f"{self.name} view contract v{self.major}: {where}: {first.message}"[:480]
            )
        return document


@cache
def view_schema(name: str, major: int) -> dict[str, Any]:
    """The connector's view contract from the contract registry: the strict producer schema
    under contracts/schemas/views/v<major>/, checked with the others by `gateway contracts
    check`."""
    return dict(load_registry().get(name, major).producer)


@cache
def _validator(name: str, major: int) -> Any:
    return jsonschema_rs.Draft202012Validator(view_schema(name, major))
