"""Hostile receivers (issue 20, finding 2, and slow answers): push subscriptions whose
receivers, on loopback, answer every delivery with an endless body, a 600 MB one, one byte a
second, or politely (the baseline). For --seconds one gateway process (`gateway serve`, its
delivery worker in process, 8 POSTs in parallel) gets a registration published every
--interval seconds, each delivered to every receiver; every second a line: the server's RSS,
its API pool's connections in use, deliveries by status, and per receiver the exchanges, the
largest answer the gateway took and how long the slowest lasted. Then a summary.

    python bench/hostile_receivers.py --seconds 60
    python bench/hostile_receivers.py --seconds 60 --db postgresql --receivers 4

The receivers are raw sockets (an answer can be as large, endless or slow as an attacker's);
the attack tests use the same class (tests/attacks/test_delivery_attacks.py). Traffic goes to
127.0.0.1 only.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

CHUNK = 65536
MODES = ("endless", "huge", "slow", "polite")


@dataclass
class Exchange:
    request_bytes: int = 0
    sent: int = 0  # bytes of answer the gateway took before it closed (or the cap)
    closed_by_peer: bool = False
    seconds: float = 0.0


@dataclass
class HostileReceiver:
    """`endless`: 200 and a close-delimited body that never ends (until `cap` bytes); `huge`:
    a Content-Length of 600 MB, sent for real; `slow`: headers, then one byte a second;
    `polite`: 204 at once. `status` is the answer's status line code."""

    mode: str = "endless"
    status: int = 200
    cap: int = 600 * 1024 * 1024
    exchanges: list[Exchange] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        assert self.mode in MODES
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/hook"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.server.close()

    def __enter__(self) -> HostileReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _read_request(self, conn: socket.socket) -> bytes:
        conn.settimeout(10)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(CHUNK)
            if not chunk:
                return data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            chunk = conn.recv(CHUNK)
            if not chunk:
                break
            body += chunk
        return body

    def _answer(self, conn: socket.socket) -> None:
        exchange = Exchange()
        began = time.monotonic()
        with conn:
            body = self._read_request(conn)
            self.bodies.append(body)
            exchange.request_bytes = len(body)
            reason = {200: "OK", 500: "Internal Server Error", 204: "No Content"}.get(
                self.status, "X"
            )
            try:
                status_line = f"HTTP/1.1 {self.status} {reason}\r\n"
                if self.mode == "polite":
                    conn.sendall(
                        (status_line + "Content-Length: 0\r\nConnection: close\r\n\r\n").encode()
                    )
                elif self.mode == "slow":
                    head = "Content-Length: 100000\r\nConnection: close\r\n\r\n"
                    conn.sendall((status_line + head).encode())
                    while not self._stop.is_set() and exchange.sent < 100000:
                        conn.sendall(b"x")
                        exchange.sent += 1
                        time.sleep(1)
                else:
                    length = f"Content-Length: {self.cap}\r\n" if self.mode == "huge" else ""
                    head = f"HTTP/1.1 {self.status} {reason}\r\n{length}Connection: close\r\n\r\n"
                    conn.sendall(head.encode())
                    block = b"A" * CHUNK
                    while exchange.sent < self.cap and not self._stop.is_set():
                        conn.sendall(block)
                        exchange.sent += CHUNK
            except OSError:  # the gateway closed: what it was sent is what it could take
                exchange.closed_by_peer = True
        exchange.seconds = time.monotonic() - began
        self.exchanges.append(exchange)


# --- the bench -------------------------------------------------------------------------------

ATTACKS = ("endless", "huge", "slow", "polite")


def prepare(args: Any, workdir: Any) -> tuple[dict[str, str], Any, list[HostileReceiver]]:
    """A fresh database; the publishing agency `bench`; per attack mode --receivers agencies
    with a push subscription each to a receiver of that mode. Returns the server's
    environment, the publisher's key and the receivers."""
    from harness import LOOPBACK_DELIVERY, add_subscribers
    from harness import prepare as prepare_database

    from contracts.uscc import complete_uscc

    prepared = prepare_database(
        args.db,
        database="bench_hostile_receivers",
        directory=workdir,
        name="基准测试应急管理厅",
        uscc=complete_uscc("91350100MA000YJ1"),
        roles=["grading_authority"],
        scopes=["publish"],
        publish=["enterprise.registered"],
    )
    receivers = [HostileReceiver(mode) for mode in args.modes for _ in range(args.receivers)]
    add_subscribers(
        prepared.settings(),
        {f"recv-{r.mode}-{n}": r.url for n, r in enumerate(receivers)},
        retry_schedule=[1, 1, 1, 1, 1],  # failures come back often: the worst case
    )
    env = (
        prepared.env
        | LOOPBACK_DELIVERY
        | {
            "GATEWAY_DELIVERY__IDLE_SLEEP_SECONDS": "0.05",
            "GATEWAY_OBSERVABILITY__LOG_LEVEL": "WARNING",
            "GATEWAY_CONNECTORS__SNAPSHOT_INTERVAL_SECONDS": "0",
        }
    )
    return env, prepared.key, receivers


def deliveries_by_status(url: str) -> dict[str, int]:
    from sqlalchemy import create_engine, func, select

    from gateway.models import Delivery

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(Delivery.status, func.count()).group_by(Delivery.status))
            return {status: n for status, n in rows}
    finally:
        engine.dispose()


def run(args: Any) -> None:
    import tempfile
    from pathlib import Path

    import httpx
    from common import login
    from harness import memory_mb
    from populate import drop_database
    from slow_readers import start_server

    from contracts.uscc import complete_uscc

    here = Path(__file__).resolve().parent
    with tempfile.TemporaryDirectory(prefix="hostile-receivers-") as tmp:
        workdir = Path(tmp)
        env, key, receivers = prepare(args, workdir)
        server = start_server(env, here.parent, workdir / "server.log")
        base = server.base
        published, peak = 0, 0.0
        modes = args.modes
        print(f"{len(receivers)} receivers ({args.receivers} per mode: {', '.join(modes)})")
        print(
            f"{'t':>4} {'rss MB':>7} {'api':>4} {'published':>9}  {'deliveries by status':<34}  "
            + "  ".join(f"{m:<22}" for m in modes)
        )
        try:
            auth = login(base, key, "bench", "publish")
            start = time.monotonic()
            next_publish = start
            with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
                for second in range(1, int(args.seconds) + 1):
                    while time.monotonic() < start + second:
                        if time.monotonic() >= next_publish:
                            published += _publish_one(client, key, published, complete_uscc)
                            next_publish += args.interval
                        time.sleep(0.01)
                    try:
                        pools = client.get("/bench/pools").json()
                    except httpx.HTTPError:
                        pools = {"api": "?"}
                    rss = memory_mb(server.process.pid)
                    peak = max(peak, rss)
                    statuses = deliveries_by_status(env["GATEWAY_DATABASE_URL"])
                    shown = ", ".join(f"{k} {v}" for k, v in sorted(statuses.items()))
                    print(
                        f"{second:4d} {rss:7.1f} {pools['api']!s:>4} {published:9d}  "
                        f"{shown:<34}  "
                        + "  ".join(f"{_mode_line(receivers, m):<22}" for m in modes),
                        flush=True,
                    )
        finally:
            server.stop()
            for receiver in receivers:
                receiver.close()
            drop_database(env["GATEWAY_DATABASE_URL"])
        print(f"\nserver RSS peak {peak:.1f} MB; published {published}")
        heads = f"{'exchanges':>9} {'largest sent':>14} {'median sent':>13} {'longest':>8}"
        print(f"{'mode':<8} {heads}")
        for mode in modes:
            done = [e for r in receivers if r.mode == mode for e in r.exchanges]
            taken = sorted(e.sent for e in done) or [0]
            longest = max((e.seconds for e in done), default=0.0)
            print(
                f"{mode:<8} {len(done):>9} {_size(taken[-1]):>14} "
                f"{_size(taken[len(taken) // 2]):>13} {longest:>7.1f}s"
            )
        lines = (workdir / "server.log").read_text(errors="replace").splitlines()
        print(f"server log: {len(lines)} lines, {sum('Traceback' in x for x in lines)} tracebacks")


def _publish_one(client: Any, key: Any, n: int, complete_uscc: Any) -> int:
    import datetime as dt
    import json
    import uuid

    from keys.jws import sign_compact

    envelope = {
        "id": str(uuid.uuid4()),
        "type": "enterprise.registered",
        "contract": 1,
        "issuer": "bench",
        "issued_at": (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)).isoformat(
            timespec="seconds"
        ),
        "subject": complete_uscc(f"91350100MA{n:06d}"),
        "data": {
            "name": f"基准企业{n}",
            "legal_representative": "林某某",
            "region_code": "350102",
            "industry_section": "C",
            "scheme": "hazardous_chemicals",
            "required": True,
            "registered_on": "2023-05-04",
        },
    }
    token = sign_compact(
        json.dumps(envelope, ensure_ascii=False).encode(), key, typ="gateway-message+jws"
    )
    answer = client.post(
        "/v1/messages", content=token, headers={"content-type": "application/jose"}
    )
    return 1 if answer.status_code == 201 else 0


def _mode_line(receivers: list[HostileReceiver], mode: str) -> str:
    done = [e for r in receivers if r.mode == mode for e in r.exchanges]
    if not done:
        return "-"
    return f"{len(done)} ex, max {_size(max(e.sent for e in done))}"


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.0f} TB"


def main() -> None:
    import argparse
    import sys
    from pathlib import Path

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the run")
    parser.add_argument("--receivers", type=int, default=2, help="receivers per attack mode")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between publishes")
    parser.add_argument(
        "--modes", nargs="+", choices=ATTACKS, default=list(ATTACKS), help="receivers' behaviours"
    )
    args = parser.parse_args()
    here = Path(__file__).resolve().parent
    sys.path[:0] = [str(here.parent), str(here)]
    run(args)


if __name__ == "__main__":
    main()
