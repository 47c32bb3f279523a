"""The consumer agencies' own systems in the demo: HTTP receivers that verify every webhook
signature (v1a with the gateway's key, v1 with the shared secret), answer with a signed
consumer receipt, and, for one of them, fail the first requests so retries show."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections import Counter
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import FastAPI, Request, Response

from keys.jws import sign_compact
from keys.suites import SigningKey


@dataclass
class DemoReceiver:
    label: str
    agency_key: SigningKey
    fail_first: int = 0
    webhook_public_key: bytes = b""
    hmac_secret: str | None = None
    counts: Counter[str] = field(default_factory=Counter)
    types: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def verify(self, headers: dict[str, str], body: bytes) -> bool:
        signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
        good = False
        for part in headers.get("webhook-signature", "").split():
            scheme, _, value = part.partition(",")
            raw = base64.b64decode(value)
            if scheme == "v1a":
                try:
                    Ed25519PublicKey.from_public_bytes(self.webhook_public_key).verify(raw, signed)
                    good = True
                except InvalidSignature:
                    return False
            elif scheme == "v1" and self.hmac_secret:
                secret = base64.b64decode(self.hmac_secret.removeprefix("whsec_"))
                expected = hmac.new(secret, signed, hashlib.sha256).digest()
                if not hmac.compare_digest(expected, raw):
                    return False
                good = True
        return good

    def app(self) -> FastAPI:
        app = FastAPI(title=f"demo receiver: {self.label}")

        @app.post("/webhook")
        async def webhook(request: Request) -> Response:
            body = await request.body()
            with self._lock:
                if self.fail_first > 0:
                    self.fail_first -= 1
                    self.counts["answered 503"] += 1
                    return Response(status_code=503, headers={"retry-after": "1"})
            if not self.verify(dict(request.headers), body):
                self.counts["bad signature"] += 1
                return Response(status_code=400)
            event = json.loads(body)
            with self._lock:
                self.counts["received"] += 1
                self.types[event["type"]] += 1
            claims = {"message_id": event["id"], "leaf_hash": event["leafhash"]}
            token = sign_compact(
                json.dumps(claims).encode(), self.agency_key, typ="gateway-consumer-receipt+jws"
            )
            return Response(token, media_type="application/jose")

        return app
