"""What applying a message works on: the batch's enterprises (loaded once, written once), the
message being applied, and the steps every handler shares (find the enterprise, record a ledger
change, mark it touched, the rules in force)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from contracts.catalog import shipped_document
from contracts.grades import EVENT_DATE_FIELD, decision_facts
from contracts.ledgers import ACHIEVED, NEW, NOT_ACHIEVED
from contracts.policy import Policy, policy_for
from gateway.bulk import BulkInsert, BulkUpdate
from gateway.errors import Unprocessable
from gateway.measures.catalog import active_catalog
from gateway.models import Enterprise, table_of

__all__ = ["ACHIEVED", "EVENT_DATE_FIELD", "NEW", "NOT_ACHIEVED", "decision_facts"]


class BatchMessage(NamedTuple):
    """A message accepted earlier in the same transaction, as a measure.applied or a
    revocation citing it reads it."""

    subject: str | None
    type: str
    issued_at: dt.datetime
    data: Mapping[str, Any]


@dataclass(frozen=True)
class Applied:
    """What the caller needs to record about one accepted message.

    Ledger changes are collected as rows in `ledger_changes` and bulk-inserted by the caller
    after the ORM flush (Core executemany: the ORM unit of work was most of a batch's cost).
    `batch_messages` holds the messages accepted earlier in the same transaction, by id (not
    yet in the log table: a measure.applied may answer a decision published beside it).
    """

    envelope: Mapping[str, Any]
    index: int
    now: dt.datetime
    enterprises: dict[str, EnterpriseState]  # the batch's enterprises, see prefetch_enterprises
    ledger_changes: list[dict[str, Any]]
    batch_messages: Mapping[str, BatchMessage]

    @property
    def data(self) -> Mapping[str, Any]:
        return self.envelope["data"]  # type: ignore[no-any-return]

    @property
    def subject(self) -> str:
        return str(self.envelope["subject"])

    @property
    def major(self) -> int:
        """The contract major the data follows (the envelope's `contract`)."""
        return int(self.envelope["contract"])


_COLUMNS = tuple(column.key for column in table_of(Enterprise).columns)


class EnterpriseState:
    """An enterprise row as publishing reads and changes it: plain attributes, no ORM.

    Building and flushing ORM objects was a fifth of a single publish's thread time
    (bench/profile_single_publish.py); `write_enterprises` inserts the new rows and updates
    the changed ones with one executemany each.
    """

    __slots__ = (*_COLUMNS, "stored", "changed")

    uscc: str
    name: str
    region_code: str
    industry_section: str
    scheme: str
    required: bool
    ledger_status: str
    registered_on: dt.date
    grade_status: str
    grade_level: str | None
    grade_scheme: str | None
    grade_authority: str | None
    grade_valid_from: dt.date | None
    grade_valid_to: dt.date | None
    grade_held_since: dt.date | None
    reapply_after: dt.date | None
    certificate_no: str | None
    announcement_no: str | None
    self_assessment_year: int | None
    updated_at: dt.datetime
    last_index: int
    legal_representative: str | None
    address: str | None
    new_until: dt.date | None
    closed_on: dt.date | None
    closure: str | None
    grade_awarded_by: str | None
    grade_decision: dict[str, Any] | None

    def __init__(self, stored: bool, **columns: Any) -> None:
        for name in _COLUMNS:
            setattr(self, name, columns.get(name))
        self.stored = stored  # the row exists in the database (or was inserted in this batch)
        self.changed = False

    def row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _COLUMNS}


_ENTERPRISES = select(*(table_of(Enterprise).c[name] for name in _COLUMNS)).where(
    table_of(Enterprise).c.uscc.in_(bindparam("codes", expanding=True))
)
# PostgreSQL: one primary-key probe per code, whatever the statistics say. With `uscc IN (…)`
# a table never analysed yet (a new gateway's first minutes, every benchmark's fresh database)
# or much grown since was read whole for every group of publishes: 3.6 ms of a 27 ms group of
# 32 at 3,000 enterprises, growing with the register (bench/pg_parity.py, issue 24 §4). An
# equality on the key is always an index probe; OFFSET 0 keeps the planner from turning the
# probes back into one join it may hash.
_ENTERPRISES_POSTGRESQL = text(
    "SELECT e.* FROM unnest(CAST(:codes AS VARCHAR[])) AS k(uscc) CROSS JOIN LATERAL"
    f" (SELECT {', '.join(_COLUMNS)} FROM enterprises WHERE enterprises.uscc = k.uscc"
    " OFFSET 0) AS e"
).columns(*(table_of(Enterprise).c[name] for name in _COLUMNS))
_INSERT_ENTERPRISES = BulkInsert(table_of(Enterprise))
_UPDATE_ENTERPRISES = BulkUpdate(table_of(Enterprise), "uscc")


def prefetch_enterprises(session: Session, subjects: set[str]) -> dict[str, EnterpriseState]:
    """Load a batch's enterprises in one query; handlers then look them up without SQL.

    Registrations in the batch add to the same dict, so a later item sees them unwritten.
    """
    found: dict[str, EnterpriseState] = {}
    items = sorted(subjects)
    connection = session.connection()
    postgresql = connection.dialect.name == "postgresql"
    statement: Executable = _ENTERPRISES_POSTGRESQL if postgresql else _ENTERPRISES
    size = (len(items) or 1) if postgresql else 500  # one array needs no chunks
    for start in range(0, len(items), size):
        chunk = items[start : start + size]
        for row in connection.execute(statement, {"codes": chunk}).mappings():
            found[row["uscc"]] = EnterpriseState(True, **row)
    return found


def write_enterprises(session: Session, enterprises: Mapping[str, EnterpriseState]) -> None:
    """Insert the batch's new enterprises and update the changed ones (Core executemany)."""
    new = [ent.row() for ent in enterprises.values() if not ent.stored]
    changed = [ent.row() for ent in enterprises.values() if ent.stored and ent.changed]
    connection = session.connection()
    if new:
        _INSERT_ENTERPRISES(connection, new)
    if changed:
        _UPDATE_ENTERPRISES(connection, changed)
    for ent in enterprises.values():
        ent.stored, ent.changed = True, False


def ensure_stored(session: Session, ent: EnterpriseState) -> None:
    """Write a new enterprise now: a row about to be added through the ORM refers to it, and
    the ORM may flush that row (autoflush) before the batch's enterprises are written."""
    if not ent.stored:
        _INSERT_ENTERPRISES(session.connection(), [ent.row()])
        ent.stored = True


def enterprise_of(session: Session, applied: Applied) -> EnterpriseState:
    found = applied.enterprises.get(applied.subject)
    if found is None:
        raise Unprocessable(
            "unknown_enterprise",
            f"enterprise {applied.subject} is not in the basic ledger; "
            "publish enterprise.registered first",
            pointer="/subject",
        )
    return found


def record_change(session: Session, ent: EnterpriseState, applied: Applied, **change: Any) -> None:
    # every row has every column: the caller inserts them in one executemany
    row = dict.fromkeys(("from_status", "to_status", "from_level", "to_level", "reason"))
    row.update(
        uscc=ent.uscc,
        actor=str(applied.envelope["issuer"]),
        at=applied.now,
        message_id=str(applied.envelope["id"]).lower(),
        log_index=applied.index,
        **change,
    )
    applied.ledger_changes.append(row)


def touch(ent: EnterpriseState, applied: Applied) -> None:
    ent.updated_at = applied.now
    ent.last_index = applied.index
    ent.changed = True


def scheme_codes(session: Session) -> frozenset[str]:
    """The grading schemes of the catalog in force, read once per transaction (a version is
    published in a transaction of its own)."""
    found: frozenset[str] | None = session.info.get("scheme_codes")
    if found is None:
        catalog = active_catalog(session) or shipped_document()
        found = session.info["scheme_codes"] = catalog.scheme_codes()
    return found


def check_scheme(session: Session, scheme: str, pointer: str) -> None:
    """A scheme must be one the catalog in force lists (registry data, not a closed enum:
    other sectors graded on provincial standards are added to the catalog, 三（一）)."""
    known = scheme_codes(session)
    if known and scheme not in known:
        raise Unprocessable(
            "unknown_scheme",
            f"scheme {scheme!r} is not a grading scheme of the catalog in force "
            f"({', '.join(sorted(known))}); an operator adds schemes to the catalog",
            pointer=pointer,
        )


def check_open(ent: EnterpriseState, applied: Applied) -> None:
    """Nothing changes a closed enterprise but late reports about what happened before."""
    if ent.closed_on is not None and str(applied.envelope["type"]) not in CLOSED_ALLOWED:
        raise Unprocessable(
            "enterprise_closed",
            f"enterprise {ent.uscc} was closed ({ent.closure}) on {ent.closed_on}: "
            f"{applied.envelope['type']} no longer applies to it",
            pointer="/subject",
        )


# An accident that happened before the closure may be reported after it; a list entry still
# ends; agencies still report what they applied.
CLOSED_ALLOWED = frozenset({"accident.reported", "listing.removed", "measure.applied"})


def rules_on(region_code: str, on: dt.date) -> Policy:
    """The grade and list rules in force for the region on the day of the decision; a day the
    policy records do not cover (before they begin) is refused, not guessed."""
    try:
        return policy_for(region_code, on)
    except LookupError as exc:
        raise Unprocessable(
            "rule_violation",
            f"no grade and list rules are recorded for region {region_code} on {on}: {exc}",
        ) from exc
