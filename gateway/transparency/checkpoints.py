"""The checkpoint the gateway serves: the latest signed one plus the cosignatures collected."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.models import Checkpoint, Cosignature
from gateway.runtime import Runtime
from gateway.transparency import service
from gateway.transparency.tlog import tree_size
from keys import note


def latest_checkpoint(runtime: Runtime) -> Checkpoint:
    """The checkpoint of the current size; signed and stored on first request for a size."""
    with runtime.db.reader() as session:
        found = service.stored_checkpoint(session, tree_size(session))
    if found is not None:
        return found
    with runtime.db.transaction() as session:
        return service.checkpoint_for(
            session, runtime.settings.log_origin, runtime.signer.log_key, runtime.clock.now()
        )


def with_cosignatures(session: Session, checkpoint: Checkpoint) -> str:
    """The checkpoint note with every collected cosignature line for its size appended."""
    text = checkpoint.note
    lines = session.scalars(
        select(Cosignature.line)
        .where(Cosignature.size == checkpoint.size)
        .order_by(Cosignature.witness)
    )
    for line in lines:
        text = note.add_signature(text, line)
    return text


def latest_cosigned(session: Session, quorum: int) -> Checkpoint | None:
    """The largest checkpoint carrying at least `quorum` cosignatures."""
    size = session.scalar(
        select(Cosignature.size)
        .group_by(Cosignature.size)
        .having(func.count() >= max(1, quorum))
        .order_by(Cosignature.size.desc())
        .limit(1)
    )
    return None if size is None else session.get(Checkpoint, size)
