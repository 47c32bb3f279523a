"""What one single publish costs in CPU, in process (no sockets, no uvicorn).

    python bench/profile_single_publish.py               # gateway beside the bare baseline
    python bench/profile_single_publish.py --stub        # the event loop's side alone
    python bench/profile_single_publish.py --concurrency 32 --requests 2500 --rounds 3

A SQLite gateway prepared as bench/publish.py prepares it, started through its lifespan (as
`gateway serve` runs it), and bench/baseline_app.py, each called as an ASGI app by
--concurrency tasks posting fresh `enterprise.registered` messages, alternating for --rounds.
Printed per request: CPU time of the whole process (`time.process_time`, every thread).
`--stub` answers every publish with a fixed receipt instead of the publishing thread, leaving
what the event loop spends (middleware, access line, token, body, hand-over, event line).
Run it pinned to one CPU (`taskset -c 0`) for steadier figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import baseline_app
from profile_query import started_with_token
from publish import JOSE, messages, prepare

from gateway.groups import GroupWorker
from gateway.publishing.service import Outcome


async def post(app: Any, body: bytes, token: str) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/messages",
        "raw_path": b"/v1/messages",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", JOSE.encode()),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status: int = sent[0]["status"]
    return status


async def measure(app: Any, token: str, bodies: list[bytes], concurrency: int) -> float:
    """CPU µs of the process per request; raises unless every answer was 201."""
    gate = asyncio.Semaphore(concurrency)

    async def one(body: bytes) -> int:
        async with gate:
            return await post(app, body, token)

    began = time.process_time()
    statuses = await asyncio.gather(*(one(body) for body in bodies))
    spent = time.process_time() - began
    if set(statuses) != {201}:
        raise RuntimeError(f"statuses {sorted(set(statuses))}")
    return spent / len(bodies) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2500, help="per round and target")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stub", action="store_true", help="a fixed receipt, no publishing")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-single-"))
    env, key = prepare("sqlite", workdir)
    os.environ.update(env)
    sys.stderr = (workdir / "gateway.log").open("w")  # the JSON lines, as a deployment's
    warm = 500
    bodies = messages(key, 0, warm + args.rounds * args.requests)
    if args.stub:
        receipt = Outcome(
            201, "m", index=1, leaf_hash="ab" * 32, receipt="x" * 700, message_type="x"
        )

        async def fixed(self: Any, item: Any) -> Outcome:
            return receipt

        GroupWorker.submit = fixed  # type: ignore[method-assign,assignment]

    async def run() -> None:
        gateway, token = await started_with_token("publish")
        baseline = baseline_app.create_app()
        await measure(gateway, token, bodies[:warm], args.concurrency)
        for round_ in range(args.rounds):
            chunk = bodies[warm + round_ * args.requests : warm + (round_ + 1) * args.requests]
            ours = await measure(gateway, token, chunk, args.concurrency)
            bare = await measure(baseline, token, chunk, args.concurrency)
            print(
                f"round {round_ + 1}: gateway {ours:.0f} µs/request; "
                f"bare baseline {bare:.0f} µs/request",
                file=sys.__stdout__,
            )

    asyncio.run(run())


if __name__ == "__main__":
    main()
