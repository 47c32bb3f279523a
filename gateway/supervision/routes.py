"""HTTP: the supervision plan and random draws (scope `supervise`, the work-safety
supervisor's; operators may read), and a completed draw's public part (一公开, no token)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from starlette.concurrency import run_in_threadpool

from contracts.dates import local_date
from gateway.access.routes import caller_with
from gateway.access.tokens import Caller
from gateway.errors import Conflict
from gateway.runtime import ReadSession, Runtime, WriteSession, get_runtime
from gateway.supervision import draws, publication
from gateway.supervision.plan import plan
from gateway.supervision.schemas import DrawIn, DrawOut, PublicDraw, RevealIn, SupervisionPlan
from gateway.transparency.checkpoints import latest_checkpoint

router = APIRouter(prefix="/v1", tags=["supervision"])
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
log = logging.getLogger("gateway.supervision")
Supervisor = Annotated[Caller, Depends(caller_with("supervise"))]


@router.get("/supervision/plan")
async def supervision_plan(
    session: ReadSession,
    runtime: RuntimeDep,
    caller: Supervisor,
    region: Annotated[str, Query(min_length=1, max_length=6, description="division prefix")],
    year: Annotated[int, Query(ge=2000, le=2199)],
    behind_only: bool = False,
    after: Annotated[str | None, Query(max_length=18, description="cursor: the last code")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> SupervisionPlan:
    """Each enterprise's inspections required for the year by its classified supervision
    (四（一）) against those recorded, due by today in proportion, and who is behind."""
    today = local_date(runtime.clock.now())

    def load() -> dict[str, Any]:
        return plan(
            session,
            region=region,
            year=year,
            today=today,
            behind_only=behind_only,
            after=after,
            limit=limit,
        )

    return SupervisionPlan.model_validate(await run_in_threadpool(load))


@router.post("/inspections/draws", status_code=201)
async def request_draw(
    body: DrawIn, runtime: RuntimeDep, caller: Supervisor, response: Response, session: WriteSession
) -> DrawOut:
    """Commit a draw request to the log. The draw is made when the requester reveals its
    secret after the first signed checkpoint covering the request (`…/reveal`)."""

    def run() -> tuple[dict[str, Any], bool]:
        row, new = draws.request_draw(
            session,
            runtime.signer,
            caller.agency_id,
            body.model_dump(exclude_none=True),
            runtime.clock.now(),
        )
        return draws.describe(row, session), new

    found, new = await run_in_threadpool(run)
    if not new:
        response.status_code = 200
    return DrawOut.model_validate(found)


@router.get("/inspections/draws/{draw_id}")
async def get_draw(
    session: ReadSession, draw_id: str, runtime: RuntimeDep, caller: Supervisor
) -> DrawOut:
    """A draw: its request, status, seed checkpoint and result."""

    def load() -> dict[str, Any]:
        return draws.describe(draws.get_draw(session, draw_id), session)

    return DrawOut.model_validate(await run_in_threadpool(load))


@router.post("/inspections/draws/{draw_id}/reveal")
async def reveal_draw(
    draw_id: str, body: RevealIn, runtime: RuntimeDep, caller: Supervisor
) -> DrawOut:
    """The requester's secret, once a signed checkpoint covers the request: the draw is made
    and logged. After the reveal window the draw is void instead (409 draw_voided)."""
    window = dt.timedelta(seconds=runtime.settings.supervision.reveal_window_seconds)

    def run() -> dict[str, Any]:
        with runtime.db.transaction() as session:
            row = draws.reveal(
                session,
                runtime.signer,
                draw_id,
                body.secret.lower(),
                caller.agency_id,
                runtime.clock.now(),
                quorum=runtime.settings.witnesses.quorum,
                window=window,
            )
            return draws.describe(row, session)

    found = await run_in_threadpool(run)
    if found["status"] == "voided":  # committed: the void stays in the log
        raise Conflict("draw_voided", f"the reveal of draw {draw_id} came after its window")
    return DrawOut.model_validate(found)


def void_overdue_draws(runtime: Runtime) -> list[str]:
    """One sweep of the draws whose reveal window closed (the lifespan runs it)."""
    window = dt.timedelta(seconds=runtime.settings.supervision.reveal_window_seconds)
    with runtime.db.transaction() as session:
        return draws.void_overdue(
            session,
            runtime.signer,
            runtime.clock.now(),
            runtime.settings.witnesses.quorum,
            window,
        )


async def void_overdue_forever(runtime: Runtime, interval: float = 60.0) -> None:
    """Every `interval` seconds, void the draws never revealed in time (logged if it fails,
    tried again at the next turn)."""
    while True:
        await asyncio.sleep(interval)
        try:
            voided = await run_in_threadpool(void_overdue_draws, runtime)
            if voided:
                log.info("draws voided: not revealed in time", extra={"draws": voided})
        except Exception:  # keep the sweep alive
            log.exception("voiding overdue draws failed")


@router.get("/inspections/draws/{draw_id}/public")
async def public_draw(draw_id: str, runtime: RuntimeDep) -> PublicDraw:
    """一公开 (docs/draws.md §12), public: once the period is over, who a draw selected, its
    request and result entries with inclusion proofs, the seed checkpoint, and a checkpoint
    covering the result (signed now if the latest signed one does not)."""
    # Its own readers, not a ReadSession: the checkpoint may be signed (a write) between them.
    today = local_date(runtime.clock.now())

    def load() -> dict[str, Any]:
        with runtime.db.reader() as session:
            publication.check_public(draws.get_draw(session, draw_id), today)
        checkpoint = latest_checkpoint(runtime)
        with runtime.db.reader() as session:
            return publication.public_part(
                session, draws.get_draw(session, draw_id), today, checkpoint
            )

    return PublicDraw.model_validate(await run_in_threadpool(load))
