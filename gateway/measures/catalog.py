"""The measure catalog as versions: each one stored, recorded in the log, the newest in force.

Version 1 is the catalog shipped in `contracts/data/measures.json`, recorded on first start;
an operator publishes a new version (the whole catalog, validated) with `PUT
/v1/measures/catalog` or `gateway catalog publish FILE`; a gateway upgrade that ships a
changed default catalog records it as a new version too. A version is a document: its measure
records, the premium products they float (how floats combine) and the grading schemes
accepted (contracts.catalog). Each version is a gateway-signed `gateway.catalog.published`
entry in the log carrying the document and its SHA-256, so which catalog was in force when is
provable, not just configured; its row keeps that entry's index, so a message's document reads
the catalog in force at the message (`catalog_as_of`).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import threading
from collections.abc import Mapping
from importlib import resources
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from contracts.catalog import Catalog, parse_document, parse_stored_document
from contracts.measures import CatalogError, InvalidMeasure, parse_stored_measure
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
_cache: dict[str, Catalog] = {}
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


SECTIONS = ("records", "products", "schemes", "findings")


def shipped_document() -> dict[str, Any]:
    """The default catalog document: its records, products and schemes."""
    text = resources.files("contracts").joinpath("data/measures.json").read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return {name: document[name] for name in SECTIONS}


def shipped_records() -> list[dict[str, Any]]:
    """The shipped default catalog's measure records."""
    records: list[dict[str, Any]] = shipped_document()["records"]
    return records


def digest(document: Any) -> str:
    canonical = json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def parse_checked(document: Any, previous: Catalog | None = None) -> Catalog:
    """A catalog document checked whole and parsed (`contracts.catalog.parse_document`), or
    a 400 `invalid_catalog` naming the first bad record, its section, code and field."""
    try:
        return parse_document(document, MEASURE_ROLES, previous)
    except CatalogError as exc:
        section = next((name for name in SECTIONS if name in str(exc)), "records")
        pointer = None if exc.index is None else f"/{section}/{exc.index}"
        raise BadRequest("invalid_catalog", str(exc), pointer=pointer) from exc


def _parse_stored(stored: Any) -> Catalog:
    """A stored version read as it was when stored (parse_stored_document): a version is in
    the log for good and must read the same whatever checks publishing has gained since. A
    record that cannot be evaluated at all (a trigger value of the wrong type, which failed
    every query reading the version) is left out, and logged. Overlapping periods are settled
    by `in_force` (later valid_from)."""
    records = stored if isinstance(stored, list) else stored.get("records", [])
    measures = []
    for index, record in enumerate(records):
        try:
            measures.append(parse_stored_measure(record))
        except (InvalidMeasure, KeyError, TypeError, ValueError) as exc:
            log.warning("stored catalog record %d left out: %s", index, exc)
    if isinstance(stored, list):
        return Catalog(tuple(measures))
    rest = parse_stored_document(stored | {"records": []})
    return Catalog(tuple(measures), rest.products, rest.schemes, rest.findings)


def publish_catalog(
    session: Session,
    signer: GatewaySigner,
    document: Mapping[str, Any],
    *,
    source: str,
    now: dt.datetime,
) -> MeasureCatalog:
    """Record a new catalog version (unless it equals the one in force) and log it. A
    section left out (products, schemes) is carried over from the version in force."""
    current = latest(session)
    previous = active_catalog(session)
    parse_checked(document, previous)
    stored = dict(document)
    if current is not None and isinstance(current.records, dict):
        for name in SECTIONS[1:]:
            stored.setdefault(name, current.records.get(name, []))
    stored = {name: stored[name] for name in SECTIONS if name in stored}
    sha = digest(stored)
    if current is not None and current.sha256 == sha:
        return current
    version = (current.version if current is not None else 0) + 1
    row = MeasureCatalog(version=version, sha256=sha, records=stored, source=source, created_at=now)
    session.add(row)
    session.flush()
    row.log_index = append_gateway_entry(
        session,
        signer,
        entry_type="gateway.catalog.published",
        data={"version": version, "sha256": sha, "source": source, **stored},
        now=now,
    )
    return row


def record_shipped(
    session: Session, signer: GatewaySigner, now: dt.datetime
) -> MeasureCatalog | None:
    """Make sure the shipped default catalog is recorded: on first start as version 1, and
    after an upgrade that changed it as a new version (an operator's own versions stay in the
    log; publish again to restore one). None when it is recorded already: every start asks,
    so the check reads one digest, not the stored versions."""
    sha = _shipped_digest()
    shipped = session.scalar(
        select(MeasureCatalog.sha256)
        .where(MeasureCatalog.source == "shipped")
        .order_by(MeasureCatalog.version.desc())
        .limit(1)
    )
    if shipped == sha:
        return None
    return publish_catalog(session, signer, shipped_document(), source="shipped", now=now)


@functools.cache
def _shipped_digest() -> str:
    return digest(shipped_document())


def stored_records(row: MeasureCatalog) -> list[Any]:
    """A version's measure records (a bare list before products and schemes were stored)."""
    records: list[Any] = row.records if isinstance(row.records, list) else row.records["records"]
    return records


def latest(session: Session) -> MeasureCatalog | None:
    return session.scalar(select(MeasureCatalog).order_by(MeasureCatalog.version.desc()).limit(1))


def active_catalog(session: Session) -> Catalog | None:
    """The catalog in force (parsed once per version); None before any is recorded, which
    the pure functions read as the shipped default."""
    session.flush()  # a version this session added counts
    found = session.connection().execute(_NEWEST).first()
    return None if found is None else _parsed(session, found.version, found.sha256)


def catalog_as_of(session: Session, index: int) -> Catalog | None:
    """The catalog in force just after log entry `index`: the version whose
    `gateway.catalog.published` entry is the newest at or before it. A message's document
    reads this one, not the newest, so publishing a version later never changes the view of
    a message already accepted (protocol.md §4, §5). None when no version was recorded by
    then, which the pure functions read as the shipped default."""
    session.flush()  # a version this session added counts
    found = session.connection().execute(_AS_OF, {"index": index}).first()
    return None if found is None else _parsed(session, found.version, found.sha256)


def _parsed(session: Session, version: int, sha256: str) -> Catalog:
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
            "records": len(stored_records(row)),
        }
        for row in session.scalars(select(MeasureCatalog).order_by(MeasureCatalog.version))
    ]
