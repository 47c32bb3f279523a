"""Collecting cosignatures: send each new checkpoint to every configured witness.

Runs beside the API (a background task in the app's lifespan), never inside a publish: a
witness that is down or slow only means the served checkpoint carries fewer cosignatures,
which `/v1/log/witnesses` and the checkpoint itself make visible.
"""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
from sqlalchemy.orm import Session

from gateway.models import Checkpoint, Cosignature, WitnessStatus
from gateway.outbound.transport import read_answer
from gateway.runtime import Runtime
from gateway.settings import WitnessConfig
from gateway.transparency.checkpoints import latest_checkpoint
from gateway.transparency.tlog import consistency_proof
from keys import note

# A witness answers with a few cosignature lines (or its size, or a sentence): what is read of
# an answer, the rest never is. The delivery worker bounds receivers' answers alike (issue 20,
# finding 2): a witness is another party's server.
ANSWER_BYTES = 16384


@dataclass(frozen=True)
class Attempt:
    witness: str
    size: int
    ok: bool
    detail: str


def _request_body(session: Session, checkpoint: Checkpoint, old: int) -> str:
    proof = consistency_proof(session, old, checkpoint.size) if 0 < old < checkpoint.size else []
    lines = [f"old {old}"] + [base64.b64encode(h).decode() for h in proof]
    return "\n".join(lines) + "\n\n" + checkpoint.note


def _status(session: Session, name: str) -> WitnessStatus:
    status = session.get(WitnessStatus, name)
    if status is None:
        status = WitnessStatus(name=name, cosigned_size=0)
        session.add(status)
    return status


def ask_witness(
    runtime: Runtime, client: httpx.Client, witness: WitnessConfig, checkpoint: Checkpoint
) -> Attempt:
    now = runtime.clock.now()
    with runtime.db.reader() as session:
        known = session.get(WitnessStatus, witness.name)
        old = known.cosigned_size if known else 0
        if known and old == checkpoint.size and known.last_error is None:
            return Attempt(witness.name, old, True, "already cosigned")
    ok, detail, line = _exchange(runtime, client, witness, checkpoint, old)
    with runtime.db.transaction() as session:
        status = _status(session, witness.name)
        status.attempted_at = now
        if ok and line is not None:
            status.cosigned_size, status.cosigned_at, status.last_error = checkpoint.size, now, None
            session.merge(
                Cosignature(size=checkpoint.size, witness=witness.name, line=line, signed_at=now)
            )
        else:
            status.last_error = detail[:500]
    return Attempt(witness.name, checkpoint.size, ok, detail)


def _exchange(
    runtime: Runtime, client: httpx.Client, witness: WitnessConfig, checkpoint: Checkpoint, old: int
) -> tuple[bool, str, str | None]:
    url = witness.url.rstrip("/") + "/add-checkpoint"
    for _ in range(2):  # a 409 tells us the witness's size: retry once from there
        if old > checkpoint.size:
            return False, f"witness is at size {old}, beyond our {checkpoint.size}", None
        with runtime.db.reader() as session:
            body = _request_body(session, checkpoint, old)
        try:
            status, content_type, text = _post(client, url, body.encode())
        except httpx.HTTPError as exc:
            return False, f"unreachable: {type(exc).__name__}", None
        if status == 409 and content_type.startswith("text/x.tlog.size"):
            try:
                old = int(text.strip())
            except ValueError:
                return False, f"HTTP 409 without a size: {text.strip()[:200]!r}", None
            continue
        if status != 200:
            return False, f"HTTP {status}: {text.strip()[:200]}", None
        key = note.parse_vkey(witness.vkey)
        body_text = note.parse_note(checkpoint.note).body
        for line in text.splitlines():
            if note.verify_cosignature(body_text, line, key.name, key.public_key) is not None:
                return True, "cosigned", line
        return False, "no valid cosignature from the configured key in the answer", None
    return False, "witness size kept changing", None


def _post(client: httpx.Client, url: str, body: bytes) -> tuple[int, str, str]:
    """POST `body` and read at most ANSWER_BYTES of the answer, streamed, then close it:
    (status, content type, what was read as text)."""
    headers = {"Content-Type": "text/plain", "Accept-Encoding": "identity"}
    with client.stream("POST", url, content=body, headers=headers) as response:
        answer = read_answer(response, ANSWER_BYTES)
    text = answer.decode("utf-8", errors="replace")
    return response.status_code, response.headers.get("content-type", ""), text


# Several API processes on one PostgreSQL database each run the rounds' task: one at a time
# collects (gateway.db.Database.leader), so a witness is not asked once per process.
ROUND = "gateway.witnessing.round"
ASKED_AT_ONCE = 4


def collect_cosignatures(runtime: Runtime, client: httpx.Client) -> list[Attempt]:
    """One round: the latest checkpoint to every configured witness, up to ASKED_AT_ONCE of
    them at a time (one that is slow or unreachable holds back its own answer only, not the
    others'), by one process of the gateway at a time; an empty list when another process is
    in its round."""
    witnesses = runtime.settings.witnesses.endpoints
    if not witnesses:
        return []
    with runtime.db.leader(ROUND) as leading:
        if not leading:
            return []
        checkpoint = latest_checkpoint(runtime)
        # a thread per witness asked, each taking connections of the API's pool for its
        # reads and writes: bounded however many witnesses are configured
        asking = min(len(witnesses), ASKED_AT_ONCE)
        with ThreadPoolExecutor(asking, thread_name_prefix="witness") as pool:
            return list(pool.map(lambda w: ask_witness(runtime, client, w, checkpoint), witnesses))


def witness_report(runtime: Runtime) -> dict[str, object]:
    """Per witness: what it cosigned, how long ago, and its last error (for operators)."""
    now = runtime.clock.now()
    checkpoint = latest_checkpoint(runtime)
    rows = []
    with runtime.db.reader() as session:
        for witness in runtime.settings.witnesses.endpoints:
            status = session.get(WitnessStatus, witness.name)
            cosigned_at = status.cosigned_at if status else None
            rows.append(
                {
                    "name": witness.name,
                    "url": witness.url,
                    "cosigned_size": status.cosigned_size if status else 0,
                    "behind_by": checkpoint.size - (status.cosigned_size if status else 0),
                    "cosigned_at": cosigned_at.isoformat() if cosigned_at else None,
                    "age_seconds": (now - cosigned_at).total_seconds() if cosigned_at else None,
                    "last_error": status.last_error if status else "never contacted",
                }
            )
        current = sum(1 for r in rows if r["cosigned_size"] == checkpoint.size)
    quorum = runtime.settings.witnesses.quorum
    return {
        "checkpoint_size": checkpoint.size,
        "quorum": quorum,
        "cosignatures_on_latest": current,
        "latest_meets_quorum": current >= quorum,
        "witnesses": rows,
    }


async def collect_forever(runtime: Runtime) -> None:
    """The lifespan's background task: a round every `interval_seconds`, errors recorded."""
    import asyncio
    import contextlib
    import logging

    from starlette.concurrency import run_in_threadpool

    config = runtime.settings.witnesses
    log = logging.getLogger("gateway.witnessing")
    with httpx.Client(timeout=config.timeout_seconds) as client:
        while True:
            # the round runs to its end even when the lifespan cancels this task: its threads
            # hold connections of the runtime the lifespan closes next (a round is bounded by
            # the witnesses' timeout; they are asked at once)
            round_ = asyncio.ensure_future(run_in_threadpool(collect_cosignatures, runtime, client))
            try:
                await asyncio.shield(round_)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await round_
                raise
            except Exception:  # a bad round must never stop the next one
                log.exception("cosignature round failed")
            await asyncio.sleep(config.interval_seconds)
