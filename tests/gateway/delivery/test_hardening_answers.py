"""Issue 20, finding 2: the delivery worker read the receiver's whole answer. A receiver
answering 600 MB bodies took the gateway from 0.3 to 3.2 GB with 8 parallel deliveries. The
worker reads at most what it uses (16 KB: the consumer receipt and the response excerpt),
streaming, and closes the connection; the delivery client's transport holds any reader to
that bound. Tested against real loopback receivers whose answers never end."""

from __future__ import annotations

import contextlib
import socket
import time
import tracemalloc
from collections.abc import Iterator

import pytest
from contract_factories import make_award, make_registration
from fastapi.testclient import TestClient
from gateway_factories import Publisher, publish, register_publisher
from loopback import RawServer
from sqlalchemy import select

from contracts.uscc import complete_uscc
from gateway.delivery.subscriptions import create_subscription
from gateway.delivery.worker import EXCERPT, make_client, run_once
from gateway.models import Delivery, DeliveryAttempt
from gateway.outbound.transport import ANSWER_BYTES
from gateway.runtime import Runtime

CHUNK = b"x" * 65536


class Flooding(RawServer):
    """A raw HTTP server on loopback that answers every request with a body that never ends
    (chunked, or a Content-Length of 600 MB), as fast as the reader takes it, and counts the
    bytes it managed to send."""

    def __init__(self, framing: str, status: int = 200) -> None:
        self.framing, self.status = framing, status
        self.sent: list[int] = []  # bytes of body sent, per connection, once it closed
        super().__init__()

    def answer(self, conn: socket.socket) -> None:
        sent = 0
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        with contextlib.suppress(OSError), conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head = f"HTTP/1.1 {self.status} Flood\r\n".encode()
            if self.framing == "chunked":
                conn.sendall(head + b"transfer-encoding: chunked\r\n\r\n")
                piece = f"{len(CHUNK):x}\r\n".encode() + CHUNK + b"\r\n"
            else:
                conn.sendall(head + b"content-length: 629145600\r\n\r\n")  # 600 MB
                piece = CHUNK
            while not self.stopped.is_set() and sent < 629145600:
                conn.sendall(piece)  # raises once the reader has closed the connection
                sent += len(CHUNK)
        self.sent.append(sent)


@pytest.fixture(params=["chunked", "content-length"])
def flooding(request: pytest.FixtureRequest) -> Iterator[Flooding]:
    server = Flooding(request.param)
    try:
        yield server
    finally:
        server.close()


def subscribe_and_award(
    client: TestClient, authority: Publisher, runtime: Runtime, url: str, enterprises: int = 1
) -> None:
    register_publisher(
        runtime, "fj-cib", ["measure.applied"], roles=["bank"], subscribe=["grade.awarded"]
    )
    with runtime.db.transaction() as session:
        create_subscription(
            session,
            agency_id="fj-cib",
            url=url,
            types=["grade.awarded"],
            now=runtime.clock.now(),
            allowed_hosts=["127.0.0.1"],
            retry_schedule=[0, 60],
        )
    for n in range(enterprises):
        code = complete_uscc(f"91350100MA0000{n:02d}")
        for token in (
            authority.message("enterprise.registered", make_registration(), subject=code),
            authority.message("grade.awarded", make_award(), subject=code),
        ):
            assert publish(client, token).status_code == 201


def recorded(runtime: Runtime) -> list[tuple[Delivery, list[DeliveryAttempt]]]:
    with runtime.db.reader() as session:
        rows = list(session.scalars(select(Delivery).order_by(Delivery.id)))
        return [
            (
                row,
                list(
                    session.scalars(
                        select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == row.id)
                    )
                ),
            )
            for row in rows
        ]


def wait_for_closed(server: Flooding, connections: int) -> None:
    deadline = time.monotonic() + 5
    while len(server.sent) < connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(server.sent) == connections, "the worker left a connection open"


def test_an_endless_answer_is_cut_at_16_kb_and_the_delivery_recorded(
    client: TestClient, authority: Publisher, runtime: Runtime, flooding: Flooding
) -> None:
    runtime.settings.delivery.timeout_seconds = 10
    subscribe_and_award(client, authority, runtime, flooding.url)
    with make_client(runtime) as http:
        assert run_once(runtime, http) == 1
    ((delivery, attempts),) = recorded(runtime)
    assert (delivery.status, delivery.claimed_until) == ("delivered", None)
    ((only,),) = [attempts]
    assert (only.status_code, only.error_class) == (200, None)
    assert only.response_excerpt == "x" * EXCERPT
    wait_for_closed(flooding, 1)
    # what the kernel's socket buffers hold is all the receiver got out; reading to the end
    # (or to the deadline) took gigabytes. (Not a timed assertion: on a busy machine the
    # attempt's seconds say nothing; the bytes say whether the gateway hung up.)
    assert flooding.sent[0] < 8 * 2**20, f"the receiver sent {flooding.sent[0]} bytes"


def test_a_failing_endless_answer_is_cut_too(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    server = Flooding("chunked", status=503)
    try:
        subscribe_and_award(client, authority, runtime, server.url)
        with make_client(runtime) as http:
            assert run_once(runtime, http) == 1
        wait_for_closed(server, 1)
    finally:
        server.close()
    ((delivery, (attempt,)),) = recorded(runtime)
    assert (delivery.status, attempt.status_code, attempt.error_class) == (
        "pending",
        503,
        "http_503",
    )
    assert server.sent[0] < 8 * 2**20


def test_eight_parallel_endless_answers_stay_within_a_few_megabytes(
    client: TestClient, authority: Publisher, runtime: Runtime
) -> None:
    """The finding's load: 8 deliveries at once, each to a receiver that never stops."""
    from concurrent.futures import ThreadPoolExecutor

    server = Flooding("content-length")
    try:
        subscribe_and_award(client, authority, runtime, server.url, enterprises=8)
        tracemalloc.start()
        try:
            with make_client(runtime) as http, ThreadPoolExecutor(8) as pool:
                assert run_once(runtime, http, pool) == 8
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        wait_for_closed(server, 8)
    finally:
        server.close()
    assert [d.status for d, _ in recorded(runtime)] == ["delivered"] * 8
    assert peak < 16 * 2**20, f"Python allocations peaked at {peak / 2**20:.1f} MB"
    assert sum(server.sent) < 8 * 8 * 2**20


def test_any_reader_through_the_delivery_client_gets_at_most_16_kb(
    runtime: Runtime, flooding: Flooding
) -> None:
    """The class: whatever code reads an answer through the delivery client, a whole-body
    read included, it gets the bound and the connection is closed."""
    with make_client(runtime) as http:
        response = http.post(flooding.url, content=b"{}")
        assert response.status_code == 200
        assert len(response.content) == ANSWER_BYTES == 16384
        with http.stream("POST", flooding.url, content=b"{}") as streamed:
            assert sum(len(c) for c in streamed.iter_bytes()) == ANSWER_BYTES
    wait_for_closed(flooding, 2)
    assert max(flooding.sent) < 8 * 2**20
