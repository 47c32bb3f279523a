"""Instructions per request, counted by valgrind's callgrind: a figure that does not move with
the machine's load, for comparing two versions of the code on a noisy host.

    python bench/instructions.py publish              # a single publish, 32 concurrent
    python bench/instructions.py query                # a standing query, 64 concurrent
    python bench/instructions.py batch --size 32      # runtime.publish in groups of --size
    python bench/instructions.py query --repo /tmp/old   # the code of another checkout
    python bench/instructions.py query --bare         # bench/baseline_app.py, same requests

`publish` and `query` call the gateway app in process exactly as bench/profile_single_publish.py
and bench/profile_query.py do (started through its lifespan, JSON lines to a file), counting
every thread of the process; `batch` counts the publishing path alone. Only the measured
requests are counted (collection is switched on and off around them with callgrind_control);
setup and warm-up are not. Under valgrind Python runs some 50 times slower: the defaults take
two to four minutes. `--repo` measures another checkout (e.g. `git worktree add /tmp/old
HEAD~1`) with its own bench helpers and this harness. Instruction counts are not time (a cache
miss or a system call costs more than its instructions) but they repeat to within ~1 %.
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


def _toggle(on: bool) -> None:
    subprocess.run(
        ["callgrind_control", "-i", "on" if on else "off", str(os.getpid())],
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
        from publish import messages, prepare

        from gateway.runtime import Runtime
        from gateway.settings import Settings

        env, key = prepare("sqlite", workdir)
        settings = Settings(
            data_dir=Path(env["GATEWAY_DATA_DIR"]), database_url=env["GATEWAY_DATABASE_URL"]
        )
        runtime = Runtime.open(settings)
        tokens = messages(key, 0, 1000 + args.requests)
        runtime.publish(tokens[:1000])
        _toggle(True)
        for start in range(1000, 1000 + args.requests, args.size):
            runtime.publish(tokens[start : start + args.size])
        _toggle(False)
        runtime.close()
        return
    sys.stderr = (workdir / "gateway.log").open("w")
    import baseline_app

    if args.mode == "publish":
        import profile_single_publish as single
        from publish import messages, prepare

        env, key = prepare("sqlite", workdir)
        os.environ.update(env)
        bodies = messages(key, 0, 300 + args.requests)

        async def run_publish() -> None:
            app, token = await single.started_with_token("publish")
            if args.bare:
                app = baseline_app.create_app()
            await single.measure(app, token, bodies[:300], 32)
            await _counted(single.measure(app, token, bodies[300:], 32))

        asyncio.run(run_publish())
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

    async def run_query() -> None:
        app, token = await queries.started_with_token("query")
        if args.bare:
            app = baseline_app.create_app()
        await queries.measure(app, token, codes[:300], 64)
        await _counted(queries.measure(app, token, codes[300:], 64))

    asyncio.run(run_query())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["publish", "query", "batch"])
    parser.add_argument("--requests", type=int, default=None, help="counted (default 600/1000)")
    parser.add_argument("--size", type=int, default=32, help="batch: messages per group")
    parser.add_argument("--repo", default=str(HERE.parent), help="the checkout to measure")
    parser.add_argument("--bare", action="store_true", help="the bare baseline app instead")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.requests is None:
        args.requests = {"publish": 600, "query": 1000, "batch": 1024}[args.mode]
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
            f"--repo={args.repo}",
            *(["--bare"] if args.bare else []),
        ]
        subprocess.run(command, check=True, capture_output=True)
        found = re.search(r"^totals: (\d+)", out.read_text(), re.MULTILINE)
        if found is None:
            raise SystemExit("callgrind wrote no totals")
        total = int(found.group(1))
    unit = "message" if args.mode != "query" else "question"
    label = f"{args.mode} (groups of {args.size})" if args.mode == "batch" else args.mode
    where = "bare baseline" if args.bare else args.repo
    print(f"{label} @ {where}: {total / args.requests / 1e6:.3f} M instructions per {unit}")


if __name__ == "__main__":
    main()
