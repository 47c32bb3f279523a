"""Tolerant consumer schemas, derived from the strict producer schemas: the same document shape
with unknown fields ignored instead of refused (a tolerant reader). Never stored: always derived.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

__all__ = ["consumer_id", "consumer_schema"]

# The keywords that refuse unknown members. Only their `false` form is dropped: a schema-valued
# additionalProperties describes a map's values, which a consumer must still understand.
_STRICT = frozenset({"additionalProperties", "unevaluatedProperties"})
# Where subschemas sit in the 2020-12 vocabularies. `not` and `if` are left untouched: loosening
# a schema under a negation or a condition would narrow, not widen, what the whole accepts.
_SCHEMA_MAPS = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
)
_SCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SCHEMA_VALUES = frozenset(
    {
        "items",
        "additionalItems",
        "contains",
        "then",
        "else",
        "propertyNames",
        "unevaluatedItems",
        "additionalProperties",
        "unevaluatedProperties",
    }
)


def consumer_schema(producer: Mapping[str, Any]) -> dict[str, Any]:
    """The consumer schema of `producer`: every `additionalProperties: false` and
    `unevaluatedProperties: false` removed, at every depth; `$id` gets a `.consumer` suffix so
    both can live in one schema registry. Everything else (types, enums, lengths) is unchanged:
    tolerance is about unknown fields only, never about unknown values."""
    schema = _tolerate(producer)
    assert isinstance(schema, dict)
    if isinstance(schema.get("$id"), str):
        schema["$id"] = consumer_id(schema["$id"])
        schema["$comment"] = (
            f"Derived from {producer['$id']}: unknown fields are ignored (tolerant reader)."
        )
    return schema


def consumer_id(producer_id: str) -> str:
    """`…/grade.awarded.json` → `…/grade.awarded.consumer.json`; `…/bank_credit/1` →
    `…/bank_credit/1/consumer`."""
    base = producer_id.removesuffix("#")  # an empty fragment is the only one $id may carry
    if base.endswith(".json"):
        return base.removesuffix(".json") + ".consumer.json"
    return base.rstrip("/") + "/consumer"


def _tolerate(node: Any) -> Any:
    if not isinstance(node, Mapping):
        return copy.deepcopy(node)  # a boolean schema, or a keyword's plain value
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _STRICT and value is False:
            continue
        if key in _SCHEMA_MAPS and isinstance(value, Mapping):
            out[key] = {name: _tolerate(sub) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [_tolerate(sub) for sub in value]
        elif key in _SCHEMA_VALUES:
            out[key] = _tolerate(value)
        else:  # enum, const, default, examples: values, not schemas; copied as they are
            out[key] = copy.deepcopy(value)
    return out
