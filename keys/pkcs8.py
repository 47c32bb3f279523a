"""PKCS#8 private-key files: encryption choice for every suite, and the SM2 format itself.

SM2 keys are stored as OpenSSL does (`openssl genpkey -algorithm SM2`): PKCS#8 (RFC 5208) with
id-ecPublicKey and the SM2 curve OID 1.2.156.10197.1.301, holding an RFC 5915 ECPrivateKey that
carries the public key. Encrypted files use PBES2 (RFC 8018 §6.2) with PBKDF2-HMAC-SHA256 and
AES-256-CBC, the same scheme `cryptography` and `openssl pkcs8 -topk8 -v2 aes-256-cbc` write.
"""

from __future__ import annotations

import base64
import binascii
import os
import re

from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from keys import der
from keys.keypair import InvalidKeyError

__all__ = ["PBKDF2_ITERATIONS", "dump_sm2_pem", "load_sm2_pem", "pem_encryption"]

# OWASP's 2023 figure for PBKDF2-HMAC-SHA256. (cryptography's BestAvailableEncryption, used for
# Ed25519 and P-256 files, picks its own count; any count up to _MAX_ITERATIONS is readable.)
PBKDF2_ITERATIONS = 600_000
_MAX_ITERATIONS = 10_000_000  # a file cannot make loading hang for minutes

_ID_EC_PUBLIC_KEY = der.encode_oid("1.2.840.10045.2.1")  # RFC 5480 §2.1.1
_SM2_CURVE = der.encode_oid("1.2.156.10197.1.301")  # GB/T 33560, curve sm2p256v1
_PBES2 = der.encode_oid("1.2.840.113549.1.5.13")  # RFC 8018 Appendix A.4
_PBKDF2 = der.encode_oid("1.2.840.113549.1.5.12")  # RFC 8018 Appendix A.2
_HMAC_SHA256 = der.encode_oid("1.2.840.113549.2.9")  # RFC 8018 Appendix B.1.2
_AES256_CBC = der.encode_oid("2.16.840.1.101.3.4.1.42")  # RFC 8018 Appendix B.2.5

_PEM = re.compile(rb"-----BEGIN ([A-Z ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)


def pem_encryption(passphrase: bytes | None) -> serialization.KeySerializationEncryption:
    """The `cryptography` encryption for a PKCS#8 file; an empty passphrase is refused."""
    if passphrase is None:
        return serialization.NoEncryption()
    if not passphrase:
        raise ValueError("an empty passphrase would not protect the key")
    return serialization.BestAvailableEncryption(passphrase)


def dump_sm2_pem(private: bytes, public: bytes, passphrase: bytes | None = None) -> bytes:
    """PKCS#8 PEM of a 32-byte SM2 scalar and its 64-byte public point (x || y)."""
    pem_encryption(passphrase)  # same passphrase rules as the other suites
    ec_private_key = der.encode(
        der.SEQUENCE,
        der.encode_integer(1)  # RFC 5915 §3 ecPrivkeyVer1
        + der.encode(der.OCTET_STRING, private)
        + der.encode(0xA1, der.encode(der.BIT_STRING, b"\x00\x04" + public)),
    )
    info = der.encode(
        der.SEQUENCE,
        der.encode_integer(0)
        + der.encode(der.SEQUENCE, _ID_EC_PUBLIC_KEY + _SM2_CURVE)
        + der.encode(der.OCTET_STRING, ec_private_key),
    )
    if passphrase is None:
        return _armor("PRIVATE KEY", info)
    return _armor("ENCRYPTED PRIVATE KEY", _encrypt(info, passphrase))


def load_sm2_pem(pem: bytes, passphrase: bytes | None = None) -> tuple[bytes, bytes]:
    """(32-byte scalar, 64-byte public point) from a PKCS#8 PEM; InvalidKeyError otherwise."""
    label, body = _unarmor(pem)
    if label == "ENCRYPTED PRIVATE KEY":
        if passphrase is None:
            raise InvalidKeyError("the private key is encrypted and no passphrase was given")
        body = _decrypt(body, passphrase)
    elif label == "PRIVATE KEY":
        if passphrase is not None:
            raise InvalidKeyError("a passphrase was given but the private key is not encrypted")
    else:
        raise InvalidKeyError(f"expected a PKCS#8 PEM, got {label!r}")
    try:
        return _decode_private_key_info(body)
    except ValueError as exc:
        raise InvalidKeyError(f"not an SM2 PKCS#8 key: {exc}") from None


def _decode_private_key_info(info: bytes) -> tuple[bytes, bytes]:
    items = der.split(der.decode_single(info, der.SEQUENCE))
    # RFC 5208 §5 / RFC 5958 §2: version, algorithm, privateKey, then optional [0] attributes.
    if len(items) < 3 or items[0] != (der.INTEGER, b"\x00") or items[1][0] != der.SEQUENCE:
        raise ValueError("not a version 0 PrivateKeyInfo")
    if items[1][1] != _ID_EC_PUBLIC_KEY + _SM2_CURVE:
        raise ValueError("algorithm is not id-ecPublicKey on the SM2 curve")
    if items[2][0] != der.OCTET_STRING or any(tag != 0xA0 for tag, _ in items[3:]):
        raise ValueError("malformed PrivateKeyInfo")
    fields = der.split(der.decode_single(items[2][1], der.SEQUENCE))
    if len(fields) < 2 or fields[0] != (der.INTEGER, b"\x01") or fields[1][0] != der.OCTET_STRING:
        raise ValueError("malformed ECPrivateKey")
    private, public = fields[1][1], b""
    for tag, content in fields[2:]:
        if tag == 0xA0 and content != _SM2_CURVE:
            raise ValueError("ECPrivateKey names another curve")
        if tag == 0xA1:
            public = der.decode_single(content, der.BIT_STRING)
    if len(private) != 32:
        raise ValueError("the SM2 private scalar must be 32 bytes")
    # gmssl_pyx cannot derive the public point, so files without it are refused.
    if len(public) != 66 or public[:2] != b"\x00\x04":
        raise ValueError("ECPrivateKey lacks the uncompressed public key")
    return private, public[2:]


def _derive(passphrase: bytes, salt: bytes, iterations: int) -> bytes:
    return PBKDF2HMAC(hashes.SHA256(), 32, salt, iterations).derive(passphrase)


def _encrypt(info: bytes, passphrase: bytes) -> bytes:
    salt, iv = os.urandom(16), os.urandom(16)
    padder = padding.PKCS7(128).padder()
    plain = padder.update(info) + padder.finalize()
    cipher = Cipher(algorithms.AES(_derive(passphrase, salt, PBKDF2_ITERATIONS)), modes.CBC(iv))
    encryptor = cipher.encryptor()
    ciphertext = encryptor.update(plain) + encryptor.finalize()
    kdf_params = (
        der.encode(der.OCTET_STRING, salt)
        + der.encode_integer(PBKDF2_ITERATIONS)
        + der.encode(der.SEQUENCE, _HMAC_SHA256 + der.encode(der.NULL, b""))
    )
    kdf = der.encode(der.SEQUENCE, _PBKDF2 + der.encode(der.SEQUENCE, kdf_params))
    scheme = der.encode(der.SEQUENCE, _AES256_CBC + der.encode(der.OCTET_STRING, iv))
    params = kdf + scheme
    algorithm = der.encode(der.SEQUENCE, _PBES2 + der.encode(der.SEQUENCE, params))
    return der.encode(der.SEQUENCE, algorithm + der.encode(der.OCTET_STRING, ciphertext))


def _pbes2_parameters(encrypted: bytes) -> tuple[bytes, int, bytes, bytes]:
    """(salt, iterations, iv, ciphertext) of an EncryptedPrivateKeyInfo (RFC 5958 §3)."""
    (_, algorithm), (ct_tag, ciphertext) = der.split(der.decode_single(encrypted, der.SEQUENCE))
    (oid_tag, oid), (_, params) = der.split(algorithm)
    if ct_tag != der.OCTET_STRING or der.encode(oid_tag, oid) != _PBES2:
        raise InvalidKeyError("only PBES2-encrypted keys are supported")
    (_, kdf), (_, scheme) = der.split(params)
    (kdf_tag, kdf_oid), (_, kdf_params) = der.split(kdf)
    (scheme_tag, scheme_oid), (iv_tag, iv) = der.split(scheme)
    if der.encode(kdf_tag, kdf_oid) != _PBKDF2:
        raise InvalidKeyError("only PBKDF2 is supported as the PBES2 key derivation")
    if der.encode(scheme_tag, scheme_oid) != _AES256_CBC or iv_tag != der.OCTET_STRING:
        raise InvalidKeyError("only AES-256-CBC is supported as the PBES2 cipher")
    salt_item, count_item, *optional = der.split(kdf_params)
    # RFC 8018 Appendix A.2: keyLength is optional; the PRF defaults to hmacWithSHA1, refused.
    if optional and optional[0][0] == der.INTEGER and der.decode_integer(optional.pop(0)[1]) != 32:
        raise InvalidKeyError("PBKDF2 key length must be 32 for AES-256")
    prf = [der.encode(tag, value) for tag, value in der.split(optional[0][1])] if optional else []
    if len(optional) > 1 or prf not in ([_HMAC_SHA256], [_HMAC_SHA256, der.encode(der.NULL, b"")]):
        raise InvalidKeyError("only hmacWithSHA256 is supported as the PBKDF2 PRF")
    iterations = der.decode_integer(count_item[1])
    if salt_item[0] != der.OCTET_STRING or not 1 <= iterations <= _MAX_ITERATIONS:
        raise InvalidKeyError("unusable PBKDF2 salt or iteration count")
    return salt_item[1], iterations, iv, ciphertext


def _decrypt(encrypted: bytes, passphrase: bytes) -> bytes:
    try:
        salt, iterations, iv, ciphertext = _pbes2_parameters(encrypted)
    except InvalidKeyError:
        raise
    except ValueError as exc:  # bad DER, or a structure of the wrong arity
        raise InvalidKeyError(f"malformed EncryptedPrivateKeyInfo: {exc}") from None
    if len(iv) != 16 or not ciphertext or len(ciphertext) % 16:
        raise InvalidKeyError("malformed AES-256-CBC parameters")
    cipher = Cipher(algorithms.AES(_derive(passphrase, salt, iterations)), modes.CBC(iv))
    decryptor = cipher.decryptor()
    plain = decryptor.update(ciphertext) + decryptor.finalize()
    try:
        unpadder = padding.PKCS7(128).unpadder()
        info = unpadder.update(plain) + unpadder.finalize()
        der.split(der.decode_single(info, der.SEQUENCE))
    except ValueError:
        # Bad padding or garbage DER is all a wrong passphrase can show (PBES2 has no MAC).
        raise InvalidKeyError("incorrect passphrase, could not decrypt the key") from None
    return info


def _armor(label: str, body: bytes) -> bytes:
    text = base64.b64encode(body).decode("ascii")
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]  # RFC 7468 §2
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----", ""]).encode()


def _unarmor(pem: bytes) -> tuple[str, bytes]:
    match = _PEM.search(pem)
    if match is None:
        raise InvalidKeyError("no PEM block found")
    try:
        body = base64.b64decode(b"".join(match.group(2).split()), validate=True)
    except binascii.Error as exc:
        raise InvalidKeyError(f"PEM body is not base64: {exc}") from None
    return match.group(1).decode("ascii"), body
