"""Issue 20, finding 12: a subscription URL that does not parse (a port out of range or not a
number, unbalanced brackets) was a plain-text 500; it is 400 `invalid_endpoint`, and the URL
is read the same way by the check and by the client that delivers (no name is resolved here:
every lookup of a name that is not loopback fails the test)."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from fastapi.testclient import TestClient
from gateway_factories import Publisher, register_publisher
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from contracts.registry import MESSAGE_TYPES
from gateway.delivery.subscriptions import create_subscription
from gateway.errors import BadRequest
from gateway.models import Subscription
from gateway.outbound import ssrf
from gateway.outbound.ssrf import (
    InvalidEndpoint,
    ResolutionTimeout,
    UnsafeEndpoint,
    check_endpoint,
    endpoint_address,
)
from gateway.runtime import Runtime

MALFORMED = [
    "http://127.0.0.1:99999/",  # the finding's four
    "http://example.com:abc/",
    "http://[::1/",
    "http://a]b/",
    "http://127.0.0.1:0/hook",  # no one listens on port 0
    "http://127.0.0.1:-1/hook",
    "http://exa mple.com/hook",  # a space, a control character
    "http://example.com/\x00",
    "http://example.com\r\nx-injected: 1/",
    "http://%31%32%37.0.0.1/hook",  # parsers disagree: a name to one, 127.0.0.1 to another
    "http://a..b/hook",  # an empty label
    "http://" + "a" * 64 + ".example/",  # a label over 63 octets (the IDNA codec raises)
    "http://" + "a." * 127 + "example/",  # a name over 253 octets
    "http://xn--zz/hook",  # an invalid IDNA A-label
]


@pytest.fixture(autouse=True)
def no_public_lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fails any lookup of a name other than loopback (tests never resolve public names)."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        asked.append(str(host))
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise AssertionError(f"the test resolved {host!r}")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.fixture
def insurer(runtime: Runtime) -> Publisher:
    return register_publisher(
        runtime, "fj-picc", ["measure.applied"], roles=["insurer"], subscribe=MESSAGE_TYPES
    )


def count_subscriptions(runtime: Runtime) -> int:
    with runtime.db.reader() as session:
        return int(session.scalar(select(func.count()).select_from(Subscription)) or 0)


@pytest.mark.parametrize("url", MALFORMED)
def test_a_malformed_subscription_url_is_400_invalid_endpoint_and_stores_nothing(
    client: TestClient, insurer: Publisher, runtime: Runtime, url: str
) -> None:
    runtime.settings.delivery.allowed_hosts.append("example.com")  # not even the allow-list
    body = {"agency_id": "fj-picc", "url": url, "types": ["grade.revoked"]}
    response = client.post("/v1/subscriptions", json=body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "invalid_endpoint"
    assert count_subscriptions(runtime) == 0


@pytest.mark.parametrize("url", MALFORMED[:4])
def test_the_service_refuses_a_malformed_url_as_the_cli_calls_it(
    runtime: Runtime, insurer: Publisher, url: str
) -> None:
    with runtime.db.transaction() as session, pytest.raises(BadRequest) as refused:
        create_subscription(
            session,
            agency_id="fj-picc",
            url=url,
            types=["grade.revoked"],
            now=runtime.clock.now(),
            allowed_hosts=["127.0.0.1"],
        )
    assert refused.value.code == "invalid_endpoint"


def test_a_well_formed_allow_listed_url_is_still_accepted(
    client: TestClient, insurer: Publisher
) -> None:
    body = {"agency_id": "fj-picc", "url": "http://127.0.0.1:8080/hook", "types": ["grade.revoked"]}
    assert client.post("/v1/subscriptions", json=body).status_code == 201


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://127.0.0.1:8080/hook", ("127.0.0.1", 8080)),
        ("https://[2606:4700:4700::1111]/hook", ("2606:4700:4700::1111", 443)),
        ("HTTP://Receiver.Example/hook", ("receiver.example", 80)),
        ("https://user:pw@receiver.example:8443/", ("receiver.example", 8443)),
        ("https://éx.example/hook", ("éx.example", 443)),
    ],
)
def test_a_well_formed_url_names_its_host_and_port(url: str, address: tuple[str, int]) -> None:
    assert endpoint_address(url) == address


@pytest.mark.parametrize("url", MALFORMED)
def test_check_endpoint_refuses_malformed_urls_before_any_lookup(
    url: str, no_public_lookups: list[str]
) -> None:
    with pytest.raises(InvalidEndpoint):
        check_endpoint(url, ["example.com", "127.0.0.1"])
    assert no_public_lookups == []


# The class: whatever the text, the check answers with one of its own refusals (never another
# exception, which was the 500), and what it passes is the host the delivering client reads.
URL_TEXT = st.one_of(
    st.text(max_size=60),
    st.builds(
        "{}://{}{}{}".format,
        st.sampled_from(["http", "https", "HTTP", "ftp", ""]),
        st.one_of(
            st.sampled_from(["127.0.0.1", "[::1]", "127.0.0.1\\@x", "x@127.0.0.1", "127.0.0.1."]),
            st.text(alphabet="ab1.-_[]:%@ é\\/?#\x00", max_size=20),
        ),
        st.sampled_from(["", ":", ":80", ":65536", ":x", ":0"]),
        st.sampled_from(["", "/", "/hook?x=1"]),
    ),
)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(url=URL_TEXT)
def test_any_text_is_a_vetted_endpoint_or_a_refusal(url: str) -> None:
    import httpx

    def resolve_nothing(host: Any, *args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "not known (no lookups in tests)")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ssrf, "_getaddrinfo", lambda host, port, timeout: resolve_nothing(host))
        try:
            check_endpoint(url, ["127.0.0.1", "::1"], 1.0)
        except (UnsafeEndpoint, ResolutionTimeout):
            return
    host, port = endpoint_address(url)
    parsed = httpx.URL(url)
    assert (parsed.host.lower(), parsed.port or {"http": 80, "https": 443}[parsed.scheme]) == (
        host,
        port,
    )
