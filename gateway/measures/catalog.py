"""The measure catalog as versions: each one stored, recorded in the log, the newest in force.

Version 1 is the catalog shipped in `contracts/data/measures.json`, recorded on first start;
an operator publishes a new version (the whole catalog, validated) with `PUT
/v1/measures/catalog` or `gateway catalog publish FILE`; a gateway upgrade that ships a
changed default catalog records it as a new version too. Each version is a gateway-signed
`gateway.catalog.published` entry in the log carrying the records and their SHA-256, so which
catalog was in force when is provable, not just configured; its row keeps that entry's index,
so a message's document reads the catalog in force at the message (`catalog_as_of`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from contracts.measures import (
    CatalogError,
    InvalidMeasure,
    Measure,
    parse_catalog,
    parse_stored_measure,
)
from gateway.errors import BadRequest
from gateway.models import MeasureCatalog
from gateway.registry.service import ROLES, append_gateway_entry
from gateway.signing import GatewaySigner

log = logging.getLogger(__name__)
# The roles a measure may be for: an agency role that acts on an enterprise (the operator runs
# the exchange and implements no measure).
MEASURE_ROLES = frozenset(ROLES) - {"operator"}
# Parsed catalogs by their records' SHA-256, not by version number: a version never changes,
# but one process may see more than one database (the tests do), where version 2 differs.
_cache: dict[str, tuple[Measure, ...]] = {}
_lock = threading.Lock()
# Built once: every standing query asks it (a `select` built per call cost more than running it)
_NEWEST = (
    select(MeasureCatalog.version, MeasureCatalog.sha256)
    .order_by(MeasureCatalog.version.desc())
    .limit(1)
)
# One row per version: a tiny table, so no index on log_index is needed to read it.
_AS_OF = (
    select(MeasureCatalog.version, MeasureCatalog.sha256)
    .where(MeasureCatalog.log_index <= bindparam("index"))
    .order_by(MeasureCatalog.log_index.desc())
    .limit(1)
)


def shipped_records() -> list[dict[str, Any]]:
    text = resources.files("contracts").joinpath("data/measures.json").read_text("utf-8")
    records: list[dict[str, Any]] = json.loads(text)["records"]
    return records


def digest(records: Sequence[Mapping[str, Any]]) -> str:
    canonical = json.dumps(records, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def parse_records(records: Any) -> tuple[Measure, ...]:
    """Every record checked whole and parsed (`contracts.measures.parse_catalog`), or a 400
    `invalid_catalog` naming the first bad record, its code and the field."""
    try:
        return parse_catalog(records, MEASURE_ROLES)
    except CatalogError as exc:
        pointer = None if exc.index is None else f"/records/{exc.index}"
        raise BadRequest("invalid_catalog", str(exc), pointer=pointer) from exc


def _parse_stored(records: Sequence[Any]) -> tuple[Measure, ...]:
    """A stored version's records, read as they were when stored (parse_stored_measure): a
    version is in the log for good and must read the same whatever checks publishing has
    gained since. A record that cannot be evaluated at all (a trigger value of the wrong
    type, which failed every query reading the version) is left out, and logged. Overlapping
    periods are settled by `in_force` (later valid_from)."""
    measures = []
    for index, record in enumerate(records):
        try:
            measures.append(parse_stored_measure(record))
        except (InvalidMeasure, KeyError, TypeError, ValueError) as exc:
            log.warning("stored catalog record %d left out: %s", index, exc)
    return tuple(measures)


def publish_catalog(
    session: Session,
    signer: GatewaySigner,
    records: Sequence[Mapping[str, Any]],
    *,
    source: str,
    now: dt.datetime,
) -> MeasureCatalog:
    """Record a new catalog version (unless it equals the one in force) and log it."""
    parse_records(list(records))
    sha = digest(records)
    current = latest(session)
    if current is not None and current.sha256 == sha:
        return current
    version = (current.version if current is not None else 0) + 1
    row = MeasureCatalog(
        version=version,
        sha256=sha,
        records=list(records),
        source=source,
        created_at=now,
    )
    session.add(row)
    session.flush()
    row.log_index = append_gateway_entry(
        session,
        signer,
        entry_type="gateway.catalog.published",
        data={"version": version, "sha256": sha, "source": source, "records": list(records)},
        now=now,
    )
    return row


def record_shipped(session: Session, signer: GatewaySigner, now: dt.datetime) -> MeasureCatalog:
    """Make sure the shipped default catalog is recorded: on first start as version 1, and
    after an upgrade that changed it as a new version (an operator's own versions stay in the
    log; publish again to restore one)."""
    records = shipped_records()
    sha = digest(records)
    shipped = session.scalar(
        select(MeasureCatalog)
        .where(MeasureCatalog.source == "shipped")
        .order_by(MeasureCatalog.version.desc())
        .limit(1)
    )
    if shipped is not None and shipped.sha256 == sha:
        current = latest(session)
        assert current is not None
        return current
    return publish_catalog(session, signer, records, source="shipped", now=now)


def latest(session: Session) -> MeasureCatalog | None:
    return session.scalar(select(MeasureCatalog).order_by(MeasureCatalog.version.desc()).limit(1))


def active_catalog(session: Session) -> tuple[Measure, ...] | None:
    """The catalog in force (parsed once per version); None before any is recorded, which
    the pure functions read as the shipped default."""
    session.flush()  # a version this session added counts
    found = session.connection().execute(_NEWEST).first()
    return None if found is None else _parsed(session, found.version, found.sha256)


def catalog_as_of(session: Session, index: int) -> tuple[Measure, ...] | None:
    """The catalog in force just after log entry `index`: the version whose
    `gateway.catalog.published` entry is the newest at or before it. A message's document
    reads this one, not the newest, so publishing a version later never changes the view of
    a message already accepted (protocol.md §4, §5). None when no version was recorded by
    then, which the pure functions read as the shipped default."""
    session.flush()  # a version this session added counts
    found = session.connection().execute(_AS_OF, {"index": index}).first()
    return None if found is None else _parsed(session, found.version, found.sha256)


def _parsed(session: Session, version: int, sha256: str) -> tuple[Measure, ...]:
    """Version `version`'s records parsed, once per process and set of records."""
    with _lock:
        cached = _cache.get(sha256)
    if cached is None:
        row = session.get(MeasureCatalog, version)
        assert row is not None
        cached = _parse_stored(row.records)
        with _lock:
            _cache[sha256] = cached
    return cached


def versions(session: Session) -> list[dict[str, Any]]:
    return [
        {
            "version": row.version,
            "sha256": row.sha256,
            "source": row.source,
            "created_at": row.created_at.isoformat(),
            "records": len(row.records),
        }
        for row in session.scalars(select(MeasureCatalog).order_by(MeasureCatalog.version))
    ]
