"""What a caller with `ledger.read` sees of a stored message (`GET /v1/messages/{id}`, log
entries, evidence bundles): the publisher's JWS only with a `read` right for the message's
type, or as its issuer (it signed those bytes). Anyone else gets what verifies inclusion
(index, leaf hash, proofs: hashes, not contents) and, under a subscribe right of the type, the
facts and data its subscribe view shows, with the gateway's receipt; nothing of the message
without one. Deny by default, admins included: an operator grants itself `read` (a log entry)
like any agency. The gateway's own entries (registry changes: agencies, keys, rights) stay
whole: they are how a publisher's keys are checked from the log.

Issue 20, finding 8: `ledger.read` showed every message's full JWS whatever the field views.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.models import AccessRight, LogEntry
from keys.jws import parse_compact

__all__ = ["Reader", "reader_of"]


@dataclass(frozen=True)
class Reader:
    """An agency's rights over stored messages: the types it reads whole, and its subscribe
    views (type: the data fields it sees, None for all of them)."""

    agency_id: str
    read: frozenset[str]
    subscribe: dict[str, frozenset[str] | None]

    def reads_whole(self, entry: LogEntry) -> bool:
        return entry.kind != "message" or entry.issuer == self.agency_id or entry.type in self.read

    def view_of(self, entry: LogEntry) -> str:
        """`raw` (the JWS), `fields` (the subscribe view) or `hashes` (nothing of it)."""
        if self.reads_whole(entry):
            return "raw"
        return "fields" if entry.type in self.subscribe else "hashes"

    def facts(self, entry: LogEntry) -> dict[str, Any]:
        """What this reader sees of `entry` beside its index and leaf hash, never the JWS of
        a message it may not read whole: its type, issuer, subject, times, the data cut to
        its subscribe view and the receipt (the notice's facts, which the receipt names), or
        nothing."""
        view = self.view_of(entry)
        if view == "hashes":
            return {"view": view}
        shown: dict[str, Any] = {
            "view": view,
            "type": entry.type,
            "issuer": entry.issuer,
            "subject": entry.subject,
            "issued_at": entry.issued_at.isoformat(),
            "accepted_at": entry.accepted_at.isoformat(),
            "receipt": entry.receipt or None,
        }
        if view == "raw":
            shown["jws"] = entry.jws.decode()
        else:
            data = json.loads(parse_compact(entry.jws).payload).get("data", {})
            fields = self.subscribe[entry.type]
            shown["data"] = {k: v for k, v in data.items() if fields is None or k in fields}
        return shown


def reader_of(session: Session, agency_id: str) -> Reader:
    """The agency's read rights and subscribe views, in one statement."""
    rows = session.execute(
        select(AccessRight.action, AccessRight.contract, AccessRight.fields).where(
            AccessRight.agency_id == agency_id, AccessRight.action.in_(("read", "subscribe"))
        )
    )
    read: set[str] = set()
    subscribe: dict[str, frozenset[str] | None] = {}
    for action, contract, fields in rows:
        if action == "read":
            read.add(contract)
        else:
            subscribe[contract] = None if fields is None else frozenset(fields)
    return Reader(agency_id, frozenset(read), subscribe)
