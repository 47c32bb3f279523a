"""A small HTTP/1.1 load generator on asyncio streams (keep-alive, one request in flight per
connection), so the client spends little CPU beside the server on a 2-core machine."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass
class Run:
    seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def summary(self) -> dict[str, float]:
        return {
            "requests": len(self.latencies),
            "rate_per_s": round(self.rate, 1),
            "p50_ms": round(self.pct(0.50), 2),
            "p99_ms": round(self.pct(0.99), 2),
            "mean_ms": round(statistics.fmean(self.latencies) * 1000, 2) if self.latencies else 0,
        }


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: {content_type}\r\n"
            f"{extra}Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        payload = await self.reader.readexactly(length) if length else b""
        return status, payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


Request = tuple[str, str, bytes]  # method, path, body


async def _drive(
    host: str,
    port: int,
    requests: Sequence[Request],
    concurrency: int,
    content_type: str,
    headers: Mapping[str, str] | None = None,
) -> Run:
    queue = iter(requests)
    run = Run(0.0)

    async def worker() -> None:
        conn = Connection(host, port)
        try:
            for method, path, body in queue:
                start = time.perf_counter()
                status, _ = await conn.request(method, path, body, content_type, headers)
                run.latencies.append(time.perf_counter() - start)
                run.statuses[status] = run.statuses.get(status, 0) + 1
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    run.seconds = time.perf_counter() - started
    return run


async def _probe(host: str, port: int, stop: asyncio.Event, interval: float) -> Run:
    """GET /healthz every `interval` s: its latency shows whether the server's loop is blocked."""
    conn = Connection(host, port)
    run = Run(0.0)
    started = time.perf_counter()
    try:
        while not stop.is_set():
            start = time.perf_counter()
            await conn.request("GET", "/healthz")
            run.latencies.append(time.perf_counter() - start)
            await asyncio.sleep(interval)
    finally:
        conn.close()
    run.seconds = time.perf_counter() - started
    return run


async def load_with_probe(
    host: str,
    port: int,
    requests: Sequence[Request],
    *,
    concurrency: int,
    content_type: str,
    headers: Mapping[str, str] | None = None,
    probe_interval: float = 0.01,
) -> tuple[Run, Run]:
    stop = asyncio.Event()
    probe = asyncio.create_task(_probe(host, port, stop, probe_interval))
    run = await _drive(host, port, requests, concurrency, content_type, headers)
    stop.set()
    return run, await probe


def load(
    host: str,
    port: int,
    path: str,
    bodies: Sequence[bytes],
    *,
    concurrency: int,
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
) -> tuple[Run, Run]:
    """POST each body to `path` from `concurrency` keep-alive connections."""
    return load_requests(
        host,
        port,
        [("POST", path, body) for body in bodies],
        concurrency=concurrency,
        content_type=content_type,
        headers=headers,
    )


def load_requests(
    host: str,
    port: int,
    requests: Sequence[Request],
    *,
    concurrency: int,
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
) -> tuple[Run, Run]:
    """Send each (method, path, body) from `concurrency` keep-alive connections, probing
    /healthz meanwhile."""
    return asyncio.run(
        load_with_probe(
            host,
            port,
            requests,
            concurrency=concurrency,
            content_type=content_type,
            headers=headers,
        )
    )


def drive(
    host: str,
    port: int,
    requests: Sequence[Request],
    *,
    concurrency: int,
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
) -> Run:
    """Send each (method, path, body) from `concurrency` keep-alive connections, without the
    /healthz probe of `load_requests` (every request the server answers is one measured)."""
    return asyncio.run(_drive(host, port, requests, concurrency, content_type, headers))


def merge_runs(runs: Sequence[Run]) -> Run:
    """Runs of the same target (e.g. rounds interleaved with another target's) as one: their
    latencies pooled, their seconds and statuses added."""
    merged = Run(sum(r.seconds for r in runs))
    for run in runs:
        merged.latencies.extend(run.latencies)
        for status, n in run.statuses.items():
            merged.statuses[status] = merged.statuses.get(status, 0) + n
    return merged


# Below uvicorn's keep-alive timeout (5 s): an older idle connection may be closed under us.
KEEP_ALIVE_SECONDS = 4.0


@dataclass
class Schedule:
    """An open-loop run: per request, in the order given, the wall-clock time (time.time())
    its sending began and the status it got (0: the connection failed)."""

    run: Run
    sent_at: list[float]
    statuses: list[int]

    @property
    def send_rate(self) -> float:
        """Requests sent per second over the sending window (first to last send)."""
        span = self.sent_at[-1] - self.sent_at[0] if len(self.sent_at) > 1 else 0.0
        return (len(self.sent_at) - 1) / span if span else 0.0


async def _open_loop(
    host: str,
    port: int,
    requests: Sequence[Request],
    rate: float,
    content_type: str,
    headers: Mapping[str, str] | None,
) -> Schedule:
    idle: list[tuple[Connection, float]] = []  # with when each was last answered
    schedule = Schedule(Run(0.0), [0.0] * len(requests), [0] * len(requests))

    async def attempt(conn: Connection, method: str, path: str, body: bytes) -> int | None:
        try:
            status, _ = await conn.request(method, path, body, content_type, headers)
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            conn.close()  # never reused: its stream may be half read
            return None
        idle.append((conn, time.monotonic()))
        return status

    async def send(n: int, method: str, path: str, body: bytes) -> None:
        start = time.perf_counter()
        conn = None
        while idle and conn is None:
            candidate, last = idle.pop()
            if time.monotonic() - last > KEEP_ALIVE_SECONDS:
                candidate.close()
            else:
                conn = candidate
        status = await attempt(conn, method, path, body) if conn is not None else None
        if status is None:  # no idle connection, or one the server had closed: a new one
            status = await attempt(Connection(host, port), method, path, body)
        if status is None:
            return
        schedule.run.latencies.append(time.perf_counter() - start)
        schedule.run.statuses[status] = schedule.run.statuses.get(status, 0) + 1
        schedule.statuses[n] = status

    began = time.perf_counter()
    tasks = []
    for n, (method, path, body) in enumerate(requests):
        await asyncio.sleep(max(0.0, began + n / rate - time.perf_counter()))  # 0: yield
        schedule.sent_at[n] = time.time()
        tasks.append(asyncio.create_task(send(n, method, path, body)))
    await asyncio.gather(*tasks)
    schedule.run.seconds = time.perf_counter() - began
    for conn, _ in idle:
        conn.close()
    return schedule


def open_loop(
    host: str,
    port: int,
    requests: Sequence[Request],
    *,
    rate: float,
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
) -> Schedule:
    """Send request n at n / `rate` seconds after the start whether or not earlier ones have
    been answered (open loop: a slow server does not slow the senders down, as real clients
    would not), each on an idle keep-alive connection or a new one."""
    return asyncio.run(_open_loop(host, port, requests, rate, content_type, headers))
