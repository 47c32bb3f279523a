"""Instructions per request, counted by valgrind's callgrind: a figure that does not move with
the machine's load, for comparing two versions of the code on a noisy host.

    python bench/instructions.py publish              # a single publish, 32 concurrent
    python bench/instructions.py query                # a standing query, 64 concurrent
    python bench/instructions.py batch --size 32      # publishing in groups of --size
    python bench/instructions.py batch --db postgresql  # the same on PostgreSQL
    python bench/instructions.py query --repo /tmp/old   # the code of another checkout
    python bench/instructions.py query --bare         # bench/baseline_app.py, same requests
    python bench/instructions.py http-query           # over HTTP: uvicorn, gateway and baseline
    python bench/instructions.py http-publish

`publish` and `query` call the gateway app in process exactly as bench/profile_single_publish.py
and bench/profile_query.py do (started through its lifespan, JSON lines to a file), counting
every thread of the process; `batch` counts the publishing path alone. `http-query` and
`http-publish` run the gateway and then bench/baseline_app.py under uvicorn as bench/query.py
and bench/publish.py do (SQLite), the server under valgrind, the load generator outside it,
and count the server's instructions per request: the same comparison as those benchmarks'
ratio, without the host's noise (each server takes a few minutes to start under valgrind).
Only the measured requests are counted (collection is switched on and off around them with
callgrind_control); setup and warm-up are not. Under valgrind Python runs some 50 times
slower: the in-process modes take two to four minutes. `--repo` measures another checkout
(e.g. `git worktree add /tmp/old HEAD~1`) with its own bench helpers and this harness.
Instruction counts are not time (a cache miss or a system call costs more than its
instructions) but they repeat to within ~1 %.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _toggle(on: bool, pid: int | None = None) -> None:
    subprocess.run(
        ["callgrind_control", "-i", "on" if on else "off", str(pid or os.getpid())],
        check=True,
        capture_output=True,
    )


async def _counted(coroutine: Any) -> Any:
    _toggle(True)
    try:
        return await coroutine
    finally:
        _toggle(False)


def _child(args: argparse.Namespace) -> None:
    repo = Path(args.repo).resolve()
    sys.path[:0] = [str(repo), str(repo / "bench"), str(HERE)]
    workdir = Path(tempfile.mkdtemp(prefix="bench-instructions-"))
    if args.mode == "batch":
        from harness import PUBLISHER
        from harness import prepare as prepare_database
        from publish import messages

        from gateway.publishing.orchestration import publish as publish_messages
        from gateway.runtime import Runtime
        from gateway.settings import Settings

        prepared = prepare_database(  # bench/publish.py's agency, in a database of its own
            args.db,
            database=f"bench_instructions_{os.getpid()}",
            directory=workdir,
            **PUBLISHER,
        )
        env, key = prepared.env, prepared.key
        settings = Settings(
            data_dir=Path(env["GATEWAY_DATA_DIR"]), database_url=env["GATEWAY_DATABASE_URL"]
        )
        runtime = Runtime.open(settings)
        tokens = messages(key, 0, 1000 + args.requests)
        publish_messages(runtime, tokens[:1000])
        _toggle(True)
        for start in range(1000, 1000 + args.requests, args.size):
            publish_messages(runtime, tokens[start : start + args.size])
        _toggle(False)
        runtime.close()
        if args.db == "postgresql":
            from populate import drop_database

            drop_database(settings.effective_database_url)
        return
    sys.stderr = (workdir / "gateway.log").open("w")
    if args.mode == "publish":
        import profile_single_publish as single
        from publish import messages, prepare

        env, key = prepare("sqlite", workdir)
        os.environ.update(env)
        bodies = messages(key, 0, 300 + args.requests)

        asyncio.run(_count_requests(single, "publish", bodies, 32, args.bare))
        return
    import random

    import profile_query as queries
    from populate import code_of
    from query import prepare as prepare_register

    prepared = prepare_register("sqlite", workdir, "instructions", queries.ENTERPRISES)
    os.environ.update(prepared.env)
    os.environ["BENCH_QUERY_BYTES"] = "2090"
    rng = random.Random(1)
    codes = [code_of(rng.randrange(queries.ENTERPRISES)) for _ in range(300 + args.requests)]

    asyncio.run(_count_requests(queries, "query", codes, 64, args.bare))


async def _count_requests(
    harness: Any, scope: str, items: list[Any], concurrency: int, bare: bool
) -> None:
    """The app (the gateway, or the bare baseline) started as `harness` starts it, 300 warm-up
    requests, then the rest counted; `harness` is profile_single_publish or profile_query."""
    import baseline_app

    app, token = await harness.started_with_token(scope)
    if bare:
        app = baseline_app.create_app()
    await harness.measure(app, token, items[:300], concurrency)
    await _counted(harness.measure(app, token, items[300:], concurrency))


def _http(args: argparse.Namespace) -> None:
    repo = Path(args.repo).resolve()
    sys.path[:0] = [str(repo), str(repo / "bench"), str(HERE)]
    import httpx
    from common import login
    from loadgen import drive

    workdir = Path(tempfile.mkdtemp(prefix="bench-instructions-"))
    warm = 200
    if args.mode == "http-query":
        import random

        from baseline_app import QUERY_BYTES_ENV
        from query import prepare, singles

        prepared = prepare("sqlite", workdir, "instructions", 10_000)
        env, key, scope = prepared.env, prepared.key, "query"
        requests = singles(random.Random(1), 10_000, warm + args.requests)
        path_env = {QUERY_BYTES_ENV: "2090"}
        content_type = "application/json"
    else:
        from publish import JOSE, messages
        from publish import prepare as prepare_publish

        env, key = prepare_publish("sqlite", workdir)
        scope, path_env, content_type = "publish", {}, JOSE
        requests = [("POST", "/v1/messages", m) for m in messages(key, 0, warm + args.requests)]
    figures = {}
    for name, app, app_dir, app_env in (
        ("gateway", "gateway.app:create_app", repo, env),
        ("baseline", "baseline_app:create_app", repo / "bench", path_env),
    ):
        out = workdir / f"{name}.callgrind"
        port = _free_port()
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
        command += [f"--callgrind-out-file={out}", sys.executable, "-m", "uvicorn", "--factory"]
        command += [app, "--app-dir", str(app_dir), "--host", "127.0.0.1", "--port", str(port)]
        command += ["--log-level", "warning", "--no-access-log"]
        with (workdir / f"{name}.log").open("ab") as log:
            server = subprocess.Popen(
                command, env={**os.environ, **app_env}, cwd=repo, stdout=log, stderr=log
            )
            try:
                base = f"http://127.0.0.1:{port}"
                _wait_healthy(httpx, base, server)
                auth = login(base, key, "bench", scope) if name == "gateway" else {}
                if not auth:
                    auth = {"Authorization": "Bearer x"}
                _drive_all(drive, port, requests[:warm], content_type, auth, args.concurrency)
                _toggle(True, server.pid)
                _drive_all(drive, port, requests[warm:], content_type, auth, args.concurrency)
                _toggle(False, server.pid)
            finally:
                server.terminate()
                server.wait(timeout=600)
        figures[name] = _totals(out) / args.requests / 1e6
        print(f"{args.mode} {name}: {figures[name]:.3f} M instructions per request", flush=True)
    print(
        f"{args.mode} @ {args.repo}: baseline / gateway = "
        f"{figures['baseline'] / figures['gateway']:.0%} (the throughput ratio if every "
        "instruction cost the same)"
    )


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(httpx: Any, base: str, server: subprocess.Popen[bytes]) -> None:
    import time

    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited ({server.returncode})")
        try:
            if httpx.get(f"{base}/healthz", timeout=30).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(1)
    raise SystemExit("the server did not start under valgrind in 15 minutes")


def _drive_all(
    drive: Any, port: int, requests: Any, content_type: str, auth: Any, concurrency: int
) -> None:
    run = drive(
        "127.0.0.1",
        port,
        requests,
        concurrency=concurrency,
        content_type=content_type,
        headers=auth,
    )
    if set(run.statuses) - {200, 201}:
        raise SystemExit(f"unexpected statuses {run.statuses}")


def _totals(out: Path) -> int:
    found = re.search(r"^totals: (\d+)", out.read_text(), re.MULTILINE)
    if found is None:
        raise SystemExit("callgrind wrote no totals")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["publish", "query", "batch", "http-query", "http-publish"])
    parser.add_argument("--requests", type=int, default=None, help="counted (default 600/1000)")
    parser.add_argument("--size", type=int, default=32, help="batch: messages per group")
    parser.add_argument(
        "--db",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="batch: the database (the driver's instructions count, PostgreSQL's own do not)",
    )
    parser.add_argument("--concurrency", type=int, default=None, help="http: 64 / 32")
    parser.add_argument("--repo", default=str(HERE.parent), help="the checkout to measure")
    parser.add_argument("--bare", action="store_true", help="the bare baseline app instead")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.requests is None:
        args.requests = {"publish": 600, "query": 1000, "batch": 1024}.get(args.mode, 600)
    if args.concurrency is None:
        args.concurrency = 64 if args.mode == "http-query" else 32
    if args.mode.startswith("http-"):
        _http(args)
        return
    if args.child:
        _child(args)
        return
    with tempfile.TemporaryDirectory(prefix="callgrind-") as tmp:
        out = Path(tmp) / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            args.mode,
            "--child",
            f"--requests={args.requests}",
            f"--size={args.size}",
            f"--db={args.db}",
            f"--repo={args.repo}",
            *(["--bare"] if args.bare else []),
        ]
        subprocess.run(command, check=True, capture_output=True)
        total = _totals(out)
    unit = "message" if args.mode != "query" else "question"
    label = f"{args.mode} (groups of {args.size}, {args.db})" if args.mode == "batch" else args.mode
    where = "bare baseline" if args.bare else args.repo
    print(f"{label} @ {where}: {total / args.requests / 1e6:.3f} M instructions per {unit}")


if __name__ == "__main__":
    main()
