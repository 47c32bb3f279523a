"""keys.jws under hypothesis: sign → parse → verify round trips for arbitrary payloads and header
members; every mutated, truncated or arbitrary token refused with a JWSError and nothing else."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from keys.jws import (
    AlgorithmNotAllowedError,
    JWSError,
    MalformedJWSError,
    ParsedJWS,
    SignatureInvalidError,
    b64url_encode,
    parse_compact,
    sign_compact,
    verify_compact,
)
from keys.suites import SigningKey, get_suite

SUITES = ("ed25519", "es256")
# Header members sign_compact sets itself or refuses (keys/jws.py, RFC 7515 §4.1.11, RFC 7797).
RESERVED = frozenset({"alg", "kid", "typ", "crit", "b64"})
B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@cache
def signing_key(suite: str, which: int = 0) -> SigningKey:
    """One generated key per (suite, which), shared by every example of the run."""
    return get_suite(suite).generate()


def other_suite(suite: str) -> str:
    return next(name for name in SUITES if name != suite)


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=16)
)
# Two levels of nesting, spelled out: st.recursive's check that `extend` uses its argument
# misfired now and then (HypothesisDeprecationWarning, an error under filterwarnings=error).
_nested = json_scalars | st.lists(json_scalars, max_size=4)
json_values = (
    _nested
    | st.lists(_nested, max_size=3)
    | st.dictionaries(st.text(max_size=8), _nested, max_size=4)
)
extra_headers = st.dictionaries(
    st.text(max_size=12).filter(lambda name: name not in RESERVED), json_values, max_size=5
)
suites = st.sampled_from(SUITES)
# Junk for one segment: raw bytes, base64url-alphabet text (often decodes), base64url of bytes
# (always decodes), and base64url of a JSON header whose alg is one a verifier might meet.
header_json = st.builds(
    lambda alg, members: json.dumps({"alg": alg, **members}).encode(),
    st.sampled_from(["EdDSA", "Ed25519", "ES256", "SM2-SM3", "none", "HS256", "RS256"])
    | st.text(max_size=8),
    st.dictionaries(st.sampled_from(["kid", "typ", "cty", "b64", "x"]), json_values, max_size=3),
)
segment_junk = (
    st.binary(max_size=120)
    | st.text(alphabet=B64URL_ALPHABET, max_size=120).map(str.encode)
    | st.binary(max_size=90).map(lambda data: b64url_encode(data).encode())
    | header_json.map(lambda data: b64url_encode(data).encode())
)


def token_of(suite: str, payload: bytes, extra: Mapping[str, object] | None = None) -> bytes:
    return sign_compact(payload, signing_key(suite), extra_header=extra).encode("ascii")


def assert_refused(token: bytes, suite: str) -> None:
    """`token` is refused by parse_compact (MalformedJWSError) or, parsed, by verify_compact; as
    bytes and, when ASCII, as str. Any exception outside the JWSError tree fails the test."""
    forms: list[bytes | str] = [token]
    if token.isascii():
        forms.append(token.decode("ascii"))
    for form in forms:
        try:
            parsed = parse_compact(form)
        except MalformedJWSError:
            continue
        assert parsed.raw == token
        with pytest.raises((AlgorithmNotAllowedError, SignatureInvalidError)):
            verify_compact(parsed, signing_key(suite).public_key)


def segment_bounds(token: bytes, segment: int) -> tuple[int, int]:
    """[start, end) of segment 0, 1 or 2 of a well-formed compact token."""
    dots = [i for i, byte in enumerate(token) if byte == ord(".")]
    starts = [0, dots[0] + 1, dots[1] + 1]
    ends = [dots[0], dots[1], len(token)]
    return starts[segment], ends[segment]


# --- round trip --------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    suite=suites,
    payload=st.binary(max_size=300),
    typ=st.none() | st.text(max_size=20),
    extra=extra_headers,
)
def test_sign_parse_verify_round_trip(
    suite: str, payload: bytes, typ: str | None, extra: dict[str, object]
) -> None:
    key = signing_key(suite)
    token = sign_compact(payload, key, typ=typ, extra_header=extra)
    assert token.isascii()
    assert token.count(".") == 2
    expected_header = {"alg": key.alg, "kid": key.kid}
    if typ is not None:
        expected_header["typ"] = typ
    for form in (token, token.encode("ascii")):
        parsed = parse_compact(form)
        assert parsed.header == expected_header | extra
        assert parsed.payload == payload
        assert parsed.raw == token.encode("ascii")
        assert parsed.signing_input == token.encode("ascii").rpartition(b".")[0]
        verify_compact(parsed, key.public_key)
    with pytest.raises(SignatureInvalidError):
        verify_compact(parsed, signing_key(suite, which=1).public_key)
    with pytest.raises(AlgorithmNotAllowedError):
        verify_compact(parsed, signing_key(other_suite(suite)).public_key)


@settings(max_examples=20, deadline=None)
@given(suite=suites, name=st.sampled_from(sorted(RESERVED)), value=json_values)
def test_reserved_header_members_cannot_be_smuggled_in(
    suite: str, name: str, value: object
) -> None:
    with pytest.raises(ValueError, match=name):
        sign_compact(b"{}", signing_key(suite), extra_header={name: value})


# --- mutations of a good token -----------------------------------------------------------------


@st.composite
def signed_tokens(draw: st.DrawFn) -> tuple[str, bytes]:
    suite = draw(suites)
    extra = draw(st.dictionaries(st.sampled_from(["cty", "iat", "x"]), json_scalars, max_size=2))
    return suite, token_of(suite, draw(st.binary(max_size=48)), extra)


@settings(max_examples=100, deadline=None)
@given(signed=signed_tokens(), data=st.data())
def test_any_single_byte_substitution_is_refused(
    signed: tuple[str, bytes], data: st.DataObject
) -> None:
    suite, token = signed
    segment = data.draw(st.sampled_from([0, 1, 2]), label="segment")
    start, end = segment_bounds(token, segment)
    # A segment's bytes and the dot that closes it (the payload segment may be empty).
    position = data.draw(st.integers(start, min(end, len(token) - 1)), label="position")
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != token[position]), label="byte")
    assert_refused(token[:position] + bytes([byte]) + token[position + 1 :], suite)


ED25519_TOKEN = token_of("ed25519", b"{}")
# A last character that differs from the real one only in the 4 unused bits of a 64-byte value.
SAME_DATA_BITS = B64URL_ALPHABET[B64URL_ALPHABET.index(chr(ED25519_TOKEN[-1])) ^ 1]


@settings(max_examples=80, deadline=None)
@given(
    signed=signed_tokens(),
    segment=st.sampled_from([0, 1, 2]),
    char=st.sampled_from(B64URL_ALPHABET),
)
@example(signed=("ed25519", ED25519_TOKEN), segment=2, char=SAME_DATA_BITS)
def test_no_other_final_character_is_accepted(
    signed: tuple[str, bytes], segment: int, char: str
) -> None:
    # A segment's last character may carry unused low bits (RFC 4648 §3.5). A decoder that ignored
    # them would let a relay change a token's bytes, and so its Merkle leaf, without the signer.
    suite, token = signed
    start, end = segment_bounds(token, segment)
    assume(end > start and token[end - 1] != ord(char))
    assert_refused(token[: end - 1] + char.encode() + token[end:], suite)


@settings(max_examples=40, deadline=None)
@given(signed=signed_tokens(), data=st.data())
def test_any_truncation_is_refused(signed: tuple[str, bytes], data: st.DataObject) -> None:
    suite, token = signed
    assert_refused(token[: data.draw(st.integers(0, len(token) - 1), label="keep")], suite)


@settings(max_examples=60, deadline=None)
@given(signed=signed_tokens(), segment=st.sampled_from([0, 1, 2]), data=st.data())
def test_a_segment_cut_short_is_refused(
    signed: tuple[str, bytes], segment: int, data: st.DataObject
) -> None:
    suite, token = signed
    start, end = segment_bounds(token, segment)
    assume(end > start)
    cut = data.draw(st.integers(start, end - 1), label="cut")
    assert_refused(token[:cut] + token[end:], suite)


@settings(max_examples=80, deadline=None)
@given(signed=signed_tokens(), segment=st.sampled_from([0, 1, 2]), junk=segment_junk)
@example(signed=("es256", token_of("es256", b"{}")), segment=2, junk=b"A" * 86)  # r = s = 0
@example(
    signed=("es256", token_of("es256", b"{}")),
    segment=2,
    junk=b64url_encode(b"\xff" * 64).encode(),  # r, s >= n
)
@example(signed=("ed25519", token_of("ed25519", b"{}")), segment=2, junk=b"A" * 86)
def test_a_segment_replaced_by_junk_is_refused(
    signed: tuple[str, bytes], segment: int, junk: bytes
) -> None:
    suite, token = signed
    start, end = segment_bounds(token, segment)
    mutated = token[:start] + junk + token[end:]
    assume(mutated != token)
    assert_refused(mutated, suite)


@settings(max_examples=60, deadline=None)
@given(signed=signed_tokens(), junk=st.binary(min_size=1, max_size=16), data=st.data())
def test_junk_inserted_anywhere_is_refused(
    signed: tuple[str, bytes], junk: bytes, data: st.DataObject
) -> None:
    suite, token = signed
    position = data.draw(st.integers(0, len(token)), label="position")
    assert_refused(token[:position] + junk + token[position:], suite)


# --- arbitrary input ---------------------------------------------------------------------------


def assert_only_jws_errors(token: bytes | str) -> None:
    """parse_compact either refuses with MalformedJWSError or returns a consistent ParsedJWS that
    no key of ours verifies; nothing outside the JWSError tree escapes either call."""
    try:
        parsed = parse_compact(token)
    except MalformedJWSError:
        return
    raw = token.encode("ascii") if isinstance(token, str) else token
    assert isinstance(parsed, ParsedJWS)
    assert parsed.raw == raw
    assert parsed.signing_input == raw.rpartition(b".")[0]
    assert isinstance(parsed.header, dict)
    assert isinstance(parsed.header["alg"], str)
    for suite in SUITES:
        with pytest.raises(JWSError):
            verify_compact(parsed, signing_key(suite).public_key)


def token_with_header(header: str) -> bytes:
    return b64url_encode(header.encode()).encode() + b".e30." + b64url_encode(b"\0" * 64).encode()


MALFORMED_HEADERS = [
    '{"alg":"EdDSA","x":' + "[" * 100_000 + "]" * 100_000 + "}",  # RecursionError in json
    '{"alg":"EdDSA","n":' + "1" * 5_000 + "}",  # int digits limit: ValueError in json
    '{"alg":"EdDSA","n":NaN}',
    '{"alg":"EdDSA","alg":"none"}',
    '{"alg":"EdDSA","x":{"a":1,"a":2}}',
    '{"alg":"EdDSA","b64":false}',
    '{"alg":"EdDSA","crit":["exp"]}',
    '{"alg":"EdDSA","kid":7}',
    '["alg"]',
    '"alg"',
    "\ufeff{}",
]


@settings(max_examples=100, deadline=None)
@given(token=st.text() | st.binary())
@example(token="é.é.é")
@example(token=b"\xff.\xfe.\xfd")
@example(token="..")
@example(token="")
def test_arbitrary_text_or_bytes_only_raise_jws_errors(token: bytes | str) -> None:
    assert_only_jws_errors(token)


@settings(max_examples=100, deadline=None)
@given(segments=st.lists(segment_junk, min_size=1, max_size=5))
def test_arbitrary_segments_only_raise_jws_errors(segments: list[bytes]) -> None:
    token = b".".join(segments)
    assert_only_jws_errors(token)
    if token.isascii():
        assert_only_jws_errors(token.decode("ascii"))


@pytest.mark.parametrize("header", MALFORMED_HEADERS)
def test_hostile_headers_are_malformed(header: str) -> None:
    with pytest.raises(MalformedJWSError):
        parse_compact(token_with_header(header))


def test_a_lone_surrogate_alg_parses_but_never_verifies() -> None:
    assert_only_jws_errors(token_with_header('{"alg":"\\ud800","kid":"\\udfff"}'))
