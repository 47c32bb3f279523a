"""Slow CSV readers (issue 20, finding 1): --clients connections ask one gateway process on
loopback for `GET /v1/ledgers/basic/export.csv`, read nothing for --hold seconds and close,
while three probes ask, one request after another each, `/readyz`, a ledger page and a
standing query. Every second a line: the server's RSS, the connections checked out of its
API pool(s) and of its export pool, the streams it serves, and each probe's latest answer
(status and latency; `…` and the seconds waited while one is still out). Then a summary
per phase (clients holding, clients gone).

    python bench/slow_readers.py --seconds 60                      # SQLite, 50,000 rows
    python bench/slow_readers.py --db postgresql --clients 21 --rows 50000
    python bench/slow_readers.py --repo /tmp/main                  # another checkout's gateway

The ledger must be larger than what a stalled connection takes in (Linux grows a socket's
send buffer to 4 MiB, about 25,000 rows of CSV, and the client's receive buffer holds more).
The gateway runs as `gateway serve` would (create_app from GATEWAY_* variables, its delivery
worker in process) under uvicorn, in its own process, with one extra route,
/bench/pools, that reads its pools; --repo runs that process on another checkout's code
(older checkouts have no export pool and no stream counter: shown as -).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import Request  # at module level: FastAPI resolves the route's annotations here

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HOST = "127.0.0.1"
EXPORT = "/v1/ledgers/basic/export.csv"


def serve() -> Any:
    """The uvicorn factory of the server process: the gateway plus /bench/pools."""
    from gateway.app import create_app

    app = create_app()

    @app.get("/bench/pools", include_in_schema=False)
    async def pools(request: Request) -> dict[str, Any]:
        runtime = request.app.state.runtime
        db = runtime.db
        api = _checked_out(db.engine) + _checked_out(getattr(db, "_read_engine", None))
        streams = getattr(runtime, "streams", None)
        return {
            "api": api,
            "export": _checked_out(getattr(db, "export_engine", None)),
            "streams": streams.open if streams is not None else None,
        }

    return app


def _checked_out(engine: Any) -> int:
    return int(engine.pool.checkedout()) if engine is not None else 0


@dataclass
class Answer:
    began: float  # seconds since the attack started
    seconds: float
    status: str  # the HTTP status, or the exception's name


@dataclass
class Probe:
    name: str
    path: str
    headers: dict[str, str]
    answers: list[Answer] = field(default_factory=list)
    out_since: float | None = None  # a request is out since then

    def run(self, base: str, start: float, stop: threading.Event, interval: float) -> None:
        with httpx.Client(base_url=base, headers=self.headers, timeout=60) as client:
            while not stop.is_set():
                began = time.monotonic()
                self.out_since = began - start
                try:
                    status = str(client.get(self.path).status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                took = time.monotonic() - began
                if stop.is_set():  # counted as unanswered when the run ended
                    return
                self.answers.append(Answer(began - start, took, status))
                self.out_since = None
                stop.wait(max(0.0, interval - took))

    def latest(self, now: float) -> str:
        if self.out_since is not None and now - self.out_since >= 1:
            return f"… {now - self.out_since:.0f}s"
        if not self.answers:
            return "-"
        last = self.answers[-1]
        return f"{last.status} {_duration(last.seconds)}"


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.1f}s"


def request_and_read_nothing(port: int, headers: dict[str, str]) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=10)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    sock.sendall(f"GET {EXPORT} HTTP/1.1\r\nHost: {HOST}\r\n{head}\r\n".encode())
    return sock


def status_line(sock: socket.socket) -> str:
    """The status a client got so far, peeked (the bytes stay unread in its buffer)."""
    sock.settimeout(0.2)
    try:
        head = sock.recv(12, socket.MSG_PEEK)
    except OSError:
        return "none"
    return head[9:12].decode() if head.startswith(b"HTTP/1.1 ") else "none"


def prepare(args: argparse.Namespace, workdir: Path) -> tuple[dict[str, str], Any, str]:
    """A fresh database with --rows enterprises and the agency `bench` (role bank, scopes
    query and ledger.read, a standing right); the server's environment, key and URL."""
    from harness import prepare as prepare_database
    from populate import populate

    from contracts.uscc import complete_uscc

    prepared = prepare_database(
        args.db,
        database="bench_slow_readers",
        directory=workdir,
        name="基准测试银行",
        uscc=complete_uscc("91350100MA000BNK"),
        roles=["bank"],
        scopes=["query", "ledger.read"],
        query=["standing"],
    )
    loaded = populate(prepared.url, args.rows)
    print(f"{args.db}: {loaded.describe()}", flush=True)
    env = prepared.env | {
        "GATEWAY_ACCESS_TOKEN_TTL_SECONDS": "7200",
        "GATEWAY_OBSERVABILITY__LOG_LEVEL": "WARNING",
    }
    return env, prepared.key, prepared.url


def start_server(env: dict[str, str], repo: Path, log: Path) -> Any:
    """The gateway of checkout `repo` with /bench/pools (`serve`), a harness.Server."""
    from harness import uvicorn

    return uvicorn(
        "slow_readers:serve",
        env=env,
        app_dir=HERE,
        cpu=None,
        log=log,
        options=["--timeout-graceful-shutdown", "5"],
        tree=repo,
    )


def attack(args: argparse.Namespace, port: int, auth: dict[str, str], pid: int) -> list[Probe]:
    from harness import memory_mb

    base = f"http://{HOST}:{port}"
    probes = [
        Probe("readyz", "/readyz", {}),
        Probe("ledger", "/v1/ledgers/basic?limit=100", auth),
        Probe("standing", "/v1/enterprises/{code}?purpose=credit+review", auth),
    ]
    from populate import code_of

    probes[2].path = probes[2].path.format(code=code_of(7))
    stop = threading.Event()
    start = time.monotonic()
    threads = [
        threading.Thread(target=p.run, args=(base, start, stop, args.interval), daemon=True)
        for p in probes
    ]
    sockets = [request_and_read_nothing(port, auth) for _ in range(args.clients)]
    for thread in threads:
        thread.start()
    hold = min(args.hold, args.seconds)
    print(
        f"t=0: {args.clients} clients asked for {EXPORT} and read nothing; they close at "
        f"t={hold:g}",
        flush=True,
    )
    print(
        f"{'t':>4} {'rss MB':>7} {'api':>4} {'exp':>4} {'strm':>5}  "
        + "  ".join(f"{p.name:<16}" for p in probes),
        flush=True,
    )
    # A short timeout: a process whose event loop stalls shows `?` and the lines keep time.
    with httpx.Client(base_url=base, timeout=0.9) as monitor:
        for second in range(1, int(args.seconds) + 1):
            time.sleep(max(0.0, start + second - time.monotonic()))
            now = time.monotonic() - start
            if sockets and now >= hold:
                statuses = Counter(status_line(s) for s in sockets)
                for s in sockets:
                    s.close()
                sockets = []
                print(
                    f"t={now:.0f}: the clients close; their status lines: {dict(statuses)}",
                    flush=True,
                )
            try:
                pools = monitor.get("/bench/pools").raise_for_status().json()
            except httpx.HTTPError:
                pools = {"api": "?", "export": "?", "streams": "?"}
            shown = {k: "-" if v is None else v for k, v in pools.items()}
            print(
                f"{now:4.0f} {memory_mb(pid):7.1f} {shown['api']:>4} {shown['export']:>4} "
                f"{shown['streams']:>5}  " + "  ".join(f"{p.latest(now):<16}" for p in probes),
                flush=True,
            )
    stop.set()
    end = time.monotonic() - start
    for probe in probes:  # a request still out counts, with the time it has waited so far
        if probe.out_since is not None:
            probe.answers.append(Answer(probe.out_since, end - probe.out_since, "unanswered"))
    for s in sockets:
        s.close()
    for thread in threads:
        thread.join(1)
    return probes


def summary(probes: list[Probe], hold: float) -> None:
    print("\nprobe     phase              n  answers                    median    max")
    for probe in probes:
        for phase, answers in (
            (f"holding (<{hold:g}s)", [a for a in probe.answers if a.began < hold]),
            ("clients gone", [a for a in probe.answers if a.began >= hold]),
        ):
            if not answers:
                print(f"{probe.name:<9} {phase:<17} {0:>3}")
                continue
            seconds = [a.seconds for a in answers]
            counts = ", ".join(f"{s}×{n}" for s, n in Counter(a.status for a in answers).items())
            print(
                f"{probe.name:<9} {phase:<17} {len(answers):>3}  {counts:<25} "
                f"{_duration(statistics.median(seconds)):>7} {_duration(max(seconds)):>7}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the run")
    parser.add_argument("--clients", type=int, default=21, help="slow readers")
    parser.add_argument("--rows", type=int, default=50_000, help="enterprises in the ledger")
    parser.add_argument("--hold", type=float, default=45.0, help="seconds the clients hold")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between probes")
    parser.add_argument("--repo", type=Path, default=ROOT, help="checkout the gateway runs")
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT), str(HERE)]  # here, not at import: the server imports this too
    from common import login
    from populate import drop_database

    with tempfile.TemporaryDirectory(prefix="slow-readers-") as tmp:
        workdir = Path(tmp)
        env, key, url = prepare(args, workdir)
        server = start_server(env, args.repo.resolve(), workdir / "server.log")
        try:
            auth = login(server.base, key, "bench", "query ledger.read")
            probes = attack(args, server.port, auth, server.process.pid)
        finally:
            server.stop()
            drop_database(url)
        summary(probes, min(args.hold, args.seconds))
        lines = (workdir / "server.log").read_text(errors="replace").splitlines()
        print(
            f"\nserver log: {len(lines)} lines, {sum('QueuePool limit' in x for x in lines)} "
            f"naming 'QueuePool limit', {sum('Traceback' in x for x in lines)} tracebacks"
        )


if __name__ == "__main__":
    main()
