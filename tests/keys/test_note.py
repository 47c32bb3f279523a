"""keys.note against golang.org/x/mod/sumdb/note's vectors, a by-hand reading of the C2SP
signed-note and tlog-cosignature specs, and round trips of checkpoints and tlog-proof files."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from keys.merkle import MemorySubtrees, inclusion_proof, leaf_hash, root_hash, verify_inclusion
from keys.note import (
    COSIGNATURE_V1,
    ED25519,
    Checkpoint,
    NoteError,
    NoteSignature,
    add_signature,
    cosign,
    format_checkpoint,
    format_tlog_proof,
    key_id,
    parse_checkpoint,
    parse_note,
    parse_tlog_proof,
    parse_vkey,
    sign_note,
    verify_cosignature,
    verify_note,
    vkey,
)

# golang.org/x/mod/sumdb/note note_test.go: TestSign, TestOpen and TestVerifierList.
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
PETER_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNX"
    "gKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOT"
    "GwnWLox33WWd1RvMc+QQ=\n"
)

ORIGIN = "gateway.example/log"
WITNESS = "witness.example/w1"
ROOT = hashlib.sha256(b"a root").digest()


def make_key(*, seed: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed.encode()).digest())


def public_raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


LOG_KEY = make_key(seed="log")
WITNESS_KEY = make_key(seed="witness")
BODY = format_checkpoint(ORIGIN, 42, ROOT)


def peter_key() -> Ed25519PrivateKey:
    # A sumdb/note private key is base64(0x01 || 32-byte Ed25519 seed) after "PRIVATE+KEY+name+id+".
    raw = base64.b64decode(PETER_SKEY.split("+", 4)[4])
    assert raw[0] == ED25519
    return Ed25519PrivateKey.from_private_bytes(raw[1:])


def test_sign_note_reproduces_the_sumdb_note_vector() -> None:
    key = peter_key()
    assert sign_note(PETER_TEXT, "PeterNeumann", key) == PETER_TEXT + "\n" + PETER_SIG
    assert vkey("PeterNeumann", public_raw(key)) == PETER_VKEY
    assert key_id("PeterNeumann", public_raw(key)) == bytes.fromhex("c74f20a3")


def test_verify_note_follows_the_sumdb_note_open_vectors() -> None:
    peter, enoch = parse_vkey(PETER_VKEY), parse_vkey(ENOCH_VKEY)
    assert (enoch.name, enoch.key_id.hex(), enoch.key_type) == ("EnochRoot", "af0cfe78", ED25519)
    both = PETER_TEXT + "\n" + PETER_SIG + ENOCH_SIG
    assert verify_note(both, "PeterNeumann", peter.public_key)
    assert verify_note(both, "EnochRoot", enoch.public_key)
    assert parse_note(both).body == PETER_TEXT
    assert [s.name for s in parse_note(both).signatures] == ["PeterNeumann", "EnochRoot"]
    # TestOpen's "invalid signature": four base64 characters spliced into Peter's signature.
    spliced = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    assert not verify_note(PETER_TEXT + "\n" + spliced, "PeterNeumann", peter.public_key)
    # A name the key was never registered under has a different key ID, so nothing matches.
    misnamed = PETER_SIG.replace("PeterNeumann", "CarmenSandiego")
    assert not verify_note(PETER_TEXT + "\n" + misnamed, "CarmenSandiego", peter.public_key)


@pytest.mark.parametrize(
    "text",
    [
        PETER_TEXT,
        PETER_TEXT + "\n",
        PETER_TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + PETER_TEXT + "\n" + PETER_SIG,
        PETER_TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Bad Name"),
        PETER_TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        PETER_TEXT + "\n" + PETER_SIG.replace("=\n", "\n"),  # base64 without its padding
    ],
)
def test_malformed_notes_are_rejected(text: str) -> None:
    # The "malformed note" cases of sumdb/note TestOpen, plus non-canonical base64.
    with pytest.raises(NoteError):
        parse_note(text)
    assert not verify_note(text, "PeterNeumann", parse_vkey(PETER_VKEY).public_key)


@pytest.mark.parametrize(
    "text",
    [
        PETER_VKEY.replace("c74f20a3", "c74f20a4"),
        PETER_VKEY.replace("PeterNeumann", "PeterNeuman"),
        PETER_VKEY[:-1],
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # unknown type
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        PETER_VKEY.upper(),
    ],
)
def test_mangled_verifier_keys_are_rejected(text: str) -> None:
    with pytest.raises(NoteError):
        parse_vkey(text)


def test_signed_checkpoint_verifies_by_hand_from_the_signed_note_spec() -> None:
    note = sign_note(BODY, ORIGIN, LOG_KEY)
    assert note.startswith(f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}\n\n")
    # signed-note "Format": the text is separated from the signatures by the last empty line,
    # and a line is em dash, space, key name, space, base64(key ID || signature).
    body, _, block = note.rpartition("\n\n")
    body += "\n"
    (line,) = block.splitlines()
    dash, name, blob_b64 = line.split(" ")
    assert (dash, name) == ("\u2014", ORIGIN)
    blob = base64.b64decode(blob_b64)
    pub = public_raw(LOG_KEY)
    assert blob[:4] == hashlib.sha256(ORIGIN.encode() + b"\n\x01" + pub).digest()[:4]
    Ed25519PublicKey.from_public_bytes(pub).verify(blob[4:], body.encode())  # raises if bad
    assert verify_note(note, ORIGIN, pub)


def test_checkpoint_round_trips_through_a_signed_note() -> None:
    body = format_checkpoint(ORIGIN, 7, ROOT, ["ext one", "ext two"])
    note = sign_note(body, ORIGIN, LOG_KEY)
    parsed = parse_checkpoint(parse_note(note).body)
    assert parsed == Checkpoint(ORIGIN, 7, ROOT, ("ext one", "ext two"))
    assert parsed.body == body
    assert parse_checkpoint(format_checkpoint(ORIGIN, 0, ROOT)).size == 0


@pytest.mark.parametrize(
    "body",
    [
        f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}",  # no final newline
        f"{ORIGIN}\n042\n{base64.b64encode(ROOT).decode()}\n",  # leading zero
        f"{ORIGIN}\n-1\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n+1\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n{2**64}\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n42\n{base64.b64encode(ROOT[:31]).decode()}\n",
        f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}\n\nextension after a blank\n",
        f"{ORIGIN}\n42\n",
        f"\n42\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\r\n42\n{base64.b64encode(ROOT).decode()}\n",
    ],
)
def test_parse_checkpoint_is_strict(body: str) -> None:
    with pytest.raises(NoteError):
        parse_checkpoint(body)


def test_verify_note_negative_cases() -> None:
    note = sign_note(BODY, ORIGIN, LOG_KEY)
    pub = public_raw(LOG_KEY)
    assert not verify_note(note, "other.example/log", pub)  # wrong name
    assert not verify_note(note.replace("\n42\n", "\n43\n"), ORIGIN, pub)  # modified body
    assert not verify_note(note, ORIGIN, public_raw(WITNESS_KEY))  # wrong key, so wrong key ID
    assert not verify_note(note, ORIGIN, pub[:31])
    # Right name, right signature bytes, wrong key ID: not this key's line, so nothing verifies.
    sig = parse_note(note).signatures[0]
    wrong_id = NoteSignature(ORIGIN, bytes(4), sig.sig_bytes)
    assert not verify_note(BODY + "\n" + wrong_id.line, ORIGIN, pub)
    # A second, bad line under the same key rejects the note (signed-note "Signatures", SHOULD).
    forged = NoteSignature(ORIGIN, sig.key_id, bytes(64))
    assert not verify_note(note + forged.line, ORIGIN, pub)
    # An impostor key under the same name has another key ID and is ignored.
    impostor = sign_note(BODY, ORIGIN, WITNESS_KEY)
    assert verify_note(add_signature(note, impostor.rpartition("\n\n")[2]), ORIGIN, pub)


def test_cosignature_round_trip_and_encoding() -> None:
    timestamp = 1_679_315_147
    line = cosign(BODY, WITNESS, WITNESS_KEY, timestamp)
    pub = public_raw(WITNESS_KEY)
    assert verify_cosignature(BODY, line, WITNESS, pub) == timestamp
    sig = parse_note(BODY + "\n" + line).signatures[0]
    assert verify_cosignature(BODY, sig, WITNESS, pub) == timestamp
    # tlog-cosignature by hand: key ID type 0x04, then u64 big-endian timestamp, then Ed25519
    # over "cosignature/v1\ntime <ts>\n" + the checkpoint body.
    blob = base64.b64decode(line.removeprefix("\u2014 " + WITNESS + " "))
    assert len(blob) == 4 + 8 + 64
    assert blob[:4] == hashlib.sha256(WITNESS.encode() + b"\n\x04" + pub).digest()[:4]
    assert blob[:4] == key_id(WITNESS, pub, COSIGNATURE_V1)
    assert blob[4:12] == bytes.fromhex("00000000641850cb") == timestamp.to_bytes(8, "big")
    message = b"cosignature/v1\ntime 1679315147\n" + BODY.encode()
    Ed25519PublicKey.from_public_bytes(pub).verify(blob[12:], message)
    assert verify_cosignature(BODY, cosign(BODY, WITNESS, WITNESS_KEY, 0), WITNESS, pub) == 0


def test_cosignature_negative_cases() -> None:
    line = cosign(BODY, WITNESS, WITNESS_KEY, 1_700_000_000)
    pub = public_raw(WITNESS_KEY)
    assert verify_cosignature(BODY, line, "other.example/w2", pub) is None
    assert verify_cosignature(BODY.replace("\n42\n", "\n43\n"), line, WITNESS, pub) is None
    assert verify_cosignature(BODY, line, WITNESS, public_raw(LOG_KEY)) is None
    sig = parse_note(BODY + "\n" + line).signatures[0]
    later = NoteSignature(
        WITNESS, sig.key_id, (1_700_000_001).to_bytes(8, "big") + sig.sig_bytes[8:]
    )
    assert verify_cosignature(BODY, later, WITNESS, pub) is None  # timestamp is signed
    as_note_sig = NoteSignature(WITNESS, key_id(WITNESS, pub, ED25519), sig.sig_bytes)
    assert verify_cosignature(BODY, as_note_sig, WITNESS, pub) is None  # type 0x01 key ID
    assert verify_cosignature(BODY, "— not a line", WITNESS, pub) is None
    with pytest.raises(NoteError):
        cosign(BODY, WITNESS, WITNESS_KEY, 2**63)
    with pytest.raises(NoteError):
        cosign("not a checkpoint\n", WITNESS, WITNESS_KEY, 1)


def test_cosigned_checkpoint_keeps_both_verifiable() -> None:
    note = sign_note(BODY, ORIGIN, LOG_KEY)
    cosigned = add_signature(note, cosign(BODY, WITNESS, WITNESS_KEY, 5))
    assert verify_note(cosigned, ORIGIN, public_raw(LOG_KEY))
    assert not verify_note(cosigned, WITNESS, public_raw(WITNESS_KEY))  # 0x04 is no note signature
    witness_sig = parse_note(cosigned).signatures[1]
    assert verify_cosignature(BODY, witness_sig, WITNESS, public_raw(WITNESS_KEY)) == 5
    # Cosigning again replaces the witness's line instead of stacking a second one.
    recosigned = add_signature(cosigned, cosign(BODY, WITNESS, WITNESS_KEY, 6))
    assert [s.name for s in parse_note(recosigned).signatures] == [ORIGIN, WITNESS]
    witness_sig = parse_note(recosigned).signatures[1]
    assert verify_cosignature(BODY, witness_sig, WITNESS, public_raw(WITNESS_KEY)) == 6


def test_tlog_proof_round_trip_and_offline_verification() -> None:
    leaves = [f"jws-{i}".encode() for i in range(11)]
    tree = MemorySubtrees([leaf_hash(x) for x in leaves])
    body = format_checkpoint(ORIGIN, 11, root_hash(11, tree))
    checkpoint = add_signature(
        sign_note(body, ORIGIN, LOG_KEY), cosign(body, WITNESS, WITNESS_KEY, 9)
    )
    text = format_tlog_proof(6, inclusion_proof(6, 11, tree), checkpoint)
    lines = text.split("\n")
    assert lines[:2] == ["c2sp.org/tlog-proof@v1", "index 6"]
    assert text.endswith("\n\n" + checkpoint)
    parsed = parse_tlog_proof(text)
    assert (parsed.index, parsed.checkpoint_note, parsed.extra) == (6, checkpoint, None)
    # What an evidence-bundle holder does offline with the two public keys.
    assert verify_note(parsed.checkpoint_note, ORIGIN, public_raw(LOG_KEY))
    head = parse_checkpoint(parse_note(parsed.checkpoint_note).body)
    assert verify_inclusion(leaf_hash(leaves[6]), parsed.index, head.size, parsed.proof, head.root)


def test_tlog_proof_extra_line_precedes_the_index() -> None:
    checkpoint = sign_note(BODY, ORIGIN, LOG_KEY)
    text = format_tlog_proof(0, [], checkpoint, extra=b"receipt-id")
    assert text.startswith("c2sp.org/tlog-proof@v1\nextra cmVjZWlwdC1pZA==\nindex 0\n\n")
    parsed = parse_tlog_proof(text)
    assert (parsed.index, parsed.proof, parsed.extra) == (0, (), b"receipt-id")


@pytest.mark.parametrize(
    "head",
    [
        pytest.param("c2sp.org/tlog-proof@v2\nindex 1\n", id="wrong header"),
        pytest.param("c2sp.org/tlog-proof@v1\n", id="no index"),
        pytest.param("c2sp.org/tlog-proof@v1\nindex 01\n", id="leading zero"),
        pytest.param("c2sp.org/tlog-proof@v1\nindex -1\n", id="negative index"),
        pytest.param("c2sp.org/tlog-proof@v1\nindex 1\nextra AAAA\n", id="extra after index"),
        pytest.param("c2sp.org/tlog-proof@v1\nindex 1\nAAAA\n", id="short hash"),
        pytest.param("c2sp.org/tlog-proof@v1\nextra !!\nindex 1\n", id="extra not base64"),
    ],
)
def test_parse_tlog_proof_is_strict(head: str) -> None:
    checkpoint = sign_note(BODY, ORIGIN, LOG_KEY)
    with pytest.raises(NoteError):
        parse_tlog_proof(head + "\n" + checkpoint)


def test_parse_tlog_proof_requires_a_signed_checkpoint() -> None:
    with pytest.raises(NoteError):
        parse_tlog_proof("c2sp.org/tlog-proof@v1\nindex 1\n\n" + BODY)  # unsigned
    with pytest.raises(NoteError):
        parse_tlog_proof("c2sp.org/tlog-proof@v1\nindex 1\n")  # no blank line at all
