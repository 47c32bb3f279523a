"""The client side of `private_key_jwt`: a short-lived JWT signed by the agency's own key."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import httpx

from keys.jws import sign_compact
from keys.suites import SigningKey

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def make_client_assertion(
    key: SigningKey,
    agency_id: str,
    audience: str,
    now: dt.datetime,
    lifetime: dt.timedelta = dt.timedelta(seconds=60),
) -> str:
    claims = {
        "iss": agency_id,
        "sub": agency_id,
        "aud": audience,
        "iat": int(now.timestamp()),
        "exp": int((now + lifetime).timestamp()),
        "jti": str(uuid.uuid4()),
    }
    return sign_compact(json.dumps(claims).encode(), key, typ="JWT")


def request_token(
    client: httpx.Client, token_url: str, key: SigningKey, agency_id: str, scope: str
) -> httpx.Response:
    """Log in as `agency_id` with `key`: OAuth client credentials with private_key_jwt at
    `token_url`. The response is the caller's to judge (200 with the token, else a problem)."""
    assertion = make_client_assertion(key, agency_id, token_url, dt.datetime.now(dt.UTC))
    return client.post(
        token_url,
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
            "scope": scope,
        },
    )
