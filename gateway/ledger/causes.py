"""The messages a revocation cites, found in this batch or in the log, with the rectification
order an overdue report or a re-check is about: what contracts.revocations judges."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from contracts.revocations import Cause
from gateway.ledger.state import Applied
from gateway.models import LogEntry, Rectification
from keys.jws import parse_compact

_CITED = select(LogEntry.message_id, LogEntry.type, LogEntry.subject, LogEntry.jws).where(
    LogEntry.message_id.in_(bindparam("ids", expanding=True)), LogEntry.kind == "message"
)
_ABOUT_ORDERS = ("rectification.overdue", "rectification.verified")


def cited_causes(session: Session, applied: Applied, ids: Sequence[str]) -> list[Cause]:
    """One Cause per cited id, in the order cited; `type` None for an id not in the log."""
    found: dict[str, Cause] = {}
    for message_id in ids:
        earlier = applied.batch_messages.get(message_id)
        if earlier is not None:
            found[message_id] = Cause(message_id, earlier.type, earlier.subject, earlier.data)
    missing = [i for i in ids if i not in found]
    if missing:
        for message_id, message_type, subject, token in session.connection().execute(
            _CITED, {"ids": missing}
        ):
            data = json.loads(parse_compact(token).payload)["data"]
            found[message_id] = Cause(message_id, message_type, subject, data)
    causes = []
    for message_id in ids:
        cause = found.get(message_id, Cause(message_id, None))
        if cause.type in _ABOUT_ORDERS and cause.subject is not None:
            order = session.get(Rectification, (cause.subject, cause.data["rectification_id"]))
            if order is not None:
                cause = Cause(
                    cause.message_id,
                    cause.type,
                    cause.subject,
                    cause.data,
                    {"kind": order.kind, "hazard_level": order.hazard_level},
                )
        causes.append(cause)
    return causes
