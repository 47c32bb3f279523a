"""keys.sm2 and keys.pkcs8 against OpenSSL 3.0: a key from `openssl genpkey -algorithm SM2`,
its `openssl pkcs8 -topk8 -v2 aes-256-cbc` encryption and an `openssl pkeyutl` SM3 signature."""

from __future__ import annotations

import gmssl_pyx
import pytest
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from keys import der, pkcs8, sm2
from keys.suites import InvalidKeyError, get_suite, load_signing_key_pem

# openssl genpkey -algorithm SM2
OPENSSL_PEM = b"""-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqBHM9VAYItBG0wawIBAQQgNoNT/MOusx07j5Me
Ke4x36T1coEe/WOIkw2LoyrtYpKhRANCAAQyPZtD7U+2XoH3bulzlUlteICrZ2qK
8elh5Gxj47k5voYC6KjYUp57cn4g7SShQrJDu1PVsbHte4bIuxk/h/ee
-----END PRIVATE KEY-----
"""
# openssl pkcs8 -topk8 -in <above> -v2 aes-256-cbc -passout pass:secret
OPENSSL_ENCRYPTED_PEM = b"""-----BEGIN ENCRYPTED PRIVATE KEY-----
MIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAi8t/YL9AeWAAICCAAw
DAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEEGzIQBuZNa0RcarPmjeIhlEEgZBu
qf7xuKK2JmWjIY2Q5splb5C8p2YvYijfnXb7jBWjlxUhV+NQTvND/Eh851yTIBFA
p5KkJvWTA4NpKHefDovgABM39eaPDDXSEU0WDuJk2VeHocgOYVVkBc7hoC4bLjKM
qRoCJAOQLjfFiocinnmhFGE+Qwc4T0m2w412dlYN3bTuPqEkNnF+FxeVrvK6qLY=
-----END ENCRYPTED PRIVATE KEY-----
"""
OPENSSL_PUBLIC = bytes.fromhex(
    "04323d9b43ed4fb65e81f76ee97395496d7880ab676a8af1e961e46c63e3b939be"
    "8602e8a8d8529e7b727e20ed24a142b243bb53d5b1b1ed7b86c8bb193f87f79e"
)
# openssl pkeyutl -sign -rawin -digest sm3 -pkeyopt distid:1234567812345678, DER -> r || s
OPENSSL_MESSAGE = b"gateway SM2 interop vector"
OPENSSL_SIGNATURE = bytes.fromhex(
    "cdc474b1896eb40c637599e2261645224b066b9b7e542248c068bf908e0299b1"
    "4584d5481d1bb54ed47ad3027e4127d19b11fcc25d69ca736f6720b266e05750"
)


def test_openssl_key_loads_with_its_public_point() -> None:
    key = load_signing_key_pem(OPENSSL_PEM)
    assert key.suite == "sm2-sm3"
    assert key.public_key.raw_public_bytes() == OPENSSL_PUBLIC


def test_openssl_encrypted_key_loads() -> None:
    key = load_signing_key_pem(OPENSSL_ENCRYPTED_PEM, b"secret")
    assert key.public_key.raw_public_bytes() == OPENSSL_PUBLIC
    assert pkcs8.load_sm2_pem(OPENSSL_ENCRYPTED_PEM, b"secret") == pkcs8.load_sm2_pem(OPENSSL_PEM)


def test_openssl_signature_verifies_with_the_default_signer_id() -> None:
    public = load_signing_key_pem(OPENSSL_PEM).public_key
    assert public.verify(OPENSSL_MESSAGE, OPENSSL_SIGNATURE)
    assert not public.verify(OPENSSL_MESSAGE + b".", OPENSSL_SIGNATURE)


def test_our_signature_verifies_in_gmssl_with_the_default_signer_id() -> None:
    key = get_suite("sm2-sm3").generate()
    signature = key.sign(b"m")
    r, s = signature[:32], signature[32:]
    der_signature = der.encode(
        der.SEQUENCE,
        der.encode_integer(int.from_bytes(r, "big")) + der.encode_integer(int.from_bytes(s, "big")),
    )
    xy = key.public_key.raw_public_bytes()[1:]
    assert gmssl_pyx.sm2_verify(xy, b"m", der_signature, signer_id=b"1234567812345678")
    assert sm2.SIGNER_ID == gmssl_pyx.SM2_DEFAULT_SIGNER_ID


def test_our_pem_has_the_openssl_layout() -> None:
    private, public = pkcs8.load_sm2_pem(OPENSSL_PEM)
    assert pkcs8.dump_sm2_pem(private, public) == OPENSSL_PEM


def test_our_encrypted_pem_is_readable_by_cryptography() -> None:
    private, public = pkcs8.load_sm2_pem(OPENSSL_PEM)
    encrypted = pkcs8.dump_sm2_pem(private, public, b"pw")
    # cryptography decrypts PBES2 itself and only then stops at the unknown SM2 curve.
    with pytest.raises(UnsupportedAlgorithm, match=r"1\.2\.156\.10197\.1\.301"):
        serialization.load_pem_private_key(encrypted, b"pw")
    assert pkcs8.load_sm2_pem(encrypted, b"pw") == (private, public)


def test_pkcs8_wrong_or_missing_passphrase() -> None:
    with pytest.raises(InvalidKeyError, match="incorrect passphrase"):
        pkcs8.load_sm2_pem(OPENSSL_ENCRYPTED_PEM, b"wrong")
    with pytest.raises(InvalidKeyError, match="no passphrase"):
        pkcs8.load_sm2_pem(OPENSSL_ENCRYPTED_PEM)
    with pytest.raises(InvalidKeyError, match="not encrypted"):
        pkcs8.load_sm2_pem(OPENSSL_PEM, b"secret")


def test_mismatched_public_key_is_refused() -> None:
    private, _ = pkcs8.load_sm2_pem(OPENSSL_PEM)
    other = get_suite("sm2-sm3").generate().public_key.raw_public_bytes()[1:]
    with pytest.raises(InvalidKeyError, match="does not match"):
        load_signing_key_pem(pkcs8.dump_sm2_pem(private, other))


@pytest.mark.parametrize("scalar", [0, sm2._ORDER - 1, sm2._ORDER])
def test_private_scalar_out_of_range_is_refused(scalar: int) -> None:
    public = sm2.SM2VerifyingKey(OPENSSL_PUBLIC)
    with pytest.raises(InvalidKeyError, match="out of range"):
        sm2.SM2SigningKey(scalar.to_bytes(32, "big"), public)


def test_pem_without_public_key_is_refused() -> None:
    private, _ = pkcs8.load_sm2_pem(OPENSSL_PEM)
    bare = der.encode(
        der.SEQUENCE,
        der.encode_integer(0)
        + der.encode(
            der.SEQUENCE,
            der.encode_oid("1.2.840.10045.2.1") + der.encode_oid("1.2.156.10197.1.301"),
        )
        + der.encode(
            der.OCTET_STRING,
            der.encode(der.SEQUENCE, der.encode_integer(1) + der.encode(der.OCTET_STRING, private)),
        ),
    )
    pem = pkcs8._armor("PRIVATE KEY", bare)
    with pytest.raises(InvalidKeyError, match="lacks the uncompressed public key"):
        load_signing_key_pem(pem)


def test_compressed_public_point_is_refused() -> None:
    with pytest.raises(InvalidKeyError, match="uncompressed"):
        sm2.SM2VerifyingKey(b"\x02" + OPENSSL_PUBLIC[1:33])


@pytest.mark.parametrize(
    "data",
    [
        b"\x30\x80\x00\x00",  # BER indefinite length
        b"\x30\x81\x01\x00",  # non-minimal long-form length
        b"\x30\x05\x02\x01",  # truncated
        b"\x02\x01\x00\x00",  # trailing byte
    ],
)
def test_der_reader_is_strict(data: bytes) -> None:
    with pytest.raises(ValueError, match="DER"):
        der.decode_single(data, data[0])


def test_der_integer_and_oid_encoding() -> None:
    assert der.encode_integer(0) == b"\x02\x01\x00"
    assert der.encode_integer(128) == b"\x02\x02\x00\x80"
    assert der.encode_oid("1.2.156.10197.1.301") == bytes.fromhex("06082a811ccf5501822d")
    assert der.decode_integer(b"\x00\x80") == 128
    with pytest.raises(ValueError, match="non-minimal"):
        der.decode_integer(b"\x00\x01")
