"""parse_json: payloads are I-JSON objects or refused as malformed_json."""

from __future__ import annotations

import pytest

from contracts.registry import ContractError, parse_json


def test_surrogate_pairs_and_escaped_backslashes_are_text() -> None:
    assert parse_json(b'{"a": "\\ud83d\\ude00"}') == {"a": "\U0001f600"}
    assert parse_json(b'{"a": "\\\\ud800"}') == {"a": "\\ud800"}  # a backslash, then text


def test_parses_an_object_with_non_ascii_text() -> None:
    payload = '{"name": "福建", "n": [1, 2.5, null, true]}'.encode()
    assert parse_json(payload) == {"name": "福建", "n": [1, 2.5, None, True]}


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        (b'{"a": 1, "a": 2}', "repeats"),
        (b'{"data": {"level": "1", "level": "2"}}', "repeats"),
        (b'{"a": [{"b": 1, "b": 1}]}', "repeats"),
        (b'{"a": NaN}', "NaN"),
        (b'{"a": Infinity}', "Infinity"),
        (b'{"a": -Infinity}', "Infinity"),
        (b'{"a": "\xff"}', "UTF-8"),
        (b"\xef\xbb\xbf{}", "JSON"),
        (b'{"a": "\\ud800"}', "surrogate"),
        (b'{"\\udc00": 1}', "surrogate"),
        (b'{"a": ["x", {"b": "ok \\uDBFF"}]}', "surrogate"),  # upper-case hex, nested
        (b'{"a": "\\ud83d\\u0041"}', "surrogate"),  # a high half followed by no low half
        (b'{"a": "\xed\xa0\x80"}', "UTF-8"),  # a surrogate as raw bytes is not UTF-8
        (b'{"a": "\x00"}', "JSON"),  # U+0000 as a raw byte is not JSON (only as \u0000)
        (b"[1, 2]", "object"),
        (b'"text"', "object"),
        (b"null", "object"),
        (b"", "JSON"),
        (b'{"a": 1', "JSON"),
        (b'{"a": 1} trailing', "JSON"),
        (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "JSON"),
    ],
)
def test_malformed_payloads_are_refused(payload: bytes, says: str) -> None:
    with pytest.raises(ContractError) as caught:
        parse_json(payload)
    assert caught.value.code == "malformed_json"
    assert says in caught.value.message
    assert caught.value.pointer is None
