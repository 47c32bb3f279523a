"""The schema operations the compatibility checker is built from: following local `$ref`s,
the conjunction of two producer schemas, a schema's type set, and checking one value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

import jsonschema_rs

__all__ = [
    "ANNOTATIONS",
    "bound",
    "conjoin",
    "divides",
    "finite_values",
    "is_valid",
    "looser",
    "member_schema",
    "other_members",
    "pattern_member",
    "resolve",
    "types_meet",
    "types_of",
]

# Keywords that do not restrict what a schema accepts (2020-12 core, meta-data, content).
ANNOTATIONS = frozenset(
    {
        "$schema",
        "$id",
        "$anchor",
        "$dynamicAnchor",
        "$comment",
        "$defs",
        "definitions",
        "$vocabulary",
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
        "contentEncoding",
        "contentMediaType",
        "contentSchema",
    }
)
_LOWER = frozenset({"minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties"})
_UPPER = frozenset({"maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties"})
_MAX_HOPS = 32
_FINITE: dict[str, list[Any]] = {"null": [None], "boolean": [False, True]}


def resolve(
    node: Any, root: Mapping[str, Any], *, producer: bool
) -> Mapping[str, Any] | bool | str:
    """`node` with its `$ref` followed inside `root` (`#…` or `root.$id#…`); constraining
    siblings of a `$ref` are kept as an allOf (2020-12 §8.2.3.1).

    A reference that cannot be followed becomes `True` on the producer's side (it may admit
    anything) and a sentence on the consumer's (the caller reports it as a break)."""
    for _ in range(_MAX_HOPS):
        if isinstance(node, bool) or (isinstance(node, Mapping) and "$ref" not in node):
            return node
        if not isinstance(node, Mapping):
            return True if producer else f"the consumer's schema is not a schema: {node!r}"
        ref = node["$ref"]
        target = _lookup(ref, root) if isinstance(ref, str) else None
        if target is None:
            return True if producer else f"cannot follow the consumer's $ref {ref!r}"
        siblings = {k: v for k, v in node.items() if k != "$ref" and k not in ANNOTATIONS}
        if siblings:
            return {"allOf": [target, siblings]}
        node = target
    return True if producer else "the consumer's $ref chain is too long to follow"


def _lookup(ref: str, root: Mapping[str, Any]) -> Any:
    base, _, fragment = ref.partition("#")
    if base and base != root.get("$id"):
        return None  # another document: contracts are self-contained, nothing is fetched
    node: Any = root
    for token in [t for t in fragment.split("/") if t] if fragment.startswith("/") else []:
        token = unquote(token).replace("~1", "/").replace("~0", "~")  # RFC 6901 §4
        if isinstance(node, Mapping) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    if fragment and not fragment.startswith("/"):
        return None  # a plain-name fragment ($anchor): not used by our contracts
    return node


def types_of(schema: Mapping[str, Any]) -> set[str] | None:
    """The `type` keyword as a set; None when the schema does not restrict the type."""
    kind = schema.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return {str(k) for k in kind}
    return None


def conjoin(a: Mapping[str, Any], b: Any) -> dict[str, Any]:
    """A schema admitting at least every value both `a` and `b` admit: exact for the keywords
    our contracts combine (type, required, properties, enum, bounds), and otherwise keeping
    `a`'s constraint. Dropping a constraint only widens, which is safe for a producer."""
    if b is True or not isinstance(b, Mapping):
        return dict(a)
    if b is False:
        return {"enum": []}
    out = dict(a)
    for key, value in b.items():
        if key not in out or out[key] == value:
            out[key] = value
            continue
        mine = out[key]
        if key == "type":
            met = _meet(types_of(out) or set(), types_of(b) or set())
            if not met:
                return {"enum": []}
            out[key] = sorted(met)
        elif key == "required":
            out[key] = sorted({*mine, *value})
        elif key == "properties":
            out[key] = {
                name: {"allOf": [mine[name], sub]} if name in mine else sub
                for name, sub in value.items()
            } | {name: sub for name, sub in mine.items() if name not in value}
        elif key == "enum":
            out[key] = [v for v in mine if any(_same(v, w) for w in value)]
        elif key in _LOWER:
            out[key] = max(mine, value)
        elif key in _UPPER:
            out[key] = min(mine, value)
        elif key == "allOf":
            out[key] = [*mine, *value]
    return out


def _meet(a: set[str], b: set[str]) -> set[str]:
    met = a & b
    if ("number" in a and "integer" in b) or ("number" in b and "integer" in a):
        met.add("integer")
    return met


def _same(a: Any, b: Any) -> bool:
    # JSON equality: Python's == takes True for 1 and 1 for 1.0; JSON Schema takes only the latter.
    return bool(_canonical(a) == _canonical(b))


def _canonical(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value, sort_keys=True)


def is_valid(value: Any, schema: Any, root: Mapping[str, Any], *, default: bool) -> bool:
    """Whether `value` is valid under `schema`, a subschema of `root` (its `$defs` come along);
    `default` when the schema cannot be compiled (the caller picks the safe answer)."""
    if isinstance(schema, bool):
        return schema
    if not isinstance(schema, Mapping):
        return default
    document = dict(schema)
    for key in ("$defs", "definitions"):
        if key in root and key not in document:
            document[key] = root[key]
    if "$id" in root and "$id" not in document:
        document["$id"] = root["$id"]
    validator = _compiled(json.dumps(document, sort_keys=True))
    return default if validator is None else bool(validator.is_valid(value))


@lru_cache(maxsize=512)
def _compiled(text: str) -> jsonschema_rs.Validator | None:
    try:
        return jsonschema_rs.Draft202012Validator(
            json.loads(text), validate_formats=True, ignore_unknown_formats=True, offline=True
        )
    except (ValueError, jsonschema_rs.ReferencingError):
        return None


def finite_values(p: Mapping[str, Any]) -> list[Any] | None:
    """The values a producer schema admits, when it names them (const, enum, null, boolean)."""
    if "const" in p:
        return [p["const"]]
    if "enum" in p:
        return list(p["enum"])
    p_types = types_of(p)
    if p_types is not None and p_types <= set(_FINITE):
        return [v for t in sorted(p_types) for v in _FINITE[t]]
    return None


def types_meet(a: set[str], b: set[str]) -> bool:
    widen = {"integer"}
    return bool(a & b or ("number" in a and b & widen) or ("number" in b and a & widen))


def member_schema(p: Mapping[str, Any], name: str) -> Any:
    """What the producer admits under field `name` (False: never sends it)."""
    if name in p.get("properties", {}):
        return p["properties"][name]
    return pattern_member(p, name, other_members(p))


def pattern_member(schema: Mapping[str, Any], name: str, others: Any) -> Any:
    for pattern, sub in schema.get("patternProperties", {}).items():
        try:
            if re.search(pattern, name):
                return sub
        except re.error:
            return True  # an ECMA-262 pattern Python cannot read: assume the widest
    return others


def other_members(schema: Mapping[str, Any]) -> Any:
    # Without applicators beside it, unevaluatedProperties acts as additionalProperties does.
    if "additionalProperties" in schema:
        return schema["additionalProperties"]
    return schema.get("unevaluatedProperties", True)


def bound(schema: Mapping[str, Any], side: str) -> tuple[float, bool] | None:
    """(value, exclusive) of the tighter of `minimum`/`exclusiveMinimum` (or the maximums)."""
    exclusive = "exclusiveMinimum" if side == "minimum" else "exclusiveMaximum"
    found = []
    if isinstance(schema.get(side), int | float):
        found.append((float(schema[side]), False))
    if isinstance(schema.get(exclusive), int | float):
        found.append((float(schema[exclusive]), True))
    if not found:
        return None
    if side == "minimum":
        return max(found, key=lambda b: (b[0], b[1]))
    return min(found, key=lambda b: (b[0], not b[1]))


def looser(p: tuple[float, bool], c: tuple[float, bool], *, lower: bool) -> bool:
    if p[0] != c[0]:
        return p[0] < c[0] if lower else p[0] > c[0]
    return c[1] and not p[1]  # equal values: only an inclusive producer vs exclusive consumer


def divides(step: float, p_step: float | None, p_types: set[str] | None) -> bool:
    if p_step is not None and (p_step / step).is_integer():
        return True
    return p_types == {"integer"} and (1 / step).is_integer()
