"""The benchmark's agency: registering it with its rights, and logging in to a running gateway
as it (the harness, bench/harness.py, builds on these)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import httpx

from gateway.access.assertion import request_token
from gateway.registry import rights, service
from gateway.registry.scopes import grant_scopes
from gateway.runtime import Runtime
from gateway.settings import Settings
from keys.suites import SigningKey, get_suite


def login(base: str, key: SigningKey, agency: str, scope: str) -> dict[str, str]:
    """Authorization headers for `agency` (OAuth client credentials with private_key_jwt)."""
    with httpx.Client() as client:
        response = request_token(client, base.rstrip("/") + "/v1/oauth/token", key, agency, scope)
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def register_bench_agency(
    settings: Settings,
    *,
    name: str,
    uscc: str,
    roles: Sequence[str],
    scopes: Sequence[str],
    publish: Sequence[str] = (),
    subscribe: Sequence[str] = (),
    query: Sequence[str] = (),
) -> SigningKey:
    """The agency `bench` with a fresh Ed25519 key (returned), its scopes and rights (whole
    contracts) and a rate limit no load generator reaches: one agency asking far beyond an
    agency's default rate."""
    key = get_suite("ed25519").generate()
    runtime = Runtime.open(settings)
    now = runtime.clock.now()
    try:
        with runtime.db.transaction() as session:
            service.add_agency(
                session,
                runtime.signer,
                agency_id="bench",
                name=name,
                uscc=uscc,
                roles=roles,
                now=now,
            )
            service.grant_publish(session, runtime.signer, "bench", publish, now)
            grant_scopes(session, runtime.signer, "bench", list(scopes), now)
            rights.set_rate_limit(  # the highest an agency may have, a burst of a million
                session, runtime.signer, agency_id="bench", per_second=10_000, burst=10**6, now=now
            )
            for action, contracts in (("subscribe", subscribe), ("query", query)):
                for contract in contracts:
                    rights.grant(
                        session,
                        runtime.signer,
                        agency_id="bench",
                        action=action,
                        contract=contract,
                        fields=None,
                        now=now,
                    )
            service.add_key(
                session,
                runtime.signer,
                agency_id="bench",
                jwk=key.public_key.jwk(),
                suite="ed25519",
                now=now,
                valid_from=now - dt.timedelta(days=1),
            )
    finally:
        runtime.close()
    return key
