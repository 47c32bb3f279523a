"""A small HTTP/1.1 load generator on asyncio streams (keep-alive, one request in flight per
connection), so the client spends little CPU beside the server on a 2-core machine."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence
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
        self, method: str, path: str, body: bytes = b"", content_type: str = "application/json"
    ) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
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


async def _drive(
    host: str, port: int, path: str, bodies: Sequence[bytes], concurrency: int, content_type: str
) -> Run:
    queue = iter(bodies)
    run = Run(0.0)

    async def worker() -> None:
        conn = Connection(host, port)
        try:
            for body in queue:
                start = time.perf_counter()
                status, _ = await conn.request("POST", path, body, content_type)
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
    path: str,
    bodies: Sequence[bytes],
    *,
    concurrency: int,
    content_type: str,
    probe_interval: float = 0.01,
) -> tuple[Run, Run]:
    stop = asyncio.Event()
    probe = asyncio.create_task(_probe(host, port, stop, probe_interval))
    run = await _drive(host, port, path, bodies, concurrency, content_type)
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
) -> tuple[Run, Run]:
    return asyncio.run(
        load_with_probe(
            host, port, path, bodies, concurrency=concurrency, content_type=content_type
        )
    )
