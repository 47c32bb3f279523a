"""Structural compatibility of JSON Schemas (the 2020-12 subset our contracts use): does a
producer schema admit only documents a consumer schema accepts, and is a change from one version
of a schema to the next compatible within its major?

Sound, not complete: what the checker cannot prove (two different regular expressions, a keyword
it does not model) is reported as a break, so "compatible" is always a proof. Pointers are
RFC 6901 pointers into the document (not the schema); `-` stands for any item of an array and
`*` for any field the schema does not name.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from contracts.consumers import consumer_schema
from contracts.schema_algebra import (
    ANNOTATIONS,
    bound,
    conjoin,
    divides,
    finite_values,
    is_valid,
    looser,
    member_schema,
    other_members,
    pattern_member,
    resolve,
    types_meet,
    types_of,
)

__all__ = ["Break", "check_compatible", "judge_change"]

_STRING: tuple[str, ...] = ("minLength", "maxLength", "pattern", "format")
_NUMBER: tuple[str, ...] = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
)
_ARRAY: tuple[str, ...] = (
    "items",
    "prefixItems",
    "minItems",
    "maxItems",
    "uniqueItems",
    "contains",
)
_ARRAY += ("minContains", "maxContains", "unevaluatedItems")
_OBJECT: tuple[str, ...] = (
    "properties",
    "required",
    "additionalProperties",
    "unevaluatedProperties",
)
_OBJECT += ("patternProperties", "minProperties", "maxProperties", "propertyNames")
_OBJECT += ("dependentRequired", "dependentSchemas")
_MODELLED = frozenset(
    {"type", "enum", "const", "allOf", "anyOf", "oneOf", "$ref"}
    | set(_STRING)
    | set(_NUMBER)
    | set(_ARRAY)
    | set(_OBJECT)
)
_MAX_DEPTH = 64


@dataclass(frozen=True)
class Break:
    """One way a producer can emit a document a consumer refuses."""

    pointer: str  # where in the document, e.g. "/level" or "/related_message_ids/-"
    reason: str  # a sentence a person can act on

    def as_dict(self) -> dict[str, str]:
        return {"pointer": self.pointer, "reason": self.reason}


def check_compatible(
    producer: Mapping[str, Any] | bool, consumer: Mapping[str, Any] | bool
) -> list[Break]:
    """The breaks through which `producer` admits a document `consumer` refuses; [] when every
    document valid under `producer` is valid under `consumer` (formats are assertions)."""
    checker = _Checker(producer, consumer)
    checker.compare(producer, consumer, "", 0)
    return _unique(checker.breaks)


def judge_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Break]:
    """The breaks of a change from producer schema `old` to `new` within one major; [] is a
    compatible change.

    Both directions count: consumers of `old` must accept what `new` produces (so widening a
    type, an enum or a length is a break), and consumers of `new` must accept the documents made
    under `old` that the log still holds and replays (so adding a required field or narrowing
    is a break). Adding or removing an optional field passes both, since consumers ignore
    unknown fields. A field removed and another added with the same schema is judged a rename,
    and a break, even when both are optional.
    """
    forward = check_compatible(new, consumer_schema(old))
    backward = check_compatible(old, consumer_schema(new))
    return _unique(
        [*_renames(old, new, "")]
        + [Break(b.pointer, f"consumers of the old version refuse it: {b.reason}") for b in forward]
        + [
            Break(b.pointer, f"documents of the old version are refused: {b.reason}")
            for b in backward
        ]
    )


class _Checker:
    def __init__(self, producer: Any, consumer: Any) -> None:
        self.p_root = producer if isinstance(producer, Mapping) else {}
        self.c_root = consumer if isinstance(consumer, Mapping) else {}
        self.breaks: list[Break] = []
        self.following: set[tuple[int, int]] = set()  # ($ref, $ref) pairs being compared

    def add(self, pointer: str, reason: str) -> None:
        self.breaks.append(Break(pointer, reason))

    def compare(self, p_in: Any, c_in: Any, at: str, depth: int) -> None:
        if depth > _MAX_DEPTH:
            self.add(at, "the schemas nest too deeply to compare")
            return
        pair = (id(p_in), id(c_in))
        through_ref = _is_ref(p_in) or _is_ref(c_in)
        if through_ref:
            if pair in self.following:
                return  # a recursive schema met again: assume the pair holds (coinduction)
            self.following.add(pair)
        try:
            self._compare_resolved(p_in, c_in, at, depth)
        finally:
            if through_ref:
                self.following.discard(pair)

    def _compare_resolved(self, p_in: Any, c_in: Any, at: str, depth: int) -> None:
        p = resolve(p_in, self.p_root, producer=True)
        c = resolve(c_in, self.c_root, producer=False)
        if isinstance(c, str):
            self.add(at, c)  # the consumer's $ref could not be followed
            return
        if c is True or p is False or (isinstance(c, Mapping) and _constrains(c) == set()):
            return
        if c is False:
            self.add(at, "the consumer accepts nothing here, the producer may send a value")
            return
        self._compare_schemas(dict(p) if isinstance(p, Mapping) else {}, dict(c), at, depth)

    def _compare_schemas(self, p: dict[str, Any], c: dict[str, Any], at: str, depth: int) -> None:
        for key in ("anyOf", "oneOf"):
            if key in p:  # a document of the producer matches one of its branches
                rest = {k: v for k, v in p.items() if k != key}
                for branch in p[key]:
                    merged = conjoin(rest, resolve(branch, self.p_root, producer=True))
                    self.compare(merged, c, at, depth + 1)
                return
        if "allOf" in p:
            rest = {k: v for k, v in p.items() if k != "allOf"}
            for branch in p["allOf"]:
                rest = conjoin(rest, resolve(branch, self.p_root, producer=True))
            self.compare(rest, c, at, depth + 1)
            return
        values = finite_values(p)
        if values is not None:  # the producer names its values: try each on the consumer
            self._compare_values(p, c, values, at)
            return
        for branch in c.get("allOf", ()):
            self.compare(p, branch, at, depth + 1)
        for key in ("anyOf", "oneOf"):
            if key in c:
                self._fit_one_branch(p, c[key], at, depth, exclusive=key == "oneOf")
        c = {k: v for k, v in c.items() if k not in ("allOf", "anyOf", "oneOf")}
        if "enum" in c or "const" in c:
            allowed = c["enum"] if "enum" in c else [c["const"]]
            self.add(at, f"the consumer accepts only {_show(allowed)}, the producer any value")
            return
        for keyword in sorted(set(c) - _MODELLED - ANNOTATIONS):
            self.add(at, f"the consumer's keyword {keyword!r} is not modelled; cannot prove")
        self._compare_types(p, c, at, depth)

    def _fit_one_branch(
        self, p: dict[str, Any], branches: Sequence[Any], at: str, depth: int, *, exclusive: bool
    ) -> None:
        # Each type the producer may send must fit one consumer branch; for oneOf, no other.
        p_types = types_of(p)
        splits = [p] if p_types is None or len(p_types) < 2 else [p | {"type": t} for t in p_types]
        for part in splits:
            trials = [self._trial(part, branch, at, depth) for branch in branches]
            fitting = [i for i, breaks in enumerate(trials) if not breaks]
            if not fitting:
                first = trials[0][0].reason if trials and trials[0] else "no branch"
                self.add(at, f"fits none of the consumer's alternatives (first: {first})")
                continue
            if exclusive:
                others = [b for i, b in enumerate(branches) if i != fitting[0]]
                if not all(self._disjoint(part, branch) for branch in others):
                    self.add(at, "may match more than one of the consumer's oneOf alternatives")

    def _trial(self, p: dict[str, Any], c: Any, at: str, depth: int) -> list[Break]:
        trial = _Checker(self.p_root, self.c_root)
        trial.following = set(self.following)
        trial.compare(p, c, at, depth + 1)
        return trial.breaks

    def _disjoint(self, p: dict[str, Any], c_in: Any) -> bool:
        c = resolve(c_in, self.c_root, producer=False)
        if not isinstance(c, Mapping):
            return c is False
        p_types, c_types = types_of(p), types_of(c)
        if p_types is not None and c_types is not None and not types_meet(p_types, c_types):
            return True
        values = finite_values(p)
        if values is not None:
            return not any(is_valid(v, c, self.c_root, default=True) for v in values)
        for name in p.get("required", ()):
            sub = resolve(p.get("properties", {}).get(name, True), self.p_root, producer=True)
            c_sub = c.get("properties", {}).get(name)
            sub_values = finite_values(sub) if isinstance(sub, Mapping) else None
            if (
                c_sub is not None
                and sub_values is not None
                and not any(is_valid(v, c_sub, self.c_root, default=True) for v in sub_values)
            ):
                return True
        return False

    def _compare_values(
        self, p: dict[str, Any], c: dict[str, Any], values: list[Any], at: str
    ) -> None:
        for value in values:
            if is_valid(value, p, self.p_root, default=True) and not is_valid(
                value, c, self.c_root, default=False
            ):
                self.add(at, f"the producer may send {_show([value])}, the consumer refuses it")

    def _compare_types(self, p: dict[str, Any], c: dict[str, Any], at: str, depth: int) -> None:
        p_types, c_types = types_of(p), types_of(c)
        if p_types is None and c_types is not None:
            wanted = " or ".join(sorted(c_types))
            self.add(at, f"the consumer accepts only {wanted}, the producer any type")
            return
        p_types = p_types or {"object", "array", "string", "number", "null", "boolean"}
        if "number" in p_types:
            p_types = p_types - {"integer"}  # number already covers the integers
        for kind in sorted(p_types):
            if c_types is not None and not (
                kind in c_types or (kind == "integer" and "number" in c_types)
            ):
                wanted = " or ".join(sorted(c_types))
                self.add(at, f"the producer may send a {kind}, the consumer accepts only {wanted}")
                continue
            compare = _BY_TYPE.get(kind)
            if compare is not None:
                compare(self, p, c, at, depth)

    def _strings(self, p: dict[str, Any], c: dict[str, Any], at: str, depth: int) -> None:
        _at_least(self, at, "length", p.get("minLength", 0), c.get("minLength", 0))
        _at_most(self, at, "length", p.get("maxLength"), c.get("maxLength"))
        for keyword in ("pattern", "format"):
            if keyword in c and p.get(keyword) != c[keyword]:
                self.add(
                    at,
                    f"the consumer's {keyword} {c[keyword]!r} is not the producer's "
                    f"{p.get(keyword)!r} ({keyword}s are compared literally)",
                )

    def _numbers(self, p: dict[str, Any], c: dict[str, Any], at: str, depth: int) -> None:
        c_low, p_low = bound(c, "minimum"), bound(p, "minimum")
        if c_low is not None and (p_low is None or looser(p_low, c_low, lower=True)):
            self.add(
                at,
                f"the consumer needs {_show_bound(c_low, '>')}, the producer "
                f"{'allows any' if p_low is None else _show_bound(p_low, '>')}",
            )
        c_high, p_high = bound(c, "maximum"), bound(p, "maximum")
        if c_high is not None and (p_high is None or looser(p_high, c_high, lower=False)):
            self.add(
                at,
                f"the consumer needs {_show_bound(c_high, '<')}, the producer "
                f"{'allows any' if p_high is None else _show_bound(p_high, '<')}",
            )
        step = c.get("multipleOf")
        if step is not None and not divides(step, p.get("multipleOf"), types_of(p)):
            self.add(at, f"the consumer needs a multiple of {step}, the producer does not")

    def _arrays(self, p: dict[str, Any], c: dict[str, Any], at: str, depth: int) -> None:
        p_prefix, c_prefix = p.get("prefixItems", []), c.get("prefixItems", [])
        p_items, c_items = p.get("items", True), c.get("items", True)
        for i in range(max(len(p_prefix), len(c_prefix))):
            p_i = p_prefix[i] if i < len(p_prefix) else p_items
            c_i = c_prefix[i] if i < len(c_prefix) else c_items
            self.compare(p_i, c_i, f"{at}/{i}", depth + 1)
        self.compare(p_items, c_items, f"{at}/-", depth + 1)
        _at_least(self, at, "item count", p.get("minItems", 0), c.get("minItems", 0))
        _at_most(self, at, "item count", p.get("maxItems"), c.get("maxItems"))
        if c.get("uniqueItems") is True and p.get("uniqueItems") is not True:
            self.add(at, "the consumer needs unique items, the producer may repeat one")
        for keyword in ("contains", "minContains", "maxContains", "unevaluatedItems"):
            if keyword in c and c[keyword] != p.get(keyword):
                self.add(
                    at, f"the consumer's {keyword!r} differs from the producer's; cannot prove"
                )

    def _objects(self, p: dict[str, Any], c: dict[str, Any], at: str, depth: int) -> None:
        p_props, c_props = p.get("properties", {}), c.get("properties", {})
        p_required = set(p.get("required", ()))
        for name in c.get("required", ()):
            if name not in p_required:
                self.add(
                    _child(at, name), "the consumer requires it, the producer may leave it out"
                )
        for name, c_sub in c_props.items():
            self.compare(member_schema(p, name), c_sub, _child(at, name), depth + 1)
        c_other = other_members(c)
        for name, p_sub in p_props.items():
            if name in c_props:
                continue
            c_sub = pattern_member(c, name, c_other)
            if c_sub is False and p_sub is not False:
                self.add(
                    _child(at, name),
                    "the producer may send it, the consumer refuses unknown fields",
                )
            else:
                self.compare(p_sub, c_sub, _child(at, name), depth + 1)
        p_other = other_members(p)
        if p_other is not False and (c_other is not True or c.get("patternProperties")):
            if c_other is False or c.get("patternProperties"):
                self.add(at, "the producer may send other fields, the consumer refuses some")
            else:
                self.compare(p_other, c_other, f"{at}/*", depth + 1)
        self._object_counts(p, c, at)
        for keyword in ("dependentRequired", "dependentSchemas"):
            if keyword in c and c[keyword] != p.get(keyword):
                self.add(
                    at, f"the consumer's {keyword!r} differs from the producer's; cannot prove"
                )
        if "propertyNames" in c and c["propertyNames"] != p.get("propertyNames"):
            names = list(p_props)
            closed = p_other is False and not p.get("patternProperties")
            names_fit = all(
                is_valid(n, c["propertyNames"], self.c_root, default=False) for n in names
            )
            if not closed or not names_fit:
                self.add(at, "the consumer restricts field names, the producer does not")

    def _object_counts(self, p: dict[str, Any], c: dict[str, Any], at: str) -> None:
        p_min = max(p.get("minProperties", 0), len(set(p.get("required", ()))))
        closed = other_members(p) is False and not p.get("patternProperties")
        p_max = p.get("maxProperties", len(p.get("properties", {})) if closed else None)
        _at_least(self, at, "field count", p_min, c.get("minProperties", 0))
        _at_most(self, at, "field count", p_max, c.get("maxProperties"))


_BY_TYPE: dict[str, Callable[[_Checker, dict[str, Any], dict[str, Any], str, int], None]] = {
    "string": _Checker._strings,
    "number": _Checker._numbers,
    "integer": _Checker._numbers,
    "array": _Checker._arrays,
    "object": _Checker._objects,
}


def _renames(old: Any, new: Any, at: str) -> Iterable[Break]:
    """A field that disappears while another with the very same schema appears: a rename."""
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    added = [n for n in new_props if n not in old_props]
    for name in [n for n in old_props if n not in new_props]:
        twin = next((a for a in added if _shape(new_props[a]) == _shape(old_props[name])), None)
        if twin is not None:
            added.remove(twin)
            yield Break(_child(at, name), f"renamed to {twin!r} (same schema): a rename is a break")
    for name in old_props.keys() & new_props.keys():
        yield from _renames(old_props[name], new_props[name], _child(at, name))
    yield from _renames(old.get("items"), new.get("items"), f"{at}/-")
    for defs in ("$defs", "definitions"):
        for name in old.get(defs, {}).keys() & new.get(defs, {}).keys():
            yield from _renames(old[defs][name], new[defs][name], at)


def _shape(schema: Any) -> Any:
    if isinstance(schema, Mapping):
        return {k: _shape(v) for k, v in schema.items() if k not in ANNOTATIONS}
    if isinstance(schema, list):
        return [_shape(v) for v in schema]
    return schema


def _is_ref(node: Any) -> bool:
    return isinstance(node, Mapping) and "$ref" in node


def _constrains(schema: Mapping[str, Any]) -> set[str]:
    return set(schema) - ANNOTATIONS


def _at_least(checker: _Checker, at: str, what: str, p_min: int, c_min: int) -> None:
    if p_min < c_min:
        checker.add(
            at, f"the consumer needs a {what} of at least {c_min}, the producer allows {p_min}"
        )


def _at_most(checker: _Checker, at: str, what: str, p_max: int | None, c_max: int | None) -> None:
    if c_max is not None and (p_max is None or p_max > c_max):
        allowed = "no limit" if p_max is None else p_max
        checker.add(at, f"the consumer allows a {what} of at most {c_max}, the producer {allowed}")


def _show_bound(limit: tuple[float, bool], direction: str) -> str:
    value = int(limit[0]) if limit[0].is_integer() else limit[0]
    return f"{direction}{'' if limit[1] else '='} {value}"


def _show(values: Sequence[Any]) -> str:
    text = ", ".join(json.dumps(v, ensure_ascii=False) for v in values)
    return text if len(text) <= 200 else text[:197] + "…"


def _child(at: str, name: str) -> str:
    # RFC 6901 §3: "~" becomes "~0" and "/" becomes "~1", in that order.
    return f"{at}/{name.replace('~', '~0').replace('/', '~1')}"


def _unique(breaks: Iterable[Break]) -> list[Break]:
    return list(dict.fromkeys(breaks))
