"""Offline verification of an evidence bundle, with public keys read from files only.

Checks, each reported: the publisher's signature over the message, the gateway's signature over
the receipt, the receipt naming this message and its leaf hash, the checkpoint's signature by
the log key, and the RFC 6962 inclusion of the leaf in the checkpoint's tree.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from keys import jws, merkle, note
from keys.jwks import key_from_jwks
from keys.suites import InvalidKeyError, public_key_from_jwk


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def check_bundle(
    bundle: Mapping[str, str],
    *,
    gateway_jwks: Mapping[str, Any],
    log_vkey: str,
    publisher_jwk: Mapping[str, Any],
) -> list[Check]:
    checks: list[Check] = []

    def record(name: str, ok: bool, detail: str) -> bool:
        checks.append(Check(name, ok, detail))
        return ok

    token = bundle["jws"].encode()
    leaf = merkle.leaf_hash(token)
    try:
        message = jws.parse_compact(token)
        publisher = public_key_from_jwk(publisher_jwk)
        jws.verify_compact(message, publisher)
        envelope = json.loads(message.payload)
        record("publisher signature", True, f"{envelope['type']} by {envelope['issuer']}")
    except (jws.JWSError, InvalidKeyError, ValueError, KeyError) as exc:
        record("publisher signature", False, str(exc))
        envelope = {}
    try:
        receipt = jws.parse_compact(bundle["receipt"])
        jws.verify_compact(receipt, key_from_jwks(gateway_jwks, str(receipt.header.get("kid"))))
        claims = json.loads(receipt.payload)
        record("receipt signature", True, f"gateway key {receipt.header.get('kid')}")
    except (jws.JWSError, ValueError, KeyError, LookupError) as exc:
        record("receipt signature", False, str(exc))
        claims = {}
    same = claims.get("message_id") == str(envelope.get("id", "")).lower()
    record("receipt names this message", same, f"message_id {claims.get('message_id')}")
    record(
        "receipt leaf hash",
        claims.get("leaf_hash") == leaf.hex(),
        f"SHA-256(0x00 || JWS) = {leaf.hex()[:16]}…",
    )
    try:
        proof = note.parse_tlog_proof(bundle["tlog_proof"])
        key = note.parse_vkey(log_vkey.strip())
        signed = note.verify_note(proof.checkpoint_note, key.name, key.public_key)
        checkpoint = note.parse_checkpoint(note.parse_note(proof.checkpoint_note).body)
        record("checkpoint signature", signed, f"{checkpoint.origin} size {checkpoint.size}")
    except (note.NoteError, ValueError, KeyError) as exc:
        record("checkpoint signature", False, str(exc))
        return checks
    record(
        "receipt index = proof index",
        claims.get("index") == proof.index,
        f"index {proof.index}",
    )
    included = merkle.verify_inclusion(
        leaf, proof.index, checkpoint.size, list(proof.proof), checkpoint.root
    )
    record(
        "inclusion in the checkpoint",
        included,
        f"{len(proof.proof)} hashes, root {checkpoint.root.hex()[:16]}…",
    )
    return checks
