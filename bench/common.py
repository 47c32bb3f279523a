"""What the benchmarks share: logging in to a running gateway as an agency."""

from __future__ import annotations

import httpx

from gateway.access.assertion import request_token
from keys.suites import SigningKey


def login(base: str, key: SigningKey, agency: str, scope: str) -> dict[str, str]:
    """Authorization headers for `agency` (OAuth client credentials with private_key_jwt)."""
    with httpx.Client() as client:
        response = request_token(client, base.rstrip("/") + "/v1/oauth/token", key, agency, scope)
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}
