"""Refuse endpoints that resolve to loopback, private, link-local or metadata addresses.

Checked when a subscription is made and again before every attempt (DNS may change), unless
the host is on the configured allow-list (tests and the demo allow 127.0.0.1).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Collection
from urllib.parse import urlsplit

METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}


class UnsafeEndpoint(ValueError):
    pass


def check_endpoint(url: str, allowed_hosts: Collection[str]) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeEndpoint(f"{url!r} is not an http(s) URL with a host")
    host = parts.hostname
    if host in allowed_hosts:
        return
    try:
        infos = socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise UnsafeEndpoint(f"{host} does not resolve: {exc}") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if (
            address in METADATA
            or address.is_loopback
            or address.is_private
            or address.is_link_local
            or address.is_reserved
            or address.is_multicast
            or address.is_unspecified
        ):
            raise UnsafeEndpoint(f"{host} resolves to {address}, which is not a public address")
