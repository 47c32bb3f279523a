"""Refuse endpoints that resolve to anything but a globally reachable unicast address, and
cloud metadata addresses always; and connect only to the address that was checked.

Checked when a subscription is made and again before every attempt (DNS may change), unless
the host is on the configured allow-list (tests and the demo allow 127.0.0.1). A check and a
later connection that resolve the name again can get different answers (DNS rebinding, a TTL
of 0): `pinned_transport` resolves once per connection, checks every address, and connects to
one of those, keeping the URL's host for the Host header and TLS (SNI and certificate).

A lookup given a timeout ends by it: the system resolver has none of its own that we control
(a dead name server holds `getaddrinfo` for its retries, tens of seconds), so the lookup runs
in a daemon thread and the caller stops waiting for it; callers asking for a name already being
looked up wait for that lookup; at most `MAX_PENDING_LOOKUPS` such threads wait on the resolver
at once, and a caller finding none free waits its timeout out.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time
from collections.abc import Collection, Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Refused even when the host is allow-listed: no receiver lives there.
METADATA = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean … instance metadata
        "169.254.170.2",  # AWS ECS task metadata and credentials
        "100.100.100.200",  # Alibaba Cloud ECS metadata (shared address space, RFC 6598)
        "192.0.0.192",  # Oracle Cloud metadata
        "168.63.129.16",  # Azure WireServer: a global address, refused only by this list
        "fd00:ec2::254",  # AWS instance metadata over IPv6
        "fd20:ce::254",  # GCP metadata over IPv6
    )
)


class UnsafeEndpoint(ValueError):
    pass


class InvalidEndpoint(UnsafeEndpoint):
    """The URL is not one a delivery can go to: it does not parse (a port out of range or not
    a number, unbalanced brackets, a space or a control character), its host is no host name,
    or the check and the delivering client (httpx) would read its host or port differently."""


class ResolutionTimeout(TimeoutError):
    """The name did not resolve in the time given: a passing failure, not an unsafe endpoint."""


MAX_PENDING_LOOKUPS = 16
_lookup_slots = threading.BoundedSemaphore(MAX_PENDING_LOOKUPS)


class _Lookup:
    """One getaddrinfo running in its own thread; every caller asking for the same name and
    port meanwhile waits for this one (a dead name server holds one slot, not one per
    attempt)."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.outcome: list[Any] = []


_pending: dict[tuple[str, int], _Lookup] = {}
_pending_lock = threading.Lock()


def _getaddrinfo(host: str, port: int, timeout: float | None) -> list[Any]:
    """`socket.getaddrinfo(host, port)` for TCP, over after `timeout` seconds if one is given
    (ResolutionTimeout; the lookup itself runs on in its thread until the resolver gives up)."""
    if timeout is None:
        return socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    began, slots, key = time.monotonic(), _lookup_slots, (host, port)
    with _pending_lock:
        lookup = _pending.get(key)
    if lookup is None:
        if not slots.acquire(timeout=max(timeout, 0)):
            raise ResolutionTimeout(
                f"{host} did not resolve within {timeout:.1f} s (resolver busy)"
            )
        with _pending_lock:
            lookup = _pending.get(key)  # another caller may have started it meanwhile
            if lookup is None:
                lookup = _pending[key] = _start(key, slots)
            else:
                slots.release()
    if not lookup.done.wait(max(timeout - (time.monotonic() - began), 0)):
        raise ResolutionTimeout(f"{host} did not resolve within {timeout:.1f} s")
    result = lookup.outcome[0]
    if isinstance(result, BaseException):
        raise result
    return list(result)


def _start(key: tuple[str, int], slots: threading.BoundedSemaphore) -> _Lookup:
    """A lookup of `key` started in its thread (called under `_pending_lock`, holding a slot
    that the thread releases when the resolver answers)."""
    host, port = key
    lookup = _Lookup()

    def look_up() -> None:
        try:
            lookup.outcome.append(socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP))
        except BaseException as exc:  # handed to the callers, who raise it
            lookup.outcome.append(exc)
        finally:
            with _pending_lock:
                if _pending.get(key) is lookup:
                    del _pending[key]
            slots.release()
            lookup.done.set()

    threading.Thread(target=look_up, name=f"resolve {host}", daemon=True).start()
    return lookup


def is_public(address: Address) -> bool:
    """Whether a receiver may be at `address`: globally reachable (the IANA special-purpose
    registries, RFC 6890: not private, shared 100.64.0.0/10, loopback, link-local,
    documentation …), not reserved or multicast, not a metadata address; an IPv6 address that
    carries an IPv4 one (IPv4-mapped, 6to4) only if that one is public too."""
    if (
        address in METADATA
        or not address.is_global
        or address.is_reserved  # also all of ::/8: IPv4-compatible, -mapped, NAT64 64:ff9b::/96
        or address.is_multicast  # global to `ipaddress`, never a receiver
    ):
        return False
    if isinstance(address, ipaddress.IPv6Address):
        carried = (address.ipv4_mapped, address.sixtofour)
        return all(is_public(inner) for inner in carried if inner is not None)
    return True


def vetted_addresses(
    host: str, port: int, allowed_hosts: Collection[str], timeout: float | None = None
) -> list[str]:
    """Every address `host` resolves to now, in the resolver's order; UnsafeEndpoint if it
    does not resolve or if any of them is not public (one bad answer taints the name),
    ResolutionTimeout if the lookup takes longer than `timeout` seconds.

    An allow-listed host is trusted and returned as it is, unresolved (a test's receiver may
    have no DNS name), unless it is a metadata address written out; PinnedBackend resolves
    an allow-listed name when it connects."""
    if host in allowed_hosts:
        if _literal(host) in METADATA:
            raise UnsafeEndpoint(f"{host} is a cloud metadata address")
        return [host]
    try:
        infos = _getaddrinfo(host, port, timeout)
    except (socket.gaierror, UnicodeError) as exc:  # UnicodeError: the IDNA codec refused it
        raise UnsafeEndpoint(f"{host} does not resolve: {exc}") from exc
    found: list[str] = []
    for info in infos:
        text = str(info[4][0])
        address = ipaddress.ip_address(text)
        if not is_public(address):
            raise UnsafeEndpoint(f"{host} resolves to {address}, which is not a public address")
        if text not in found:
            found.append(text)
    if not found:
        raise UnsafeEndpoint(f"{host} resolves to no address")
    return found


def _allowed_addresses(host: str, port: int, timeout: float | None) -> list[str]:
    """The addresses an allow-listed name resolves to, within `timeout`: trusted as the name
    is, but never a metadata address."""
    try:
        infos = _getaddrinfo(host, port, timeout)
    except socket.gaierror as exc:
        raise httpcore.ConnectError(f"{host} does not resolve: {exc}") from exc
    found: list[str] = []
    for info in infos:
        text = str(info[4][0])
        if ipaddress.ip_address(text) in METADATA:
            raise UnsafeEndpoint(f"{host} resolves to {text}, a cloud metadata address")
        if text not in found:
            found.append(text)
    if not found:
        raise httpcore.ConnectError(f"{host} resolves to no address")
    return found


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


DEFAULT_PORTS = {"http": 80, "https": 443}
# A DNS name (RFC 1035 §2.3.4: labels of 1 to 63 octets, 253 in all); `_` as resolvers allow.
_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")


def endpoint_address(url: str) -> tuple[str, int]:
    """The host (lowercase, IPv6 without brackets) and port a delivery to `url` connects to.

    UnsafeEndpoint if it is not an http(s) URL with a host; InvalidEndpoint if it does not
    parse, or if urllib (this check) and httpx (the delivering client) read its host or port
    differently: what is vetted must be what is connected to."""
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise InvalidEndpoint(f"{url!r} holds a space or a control character")
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError: not a number, or outside 0-65535
    except ValueError as exc:
        raise InvalidEndpoint(f"{url!r} is not a valid URL: {exc}") from exc
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise UnsafeEndpoint(f"{url!r} is not an http(s) URL with a host")
    if port == 0:
        raise InvalidEndpoint(f"{url!r} names port 0; a port is 1 to 65535")
    host, port = parts.hostname, port or DEFAULT_PORTS[parts.scheme]
    try:
        read = httpx.URL(url)
        ascii_host = read.raw_host.decode("ascii")
        read_host = read.host.lower()  # decoded from IDNA here: its errors are ValueErrors
    except (httpx.InvalidURL, ValueError) as exc:
        raise InvalidEndpoint(f"{url!r} is not a valid URL: {exc}") from exc
    if (read_host, read.port or DEFAULT_PORTS[read.scheme]) != (host, port):
        raise InvalidEndpoint(f"{url!r} is read as two different hosts by URL parsers")
    if _literal(host) is None and not _is_host_name(ascii_host.lower()):
        raise InvalidEndpoint(f"{url!r}: {host!r} is not a host name")
    return host, port


def _is_host_name(name: str) -> bool:
    labels = name.removesuffix(".").split(".")
    return len(name) <= 253 and all(_LABEL.fullmatch(label) for label in labels)


def check_endpoint(url: str, allowed_hosts: Collection[str], timeout: float | None = None) -> None:
    """Raises InvalidEndpoint, UnsafeEndpoint or ResolutionTimeout unless `url` is a
    well-formed http(s) URL whose host is allow-listed or resolves to public addresses only."""
    host, port = endpoint_address(url)
    vetted_addresses(host, port, allowed_hosts, timeout)


class PinnedBackend(httpcore.NetworkBackend):
    """Opens a connection only to an address it has just resolved and vetted: the name is
    resolved once, here, and the socket goes to that address, so a second DNS answer cannot
    redirect it. The caller (httpcore) still sends the name as Host and as the TLS server
    name, and checks the certificate against it. The connect timeout covers the lookup and
    every address tried, as one budget."""

    def __init__(
        self, allowed_hosts: Collection[str], inner: httpcore.NetworkBackend | None = None
    ) -> None:
        self.allowed_hosts = allowed_hosts
        self.inner = inner if inner is not None else httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        began = time.monotonic()

        def left() -> float | None:
            if timeout is None:
                return None
            remaining = timeout - (time.monotonic() - began)
            if remaining <= 0:
                raise httpcore.ConnectTimeout(f"no connection to {host} within {timeout:.1f} s")
            return remaining

        try:
            addresses = vetted_addresses(host, port, self.allowed_hosts, timeout)
            if _literal(addresses[0]) is None:  # an allow-listed name, returned unresolved
                addresses = _allowed_addresses(addresses[0], port, left())
        except ResolutionTimeout as exc:
            raise httpcore.ConnectTimeout(str(exc)) from exc
        for address in addresses:
            try:
                return self.inner.connect_tcp(address, port, left(), local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc  # as socket.create_connection does: try the next address
        assert failure is not None  # vetted_addresses returns at least one
        raise failure

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise UnsafeEndpoint("deliveries go over TCP, not a unix socket")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


def pinned_transport(
    allowed_hosts: Collection[str],
    *,
    backend: httpcore.NetworkBackend | None = None,
    **options: Any,
) -> httpx.HTTPTransport:
    """An httpx transport (`options` as for httpx.HTTPTransport, no proxy) whose connections
    go through PinnedBackend. A client given it ignores proxy environment variables, which
    would resolve the name themselves. UnsafeEndpoint propagates from the request unchanged."""
    transport = httpx.HTTPTransport(**options)
    pool = transport._pool  # httpx offers no parameter for httpcore's network backend
    if type(pool) is not httpcore.ConnectionPool:
        raise TypeError(f"expected httpcore.ConnectionPool behind the transport, not {pool!r}")
    pool._network_backend = PinnedBackend(allowed_hosts, backend or pool._network_backend)
    return transport
