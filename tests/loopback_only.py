"""A pytest plugin (loaded by `-p loopback_only` in pyproject's addopts) that keeps every test
on this machine: a name other than localhost is never resolved (an address written out is
read, as getaddrinfo does without a resolver) and a socket never connects to an address other
than loopback. A test that tries is told so by the error, whatever code it
went through (httpx, urllib, the gateway's SSRF guard, a receiver). Unix sockets are left
alone; other processes a test starts are its own to point at 127.0.0.1."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

__all__ = ["loopback"]

_getaddrinfo = socket.getaddrinfo
_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def loopback(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    name = str(host).strip("[]").split("%")[0].rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def literal(host: object) -> bool:
    """An address written out: getaddrinfo reads it without asking any resolver."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    try:
        ipaddress.ip_address(str(host).strip("[]").split("%")[0])
    except ValueError:
        return False
    return True


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if host is not None and not loopback(host) and not literal(host):
        raise socket.gaierror(socket.EAI_NONAME, f"tests resolve loopback names only, not {host!r}")
    return _getaddrinfo(host, *args, **kwargs)


def _check(sock: socket.socket, address: Any) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not loopback(address[0]):
        raise ConnectionRefusedError(f"tests connect to loopback only, not {address[0]}")


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check(self, address)
    _connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check(self, address)
    return _connect_ex(self, address)


def pytest_configure(config: Any) -> None:
    socket.getaddrinfo = _guarded_getaddrinfo
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]


def pytest_unconfigure(config: Any) -> None:
    socket.getaddrinfo = _getaddrinfo
    socket.socket.connect = _connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _connect_ex  # type: ignore[method-assign]
