"""Small keyword-only builders for draw tests: signed log entries, ledgers, requests, whole logs
with a signed seed checkpoint. Keys come from fixed seeds, so every run builds the same bytes."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts.uscc import complete_uscc
from keys.draw_records import (
    COMPLETED_TYPE,
    REQUESTED_TYPE,
    DrawRequest,
    draw_candidates,
    draw_result,
    resolve_request,
)
from keys.draws import commitment, derive_seed
from keys.eddsa import Ed25519SigningKey
from keys.jws import sign_compact
from keys.ledger_fold import candidates_digest, entry_payload, fold_ledger
from keys.merkle import leaf_hash, root_from_leaves
from keys.note import format_checkpoint, sign_note, vkey

ORIGIN = "gateway.example/log"
ON = dt.date(2027, 1, 1)
SECRET = bytes(range(32))
_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def ed25519(*, seed: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed.encode()).digest())


AGENCY_KEY = Ed25519SigningKey(ed25519(seed="agency fj-yjt"))
GATEWAY_KEY = Ed25519SigningKey(ed25519(seed="gateway entries"))
LOG_KEY = ed25519(seed="gateway log")
LOG_VKEY = vkey(ORIGIN, LOG_KEY.public_key().public_bytes_raw())


def uscc(n: int, *, region: str = "350102") -> str:
    """The n-th valid enterprise code of a division (GB 32100 with the GB 11714 organisation
    code: both check characters computed, issue 18 §4); n below 31**6."""
    body = "MA" + "".join(_ALPHABET[(n // 31**k) % 31] for k in range(5, -1, -1))
    return complete_uscc(f"91{region}{body}")


def _compact(payload: dict[str, Any]) -> bytes:
    # As publishers send it (bench/publish.py) and the gateway signs its entries (orjson).
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


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
    return sign_compact(_compact(payload), AGENCY_KEY).encode()


def gateway_entry(*, type: str, data: dict[str, Any], n: int = 0) -> bytes:
    payload = {
        "id": f"00000000-0000-4000-9000-{n:012d}",
        "type": type,
        "issuer": "gateway",
        "issued_at": "2026-12-01T09:00:00+08:00",
        "data": data,
    }
    return sign_compact(_compact(payload), GATEWAY_KEY, typ="gateway-entry+jws").encode()


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


def request_json(**overrides: Any) -> dict[str, Any]:
    """A resolved request with three strata by level; candidates fields to be filled in."""
    base: dict[str, Any] = {
        "draw_id": "draw-2027-01",
        "requester": "fj-yjt-enforcement",
        "region_prefix": "3501",
        "on": ON.isoformat(),
        "period": {"from": "2027-01-01", "to": "2027-03-31"},
        "ledger": "achieved",
        "filters": {},
        "strata": [
            {"name": "level-1", "where": {"levels": ["1"]}, "sample": 2},
            {"name": "level-2", "where": {"levels": ["2"]}, "sample": 3},
            {"name": "level-3", "where": {"levels": ["3"]}, "sample": 3},
        ],
        "inspectors": [f"insp-{i:02d}" for i in range(1, 9)],
        "inspectors_per_enterprise": 2,
        "commitment": commitment(SECRET),
        "previous_assignments": {},
        "candidates_digest": "0" * 64,
        "candidates_count": 0,
    }
    base.update(overrides)
    return base


def ledger_leaves(*, count: int, levels: tuple[str, ...] = ("1", "2", "3")) -> list[bytes]:
    """`count` enterprises in 3501xx, each registered then awarded a level in turn."""
    leaves = []
    for n in range(count):
        code = uscc(n, region=f"3501{n % 5 + 1:02d}")
        leaves.append(registration(code, region=f"3501{n % 5 + 1:02d}"))
        leaves.append(award(code, level=levels[n % len(levels)]))
    return leaves


@dataclass
class DrawLog:
    """A log holding a ledger, a draw request, entries after it, and its seed checkpoint."""

    leaves: list[bytes]
    request_index: int
    checkpoint: str
    result: dict[str, Any]
    request: DrawRequest
    codes: list[str] = field(default_factory=list)

    def verify_args(self) -> dict[str, Any]:
        return {
            "leaves": self.leaves,
            "request_index": self.request_index,
            "seed_checkpoint": self.checkpoint,
            "log_vkey": LOG_VKEY,
            "secret_hex": SECRET.hex(),
            "result": self.result,
        }


def checkpoint_note(leaves: list[bytes]) -> str:
    root = root_from_leaves([leaf_hash(leaf) for leaf in leaves])
    return sign_note(format_checkpoint(ORIGIN, len(leaves), root), ORIGIN, LOG_KEY)


def build_draw_log(
    *,
    ledger: list[bytes],
    after: int = 3,
    beacon_value: bytes | None = None,
    claimed: Callable[[list[str]], list[str]] | None = None,
    **overrides: Any,
) -> DrawLog:
    """Resolve a request over `ledger` as the gateway would, log it, add `after` entries, sign
    the checkpoint, and compute the result the gateway would log.

    With `claimed`, the gateway commits to (and draws from) `claimed(true candidates)` instead,
    and the result lists them as claimed_candidates: a gateway that misread its ledger."""
    facts = fold_ledger(ledger, dt.date.fromisoformat(overrides.get("on", ON.isoformat())))
    completed = [
        p["data"]
        for i, leaf in enumerate(ledger)
        if (p := entry_payload(leaf, i))["type"] == COMPLETED_TYPE
    ]
    request = resolve_request(request_json(**overrides), facts, completed)
    codes = draw_candidates(request, facts)
    if claimed is not None:
        codes = claimed(codes)
        request = replace(
            request, candidates_digest=candidates_digest(codes), candidates_count=len(codes)
        )
    if "previous_assignments" in overrides:  # a gateway that misread the earlier draws
        given = overrides["previous_assignments"]
        request = replace(request, previous_assignments={c: frozenset(v) for c, v in given.items()})
    resolved = request.to_json()
    leaves = [*ledger, gateway_entry(type=REQUESTED_TYPE, data=resolved)]
    index = len(leaves) - 1
    leaves += [registration(uscc(10_000 + n)) for n in range(after)]
    checkpoint = checkpoint_note(leaves)
    root = root_from_leaves([leaf_hash(leaf) for leaf in leaves])
    seed = derive_seed(
        checkpoint_root=root,
        request_leaf_hash=leaf_hash(leaves[index]),
        secret=SECRET,
        beacon=beacon_value,
    )
    result = draw_result(
        request,
        facts,
        request_index=index,
        seed_checkpoint_size=len(leaves),
        seed=seed,
        secret=SECRET,
        beacon=beacon_value,
        codes=codes,
    )
    if claimed is not None:
        result["claimed_candidates"] = codes
    return DrawLog(leaves, index, checkpoint, result, request, codes)
