"""The verifiable log over HTTP (protocol.md §3): checkpoints, proofs, entries, bundles."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from contract_factories import make_award, make_registration
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi.testclient import TestClient
from gateway_factories import Publisher, operator_token, publish, publish_many
from typer.testing import CliRunner

from contracts.uscc import complete_uscc
from gateway.cli import app
from keys import merkle


@pytest.fixture
def log_client(client: TestClient, authority: Publisher) -> TestClient:
    """The API as the authority sees it (admin too): the issuer of every message here, it
    reads them whole (a `read` right would do for another agency: issue 20, finding 8)."""
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    client.headers["authorization"] = f"Bearer {operator_token(runtime, 'admin', 'fj-yjt')}"
    tokens = []
    for n in range(6):
        code = complete_uscc(f"91350200MA{n:06d}")
        tokens.append(authority.message("enterprise.registered", make_registration(), subject=code))
        tokens.append(authority.message("grade.awarded", make_award(), subject=code))
    body = publish_many(client, tokens)
    assert body.json()["accepted"] == 12
    return client


def _leaf_hashes(client: TestClient, size: int) -> list[bytes]:
    entries = client.get(f"/v1/log/entries?start=0&end={size}").json()["entries"]
    assert [e["index"] for e in entries] == list(range(size))
    for e in entries:  # the leaf is the exact JWS bytes; hashes are lowercase hex in JSON
        assert e["leaf_hash"] == e["leaf_hash"].lower()
        assert len(e["leaf_hash"]) == 64
        assert bytes.fromhex(e["leaf_hash"]) == hashlib.sha256(b"\0" + e["jws"].encode()).digest()
    return [bytes.fromhex(e["leaf_hash"]) for e in entries]


def test_checkpoint_signature_verifies_from_the_spec(log_client: TestClient) -> None:
    """C2SP signed-note, checked here by hand: Ed25519 over the body, key id per the spec."""
    text = log_client.get("/v1/log/checkpoint").text
    vkey = log_client.get("/v1/log/vkey").text.strip()
    name, key_hash, encoded = vkey.split("+", 2)
    raw = base64.b64decode(encoded)
    assert raw[0] == 0x01
    public = raw[1:]
    body, _, signatures = text.partition("\n\n")
    body += "\n"
    origin, size, root_b64 = body.splitlines()[:3]
    assert origin == name == "test.gateway.example/log"
    line = signatures.strip().splitlines()[0]
    dash, sig_name, sig_b64 = line.split(" ")
    assert dash == "\u2014"
    assert sig_name == name
    blob = base64.b64decode(sig_b64)
    expected_id = hashlib.sha256(name.encode() + b"\n" + b"\x01" + public).digest()[:4]
    assert blob[:4] == expected_id
    assert key_hash == expected_id.hex()
    Ed25519PublicKey.from_public_bytes(public).verify(blob[4:], body.encode())
    leaves = _leaf_hashes(log_client, int(size))
    assert base64.b64decode(root_b64) == merkle.root_from_leaves(leaves)


def test_one_root_per_size_and_checkpoints_follow_the_log(
    log_client: TestClient, authority: Publisher
) -> None:
    first = log_client.get("/v1/log/checkpoint").text
    assert log_client.get("/v1/log/checkpoint").text == first
    publish(log_client, authority.message("enterprise.registered", make_registration()))
    second = log_client.get("/v1/log/checkpoint").text
    assert int(second.split("\n")[1]) == int(first.split("\n")[1]) + 1


def test_every_inclusion_and_consistency_proof_verifies(log_client: TestClient) -> None:
    size = int(log_client.get("/v1/log/checkpoint").text.split("\n")[1])
    leaves = _leaf_hashes(log_client, size)
    roots = {n: merkle.root_from_leaves(leaves[:n]) for n in range(1, size + 1)}
    for n in range(1, size + 1):
        for index in range(n):
            proof = log_client.get(f"/v1/log/proofs/inclusion?index={index}&tree_size={n}").json()
            path = [bytes.fromhex(h) for h in proof["inclusion_path"]]
            assert merkle.verify_inclusion(leaves[index], index, n, path, roots[n])
        for old in range(1, n + 1):
            body = log_client.get(f"/v1/log/proofs/consistency?first={old}&second={n}").json()
            path = [bytes.fromhex(h) for h in body["consistency"]]
            assert merkle.verify_consistency(old, n, roots[old], roots[n], path)


def test_inclusion_by_message_id_and_bad_sizes(log_client: TestClient) -> None:
    entries = log_client.get("/v1/log/entries?start=0&end=20").json()["entries"]
    message = next(e for e in entries if e["kind"] == "message")
    size = len(entries)
    proof = log_client.get(
        f"/v1/log/proofs/inclusion?message_id={message['message_id']}&tree_size={size}"
    ).json()
    assert proof["index"] == message["index"]
    for url, code in (
        (f"/v1/log/proofs/inclusion?index=0&tree_size={size + 1}", "invalid_size"),
        (f"/v1/log/proofs/inclusion?index={size}&tree_size={size}", "invalid_index"),
        (f"/v1/log/proofs/consistency?first={size}&second=2", "invalid_size"),
        ("/v1/log/entries?start=5&end=2000", "invalid_range"),
    ):
        response = log_client.get(url)
        assert response.status_code == 400, url
        assert response.json()["code"] == code


def test_bundle_verifies_offline_and_tampering_is_caught(
    log_client: TestClient, authority: Publisher, tmp_path: Path
) -> None:
    token = authority.message("enterprise.registered", make_registration())
    message_id = publish(log_client, token).json()["message_id"]
    bundle = log_client.get(f"/v1/messages/{message_id}/bundle").json()
    assert bundle["tlog_proof"].startswith("c2sp.org/tlog-proof@v1\nindex ")
    files = {
        "jwks": json.dumps(log_client.get("/.well-known/jwks.json").json()),
        "vkey": log_client.get("/v1/log/vkey").text,
        "publisher": json.dumps(authority.key.public_key.jwk()),
        "bundle": json.dumps(bundle),
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    args = [
        "verify",
        str(tmp_path / "bundle"),
        "--gateway-jwks",
        str(tmp_path / "jwks"),
        "--log-vkey",
        str(tmp_path / "vkey"),
        "--publisher-jwk",
        str(tmp_path / "publisher"),
        "--json",
    ]
    runner = CliRunner()
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    checks = json.loads(result.output)
    assert len(checks) == 7
    assert all(c["ok"] for c in checks)

    other = publish(
        log_client,
        authority.message(
            "enterprise.registered", make_registration(), subject=complete_uscc("91350300MA000001")
        ),
    ).json()
    forged = dict(bundle, receipt=other["receipt"])
    (tmp_path / "bundle").write_text(json.dumps(forged))
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    failed = {c["check"] for c in json.loads(result.output) if not c["ok"]}
    assert failed == {
        "receipt names this message",
        "receipt leaf hash",
        "receipt index = proof index",
    }
