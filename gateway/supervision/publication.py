"""A draw's public part (一公开, docs/draws.md §12): once its period is over, who was drawn,
and the evidence anyone can check without an account: the request and result log entries,
the seed checkpoint, and proofs that tie them to a signed checkpoint of the log."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.errors import Conflict
from gateway.models import Checkpoint, Draw, Enterprise, LogEntry
from gateway.transparency.checkpoints import with_cosignatures
from gateway.transparency.tlog import consistency_proof, inclusion_proof
from keys import note


def check_public(draw: Draw, today: dt.date) -> None:
    """A draw is public once completed or voided and after `period.to` (before it, naming the
    enterprises would warn them): else 409 draw_not_completed or not_yet_public."""
    if draw.status not in ("completed", "voided") or draw.result_index is None:
        raise Conflict("draw_not_completed", f"draw {draw.draw_id} is {draw.status}")
    until = draw.request["period"]["to"]
    if today.isoformat() <= until:
        raise Conflict("not_yet_public", f"draw {draw.draw_id} is public after {until}")


def public_part(
    session: Session, draw: Draw, today: dt.date, checkpoint: Checkpoint
) -> dict[str, Any]:
    """The public part of a draw (`check_public` first). `checkpoint` is a signed checkpoint
    of the log covering the draw's last entry; the request's proof is against the seed
    checkpoint (the tree whose root made the seed), the result's against `checkpoint`, and a
    consistency proof joins the two."""
    check_public(draw, today)
    assert draw.result_index is not None
    assert checkpoint.size > draw.result_index
    published = with_cosignatures(session, checkpoint)
    seed = None
    if draw.seed_checkpoint_size is not None:  # a voided draw was never seeded
        seed = session.get(Checkpoint, draw.seed_checkpoint_size)
    seed_note = with_cosignatures(session, seed) if seed is not None else None
    return {
        "draw_id": draw.draw_id,
        "status": draw.status,
        "region_prefix": draw.request["region_prefix"],
        "period": draw.request["period"],
        "drawn": _selected(session, draw),
        "request": _entry(session, draw.request_index, seed or checkpoint, seed_note or published),
        "result": _entry(session, draw.result_index, checkpoint, published),
        "seed_checkpoint": seed_note,
        "checkpoint": published,
        "consistency": None if seed is None else _consistency(session, seed, checkpoint),
    }


def _consistency(session: Session, old: Checkpoint, new: Checkpoint) -> dict[str, Any]:
    proof = consistency_proof(session, old.size, new.size) if old.size < new.size else []
    return {"first": old.size, "second": new.size, "consistency": [h.hex() for h in proof]}


def _selected(session: Session, draw: Draw) -> list[dict[str, Any]]:
    if draw.status != "completed" or draw.result is None:
        return []
    codes = [code for s in draw.result["strata"] for code in s["selected"]]
    rows = session.execute(
        select(Enterprise.uscc, Enterprise.name).where(Enterprise.uscc.in_(codes))
    )
    names = {uscc: name for uscc, name in rows}
    return [{"uscc": code, "name": names.get(code)} for code in codes]


def _entry(session: Session, index: int, checkpoint: Checkpoint, checkpoint_note: str) -> Any:
    """A gateway entry as the log holds it (gateway entries are public, protocol.md §3.2)
    with its c2sp.org/tlog-proof against `checkpoint_note`."""
    entry = session.scalar(select(LogEntry).where(LogEntry.idx == index))
    assert entry is not None
    assert entry.kind == "gateway"
    proof = inclusion_proof(session, index, checkpoint.size)
    return {
        "index": index,
        "type": entry.type,
        "leaf_hash": entry.leaf_hash.hex(),
        "jws": entry.jws.decode(),
        "tlog_proof": note.format_tlog_proof(index, proof, checkpoint_note),
    }
