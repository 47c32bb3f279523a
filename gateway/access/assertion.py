"""The client side of `private_key_jwt`: a short-lived JWT signed by the agency's own key."""

from __future__ import annotations

import datetime as dt
import json
import uuid

from keys.jws import sign_compact
from keys.suites import SigningKey


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
