"""一公开 (docs/draws.md §12): after its period a draw is public without a token — who was
drawn, its request and result entries, the seed checkpoint, and proofs that anyone checks
with keys/ alone (signature of the checkpoints, inclusion of both entries, consistency
between the seed checkpoint and the one covering the result, and the seed recomputed)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from fastapi.testclient import TestClient
from gateway_factories import Publisher, bearer
from test_supervision import SECRET, draw, draw_body, province, supervisor

from gateway.clock import FixedClock
from gateway.runtime import Runtime
from keys.draws import derive_seed
from keys.jws import parse_compact
from keys.merkle import verify_consistency, verify_inclusion
from keys.note import parse_checkpoint, parse_note, parse_tlog_proof, parse_vkey, verify_note

__all__ = ["supervisor"]  # the fixture, shared with test_supervision

AFTER_PERIOD = dt.datetime(2027, 2, 1, 8, tzinfo=dt.UTC)  # draw_body's period ends 31 January


def public(client: TestClient, draw_id: str) -> Any:
    """GET the public part with no token at all."""
    token = client.headers.pop("authorization")
    try:
        return client.get(f"/v1/inspections/draws/{draw_id}/public")
    finally:
        client.headers["authorization"] = token


def checked_entry(entry: dict[str, Any], vkey: str) -> tuple[dict[str, Any], bytes, int]:
    """An entry's payload, its checkpoint's root and size, once its tlog-proof verifies."""
    jws = entry["jws"].encode()
    leaf = hashlib.sha256(b"\x00" + jws).digest()
    assert leaf.hex() == entry["leaf_hash"]
    proof = parse_tlog_proof(entry["tlog_proof"])
    key = parse_vkey(vkey)
    assert verify_note(proof.checkpoint_note, key.name, key.public_key)
    checkpoint = parse_checkpoint(parse_note(proof.checkpoint_note).body)
    assert proof.index == entry["index"]
    assert verify_inclusion(leaf, proof.index, checkpoint.size, proof.proof, checkpoint.root)
    return json.loads(parse_compact(entry["jws"]).payload), checkpoint.root, checkpoint.size


def test_a_completed_draw_is_public_after_its_period_with_proofs_anyone_checks(
    client: TestClient,
    runtime: Runtime,
    authority: Publisher,
    supervisor: Publisher,
    clock: FixedClock,
) -> None:
    province(client, authority, 40)
    small = [{"name": "l2", "where": {"levels": ["2"]}, "sample": 3}]
    drawn = draw(client, runtime, draw_body("FJ-PUB-1", strata=small))
    early = public(client, "FJ-PUB-1")
    assert (early.status_code, early.json()["code"]) == (409, "not_yet_public")
    assert public(client, "no-such-draw").json()["code"] == "unknown_draw"

    clock.at = AFTER_PERIOD
    answer = public(client, "FJ-PUB-1")
    assert answer.status_code == 200, answer.text
    shown = answer.json()
    selected = drawn["result"]["strata"][0]["selected"]
    assert [d["uscc"] for d in shown["drawn"]] == selected
    assert all(d["name"] for d in shown["drawn"])
    vkey = client.get("/v1/log/vkey").text.strip()

    # the request, in the seed checkpoint's tree: it was fixed before the randomness was
    request, seed_root, seed_size = checked_entry(shown["request"], vkey)
    assert request["type"] == "gateway.draw.requested"
    assert request["data"]["commitment"] == drawn["request"]["commitment"]
    assert shown["request"]["tlog_proof"].endswith(shown["seed_checkpoint"])
    assert seed_size == drawn["result"]["seed_checkpoint_size"]

    # the result, in a later checkpoint that extends the seed checkpoint's tree
    result, root, size = checked_entry(shown["result"], vkey)
    assert (result["type"], result["data"]) == ("gateway.draw.completed", drawn["result"])
    assert shown["result"]["tlog_proof"].endswith(shown["checkpoint"])
    consistency = shown["consistency"]
    assert (consistency["first"], consistency["second"]) == (seed_size, size)
    path = [bytes.fromhex(h) for h in consistency["consistency"]]
    assert verify_consistency(seed_size, size, seed_root, root, path)

    # and the seed recomputes from what was published
    seed = derive_seed(
        checkpoint_root=seed_root,
        request_leaf_hash=bytes.fromhex(shown["request"]["leaf_hash"]),
        secret=bytes.fromhex(result["data"]["secret"]),
    )
    assert seed.hex() == result["data"]["seed"]
    assert result["data"]["secret"] == SECRET.hex()


def test_a_voided_draw_is_public_too_and_one_still_open_is_not(
    client: TestClient,
    runtime: Runtime,
    authority: Publisher,
    supervisor: Publisher,
    clock: FixedClock,
) -> None:
    from gateway.supervision.routes import void_overdue_draws

    province(client, authority, 40)
    headers = bearer(runtime, "fj-yjt-zf", "supervise")
    small = [{"name": "l1", "where": {"levels": ["1"]}, "sample": 1}]
    for draw_id in ("FJ-VOIDED", "FJ-OPEN"):
        body = draw_body(draw_id, strata=small)
        assert client.post("/v1/inspections/draws", json=body, headers=headers).status_code == 201
    assert client.get("/v1/log/checkpoint").status_code == 200
    clock.at = AFTER_PERIOD
    assert public(client, "FJ-OPEN").json()["code"] == "draw_not_completed"
    assert sorted(void_overdue_draws(runtime)) == ["FJ-OPEN", "FJ-VOIDED"]
    shown = public(client, "FJ-VOIDED").json()
    assert (shown["status"], shown["drawn"], shown["seed_checkpoint"]) == ("voided", [], None)
    voided, _, _ = checked_entry(shown["result"], client.get("/v1/log/vkey").text.strip())
    assert (voided["type"], voided["data"]["draw_id"]) == ("gateway.draw.voided", "FJ-VOIDED")
    assert voided["data"]["reason"] == "not_revealed"
