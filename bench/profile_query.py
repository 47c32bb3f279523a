"""Where a standing query's CPU goes, in process (no sockets, no uvicorn).

    python bench/profile_query.py                # gateway beside the bare baseline app
    python bench/profile_query.py --stub         # the event loop's side alone
    python bench/profile_query.py --requests 5000 --concurrency 64

A SQLite register of 10,000 enterprises (bench/query.py's `prepare`), the gateway app started
through its lifespan (as `gateway serve` runs it: JSON logs, startup frozen) and
bench/baseline_app.py, each called as an ASGI app by --concurrency tasks for --requests random
codes, alternating for --rounds. Printed per request: CPU time of the whole process
(`time.process_time`, every thread), and for the gateway the CPU of its query thread per
question. `--stub` replaces the query thread by a fixed answer, leaving what the event loop
spends (middleware, access line, token, routing, hand-over). Run it pinned to one CPU
(`taskset -c 0`) for steadier figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import baseline_app
from populate import code_of
from query import PURPOSE, prepare

from gateway.app import create_app
from gateway.queries import batcher

ENTERPRISES = 10_000
STUB_ANSWER = b'{"standing":{"uscc":"x"},"attestation":"' + b"y" * 2000 + b'"}'


async def started(app: Any) -> None:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    asyncio.get_running_loop().create_task(app(scope, inbox.get, outbox.put))
    message = await outbox.get()
    if message["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"the app did not start: {message}")


async def started_with_token(scope: str) -> tuple[Any, str]:
    """The gateway app as `gateway serve` builds it, started, and an access token of agency
    `bench` with `scope`, minted by the gateway's own signer (no token request)."""
    gateway = create_app()
    await started(gateway)
    runtime = gateway.state.runtime
    now = int(runtime.clock.now().timestamp())
    claims = {
        "iss": "gateway",
        "sub": "bench",
        "client_id": "bench",
        "aud": "gateway",
        "iat": now,
        "exp": now + 3600,
        "jti": str(uuid.uuid4()),
        "scope": scope,
    }
    return gateway, runtime.signer.sign(claims, "at+jwt")


async def get(app: Any, path: str, query: str, token: str) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status: int = sent[0]["status"]
    return status


async def measure(app: Any, token: str, codes: Sequence[str], concurrency: int) -> float:
    """CPU µs of the process per request; raises unless every answer was 200."""
    gate = asyncio.Semaphore(concurrency)
    query = "purpose=" + PURPOSE.replace(" ", "+")

    async def one(code: str) -> int:
        async with gate:
            return await get(app, f"/v1/enterprises/{code}", query, token)

    began = time.process_time()
    statuses = await asyncio.gather(*(one(code) for code in codes))
    spent = time.process_time() - began
    if set(statuses) != {200}:
        raise RuntimeError(f"statuses {sorted(set(statuses))}")
    return spent / len(codes) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stub", action="store_true", help="a fixed answer, no query thread")
    args = parser.parse_args()

    prepared = prepare("sqlite", Path(tempfile.mkdtemp()), "profile", ENTERPRISES)
    os.environ.update(prepared.env)
    os.environ["BENCH_QUERY_BYTES"] = "2090"  # the mean size bench/query.py measured
    log = Path(tempfile.mkdtemp()) / "gateway.log"
    sys.stderr = log.open("w")  # the gateway's JSON lines, written as a deployment writes them

    thread = {"seconds": 0.0, "questions": 0}
    answer = batcher.answer

    def timed(runtime: Any, group: Sequence[batcher.Question]) -> list[Any]:
        began = time.thread_time()
        try:
            return answer(runtime, group)
        finally:
            thread["seconds"] += time.thread_time() - began
            thread["questions"] += len(group)

    batcher.answer = timed
    if args.stub:

        async def fixed(self: Any, ask: Any, *, purpose: str, sent_purpose: str | None) -> bytes:
            return STUB_ANSWER

        batcher.StandingQueries.ask = fixed  # type: ignore[method-assign]

    async def run() -> None:
        gateway, token = await started_with_token("query")
        baseline = baseline_app.create_app()
        rng = random.Random(1)
        for round_ in range(1, args.rounds + 1):
            codes = [code_of(rng.randrange(ENTERPRISES)) for _ in range(args.requests)]
            thread["seconds"], thread["questions"] = 0.0, 0
            ours = await measure(gateway, token, codes, args.concurrency)
            per_question = thread["seconds"] / max(thread["questions"], 1) * 1e6
            bare = await measure(baseline, token, codes, args.concurrency)
            line = f"round {round_}: gateway {ours:.0f} µs/request"
            if not args.stub:
                line += f" (query thread {per_question:.0f} µs/question)"
            print(f"{line}; bare baseline {bare:.0f} µs/request", file=sys.__stdout__)

    asyncio.run(run())


if __name__ == "__main__":
    main()
