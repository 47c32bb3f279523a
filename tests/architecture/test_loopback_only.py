"""The suite's loopback rule holds by construction (tests/loopback_only.py): a public name is
never resolved, a public address never connected to, loopback still works."""

from __future__ import annotations

import socket

import httpx
import pytest


def test_a_public_name_is_not_resolved() -> None:
    with pytest.raises(socket.gaierror, match="loopback names only"):
        socket.getaddrinfo("example.com", 443)
    with pytest.raises(httpx.ConnectError):
        httpx.get("https://example.com/", timeout=2)


@pytest.mark.parametrize("address", ["93.184.215.14", "10.0.0.1", "2606:2800:21f:cb07::1"])
def test_a_public_or_private_address_is_not_connected_to(address: str) -> None:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family) as sock, pytest.raises(ConnectionRefusedError, match="loopback"):
        sock.connect((address, 80))


def test_loopback_still_answers() -> None:
    assert socket.getaddrinfo("localhost", 80)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.socket() as sock:
            sock.connect(server.getsockname())
