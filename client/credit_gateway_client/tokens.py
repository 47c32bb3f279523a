"""Access tokens by OAuth 2.0 client credentials with `private_key_jwt` (RFC 7523, protocol.md
§6.1): one token at a time, reused until shortly before it expires, then a new one."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable

from credit_gateway_client.errors import UnexpectedResponse
from credit_gateway_client.jose import AgencyKey
from credit_gateway_client.transport import Http, json_object

__all__ = ["ASSERTION_TYPE", "TokenSource", "client_assertion"]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 60  # seconds; the gateway takes at most 300


def client_assertion(key: AgencyKey, agency_id: str, audience: str, now: float) -> str:
    """The JWT the agency signs to log in: `iss` = `sub` = the agency, `aud` = the token
    endpoint, a short `exp`, a fresh `jti` (each is accepted once); `kid` in the header is
    required, as the gateway finds the key by it."""
    claims = {
        "iss": agency_id,
        "sub": agency_id,
        "aud": audience,
        "iat": int(now),
        "exp": int(now) + ASSERTION_LIFETIME,
        "jti": str(uuid.uuid4()),
    }
    return key.sign_compact(json.dumps(claims).encode(), typ="JWT")


class TokenSource:
    """The agency's current access token. A token is renewed when less than a fifth of its
    lifetime (at most 60 s) is left, so a call never leaves with one about to expire.
    Thread-safe: concurrent callers share one login."""

    def __init__(
        self,
        http: Http,
        token_url: str,
        agency_id: str,
        key: AgencyKey,
        *,
        scope: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        self._token_url = token_url
        self._agency_id = agency_id
        self._key = key
        self._scope = scope
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self.scope: str | None = None  # as granted, once logged in

    def get(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._renew_at:
                self._login()
            assert self._token is not None
            return self._token

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def _form(self) -> dict[str, str]:
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion(
                self._key, self._agency_id, self._token_url, self._clock()
            ),
        }
        if self._scope:
            form["scope"] = self._scope  # else every scope granted to the agency
        return form

    def _login(self) -> None:
        started = self._clock()
        # a retried login signs a new assertion: the token endpoint refuses a jti twice
        response = self._http.request("POST", self._token_url, idempotent=True, form=self._form)
        body = json_object(response)
        token, lifetime = body.get("access_token"), body.get("expires_in")
        if not isinstance(token, str) or not isinstance(lifetime, int | float):
            raise UnexpectedResponse("the token endpoint answered no access_token/expires_in")
        self._token = token
        self._renew_at = started + lifetime - min(60.0, lifetime / 5)
        self.scope = body.get("scope") if isinstance(body.get("scope"), str) else None
