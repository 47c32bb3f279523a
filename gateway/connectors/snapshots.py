"""The market regulator's full snapshots: NDJSON, one connector record per enterprise as the
ledgers hold it on the day, with a gateway-signed manifest naming the log size and root it
reflects (the incremental records are the connector's documents)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.facts import Agency
from connectors.market_regulator import record
from contracts.dates import local_date
from gateway.measures.service import CHUNK, standing_facts
from gateway.models import Agency as AgencyRow
from gateway.models import Enterprise
from gateway.signing import GatewaySigner
from gateway.transparency.tlog import root_hash, tree_size

MANIFEST_TYP = "gateway-snapshot-manifest+jws"


def snapshot_records(session: Session, on: dt.date, as_of: int) -> Iterator[dict[str, Any]]:
    """Every enterprise's record on `on`, in code order: the standings read by the queries'
    own `standing_facts`, one statement per chunk of codes."""
    agencies = {
        row.id: Agency(row.id, row.name, row.uscc)
        for row in session.execute(select(AgencyRow.id, AgencyRow.name, AgencyRow.uscc))
    }

    def agency(agency_id: str) -> dict[str, Any]:
        found = agencies.get(agency_id)
        return (
            {"id": found.id, "name": found.name, "uscc": found.uscc}
            if found
            else {"id": agency_id, "name": agency_id, "uscc": None}
        )

    codes = session.scalars(
        select(Enterprise.uscc).order_by(Enterprise.uscc).execution_options(yield_per=CHUNK)
    )
    for chunk in codes.partitions(CHUNK):
        facts = standing_facts(session, chunk, on)
        for uscc in chunk:
            enterprise, standing, lists = facts[uscc]
            yield record(enterprise, standing, lists, agency, as_of)


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
        "contract": "market_regulator/2",
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
