"""The message contracts: schema files under schemas/v<major>/, their compiled validators, and the
strict JSON parsing every published payload goes through first (protocol.md §1).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from functools import cache
from importlib import resources
from typing import Any

import jsonschema_rs

from contracts.errors import ContractError

__all__ = [
    "CONTRACT_MAJORS",
    "MESSAGE_TYPES",
    "SERVED_MAJORS",
    "ContractError",
    "latest_major",
    "list_contracts",
    "parse_json",
    "schema_for",
    "validate_message",
]


def _served() -> dict[str, tuple[int, ...]]:
    source = resources.files("contracts") / "schemas" / "served.json"
    listed = json.loads(source.read_text(encoding="utf-8"))["messages"]
    return {name: tuple(majors) for name, majors in listed.items()}


# schemas/served.json: the one list of message types and the majors served of each.
SERVED_MAJORS: dict[str, tuple[int, ...]] = _served()
MESSAGE_TYPES: tuple[str, ...] = tuple(SERVED_MAJORS)
# Every major served of some type (the envelope's `contract` ranges over these).
CONTRACT_MAJORS: tuple[int, ...] = tuple(sorted({m for ms in SERVED_MAJORS.values() for m in ms}))
_ENVELOPE = "envelope"
_ENVELOPE_MAJOR = 1  # the envelope's own shape; its `contract` field versions only `data`
_MAX_DETAIL = 300  # keeps a problem document readable when the offending value is long


def parse_json(payload: bytes) -> dict[str, object]:
    """Parse a payload as I-JSON (RFC 7493): UTF-8 without BOM, an object at the top level,
    no duplicate member names, no NaN or Infinity, no lone surrogates.

    Python's json module silently keeps the last of duplicate keys; a signed payload whose meaning
    depends on the parser is refused instead (RFC 8259 §4, RFC 7493 §2.3).
    """
    try:
        text = payload.decode("utf-8")
        if text.startswith("\ufeff"):  # as json.loads refuses it (RFC 7493 §2.1: no BOM)
            raise ValueError("Unexpected UTF-8 BOM")
        value = _DECODER.decode(text)
        if _SURROGATE_ESCAPE.search(payload):  # else no string can hold one: skip the walk
            _refuse_lone_surrogates(value)
    except UnicodeDecodeError as exc:
        raise ContractError("malformed_json", f"the payload is not valid UTF-8: {exc}") from exc
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise ContractError("malformed_json", f"the payload is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ContractError("malformed_json", "the payload must be a JSON object at the top level")
    return value


# A lone surrogate reaches a parsed string only through a \uD800-\uDFFF escape (raw surrogate
# bytes are not UTF-8 and fail decoding): a payload without one needs no walk of its strings.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ContractError(
                "malformed_json", f"the payload repeats the member name {key!r} in one object"
            )
        result[key] = value
    return result


def _no_constant(name: str) -> None:
    raise ContractError("malformed_json", f"{name} is not a JSON number (RFC 8259 §6)")


# One decoder for every payload (json.loads with hooks builds a new one per call).
_DECODER = json.JSONDecoder(object_pairs_hook=_unique_members, parse_constant=_no_constant)


def _refuse_lone_surrogates(value: object) -> None:
    # "\ud800" is valid JSON syntax but not a Unicode string (RFC 7493 §2.1).
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ContractError(
                "malformed_json", "the payload holds a string with a lone surrogate escape"
            ) from exc
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_lone_surrogates(key)
            _refuse_lone_surrogates(item)
    elif isinstance(value, list):
        for item in value:
            _refuse_lone_surrogates(item)


def validate_message(envelope: Mapping[str, object]) -> None:
    """Check an envelope, then its `data` against the schema of its type and contract major.

    Order: envelope schema (schema_violation), type (unknown_type), major (unknown_contract),
    data (schema_violation with a pointer under "/data"). Raises ContractError on the first failure.
    """
    instance = envelope if isinstance(envelope, dict) else dict(envelope)
    for error in _validator(_ENVELOPE, _ENVELOPE_MAJOR).iter_errors(instance):
        # envelope.json lists the known types so that outside tools refuse others too; here an
        # unlisted type earns its own code (below) rather than a generic schema violation.
        if list(error.instance_path) == ["type"] and isinstance(
            error.kind, jsonschema_rs.ValidationErrorKind.Enum
        ):
            continue
        raise _violation(error, "", "the envelope")
    _check_date_range(instance, _date_paths(_ENVELOPE, _ENVELOPE_MAJOR), "")  # issued_at
    message_type, major = str(instance["type"]), instance["contract"]
    if message_type not in MESSAGE_TYPES:
        raise ContractError(
            "unknown_type", f"message type {message_type!r} is not a known type", "/type"
        )
    # The envelope schema made `contract` an integer; 2020-12 counts 1.0 as one, hence int() below.
    served = SERVED_MAJORS[message_type]
    if not isinstance(major, int | float) or major not in served:
        raise ContractError(
            "unknown_contract",
            f"contract major {major} of {message_type} is not served; served majors: "
            + ", ".join(str(m) for m in served),
            "/contract",
        )
    data_validator = _validator(message_type, int(major))
    if not data_validator.is_valid(instance["data"]):
        first = next(iter(data_validator.iter_errors(instance["data"])))
        raise _violation(first, "/data", f"the {message_type} data")
    _check_date_range(instance["data"], _date_paths(message_type, int(major)), "/data")


# The schemas take any calendar date "YYYY-MM-DD" and any date-time (years 0000 to 9999); the
# domain's arithmetic (validity years, re-apply months, list terms), its policy records and
# Python's calendar (years 1 to 9999, in UTC too) need dates well inside that. These bounds,
# for every date and date-time of the envelope and of each type's data, are wide enough for
# any real registration date, any term a decision can set, and any time a message is issued.
EARLIEST_DATE, LATEST_DATE = date(1900, 1, 1), date(2199, 12, 31)


def _check_date_range(
    data: object, paths: tuple[tuple[tuple[str, ...], str], ...], at: str
) -> None:
    for path, kind in paths:
        value: object = data
        for name in path:
            value = value.get(name) if isinstance(value, dict) else None
        if not isinstance(value, str):
            continue  # optional and absent (the schema has checked what is present)
        days = _days_of(value, kind)
        if not days or min(days) < EARLIEST_DATE or max(days) > LATEST_DATE:
            pointer = _pointer(at, list(path))
            raise ContractError(
                "schema_violation",
                f"{pointer}: {value} is outside the dates the gateway accepts "
                f"({EARLIEST_DATE} to {LATEST_DATE})",
                pointer,
            )


def _days_of(value: str, kind: str) -> tuple[date, ...]:
    """The day a date names; the days a date-time falls on as written and in UTC. Empty when
    Python cannot hold it (year 0000, which the formats admit; year 1 or 9999 moved to UTC)."""
    try:
        if kind == "date":
            return (date.fromisoformat(value),)
        instant = datetime.fromisoformat(value)
        return instant.date(), instant.astimezone(UTC).date()
    except (ValueError, OverflowError):
        return ()


@cache
def _date_paths(name: str, major: int) -> tuple[tuple[tuple[str, ...], str], ...]:
    """Where the schema of `name` declares dates and date-times, with which of the two
    (properties of properties; no arrays)."""
    found: list[tuple[tuple[str, ...], str]] = []

    def walk(node: object, path: tuple[str, ...]) -> None:
        if not isinstance(node, dict):
            return
        if node.get("format") in ("date", "date-time"):
            found.append((path, str(node["format"])))
        for prop, sub in node.get("properties", {}).items():
            walk(sub, (*path, prop))

    walk(_schema(name, major), ())
    return tuple(found)


def _violation(error: jsonschema_rs.ValidationError, prefix: str, what: str) -> ContractError:
    path = [str(part) for part in error.instance_path]
    kind = error.kind
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Required):
        path.append(str(kind.property))
        pointer = _pointer(prefix, path)
        return ContractError("schema_violation", f"required field {pointer} is missing", pointer)
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.AdditionalProperties):
        path.append(kind.unexpected[0])
        pointer = _pointer(prefix, path)
        return ContractError(
            "schema_violation", f"field {pointer} is not part of {what} contract", pointer
        )
    pointer = _pointer(prefix, path)
    detail = error.message if len(error.message) <= _MAX_DETAIL else error.message[:_MAX_DETAIL]
    return ContractError("schema_violation", f"{pointer or what}: {detail}", pointer or None)


def _pointer(prefix: str, path: list[str]) -> str:
    # RFC 6901 §3: "~" becomes "~0" and "/" becomes "~1", in that order.
    return prefix + "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in path)


def schema_for(type: str, major: int) -> dict[str, Any]:
    """A copy of the data schema of `type` at contract major `major`."""
    if type not in MESSAGE_TYPES:
        raise ContractError("unknown_type", f"message type {type!r} is not a known type")
    if major not in SERVED_MAJORS[type]:
        raise ContractError("unknown_contract", f"contract major {major} of {type} is not served")
    return copy.deepcopy(_schema(type, major))


def latest_major(type: str) -> int:
    """The newest major served of a message type."""
    return SERVED_MAJORS[type][-1]


def list_contracts() -> list[dict[str, object]]:
    """Every (type, major) the gateway serves, with the schema's $id, in a stable order."""
    return [
        {"type": name, "major": major, "$id": _schema(name, major)["$id"]}
        for major in CONTRACT_MAJORS
        for name in MESSAGE_TYPES
        if major in SERVED_MAJORS[name]
    ]


@cache
def _schema(name: str, major: int) -> dict[str, Any]:
    source = resources.files("contracts") / "schemas" / f"v{major}" / f"{name}.json"
    schema: dict[str, Any] = json.loads(source.read_text(encoding="utf-8"))
    if name == _ENVELOPE:  # its `type` enum is the served list (one source: served.json)
        schema["properties"]["type"]["enum"] = list(MESSAGE_TYPES)
    return schema


@cache
def _validator(name: str, major: int) -> jsonschema_rs.Validator:
    # Compiled once per process. Formats are assertions here (date, date-time, uri, uuid), not
    # annotations as 2020-12 defaults to; an unknown format in our own files is a bug, so refuse it.
    return jsonschema_rs.Draft202012Validator(
        _schema(name, major),
        validate_formats=True,
        ignore_unknown_formats=False,
        offline=True,  # pure: a $ref must never reach the network
    )
