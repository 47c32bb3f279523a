"""Evidence bundles: a real one (made by `gateway demo`, index 500 of a 962-leaf log, the
bundle, the gateway's JWKS, the log's vkey and the publisher's JWK as served) passes the seven
checks of `gateway verify`; each kind of tampering fails the check it should."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from client_fakes import make_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from credit_gateway_client import VerificationError, verify_bundle
from credit_gateway_client.merkle import leaf_hash, node_hash, verify_inclusion
from credit_gateway_client.notes import key_id

VECTOR: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "bundle.json").read_text(encoding="utf-8")
)
NAMES = [
    "publisher signature",
    "receipt signature",
    "receipt names this message",
    "receipt leaf hash",
    "checkpoint signature",
    "receipt index = proof index",
    "inclusion in the checkpoint",
]


def check(**changes: Any) -> dict[str, bool]:
    inputs = {
        "bundle": VECTOR["bundle"],
        "gateway_jwks": VECTOR["jwks"],
        "log_vkey": VECTOR["vkey"],
        "publisher_jwk": VECTOR["publisher_jwk"],
    } | changes
    report = verify_bundle(**inputs)
    return {c.name: c.ok for c in report.checks}


def test_the_real_bundle_passes_every_check() -> None:
    report = verify_bundle(
        VECTOR["bundle"], VECTOR["jwks"], VECTOR["vkey"], VECTOR["publisher_jwk"]
    )
    assert [c.name for c in report.checks] == NAMES
    assert report.ok, report.checks
    report.raise_for_failure()
    assert report.checks[-1].detail.startswith("10 hashes")


def without_the_message(view: str) -> dict[str, Any]:
    """The bundle as a caller without the `read` right of the type gets it (the gateway's
    transparency views): no JWS, its leaf hash; the receipt only under a subscribe right."""
    whole = VECTOR["bundle"]
    claims = json.loads(base64.urlsafe_b64decode(whole["receipt"].split(".")[1] + "=="))
    cut: dict[str, Any] = {
        "message_id": claims["message_id"],
        "index": claims["index"],
        "leaf_hash": leaf_hash(whole["jws"].encode()).hex(),
        "tlog_proof": whole["tlog_proof"],
        "view": view,
    }
    if view == "fields":
        cut["receipt"] = whole["receipt"]
    return cut


@pytest.mark.parametrize(
    ("view", "receipt_checks"),
    [
        ("fields", ["receipt signature", "receipt names this message", "receipt leaf hash"]),
        ("hashes", ["receipt"]),
    ],
)
def test_a_bundle_without_the_message_proves_its_leaf(view: str, receipt_checks: list[str]) -> None:
    report = verify_bundle(
        without_the_message(view), VECTOR["jwks"], VECTOR["vkey"], VECTOR["publisher_jwk"]
    )
    assert [c.name for c in report.checks] == ["message", *receipt_checks, *NAMES[-3:]]
    assert report.ok, report.checks
    assert not report.message_checked
    assert verify_bundle(
        VECTOR["bundle"], VECTOR["jwks"], VECTOR["vkey"], VECTOR["publisher_jwk"]
    ).message_checked


def test_a_wrong_leaf_hash_is_not_included() -> None:
    bundle = without_the_message("hashes") | {"leaf_hash": "00" * 32}
    report = verify_bundle(bundle, VECTOR["jwks"], VECTOR["vkey"], VECTOR["publisher_jwk"])
    assert {c.name: c.ok for c in report.checks}["inclusion in the checkpoint"] is False
    assert not report.ok
    short = verify_bundle(
        bundle | {"leaf_hash": "abc"}, VECTOR["jwks"], VECTOR["vkey"], VECTOR["publisher_jwk"]
    )
    assert [c.name for c in short.checks] == ["leaf hash"]
    with pytest.raises(VerificationError):
        short.raise_for_failure()


def proof_with_hash(n: int, replacement: bytes) -> str:
    lines = VECTOR["bundle"]["tlog_proof"].split("\n")
    lines[2 + n] = base64.b64encode(replacement).decode()
    return "\n".join(lines)


def test_an_altered_proof_hash_fails_inclusion_only() -> None:
    bundle = VECTOR["bundle"] | {"tlog_proof": proof_with_hash(3, b"\x11" * 32)}
    result = check(bundle=bundle)
    assert [name for name, ok in result.items() if not ok] == ["inclusion in the checkpoint"]
    with pytest.raises(VerificationError, match="inclusion"):
        verify_bundle(
            bundle, VECTOR["jwks"], VECTOR["vkey"], VECTOR["publisher_jwk"]
        ).raise_for_failure()


def test_another_log_key_of_the_same_name_fails_the_checkpoint_signature() -> None:
    name = VECTOR["vkey"].split("+")[0]
    raw = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    encoded = base64.b64encode(b"\x01" + raw).decode()  # type 0x01: Ed25519
    other = f"{name}+{key_id(name, raw).hex()}+{encoded}"
    result = check(log_vkey=other)
    assert result["checkpoint signature"] is False
    assert check(log_vkey="not a vkey")["checkpoint signature"] is False


def test_another_publisher_key_fails_the_publisher_signature() -> None:
    result = check(publisher_jwk=make_key().public.jwk)
    assert result["publisher signature"] is False
    assert result["receipt names this message"] is False  # nothing read from an unsigned JWS


def test_a_receipt_by_a_key_outside_the_jwks_fails() -> None:
    result = check(gateway_jwks={"keys": [make_key().public.jwk]})
    assert result["receipt signature"] is False


def test_other_message_bytes_fail_the_leaf_hash() -> None:
    token = VECTOR["bundle"]["jws"]
    head, payload, signature = token.split(".")
    bundle = VECTOR["bundle"] | {"jws": f"{head}.{payload}.{signature[:-2]}AA"}
    result = check(bundle=bundle)
    assert result["publisher signature"] is False
    assert result["receipt leaf hash"] is False


def test_inclusion_matches_rfc_6962_on_a_small_tree() -> None:
    leaves = [leaf_hash(bytes([i])) for i in range(5)]
    # RFC 6962 §2.1: five leaves split 4 | 1
    left = node_hash(node_hash(leaves[0], leaves[1]), node_hash(leaves[2], leaves[3]))
    root = node_hash(left, leaves[4])
    assert verify_inclusion(leaves[4], 4, 5, [left], root)
    path_2 = [leaves[3], node_hash(leaves[0], leaves[1]), leaves[4]]
    assert verify_inclusion(leaves[2], 2, 5, path_2, root)
    assert not verify_inclusion(leaves[2], 3, 5, path_2, root)
    assert not verify_inclusion(leaves[2], 2, 5, [*path_2, root], root)
    assert not verify_inclusion(leaves[2], 5, 5, path_2, root)
