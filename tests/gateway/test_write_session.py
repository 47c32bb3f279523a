"""`WriteSession` (gateway.runtime.write_session): one write transaction per request,
committed before the answer is sent, rolled back when the endpoint raises, and on SQLite the
writer lock taken at the first statement and always given back, even with every worker
thread of the pool asking for it."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from gateway.errors import Conflict, install_error_handlers
from gateway.models import WitnessStatus
from gateway.runtime import ReadSession, Runtime, WriteSession


class Named(BaseModel):
    name: str


def app_over(runtime: Runtime) -> FastAPI:
    app = FastAPI()
    app.state.runtime = runtime
    install_error_handlers(app)

    def write(session: Session, name: str) -> None:
        session.add(WitnessStatus(name=name, cosigned_size=0))
        session.flush()

    @app.post("/witnesses/{name}", status_code=201)
    async def add(name: str, session: WriteSession) -> Named:
        await run_in_threadpool(write, session, name)
        return Named(name=name)

    @app.post("/witnesses/{name}/refused")
    async def add_then_refuse(name: str, session: WriteSession) -> Named:
        await run_in_threadpool(write, session, name)
        raise Conflict("refused", "written, then refused")

    def read(session: Session) -> list[str]:
        return sorted(session.scalars(select(WitnessStatus.name)))

    @app.get("/witnesses")
    async def listed(session: ReadSession) -> list[str]:
        return await run_in_threadpool(read, session)

    @app.get("/untouched")
    async def untouched(session: WriteSession) -> Named:
        return Named(name="none")

    return app


def names(runtime: Runtime) -> list[str]:
    with runtime.db.reader() as session:
        return sorted(session.scalars(select(WitnessStatus.name)))


def test_committed_before_the_answer_and_rolled_back_on_a_refusal(runtime: Runtime) -> None:
    client = TestClient(app_over(runtime))
    assert client.post("/witnesses/w1").status_code == 201
    assert names(runtime) == ["w1"]  # the 201 came after the commit
    refused = client.post("/witnesses/w2/refused")
    assert (refused.status_code, refused.json()["code"]) == (409, "refused")
    assert names(runtime) == ["w1"]
    assert client.get("/untouched").json() == {"name": "none"}
    with runtime.db.transaction() as session:  # the writer lock was given back each time
        session.add(WitnessStatus(name="w3", cosigned_size=0))
    assert names(runtime) == ["w1", "w3"]
    assert client.get("/witnesses").json() == ["w1", "w3"]  # ReadSession: the readers' engine


def test_many_writers_at_once_all_commit(runtime: Runtime) -> None:
    """More requests than worker threads (40), all writing, each answer checked by its
    model: none waits for a worker thread while it holds the SQLite writer lock, so all of
    them end. (With a plain `def` endpoint they did not: FastAPI checks its answer in the
    pool.)"""
    app = app_over(runtime)

    async def run() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            answers = await asyncio.wait_for(
                asyncio.gather(*(client.post(f"/witnesses/w{i:03d}") for i in range(120))),
                timeout=60,
            )
        return [a.status_code for a in answers]

    assert asyncio.run(run()) == [201] * 120
    assert len(names(runtime)) == 120
