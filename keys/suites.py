"""The registry of signature suites (ed25519, es256, sm2-sm3) and key loading by suite.

A key's registry record names its suite; the suite, never a JWS header, decides the algorithm.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from keys import ecdsa, eddsa
from keys.keypair import InvalidKeyError, SigningKey, VerifyingKey

__all__ = [
    "DEFAULT_SUITE",
    "SUITES",
    "InvalidKeyError",
    "SigningKey",
    "Suite",
    "UnknownSuiteError",
    "VerifyingKey",
    "get_suite",
    "load_signing_key_pem",
    "public_key_from_jwk",
    "suite_for_alg",
]

DEFAULT_SUITE = "ed25519"


class UnknownSuiteError(ValueError):
    """A suite or alg name that is not registered, or whose optional backend is missing."""


@dataclass(frozen=True)
class Suite:
    """One signature suite: its registry name, JWS alg, JWK kty/crv and key constructors."""

    name: str
    alg: str
    kty: str
    crv: str
    _generate: Callable[[], SigningKey] = field(repr=False)
    _from_jwk: Callable[[Mapping[str, object]], VerifyingKey] = field(repr=False)

    def generate(self) -> SigningKey:
        return self._generate()

    def public_key_from_jwk(self, jwk: Mapping[str, object]) -> VerifyingKey:
        """The suite's public key; InvalidKeyError if the JWK is malformed or of another suite."""
        return self._from_jwk(jwk)


def _sm2_generate() -> SigningKey:
    # Imported on first use: keys.sm2 imports gmssl_pyx, an optional dependency.
    from keys import sm2

    return sm2.generate()


def _sm2_from_jwk(jwk: Mapping[str, object]) -> VerifyingKey:
    from keys import sm2

    return sm2.public_key_from_jwk(jwk)


def _sm2_load_pem(pem: bytes, passphrase: bytes | None) -> SigningKey:
    if "sm2-sm3" not in SUITES:
        raise _missing_sm2()
    from keys import sm2

    return sm2.load_pem(pem, passphrase)


def _missing_sm2() -> UnknownSuiteError:
    return UnknownSuiteError(
        "suite 'sm2-sm3' needs gmssl_pyx: install the gateway with the `sm2` extra"
    )


_ALL = (
    Suite("ed25519", eddsa.ALG, "OKP", "Ed25519", eddsa.generate, eddsa.public_key_from_jwk),
    Suite("es256", ecdsa.ALG, "EC", "P-256", ecdsa.generate, ecdsa.public_key_from_jwk),
    Suite("sm2-sm3", "SM2-SM3", "EC", "SM2", _sm2_generate, _sm2_from_jwk),
)
# find_spec only looks for the package; it does not import it.
_SM2_INSTALLED = importlib.util.find_spec("gmssl_pyx") is not None

SUITES: Mapping[str, Suite] = MappingProxyType(
    {suite.name: suite for suite in _ALL if suite.name != "sm2-sm3" or _SM2_INSTALLED}
)


def get_suite(name: str) -> Suite:
    if name in SUITES:
        return SUITES[name]
    if name == "sm2-sm3":
        raise _missing_sm2()
    raise UnknownSuiteError(f"unknown signature suite {name!r}; known: {sorted(SUITES)}")


def suite_for_alg(alg: str) -> Suite:
    """The suite whose JWS alg is `alg`; `none`, HMAC and unregistered names are unknown."""
    for suite in _ALL:
        if suite.alg == alg:
            return get_suite(suite.name)
    raise UnknownSuiteError(f"no signature suite for JWS alg {alg!r}")


def public_key_from_jwk(jwk: Mapping[str, object]) -> VerifyingKey:
    """The public key of a JWK, its suite chosen by kty and crv (RFC 7517 §4.1, RFC 8037 §2)."""
    for suite in _ALL:
        if (jwk.get("kty"), jwk.get("crv")) == (suite.kty, suite.crv):
            return get_suite(suite.name).public_key_from_jwk(jwk)
    raise InvalidKeyError(f"unsupported JWK kty={jwk.get('kty')!r} crv={jwk.get('crv')!r}")


def load_signing_key_pem(pem: bytes, passphrase: bytes | None = None) -> SigningKey:
    """A signing key from PKCS#8 PEM, encrypted or not; the suite follows from the key type.

    Raises InvalidKeyError for a wrong or missing passphrase, a passphrase for a plain file,
    or an unsupported key; UnknownSuiteError for an SM2 key without the `sm2` extra.
    """
    try:
        private = serialization.load_pem_private_key(pem, passphrase)
    except UnsupportedAlgorithm:
        # cryptography does not know the SM2 curve; keys.pkcs8 reads that format instead.
        return _sm2_load_pem(pem, passphrase)
    except TypeError:
        if passphrase is None:
            raise InvalidKeyError(
                "the private key is encrypted and no passphrase was given"
            ) from None
        raise InvalidKeyError(
            "a passphrase was given but the private key is not encrypted"
        ) from None
    except ValueError as exc:
        if passphrase is not None and b"ENCRYPTED" in pem:
            # A wrong passphrase usually fails the padding check ("Incorrect password"), but
            # about one time in 256 the padding happens to be valid and the garbage fails to
            # parse instead: either way, to the user it is the passphrase, said the same way
            # as for SM2 keys (keys/pkcs8.py) whichever check caught it.
            raise InvalidKeyError(
                "incorrect passphrase, could not decrypt the private key"
            ) from None
        raise InvalidKeyError(f"could not load the private key: {exc}") from None
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return eddsa.Ed25519SigningKey(private)
    if isinstance(private, ec.EllipticCurvePrivateKey) and isinstance(private.curve, ec.SECP256R1):
        return ecdsa.ES256SigningKey(private)
    raise InvalidKeyError(f"no signature suite for a {type(private).__name__}")
