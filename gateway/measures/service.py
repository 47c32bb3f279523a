"""An enterprise's standing on a date, read from the ledgers, and the measures it triggers."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import replace
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, Select, and_, bindparam, select
from sqlalchemy.orm import Session

from connectors.facts import EnterpriseFacts, ListEntry
from contracts.dates import add_months, date_field
from contracts.grades import EVENT_DATE_FIELD, GradeState, GradeStatus, decision_facts
from contracts.ledgers import ACHIEVED, NEW, NOT_ACHIEVED, grade_held_on, status_on
from contracts.measures import (
    DEFAULT_RECORD_PERIOD_MONTHS,
    MAX_RECORD_PERIOD_MONTHS,
    Standing,
    applicable,
)
from contracts.policy import policy_for
from gateway.errors import BadRequest, NotFound
from gateway.measures.catalog import active_catalog
from gateway.models import Accident, Enterprise, Listing, LogEntry
from keys.jws import parse_compact

Facts = tuple[EnterpriseFacts, Standing, list[ListEntry]]
_WIDTH = len(EnterpriseFacts._fields)


def _facts_statement(where: ColumnElement[bool]) -> Select[Any]:
    """The enterprise's columns a standing needs, its accidents since `since` (the longest
    record period a catalog may state) and its list entries in force, in one statement (one row
    per accident x entry)."""
    return (
        select(
            *(getattr(Enterprise, name) for name in EnterpriseFacts._fields),
            Accident.accident_id,
            Accident.occurred_on,
            Accident.accident_class,
            Listing.listing_id,
            Listing.list_type,
            Listing.deciding_agency,
            Listing.term_start,
            Listing.term_end,
        )
        .select_from(Enterprise)
        .outerjoin(
            Accident,
            and_(
                Accident.uscc == Enterprise.uscc,
                Accident.occurred_on > bindparam("since"),
                Accident.occurred_on <= bindparam("on"),
            ),
        )
        .outerjoin(
            Listing,
            and_(
                Listing.uscc == Enterprise.uscc,
                Listing.status == "active",
                Listing.term_start <= bindparam("on"),
                Listing.term_end > bindparam("on"),
            ),
        )
        .where(where)
        .order_by(Enterprise.uscc, Accident.accident_id, Listing.listing_id)
    )


# Built once: a standing query runs these for every code it answers, and building and
# compiling a statement per call, and a statement per table, cost more than the database
# (bench/query.py, bench/RESULTS.md).
_FACTS_ONE = _facts_statement(Enterprise.uscc == bindparam("uscc"))
_FACTS_MANY = _facts_statement(Enterprise.uscc.in_(bindparam("codes", expanding=True)))
CHUNK = 500  # codes per IN list


# The measures look back up to MAX_RECORD_PERIOD_MONTHS from `on` (a product's record period).
EARLIEST = add_months(dt.date.min, MAX_RECORD_PERIOD_MONTHS)


def day_asked(on: str | None, today: dt.date) -> dt.date:
    """The day a measures request asks about (`on`, default today); 400 invalid_date."""
    if on is None:
        return today
    try:
        day = dt.date.fromisoformat(on)
    except ValueError as exc:
        raise BadRequest("invalid_date", f"on must be a date like 2026-06-01, not {on!r}") from exc
    if day < EARLIEST:
        raise BadRequest("invalid_date", f"on must be {EARLIEST.isoformat()} or later")
    return day


def unknown_enterprise(uscc: str) -> NotFound:
    return NotFound("unknown_enterprise", f"enterprise {uscc} is not in the ledgers")


def as_held_on(facts: EnterpriseFacts, on: dt.date) -> tuple[EnterpriseFacts, str | None]:
    """`facts` as of `on` and the grade level the triggers see. domain.md §3–4: a grade not
    renewed lapses at valid_to, whether or not its grade.expired is published yet: it is
    shown `expired` from the day after, no level's measures apply, and the last grade's level
    and validity stay shown; the ledger status is the day's (contracts.ledgers.status_on:
    not 达标 once lapsed, 新增 only for its period). Queries, connector documents, snapshots
    and the measures route alike."""
    since = facts.grade_held_since
    status = status_on(
        facts.grade_status, facts.grade_valid_to, facts.new_until, facts.closed_on, on, since
    )
    held = grade_held_on(facts.grade_status, facts.grade_valid_to, facts.closed_on, on, since)
    if facts.grade_status == "active" and not held:
        if since is not None and on < since:  # announced, not yet valid: no level's measures
            return facts._replace(ledger_status=status), None
        return facts._replace(grade_status="expired", ledger_status=status), None
    return facts._replace(ledger_status=status), facts.grade_level if held else None


def standing_from(
    facts: EnterpriseFacts,
    level: str | None,
    on: dt.date,
    accidents: Iterable[tuple[dt.date, str]],
    lists: Iterable[ListEntry],
) -> Standing:
    """The standing the catalog's triggers read, from facts already held to `on` and the
    accidents (occurred_on, class) since `lookback(on)`: each product counts its own record
    period of them; accident_classes holds the default period's (the prior 12 months)."""
    return Standing(
        grade_status=facts.grade_status,
        grade_level=level,
        scheme=facts.grade_scheme or facts.scheme,
        list_types=tuple(entry.list_type for entry in lists),
        self_assessment_year=facts.self_assessment_year,
        closed=facts.closed_on is not None and facts.closed_on <= on,
        on=on,
        accident_record=tuple(accidents),
    ).over_months(DEFAULT_RECORD_PERIOD_MONTHS)


def lookback(on: dt.date) -> dt.date:
    """The day after which accidents are read for a standing on `on`: the longest record
    period any catalog version may state, so the rule in force (whichever version, region and
    product) finds its whole period in the standing."""
    return add_months(on, -MAX_RECORD_PERIOD_MONTHS)


def standing_facts(session: Session, codes: Collection[str], on: dt.date) -> dict[str, Facts]:
    """For each of `codes` in the ledgers: a row of its `enterprises` columns that a standing
    shows, its standing on `on` and its list entries in force; one statement per 500 codes
    whatever their number. Codes not in the ledgers are left out. A grade past its valid_to
    is shown `expired` (lapsed), its grade.expired published or not."""
    session.flush()  # Core statements below: let them see what this session changed
    connection = session.connection()
    wanted = sorted(set(codes))
    window = {"on": on, "since": lookback(on)}
    rows: list[Row[Any]] = []
    if len(wanted) == 1:
        rows.extend(connection.execute(_FACTS_ONE, {"uscc": wanted[0], **window}))
    else:
        for start in range(0, len(wanted), CHUNK):
            chunk = {"codes": wanted[start : start + CHUNK], **window}
            rows.extend(connection.execute(_FACTS_MANY, chunk))
    collected: dict[
        str, tuple[EnterpriseFacts, dict[str, tuple[dt.date, str]], dict[str, ListEntry]]
    ] = {}
    for row in rows:
        enterprise = collected.get(row[0])
        if enterprise is None:
            enterprise = collected[row[0]] = (EnterpriseFacts._make(row[:_WIDTH]), {}, {})
        accident_id, occurred_on, accident_class, listing_id, *listed = row[_WIDTH:]
        if accident_id is not None:
            enterprise[1][accident_id] = (occurred_on, accident_class)
        if listing_id is not None:
            enterprise[2][listing_id] = ListEntry(*listed)
    found: dict[str, Facts] = {}
    for uscc, (facts, accidents, lists) in collected.items():
        facts, level = as_held_on(facts, on)
        standing = standing_from(facts, level, on, accidents.values(), lists.values())
        found[uscc] = (facts, standing, list(lists.values()))
    return found


# --- as the log stood after one entry --------------------------------------------------------

_ROW = select(
    *(getattr(Enterprise, name) for name in EnterpriseFacts._fields), Enterprise.last_index
).where(Enterprise.uscc == bindparam("uscc"))
# Accidents and list entries count only if the message that recorded them is at or before the
# index (joined on its message id: the log's unique index).
_ACCIDENTS_UP_TO = (
    select(Accident.occurred_on, Accident.accident_class)
    .join(LogEntry, LogEntry.message_id == Accident.message_id)
    .where(
        Accident.uscc == bindparam("uscc"),
        Accident.occurred_on > bindparam("since"),
        Accident.occurred_on <= bindparam("on"),
        LogEntry.idx <= bindparam("index"),
    )
    .order_by(Accident.accident_id)
)
_LISTINGS_UP_TO = (
    select(
        Listing.listing_id,
        Listing.status,
        Listing.list_type,
        Listing.deciding_agency,
        Listing.term_start,
        Listing.term_end,
    )
    .join(LogEntry, LogEntry.message_id == Listing.message_id)
    .where(
        Listing.uscc == bindparam("uscc"),
        Listing.term_start <= bindparam("on"),
        Listing.term_end > bindparam("on"),
        LogEntry.idx <= bindparam("index"),
    )
    .order_by(Listing.term_start, Listing.listing_id)
)
_REMOVALS_AFTER = select(LogEntry.jws).where(
    LogEntry.subject == bindparam("uscc"),
    LogEntry.kind == "message",
    LogEntry.type == "listing.removed",
    LogEntry.idx > bindparam("index"),
)
# The messages that change the columns a document shows: the register's and the grade's.
_ROW_TYPES = (
    *EVENT_DATE_FIELD,
    "enterprise.registered",
    "enterprise.updated",
    "enterprise.closed",
    "self_assessment.published",
)
_ROW_EVENTS_UP_TO = (
    select(LogEntry.type, LogEntry.jws)
    .where(
        LogEntry.subject == bindparam("uscc"),
        LogEntry.kind == "message",
        LogEntry.type.in_(_ROW_TYPES),
        LogEntry.idx <= bindparam("index"),
    )
    .order_by(LogEntry.idx)
)


def standing_as_of(session: Session, uscc: str, on: dt.date, index: int) -> Facts:
    """The enterprise's standing on `on` as the log stood just after entry `index`: what a
    document made for that entry shows (protocol.md §4, §5: the view of the message), the
    same whatever was accepted about the enterprise since; 404 if it is not registered.

    Indexed reads only: the enterprise's row, and its accidents and list entries joined to
    the entries that recorded them. Only when something about the enterprise was accepted
    after `index` are its grade messages up to `index` replayed, and its later removals read.
    """
    session.flush()  # Core statements below: let them see what this session changed
    connection = session.connection()
    row = connection.execute(_ROW, {"uscc": uscc}).first()
    if row is None:
        raise unknown_enterprise(uscc)
    facts = EnterpriseFacts._make(row[:_WIDTH])
    # Every message that changes the row sets last_index (gateway.ledger.state.touch).
    changed_since = row[_WIDTH] > index
    if changed_since:
        facts = _row_as_of(connection, facts, index)
    window = {"uscc": uscc, "on": on, "since": lookback(on), "index": index}
    accidents = [(day, kind) for day, kind in connection.execute(_ACCIDENTS_UP_TO, window)]
    listed = list(connection.execute(_LISTINGS_UP_TO, window))
    removed_since: set[str] = set()
    if changed_since and any(entry.status != "active" for entry in listed):
        removed_since = {
            str(_data(token)["listing_id"])
            for token in connection.execute(
                _REMOVALS_AFTER, {"uscc": uscc, "index": index}
            ).scalars()
        }
    lists = [
        ListEntry._make(entry[2:])
        for entry in listed
        if entry.status == "active" or entry.listing_id in removed_since
    ]
    facts, level = as_held_on(facts, on)
    return facts, standing_from(facts, level, on, accidents, lists), lists


def _row_as_of(connection: Connection, facts: EnterpriseFacts, index: int) -> EnterpriseFacts:
    """`facts` with the columns as they were after entry `index`: the enterprise's register
    and grade messages up to it folded as gateway.ledger.apply applied them."""
    state = GradeState.none()
    row = facts._asdict()
    events = connection.execute(_ROW_EVENTS_UP_TO, {"uscc": facts.uscc, "index": index})
    for message_type, token in events:
        envelope = json.loads(parse_compact(token).payload)
        data = envelope["data"]
        if message_type == "enterprise.registered":
            row.update(_REGISTERED_NONE)
            row.update({k: data.get(k) for k in _REGISTER_FIELDS})
            row["registered_on"] = date_field(data, "registered_on")
            row["new_until"] = _new_until(row["region_code"], row["registered_on"])
            state = GradeState.none()
        elif message_type == "enterprise.updated":
            was_required = row["required"]
            row.update({k: v for k, v in data["changes"].items() if k in row})
            if row["required"] and not was_required and state.status is GradeStatus.NONE:
                # newly included in the required ledger: 新增 anew, as update_enterprise does
                row["new_until"] = _new_until(row["region_code"], date_field(data, "changed_on"))
        elif message_type == "enterprise.closed":
            row["closed_on"], row["closure"] = date_field(data, "closed_on"), data["closure"]
            if state.status is GradeStatus.ACTIVE:
                state = GradeState(status=GradeStatus.EXPIRED)  # as close_enterprise does
        elif message_type == "self_assessment.published":
            year = int(data["year"])
            row["self_assessment_year"] = max(year, row["self_assessment_year"] or year)
        else:
            state = _grade_after(state, message_type, data)
            row["grade_decision"] = decision_facts(envelope)
            if message_type in ("grade.awarded", "grade.renewed"):
                row["certificate_no"] = data["certificate_no"]
                row["announcement_no"] = data["announcement_no"]
                row["grade_awarded_by"] = envelope["issuer"]
    row.update(
        ledger_status=ACHIEVED if state.status is GradeStatus.ACTIVE else row["ledger_status"],
        grade_status=state.status.value,
        grade_level=state.level,
        grade_scheme=state.scheme,
        grade_valid_from=state.valid_from,
        grade_valid_to=state.valid_to,
        grade_authority=state.authority_level,
        grade_held_since=state.held_since,
        reapply_after=state.reapply_after,
    )
    if state.status in (GradeStatus.REVOKED, GradeStatus.EXPIRED):
        row["ledger_status"] = NOT_ACHIEVED
    return EnterpriseFacts(**row)


_REGISTER_FIELDS = (
    "name",
    "legal_representative",
    "address",
    "region_code",
    "industry_section",
    "scheme",
    "required",
)
_REGISTERED_NONE = {
    "ledger_status": NEW,
    "certificate_no": None,
    "announcement_no": None,
    "grade_awarded_by": None,
    "grade_authority": None,
    "grade_decision": None,
    "closed_on": None,
    "closure": None,
    "self_assessment_year": None,
}


def _new_until(region_code: str, since: dt.date) -> dt.date:
    """The first day an enterprise registered or newly included on `since` is no longer 新增,
    as gateway.ledger.apply set it: the policy's new_status_months for its region on that day
    (domain.md §4, configurable), so a document replayed as of an earlier entry shows the
    period the ledger showed then."""
    return add_months(since, policy_for(region_code, since).new_status_months)


def _grade_after(state: GradeState, message_type: str, data: Mapping[str, Any]) -> GradeState:
    """The grade an accepted message left (what contracts.grades.apply_grade_event returned
    for it), without the checks it passed then: the log is replayed as accepted, not judged
    again by rules that may have changed since."""
    if message_type == "grade.awarded":
        return GradeState(
            status=GradeStatus.ACTIVE,
            level=str(data["level"]),
            scheme=str(data["scheme"]),
            authority_level=str(data["authority_level"]),
            valid_from=date_field(data, "valid_from"),
            valid_to=date_field(data, "valid_to"),
            held_since=date_field(data, "valid_from"),
        )
    if message_type == "grade.renewed":
        valid_from, valid_to = date_field(data, "valid_from"), date_field(data, "valid_to")
        return replace(state, valid_from=valid_from, valid_to=valid_to)
    if message_type == "grade.downgraded":
        return replace(state, level=str(data["to_level"]))
    if message_type == "grade.revoked":
        return GradeState(
            status=GradeStatus.REVOKED, reapply_after=date_field(data, "reapply_after")
        )
    return GradeState(status=GradeStatus.EXPIRED)  # grade.expired


def _data(token: bytes) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(parse_compact(token).payload)["data"]
    return data


_GRADE_EVENTS = (
    select(LogEntry.type, LogEntry.jws)
    .where(
        LogEntry.subject == bindparam("uscc"),
        LogEntry.kind == "message",
        LogEntry.type.in_(tuple(EVENT_DATE_FIELD)),
    )
    .order_by(LogEntry.idx)
)


def standing_of(session: Session, uscc: str, on: dt.date) -> tuple[Enterprise, Standing]:
    """The enterprise (ORM, with what this session changed) and its standing on `on`: the
    grade it held that day (`_grade_on`), the accidents since `lookback(on)` (each product
    counts its record period; accident_classes the prior 12 months) and the list entries
    active then; 404 if it is not registered. Queries use `standing_facts`."""
    enterprise = session.get(Enterprise, uscc)
    if enterprise is None:
        raise unknown_enterprise(uscc)
    grade = GradeState.none()
    if enterprise.grade_status != GradeStatus.NONE.value:  # else no grade message, ever
        events = session.execute(_GRADE_EVENTS, {"uscc": uscc})
        grade = _grade_on(((message_type, _data(token)) for message_type, token in events), on)
    accidents = session.execute(
        select(Accident.occurred_on, Accident.accident_class)
        .where(
            Accident.uscc == uscc, Accident.occurred_on > lookback(on), Accident.occurred_on <= on
        )
        .order_by(Accident.accident_id)
    )
    lists = session.scalars(
        select(Listing.list_type).where(
            Listing.uscc == uscc,
            Listing.status == "active",
            Listing.term_start <= on,
            Listing.term_end > on,
        )
    )
    closed = enterprise.closed_on is not None and enterprise.closed_on <= on
    standing = Standing(
        grade_status=GradeStatus.EXPIRED.value
        if closed and grade.status is GradeStatus.ACTIVE
        else grade.status.value,
        grade_level=None if closed else grade.level,
        scheme=grade.scheme or enterprise.scheme,
        list_types=tuple(lists),
        self_assessment_year=enterprise.self_assessment_year,
        closed=closed,
        on=on,
        accident_record=tuple((day, kind) for day, kind in accidents),
    )
    return enterprise, standing.over_months(DEFAULT_RECORD_PERIOD_MONTHS)


def _grade_on(events: Iterable[tuple[str, Mapping[str, Any]]], on: dt.date) -> GradeState:
    """The grade held on `on`, from the enterprise's grade messages in log order. An award or
    a renewal counts from its valid_from, a downgrade, revocation or expiry from the date it
    was decided (EVENT_DATE_FIELD); a grade is held to its valid_to inclusive and has lapsed
    after it (domain.md §3), whether or not its grade.expired was published yet. Before the
    first award: no grade."""
    state = GradeState.none()
    for message_type, data in events:
        if message_type in ("grade.awarded", "grade.renewed"):
            takes_effect = date_field(data, "valid_from")
        else:
            takes_effect = date_field(data, EVENT_DATE_FIELD[message_type])
        if takes_effect <= on:
            state = _grade_after(state, message_type, data)
    if state.status is GradeStatus.ACTIVE and state.valid_to is not None and state.valid_to < on:
        return GradeState(status=GradeStatus.EXPIRED)
    return state


def measures_for(
    session: Session, uscc: str, on: dt.date, role: str | None = None
) -> dict[str, Any]:
    enterprise, standing = standing_of(session, uscc, on)
    by_role = applicable(
        standing, enterprise.region_code, on, catalog=active_catalog(session), role=role
    )
    return {
        "uscc": uscc,
        "on": on.isoformat(),
        "standing": {
            "grade_status": standing.grade_status,
            "grade_level": standing.grade_level,
            "scheme": standing.scheme,
            "accidents_prior_year": list(standing.accident_classes),
            "lists": list(standing.list_types),
        },
        "measures": {r: [m.as_dict() for m in ms] for r, ms in sorted(by_role.items())},
    }
