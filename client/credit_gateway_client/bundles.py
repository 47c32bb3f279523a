"""Offline verification of an evidence bundle (`GET /v1/messages/{id}/bundle`, protocol.md
§3.3): the same checks as `gateway verify`, with public keys the caller holds.

A caller without the `read` right of the message's type gets a bundle without the message
(no `jws`, its `leaf_hash` instead; without a subscribe right no receipt either): its leaf is
checked into the signed checkpoint, not the publisher's signature, and the report says so
(`BundleReport.message_checked`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from credit_gateway_client.errors import VerificationError
from credit_gateway_client.jose import parse_compact, public_key_from_jwk, verify_compact
from credit_gateway_client.jwks import keys_by_kid
from credit_gateway_client.merkle import leaf_hash, verify_inclusion
from credit_gateway_client.notes import (
    NoteError,
    note_body,
    parse_checkpoint,
    parse_tlog_proof,
    parse_vkey,
    verify_note,
)
from credit_gateway_client.receipts import RECEIPT_TYP

__all__ = ["BundleReport", "Check", "verify_bundle"]

LAST = "inclusion in the checkpoint"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class BundleReport:
    """Every check made, in order; `ok` only when every check ran (the last is the inclusion
    in the checkpoint) and passed."""

    checks: list[Check]

    @property
    def ok(self) -> bool:
        return bool(self.checks) and self.checks[-1].name == LAST and all(c.ok for c in self.checks)

    @property
    def message_checked(self) -> bool:
        """Whether the bundle held the message and its publisher's signature was checked."""
        return any(c.name == "publisher signature" and c.ok for c in self.checks)

    def raise_for_failure(self) -> None:
        failed = [f"{c.name}: {c.detail}" for c in self.checks if not c.ok]
        if not self.ok:
            raise VerificationError("bundle_invalid", "; ".join(failed) or "checks missing")


def verify_bundle(
    bundle: Mapping[str, Any],
    gateway_jwks: Mapping[str, Any],
    log_vkey: str,
    publisher_jwk: Mapping[str, Any],
) -> BundleReport:
    """Publisher signature, receipt signature (and typ), receipt naming this message and its
    leaf hash, checkpoint signature by the log key, receipt index = proof index, and the
    RFC 6962 inclusion of the leaf in the checkpoint's tree. Never raises for a bad bundle:
    the report says which check failed."""
    checks: list[Check] = []

    def record(name: str, ok: bool, detail: str) -> None:
        checks.append(Check(name, ok, detail))

    envelope: dict[str, Any] = {}
    claims: dict[str, Any] = {}
    if "jws" in bundle:
        token = str(bundle["jws"])
        leaf = leaf_hash(token.encode())
        try:
            envelope = verify_compact(token, public_key_from_jwk(publisher_jwk)).claims()
            record(
                "publisher signature", True, f"{envelope.get('type')} by {envelope.get('issuer')}"
            )
        except VerificationError as exc:
            record("publisher signature", False, str(exc))
        message_id = str(envelope.get("id", "")).lower() if envelope else None
    else:
        try:
            leaf = bytes.fromhex(str(bundle["leaf_hash"]))
            if len(leaf) != 32:
                raise ValueError("not 32 bytes")
        except (KeyError, ValueError) as exc:
            record("leaf hash", False, f"the bundle holds neither a JWS nor a leaf hash: {exc}")
            return BundleReport(checks)
        record(
            "message",
            True,
            f"not in this bundle (view {bundle.get('view')}): its leaf hash is checked, not "
            "the publisher's signature",
        )
        message_id = str(bundle.get("message_id", "")).lower()
    if "jws" in bundle or bundle.get("receipt"):
        try:
            receipt = str(bundle.get("receipt", ""))
            kid = str(parse_compact(receipt).header.get("kid"))
            key = keys_by_kid(gateway_jwks).get(kid)
            if key is None:
                raise VerificationError("unknown_key", f"no gateway key {kid} in the JWKS")
            claims = verify_compact(receipt, key, typ=RECEIPT_TYP).claims()
            record("receipt signature", True, f"gateway key {kid}")
        except VerificationError as exc:
            record("receipt signature", False, str(exc))
        same = message_id is not None and claims.get("message_id") == message_id
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
        proof = parse_tlog_proof(str(bundle.get("tlog_proof", "")))
        vkey = parse_vkey(log_vkey)
        signed = verify_note(proof.checkpoint_note, vkey.name, vkey.public_key)
        checkpoint = parse_checkpoint(note_body(proof.checkpoint_note))
        record("checkpoint signature", signed, f"{checkpoint.origin} size {checkpoint.size}")
    except NoteError as exc:
        record("checkpoint signature", False, str(exc))
        return BundleReport(checks)
    record(
        "receipt index = proof index", claims.get("index") == proof.index, f"index {proof.index}"
    )
    included = verify_inclusion(leaf, proof.index, checkpoint.size, proof.proof, checkpoint.root)
    record(
        "inclusion in the checkpoint",
        included,
        f"{len(proof.proof)} hashes, root {checkpoint.root.hex()[:16]}…",
    )
    return BundleReport(checks)
