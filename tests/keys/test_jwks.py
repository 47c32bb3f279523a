"""keys.jwks: building a JWK set and picking a key out of one by its thumbprint kid."""

from __future__ import annotations

import pytest

from keys.jwks import UnknownKeyError, build_jwks, key_from_jwks
from keys.suites import InvalidKeyError, VerifyingKey, get_suite


def make_public_keys() -> list[VerifyingKey]:
    return [get_suite(name).generate().public_key for name in ("ed25519", "es256", "sm2-sm3")]


def test_build_jwks_shape() -> None:
    keys = make_public_keys()
    jwks = build_jwks(keys)
    assert list(jwks) == ["keys"]
    assert [entry["kid"] for entry in jwks["keys"]] == [key.kid for key in keys]
    assert all("d" not in entry for entry in jwks["keys"])


def test_build_jwks_refuses_a_repeated_key() -> None:
    key = make_public_keys()[0]
    with pytest.raises(ValueError, match="twice"):
        build_jwks([key, key])


def test_key_from_jwks_finds_each_key() -> None:
    keys = make_public_keys()
    jwks = build_jwks(keys)
    for key in keys:
        found = key_from_jwks(jwks, key.kid)
        assert found == key
        assert found.suite == key.suite


def test_unknown_kid() -> None:
    with pytest.raises(UnknownKeyError, match="no key"):
        key_from_jwks(build_jwks(make_public_keys()), "nope")
    assert UnknownKeyError.code == "unknown_key"


def test_a_kid_label_that_is_not_the_thumbprint_is_refused() -> None:
    genuine, impostor = make_public_keys()[0], get_suite("ed25519").generate().public_key
    entry = {**impostor.jwk(), "kid": genuine.kid}
    with pytest.raises(InvalidKeyError, match="thumbprint"):
        key_from_jwks({"keys": [entry]}, genuine.kid)


def test_not_a_jwks() -> None:
    with pytest.raises(InvalidKeyError, match="'keys' array"):
        key_from_jwks({"keys": {}}, "x")
