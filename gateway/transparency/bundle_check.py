"""Offline verification of an evidence bundle, with public keys read from files only.

Checks, each reported: the publisher's signature over the message, the gateway's signature over
the receipt, the receipt naming this message and its leaf hash, the checkpoint's signature by
the log key, and the RFC 6962 inclusion of the leaf in the checkpoint's tree (of a bundle
without the message, its leaf hash: gateway.transparency.views).
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
    bundle: Mapping[str, Any],
    *,
    gateway_jwks: Mapping[str, Any],
    log_vkey: str,
    publisher_jwk: Mapping[str, Any],
) -> list[Check]:
    """Every check, in order; the last is the inclusion in the checkpoint unless the proof
    could not be read. A bundle for a caller without the `read` right of its message's type
    holds no JWS (gateway.transparency.views): its leaf hash is checked, not the publisher's
    signature, and its receipt only when the bundle has one."""
    checks: list[Check] = []

    def record(name: str, ok: bool, detail: str) -> bool:
        checks.append(Check(name, ok, detail))
        return ok

    if "jws" in bundle:
        token = str(bundle["jws"]).encode()
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
        message_id = str(envelope.get("id", "")).lower()
    else:
        try:
            leaf = bytes.fromhex(str(bundle["leaf_hash"]))
            if len(leaf) != 32:
                raise ValueError("not 32 bytes")
        except (KeyError, ValueError) as exc:
            record("leaf hash", False, f"the bundle holds neither a JWS nor a leaf hash: {exc}")
            return checks
        record(
            "message",
            True,
            f"not in this bundle (view {bundle.get('view')}): its leaf hash is checked, not "
            "the publisher's signature",
        )
        message_id = str(bundle.get("message_id", "")).lower()
    claims: dict[str, Any] = {}
    if "jws" in bundle or bundle.get("receipt"):
        try:
            receipt = jws.parse_compact(str(bundle["receipt"]))
            kid = str(receipt.header.get("kid"))
            jws.verify_compact(receipt, key_from_jwks(gateway_jwks, kid))
            claims = json.loads(receipt.payload)
            record("receipt signature", True, f"gateway key {receipt.header.get('kid')}")
        except (jws.JWSError, ValueError, KeyError, LookupError) as exc:
            record("receipt signature", False, str(exc))
        same = claims.get("message_id") == message_id
        record("receipt names this message", same, f"message_id {claims.get('message_id')}")
        record(
            "receipt leaf hash",
            claims.get("leaf_hash") == leaf.hex(),
            f"SHA-256(0x00 || JWS) = {leaf.hex()[:16]}…",
        )
    else:
        claims = {"index": bundle.get("index")}
        record("receipt", True, "not in this bundle (no subscribe right for the type)")
    try:
        proof = note.parse_tlog_proof(str(bundle["tlog_proof"]))
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
