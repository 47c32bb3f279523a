"""For the market regulator's credit system: an incremental sync record per accepted message,
and a full snapshot export — NDJSON, one record per enterprise, with a gateway-signed manifest
naming the log size and root it reflects — on demand and on a schedule (issue 5 §3, §6).

Each record carries the classified-supervision figures of the catalog (domain.md §4): the
inspection cap for the year from grade and industry, key-target status from a black list,
fewer inspections from a red list.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.base import Connector, Context, iso
from contracts.dates import local_date
from contracts.measures import Measure, Standing, applicable
from gateway.measures.catalog import catalog_as_of
from gateway.measures.service import CHUNK, standing_facts
from gateway.models import Enterprise
from gateway.signing import GatewaySigner
from gateway.tlog import root_hash, tree_size

MANIFEST_TYP = "gateway-snapshot-manifest+jws"
TYPES = frozenset(
    {
        "enterprise.registered",
        "grade.awarded",
        "grade.renewed",
        "grade.downgraded",
        "grade.revoked",
        "grade.expired",
        "accident.reported",
        "rectification.ordered",
        "rectification.overdue",
        "listing.added",
        "listing.removed",
        "self_assessment.published",
    }
)


def record(
    enterprise: Any,
    standing: Standing,
    measures: Mapping[str, Sequence[Measure]],
    lists: Sequence[Any],
    as_of: int,
) -> dict[str, Any]:
    regulator = list(measures.get("market_regulator", []))
    caps = [
        int(m.effect["inspections_per_year_max"])
        for m in regulator
        if "inspections_per_year_max" in m.effect
    ]
    return {
        "record_type": "enterprise_sync",
        "uscc": enterprise.uscc,
        "name": enterprise.name,
        "region_code": enterprise.region_code,
        "industry_section": enterprise.industry_section,
        "scheme": enterprise.grade_scheme or enterprise.scheme,
        "ledger_status": enterprise.ledger_status,
        "grade": {
            "status": enterprise.grade_status,
            "level": enterprise.grade_level if enterprise.grade_status == "active" else None,
            "valid_from": iso(enterprise.grade_valid_from),
            "valid_to": iso(enterprise.grade_valid_to),
            "certificate_no": enterprise.certificate_no,
        },
        "lists": [
            {
                "list_type": entry.list_type,
                "term_start": entry.term_start.isoformat(),
                "term_end": entry.term_end.isoformat(),
            }
            for entry in lists
        ],
        "inspection_cap_per_year": min(caps) if caps else None,
        "key_target": any(m.effect.get("key_target") for m in regulator),
        "fewer_inspections": any(m.effect.get("fewer_inspections") for m in regulator),
        "as_of_log_index": as_of,
    }


def render(ctx: Context) -> dict[str, Any]:
    doc = record(ctx.enterprise, ctx.standing, ctx.measures, ctx.lists, ctx.decision.index)
    return doc | {"source": ctx.source()}


CONNECTOR = Connector(
    name="market_regulator",
    role="market_regulator",
    types=TYPES,
    render=render,
    title="Credit-system sync record",
)


def snapshot_records(session: Session, on: dt.date, as_of: int) -> Iterator[dict[str, Any]]:
    """Every enterprise's record on `on`, in code order: the standings read by the queries'
    own `standing_facts`, one statement per chunk of codes, with the catalog in force at
    `as_of` (the log index the records claim to reflect)."""
    catalog = catalog_as_of(session, as_of)
    codes = session.scalars(
        select(Enterprise.uscc).order_by(Enterprise.uscc).execution_options(yield_per=CHUNK)
    )
    for chunk in codes.partitions(CHUNK):
        facts = standing_facts(session, chunk, on)
        for uscc in chunk:
            enterprise, standing, lists = facts[uscc]
            measures = applicable(standing, enterprise.region_code, on, catalog)
            yield record(enterprise, standing, measures, lists, as_of)


def write_snapshot(
    session: Session, signer: GatewaySigner, out_dir: Path, now: dt.datetime
) -> tuple[Path, Path, dict[str, Any]]:
    """Write `<log size>.ndjson` and its signed manifest `<log size>.manifest.jws` into
    `out_dir`; returns both paths and the manifest claims.

    Run it in one read transaction (a snapshot on SQLite's WAL; on PostgreSQL the caller
    sets REPEATABLE READ) so the records are exactly the state at the log size named."""
    out_dir.mkdir(parents=True, exist_ok=True)
    size = tree_size(session)
    data_path = out_dir / f"{size:012d}.ndjson"
    partial = data_path.with_name(f"{data_path.name}.{os.getpid()}.partial")
    digest = hashlib.sha256()
    count = 0
    with partial.open("wb") as out:
        for doc in snapshot_records(session, local_date(now), max(size - 1, 0)):
            line = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
            digest.update(line)
            out.write(line)
            count += 1
    partial.replace(data_path)
    claims = {
        "snapshot": "market_regulator",
        "contract": "market_regulator/1",
        "log_size": size,
        "root_hash": root_hash(session, size).hex() if size else None,
        "generated_at": now.isoformat(),
        "records": count,
        "file": data_path.name,
        "sha256": digest.hexdigest(),
    }
    manifest_path = out_dir / f"{size:012d}.manifest.jws"
    manifest_path.write_text(signer.sign(claims, MANIFEST_TYP) + "\n")
    return data_path, manifest_path, claims
