"""Endpoint checks: only globally reachable unicast addresses, never a metadata address, and a
connection that goes to the address that was checked (no DNS rebinding between the two)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpcore
import httpx
import pytest
from fastapi import FastAPI, Request, Response
from loopback import free_port, serving

from gateway.outbound import ssrf
from gateway.outbound.ssrf import (
    ResolutionTimeout,
    UnsafeEndpoint,
    check_endpoint,
    pinned_transport,
)

REFUSED = [
    "http://100.64.0.1/",  # shared address space (RFC 6598): not private, not reserved
    "http://100.100.100.200/latest/meta-data/",  # Alibaba Cloud metadata, in that space
    "http://169.254.169.254/latest/meta-data/",
    "http://168.63.129.16/",  # Azure WireServer: a global address
    "http://192.0.0.192/",  # Oracle Cloud metadata
    "http://10.0.0.1/",
    "http://127.0.0.1/",
    "http://0.0.0.0/",
    "http://198.18.0.1/",  # benchmarking
    "http://192.0.2.1/",  # documentation
    "http://240.0.0.1/",
    "http://224.0.0.1/",  # multicast counts as global to ipaddress
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:100.100.100.200]/",
    "http://[::ffff:10.0.0.1]/",
    "http://[fe80::1]/",
    "http://[fd00:ec2::254]/",
    "http://[ff0e::1]/",
    "http://[64:ff9b::a00:1]/",  # NAT64 of 10.0.0.1 (all of NAT64: reserved ::/8)
    "http://[2002:a00:1::1]/",  # 6to4 of 10.0.0.1
    "http://[2001:db8::1]/",
]


@pytest.mark.parametrize("url", REFUSED)
def test_an_address_that_is_not_global_or_is_metadata_is_refused(url: str) -> None:
    with pytest.raises(UnsafeEndpoint, match="not a public address"):
        check_endpoint(url, [])


@pytest.mark.parametrize(
    "url",
    [
        "https://93.184.216.34/hook",
        "https://[2606:4700:4700::1111]/hook",
    ],
)
def test_a_global_address_passes(url: str) -> None:
    check_endpoint(url, [])


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[list[str]]]:
    """A fake resolver: each name's answers, one list per lookup in turn (the last repeats);
    other names resolve as usual."""
    answers: dict[str, list[list[str]]] = {}
    lookups: dict[str, int] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in answers:
            return real(host, port, *args, **kwargs)
        turn = lookups[host] = lookups.get(host, 0) + 1
        addresses = answers[host][min(turn, len(answers[host])) - 1]
        return [info for a in addresses for info in real(a, port, *args, **kwargs)]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


def test_a_name_with_one_non_public_answer_is_refused(dns: dict[str, list[list[str]]]) -> None:
    dns["receiver.example"] = [["93.184.216.34", "100.100.100.200"]]
    with pytest.raises(UnsafeEndpoint, match=r"100\.100\.100\.200"):
        check_endpoint("https://receiver.example/hook", [])


def test_the_allow_list_still_admits_its_hosts_but_never_metadata() -> None:
    check_endpoint("http://127.0.0.1:8080/hook", ["127.0.0.1"])
    check_endpoint("http://receiver.example/hook", ["receiver.example"])  # not even resolved
    with pytest.raises(UnsafeEndpoint, match="metadata"):
        check_endpoint("http://169.254.169.254/latest/meta-data/", ["169.254.169.254"])
    with pytest.raises(UnsafeEndpoint, match="not a public address"):
        check_endpoint("http://127.0.0.1:8080/hook", ["localhost"])


class FakeStream(httpcore.NetworkStream):
    """A connection that records what was sent and answers 204."""

    def __init__(self, network: FakeNetwork) -> None:
        self.network = network
        self.answer = b"HTTP/1.1 204 No Content\r\n\r\n"

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        answer, self.answer = self.answer, b""
        return answer

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.network.sent += buffer

    def close(self) -> None:
        pass

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, **_: Any) -> Any:
        self.network.server_names.append(server_hostname)
        return self


class FakeNetwork(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self.connected: list[tuple[str, int]] = []
        self.server_names: list[str | None] = []
        self.sent = b""

    def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> FakeStream:
        self.connected.append((host, port))
        return FakeStream(self)


def test_the_connection_goes_to_the_vetted_address_with_the_name_for_host_and_tls(
    dns: dict[str, list[list[str]]],
) -> None:
    # TTL-0 rebinding: public for the check, loopback for whoever asks next.
    dns["receiver.example"] = [["93.184.216.34"], ["127.0.0.1"]]
    network = FakeNetwork()
    with httpx.Client(transport=pinned_transport([], backend=network)) as client:
        response = client.post("https://receiver.example/hook", content=b"{}")
    assert response.status_code == 204
    assert network.connected == [("93.184.216.34", 443)]  # resolved once, by the transport
    assert network.server_names == ["receiver.example"]  # SNI and the certificate's name
    assert b"\r\nHost: receiver.example\r\n" in network.sent

    network = FakeNetwork()  # the next connection resolves again, and gets loopback
    with (
        httpx.Client(transport=pinned_transport([], backend=network)) as client,
        pytest.raises(UnsafeEndpoint, match=r"127\.0\.0\.1"),
    ):
        client.post("https://receiver.example/hook", content=b"{}")
    assert network.connected == []


def test_a_rebinding_name_does_not_reach_a_loopback_service(
    dns: dict[str, list[list[str]]],
) -> None:
    """The reviewer's case: the check sees a public address, the connection would see
    127.0.0.1. Through the pinned transport the internal service is never reached."""
    hits: list[str | None] = []
    app = FastAPI()

    @app.post("/internal")
    async def internal(request: Request) -> Response:
        hits.append(request.headers.get("host"))
        return Response(status_code=204)

    port = free_port()
    url = f"http://rebind.example:{port}/internal"
    dns["rebind.example"] = [["93.184.216.34"], ["127.0.0.1"]]
    with serving(app, port), httpx.Client(transport=pinned_transport([])) as client:
        check_endpoint(url, [])  # what the worker checks before each attempt
        with pytest.raises(UnsafeEndpoint):
            client.post(url, content=b"{}")
    assert hits == []


def test_an_allow_listed_receiver_is_reached_through_the_pinned_transport() -> None:
    app = FastAPI()

    @app.post("/hook")
    async def hook() -> Response:
        return Response(status_code=204)

    with serving(app) as base, httpx.Client(transport=pinned_transport(["127.0.0.1"])) as client:
        assert client.post(f"{base}/hook", content=b"{}").status_code == 204
        with pytest.raises(UnsafeEndpoint):  # loopback, but under a name not on the list
            client.post(base.replace("127.0.0.1", "localhost") + "/hook", content=b"{}")


@pytest.fixture
def slow_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Names whose lookup hangs ("hang": until the test ends, then fails) or fails at once
    ("fail"); other names resolve as usual."""
    behaviour: dict[str, str] = {}
    released = threading.Event()
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if behaviour.get(host) == "hang":
            released.wait(30)
        if host in behaviour:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    # A test's own table of lookups in flight: an earlier test's hanging lookup of the same
    # name, failing once that test released it, must not answer this test's callers (they
    # share a lookup in flight by name; this failed CI once, xdist having put the two tests
    # back to back).
    monkeypatch.setattr(ssrf, "_pending", {})
    yield behaviour
    released.set()


def test_a_lookup_that_hangs_ends_at_its_timeout(slow_dns: dict[str, str]) -> None:
    slow_dns["slow.example"] = "hang"
    began = time.monotonic()
    with pytest.raises(ResolutionTimeout, match=r"slow\.example did not resolve within 0\.2 s"):
        check_endpoint("https://slow.example/hook", [], timeout=0.2)
    assert time.monotonic() - began < 2


def test_a_name_that_does_not_resolve_is_refused_with_or_without_a_timeout(
    slow_dns: dict[str, str],
) -> None:
    slow_dns["nowhere.example"] = "fail"
    for timeout in (None, 5.0):
        with pytest.raises(UnsafeEndpoint, match="does not resolve"):
            check_endpoint("https://nowhere.example/hook", [], timeout=timeout)


def test_hanging_lookups_hold_their_slots_and_a_caller_finding_none_free_times_out(
    slow_dns: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ssrf, "_lookup_slots", threading.BoundedSemaphore(1))
    slow_dns["slow.example"] = "hang"
    with pytest.raises(ResolutionTimeout):
        check_endpoint("https://slow.example/hook", [], timeout=0.1)
    with pytest.raises(ResolutionTimeout, match="resolver busy"):  # the first still waits
        check_endpoint("https://93.184.216.34/hook", [], timeout=0.1)  # even a literal's
    check_endpoint("https://127.0.0.1/hook", ["127.0.0.1"], timeout=0.1)  # allow-listed: none


def test_the_pinned_transport_counts_the_lookup_in_its_connect_timeout(
    slow_dns: dict[str, str],
) -> None:
    slow_dns["slow.example"] = "hang"
    network = FakeNetwork()
    began = time.monotonic()
    with (
        httpx.Client(transport=pinned_transport([], backend=network), timeout=0.2) as client,
        pytest.raises(httpx.ConnectTimeout, match=r"did not resolve within 0\.2 s"),
    ):
        client.post("https://slow.example/hook", content=b"{}")
    assert time.monotonic() - began < 2
    assert network.connected == []


def test_an_allow_listed_name_is_resolved_when_connecting_within_the_timeout_never_to_metadata(
    slow_dns: dict[str, str], dns: dict[str, list[list[str]]]
) -> None:
    dns["intranet.example"] = [["10.0.0.7"]]  # private: fine, the name is allow-listed
    dns["trap.example"] = [["169.254.169.254"]]
    slow_dns["slow.example"] = "hang"
    allowed = ["intranet.example", "trap.example", "slow.example"]
    network = FakeNetwork()
    with httpx.Client(transport=pinned_transport(allowed, backend=network), timeout=0.2) as client:
        assert client.post("http://intranet.example/hook", content=b"{}").status_code == 204
        with pytest.raises(UnsafeEndpoint, match="metadata"):
            client.post("http://trap.example/hook", content=b"{}")
        with pytest.raises(httpx.ConnectTimeout, match=r"did not resolve within 0\.2 s"):
            client.post("http://slow.example/hook", content=b"{}")
    assert network.connected == [("10.0.0.7", 80)]


def test_callers_asking_for_a_name_being_looked_up_share_that_lookup(
    slow_dns: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dead name server holds one slot whatever the number of attempts to its names: the
    others still resolve."""
    monkeypatch.setattr(ssrf, "_lookup_slots", threading.BoundedSemaphore(2))
    slow_dns["slow.example"] = "hang"
    calls: list[str] = []
    hanging = socket.getaddrinfo

    def counting(host: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(host)
        return hanging(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", counting)
    for _ in range(5):
        with pytest.raises(ResolutionTimeout, match="did not resolve within"):
            check_endpoint("https://slow.example/hook", [], timeout=0.05)
    assert calls == ["slow.example"]  # one lookup, still pending, one slot
    check_endpoint("https://93.184.216.34/hook", [], timeout=1)  # the other slot is free
