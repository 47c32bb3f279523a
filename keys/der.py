"""The small strict DER subset (X.690 §10) needed to store SM2 keys as PKCS#8, which
`cryptography` cannot parse because it does not know the SM2 curve.
"""

from __future__ import annotations

__all__ = [
    "BIT_STRING",
    "INTEGER",
    "NULL",
    "OCTET_STRING",
    "OID",
    "SEQUENCE",
    "decode_integer",
    "decode_single",
    "encode",
    "encode_integer",
    "encode_oid",
    "split",
]

INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06
SEQUENCE = 0x30


def _encode_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def encode(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _encode_length(len(content)) + content


def encode_integer(value: int) -> bytes:
    if value < 0:
        raise ValueError("only non-negative INTEGERs are used here")
    # X.690 §8.3.2: minimal two's complement, so a leading 0x00 when the top bit is set.
    return encode(INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def encode_oid(dotted: str) -> bytes:
    arcs = [int(arc) for arc in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return encode(OID, bytes(body))


def _read(data: bytes, offset: int) -> tuple[int, bytes, int]:
    """One TLV at `offset`: (tag, content, next offset). Refuses BER-only forms."""
    if offset + 2 > len(data):
        raise ValueError("DER: truncated")
    tag, first = data[offset], data[offset + 1]
    if tag & 0x1F == 0x1F:
        raise ValueError("DER: high tag numbers are not used here")
    offset += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        # 0x80 is BER's indefinite length; DER also forbids non-minimal long forms (§10.1).
        if count == 0 or count > 4 or offset + count > len(data) or data[offset] == 0:
            raise ValueError("DER: bad length")
        length = int.from_bytes(data[offset : offset + count], "big")
        if length < 0x80:
            raise ValueError("DER: non-minimal length")
        offset += count
    end = offset + length
    if end > len(data):
        raise ValueError("DER: truncated")
    return tag, data[offset:end], end


def split(content: bytes) -> list[tuple[int, bytes]]:
    """All TLVs of a constructed value's content, as (tag, content) pairs."""
    items: list[tuple[int, bytes]] = []
    offset = 0
    while offset < len(content):
        tag, value, offset = _read(content, offset)
        items.append((tag, value))
    return items


def decode_single(data: bytes, tag: int) -> bytes:
    """The content of `data`, which must be exactly one TLV with tag `tag`."""
    found, content, end = _read(data, 0)
    if found != tag or end != len(data):
        raise ValueError(f"DER: expected a single tag 0x{tag:02x}")
    return content


def decode_integer(content: bytes) -> int:
    if not content or (len(content) > 1 and content[0] == 0 and content[1] < 0x80):
        raise ValueError("DER: non-minimal INTEGER")
    if content[0] & 0x80:
        raise ValueError("DER: negative INTEGER")
    return int.from_bytes(content, "big")
