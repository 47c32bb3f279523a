"""A fake gateway for the client's tests: its own receipt key made here, a token endpoint that
checks the client assertion, the JWKS, the contracts list, and signed statements on demand.

(Named client_fakes: test helper modules are imported by bare name, also from the main test
run, so the name must not collide with the gateway's tests' helpers.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import respx
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from credit_gateway_client import AgencyKey, Client
from credit_gateway_client.jose import b64url_encode, parse_compact, verify_compact
from credit_gateway_client.merkle import leaf_hash

BASE = "http://gateway.test"
AGENCY = "fj-ccb"
TOKEN_URL = BASE + "/v1/oauth/token"


def make_key(kind: str = "ed25519") -> AgencyKey:
    if kind == "ed25519":
        return AgencyKey.from_private_key(ed25519.Ed25519PrivateKey.generate())
    return AgencyKey.from_private_key(ec.generate_private_key(ec.SECP256R1()))


def problem(code: str, status: int, detail: str = "refused", **extra: Any) -> httpx.Response:
    body = {
        "type": f"https://gateway.example/problems/{code}",
        "title": "Refused",
        "status": status,
        "code": code,
        "detail": detail,
        **extra,
    }
    headers = {"content-type": "application/problem+json"}
    if "retry_after" in extra:
        headers["retry-after"] = str(extra["retry_after"])
    return httpx.Response(status, json=body, headers=headers)


class FakeClock:
    def __init__(self, now: float = 1_796_633_282.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeGateway:
    """Routes for the public part of the gateway; tests add the route under test."""

    agency_key: AgencyKey = field(default_factory=make_key)
    receipt_key: AgencyKey = field(default_factory=make_key)
    router: respx.Router = field(default_factory=lambda: respx.Router(base_url=BASE))
    assertions: list[dict[str, Any]] = field(default_factory=list)
    token_lifetime: int = 600
    log: str = "gateway.test/log"

    def __post_init__(self) -> None:
        self.token_route = self.router.post("/v1/oauth/token").mock(side_effect=self.issue_token)
        self.jwks_route = self.router.get("/.well-known/jwks.json").mock(side_effect=self._jwks)
        self.router.get("/v1/contracts").mock(return_value=httpx.Response(200, json=CONTRACTS))

    def client(self, **kwargs: Any) -> Client:
        http = httpx.Client(transport=httpx.MockTransport(self.router.handler))
        kwargs.setdefault("sleep", lambda _seconds: None)
        return Client(BASE, AGENCY, self.agency_key, http=http, **kwargs)

    def issue_token(self, request: httpx.Request) -> httpx.Response:
        form = dict(httpx.QueryParams(request.content.decode()))
        assertion = form["client_assertion"]
        verify_compact(assertion, self.agency_key.public)  # raises if forged
        parsed = parse_compact(assertion)
        self.assertions.append({"form": form, "header": parsed.header, **parsed.claims()})
        n = len(self.assertions)
        return httpx.Response(
            200,
            json={
                "access_token": f"token-{n}",
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "scope": "publish query subscribe",
            },
        )

    def _jwks(self, request: httpx.Request) -> httpx.Response:
        jwk = dict(self.receipt_key.public.jwk, kid=self.receipt_key.kid, alg="EdDSA")
        return httpx.Response(200, json={"keys": [jwk]})

    def sign(self, claims: dict[str, Any], typ: str, key: AgencyKey | None = None) -> str:
        payload = json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode()
        return (key or self.receipt_key).sign_compact(payload, typ=typ)

    def publish_answer(self, message: str, index: int, **overrides: Any) -> dict[str, Any]:
        """What POST /v1/messages answers for `message` (a 201 body)."""
        envelope = parse_compact(message).claims()
        claims = {
            "message_id": envelope["id"].lower(),
            "index": index,
            "leaf_hash": leaf_hash(message.encode()).hex(),
            "accepted_at": "2026-12-07T08:48:01.534526+00:00",
            "issuer": envelope["issuer"],
            "type": envelope["type"],
            "subject": envelope["subject"],
            "log": self.log,
        } | overrides
        return {
            "message_id": claims["message_id"],
            "index": index,
            "leaf_hash": claims["leaf_hash"],
            "receipt": self.sign(claims, "gateway-receipt+jws"),
        }

    def attest(self, answer: Any, audience: str = AGENCY, log_size: int = 1008) -> str:
        claims = {
            "answer": answer,
            "log_size": log_size,
            "issued_at": "2026-12-07T08:48:40.722124+00:00",
            "audience": audience,
        }
        return self.sign(claims, "gateway-attestation+jws")


def resign_header(token: str, key: AgencyKey, **header: Any) -> str:
    """`token`'s payload signed again by `key` under a hand-made header (alg names, typ)."""
    parsed = parse_compact(token)
    head = b64url_encode(json.dumps(header, separators=(",", ":")).encode())
    signing_input = f"{head}.{b64url_encode(parsed.payload)}".encode()
    assert isinstance(key.private_key, ed25519.Ed25519PrivateKey)
    raw = key.private_key.sign(signing_input)
    return f"{signing_input.decode()}.{b64url_encode(raw)}"


CONTRACTS = {
    "contracts": [
        {
            "name": "enterprise.registered",
            "kind": "message",
            "versions": [{"major": 1, "live": True}, {"major": 2, "live": True}],
        },
        {
            "name": "grade.awarded",
            "kind": "message",
            "versions": [{"major": 1, "live": True}, {"major": 2, "live": True}],
        },
        {
            "name": "measure.applied",
            "kind": "message",
            "versions": [{"major": 1, "live": True}, {"major": 2, "live": False}],
        },
        {"name": "insurance_premium", "kind": "view", "versions": [{"major": 2, "live": True}]},
    ]
}
