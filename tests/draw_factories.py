"""Small keyword-only builders for draw tests: signed log entries, ledgers, requests, whole logs
with a signed seed checkpoint. Keys come from fixed seeds, so every run builds the same bytes."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts.uscc import make_uscc
from keys.eddsa import Ed25519SigningKey
from keys.jws import sign_compact
from keys.note import vkey

ORIGIN = "gateway.example/log"
_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def ed25519(*, seed: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed.encode()).digest())


AGENCY_KEY = Ed25519SigningKey(ed25519(seed="agency fj-yjt"))
GATEWAY_KEY = Ed25519SigningKey(ed25519(seed="gateway entries"))
LOG_KEY = ed25519(seed="gateway log")
LOG_VKEY = vkey(ORIGIN, LOG_KEY.public_key().public_bytes_raw())


def uscc(n: int, *, region: str = "350102") -> str:
    org = "MA" + "".join(_ALPHABET[(n // 31**k) % 31] for k in range(6, -1, -1))
    return make_uscc(f"91{region}{org}")


def message(*, type: str, subject: str, data: dict[str, Any], n: int = 0) -> bytes:
    payload = {
        "id": f"00000000-0000-4000-8000-{n:012d}",
        "type": type,
        "contract": 1,
        "issuer": "fj-yjt",
        "issued_at": "2026-12-01T09:00:00+08:00",
        "subject": subject,
        "data": data,
    }
    return sign_compact(json.dumps(payload).encode(), AGENCY_KEY).encode()


def gateway_entry(*, type: str, data: dict[str, Any], n: int = 0) -> bytes:
    payload = {
        "id": f"00000000-0000-4000-9000-{n:012d}",
        "type": type,
        "issuer": "gateway",
        "issued_at": "2026-12-01T09:00:00+08:00",
        "data": data,
    }
    return sign_compact(json.dumps(payload).encode(), GATEWAY_KEY, typ="gateway-entry+jws").encode()


def registration(
    code: str, *, region: str = "350102", section: str = "C", scheme: str = "industry_trade"
) -> bytes:
    data = {
        "name": f"企业{code[-6:]}",
        "region_code": region,
        "industry_section": section,
        "scheme": scheme,
        "required": True,
        "registered_on": "2024-01-02",
    }
    return message(type="enterprise.registered", subject=code, data=data)


def award(
    code: str,
    *,
    level: str = "2",
    scheme: str = "industry_trade",
    valid_from: str = "2025-01-01",
    valid_to: str = "2027-12-31",
) -> bytes:
    data = {
        "level": level,
        "scheme": scheme,
        "authority_level": "provincial",
        "announcement_no": "闽应急公告〔2025〕1号",
        "certificate_no": f"闽AQB{code[-6:]}",
        "announced_on": valid_from,
        "valid_from": valid_from,
        "valid_to": valid_to,
    }
    return message(type="grade.awarded", subject=code, data=data)
