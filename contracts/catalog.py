"""A catalog version as a whole: its measures, the premium products whose floats they set and
how those floats combine (per product and region), and the grading schemes it recognises.

The premium rule is the seed's own link (闽安委〔2017〕1号 五（五）): the liability insurance
rate follows the grade, the accident record and the lists; how floats combine is catalog data
(domain.md §5), and a penalty is never cancelled by a discount. Pure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from importlib import resources
from typing import Any

from contracts.measures import (
    DEFAULT_RECORD_PERIOD_MONTHS,
    MAX_RECORD_PERIOD_MONTHS,
    CatalogError,
    InvalidMeasure,
    Measure,
    Standing,
    _date,
    _trigger,
    applicable,
    parse_catalog,
    parse_stored_measure,
    triggered,
)
from contracts.sources import InvalidSource, Source, check_record_against, parse_source

__all__ = [
    "Catalog",
    "Finding",
    "Premium",
    "PremiumProduct",
    "Scheme",
    "parse_document",
    "premium",
    "shipped_document",
]

_SCHEME_CODE = re.compile(r"[a-z][a-z0-9_]{1,31}")
_REGION_PREFIX = re.compile(r"\d{0,6}")
_PRODUCT_FIELDS = frozenset(
    {
        "product",
        "role",
        "title",
        "combine",
        "floor",
        "ceiling",
        "penalty_blocks_discounts",
        "discounts_withheld_when",
        "applies_at",
        "record_period_months",
        "region_prefix",
        "valid_from",
        "valid_to",
        "source",
    }
)
_SCHEME_FIELDS = frozenset({"code", "name", "standard", "sector", "source"})
_FINDING_FIELDS = frozenset({"code", "title", "source"})
_FINDING_CODE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
APPLIES_AT = ("policy_renewal", "contribution_year")


@dataclass(frozen=True)
class PremiumProduct:
    """How the floats of one premium product combine in a region: summed, then held between
    `floor` and `ceiling` (fractions: −0.3 is a factor of at least 0.7); with
    `penalty_blocks_discounts` no discount is set against a penalty (a float > 0), and while
    `discounts_withheld_when` holds (a trigger, e.g. a revoked grade) no discount applies at all.
    A document applies at `applies_at` (the next policy renewal) to the policy year, from the
    record of the `record_period_months` before its date."""

    product: str
    role: str
    title: str
    combine: str
    floor: float | None
    ceiling: float | None
    penalty_blocks_discounts: bool
    discounts_withheld_when: Mapping[str, Any]
    applies_at: str
    record_period_months: int
    region_prefix: str
    valid_from: date
    valid_to: date | None
    source: Source

    def in_force(self, region_code: str, on: date) -> bool:
        return (
            region_code.startswith(self.region_prefix)
            and self.valid_from <= on
            and (self.valid_to is None or on < self.valid_to)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "product": self.product,
            "role": self.role,
            "title": self.title,
            "combine": self.combine,
            "floor": self.floor,
            "ceiling": self.ceiling,
            "penalty_blocks_discounts": self.penalty_blocks_discounts,
            "discounts_withheld_when": dict(self.discounts_withheld_when),
            "applies_at": self.applies_at,
            "record_period_months": self.record_period_months,
            "region_prefix": self.region_prefix,
            "valid_from": self.valid_from.isoformat(),
            "valid_to": self.valid_to.isoformat() if self.valid_to else None,
            "source": self.source.as_dict(),
        }


# A product named by a measure but with no combination rule in force (catalogs stored before
# products were rules): summed, unbounded, as documents were made then.
def _plain_rule(product: str, role: str) -> PremiumProduct:
    return PremiumProduct(
        product=product,
        role=role,
        title=product,
        combine="sum",
        floor=None,
        ceiling=None,
        penalty_blocks_discounts=False,
        discounts_withheld_when={},
        applies_at="policy_renewal",
        record_period_months=DEFAULT_RECORD_PERIOD_MONTHS,
        region_prefix="",
        valid_from=date.min,
        valid_to=None,
        source=Source.legacy("no combination rule recorded: floats summed, unbounded"),
    )


@dataclass(frozen=True)
class Scheme:
    """A grading scheme (行业专业类别) the gateway accepts in registrations and awards: a
    national industry scheme or a sector graded on a provincial standard (三（一）, AQ/T 9006)."""

    code: str
    name: str
    standard: str
    sector: str  # national | provincial
    source: Source

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "standard": self.standard,
            "sector": self.sector,
            "source": self.source.as_dict(),
        }


@dataclass(frozen=True)
class Finding:
    """A deducted item (失分项) an inspection may name: e.g. an element of GB/T 33000-2016."""

    code: str
    title: str
    source: Source

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "title": self.title, "source": self.source.as_dict()}


@dataclass(frozen=True)
class Catalog:
    measures: tuple[Measure, ...]
    products: tuple[PremiumProduct, ...] = ()
    schemes: tuple[Scheme, ...] = field(default=())
    findings: tuple[Finding, ...] = field(default=())

    def scheme_codes(self) -> frozenset[str]:
        return frozenset(s.code for s in self.schemes)

    def finding_codes(self) -> frozenset[str]:
        return frozenset(f.code for f in self.findings)

    def product_rule(self, product: str, role: str, region_code: str, on: date) -> PremiumProduct:
        """The rule in force for `product` in the region on the day (the longest prefix)."""
        rules = [r for r in self.products if r.product == product and r.in_force(region_code, on)]
        if not rules:
            return _plain_rule(product, role)
        return max(rules, key=lambda r: (len(r.region_prefix), r.valid_from))

    def record_periods(self, region_code: str, on: date) -> dict[str, int]:
        """Each product's record period (months) under its rule in force in the region on the
        day: the accidents its floats count."""
        products = {rule.product for rule in self.products}
        return {
            product: self.product_rule(product, "", region_code, on).record_period_months
            for product in products
        }


@dataclass(frozen=True)
class Float:
    measure: Measure
    value: float
    withheld: str | None  # why it is not applied; None: applied


@dataclass(frozen=True)
class Premium:
    """One product's factor for a standing on a day, with every float and why it counted."""

    rule: PremiumProduct
    floats: tuple[Float, ...]
    total: float  # the applied floats summed
    bounded: float  # the total held between floor and ceiling
    factor: float  # 1 + bounded, rounded to 4 places
    accidents: tuple[str, ...] = ()  # the classes counted: those of the rule's record period


def premium(
    standing: Standing,
    region_code: str,
    on: date,
    catalog: Catalog | None,
    product: str,
    role: str,
) -> Premium:
    """The premium factor of `product` for `standing` on `on`: the floats of the measures of
    `role` for that product that apply, combined by the product's rule in force."""
    chosen = catalog if catalog is not None else shipped_document()
    rule = chosen.product_rule(product, role, region_code, on)
    periods = {product: rule.record_period_months}
    measures = [
        m
        for m in applicable(standing, region_code, on, chosen.measures, role, periods).get(role, [])
        if m.product == product and "premium_float" in m.effect
    ]
    values = [(m, float(m.effect["premium_float"])) for m in measures]
    penalty = any(v > 0 for _, v in values)
    why: str | None = None
    if rule.penalty_blocks_discounts and penalty:
        why = "a penalty applies: no discount is set against it"
    elif rule.discounts_withheld_when and triggered(rule.discounts_withheld_when, standing):
        why = "withheld while " + _describe(rule.discounts_withheld_when)
    floats = tuple(Float(m, v, why if v < 0 else None) for m, v in values)
    total = round(sum(f.value for f in floats if f.withheld is None), 6)
    bounded = total
    if rule.floor is not None:
        bounded = max(bounded, rule.floor)
    if rule.ceiling is not None:
        bounded = min(bounded, rule.ceiling)
    counted = tuple(standing.over_months(rule.record_period_months).accident_classes)
    return Premium(rule, floats, total, bounded, round(1 + bounded, 4), counted)


def _describe(trigger: Mapping[str, Any]) -> str:
    return "; ".join(f"{key} {value}" for key, value in sorted(trigger.items()))


# --- parsing -----------------------------------------------------------------------------------


def parse_document(
    document: Any, roles: Collection[str] | None = None, previous: Catalog | None = None
) -> Catalog:
    """A catalog document ({"records": [...], "products": [...], "schemes": [...]}) checked
    whole, or CatalogError naming the section's record and field. A section left out is
    carried over from `previous` (the version in force), so an operator may republish the
    measures alone."""
    if not isinstance(document, Mapping):
        raise CatalogError(None, None, InvalidMeasure("document", "a catalog is a JSON object"))
    measures = parse_catalog(document.get("records"), roles)
    products = (
        _section(document["products"], _product, roles)
        if "products" in document
        else (previous.products if previous else ())
    )
    schemes = (
        _section(document["schemes"], lambda r, _: _scheme(r), roles)
        if "schemes" in document
        else (previous.schemes if previous else ())
    )
    findings = (
        _section(document["findings"], lambda r, _: _finding(r), roles)
        if "findings" in document
        else (previous.findings if previous else ())
    )
    _refuse_duplicate_schemes(schemes)
    for measure in measures:
        if measure.product is not None and not any(p.product == measure.product for p in products):
            raise CatalogError(
                list(measures).index(measure),
                measure.code,
                InvalidMeasure(
                    "product", f"product {measure.product!r} has no rule in the products list"
                ),
            )
    return Catalog(measures, products, schemes, findings)


def parse_stored_document(stored: Any) -> Catalog:
    """A stored version as it was stored: a bare list of records (versions before products
    and schemes) or a document; records read by parse_stored_measure."""
    records = stored if isinstance(stored, list) else stored.get("records", [])
    measures = tuple(parse_stored_measure(r) for r in records)
    if isinstance(stored, list):
        return Catalog(measures)
    products = tuple(_product(r, None) for r in stored.get("products", []))
    schemes = tuple(_scheme(r) for r in stored.get("schemes", []))
    findings = tuple(_finding(r) for r in stored.get("findings", []))
    return Catalog(measures, products, schemes, findings)


def _section(records: Any, parse: Any, roles: Collection[str] | None) -> tuple[Any, ...]:
    if not isinstance(records, list):
        raise CatalogError(None, None, InvalidMeasure("section", "a section is a list"))
    parsed = []
    for index, record in enumerate(records):
        try:
            parsed.append(parse(record, roles))
        except InvalidMeasure as exc:
            named = (
                (record.get("product") or record.get("code")) if isinstance(record, dict) else None
            )
            raise CatalogError(index, named if isinstance(named, str) else None, exc) from exc
    return tuple(parsed)


def _source(record: Mapping[str, Any], region_prefix: str, valid_from: date) -> Source:
    try:
        source = parse_source(record.get("source"))
        check_record_against(source, region_prefix, valid_from)
    except InvalidSource as exc:
        raise InvalidMeasure(exc.field, str(exc)) from exc
    return source


def _fraction(record: Mapping[str, Any], name: str) -> float | None:
    value = record.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not -1 < value < 1:
        raise InvalidMeasure(name, f"{name} is a fraction between −1 and 1 (−0.3 for −30 %)")
    return float(value)


def _product(record: Any, roles: Collection[str] | None) -> PremiumProduct:
    if not isinstance(record, Mapping):
        raise InvalidMeasure("record", "a product rule is a JSON object")
    unknown = sorted(set(record) - _PRODUCT_FIELDS)
    if unknown:
        raise InvalidMeasure(unknown[0], f"unknown field {unknown[0]!r}")
    for name in ("product", "role", "title"):
        if not isinstance(record.get(name), str) or not record[name].strip():
            raise InvalidMeasure(name, f"{name} must be a non-empty string")
    if roles is not None and record["role"] not in roles:
        raise InvalidMeasure("role", f"role {record['role']!r} is not an agency role")
    if record.get("combine", "sum") != "sum":
        raise InvalidMeasure("combine", "combine must be sum (the floats summed)")
    floor, ceiling = _fraction(record, "floor"), _fraction(record, "ceiling")
    if floor is not None and ceiling is not None and floor > ceiling:
        raise InvalidMeasure("floor", "floor must not be above ceiling")
    if not isinstance(record.get("penalty_blocks_discounts", False), bool):
        raise InvalidMeasure("penalty_blocks_discounts", "penalty_blocks_discounts is true/false")
    withheld = record.get("discounts_withheld_when") or {}
    applies_at = record.get("applies_at", "policy_renewal")
    if applies_at not in APPLIES_AT:
        raise InvalidMeasure("applies_at", f"applies_at must be one of {', '.join(APPLIES_AT)}")
    months = record.get("record_period_months", DEFAULT_RECORD_PERIOD_MONTHS)
    longest = MAX_RECORD_PERIOD_MONTHS
    if isinstance(months, bool) or not isinstance(months, int) or not 1 <= months <= longest:
        raise InvalidMeasure("record_period_months", f"record_period_months is 1 to {longest}")
    prefix = record.get("region_prefix", "")
    if not isinstance(prefix, str) or not _REGION_PREFIX.fullmatch(prefix):
        raise InvalidMeasure("region_prefix", "region_prefix must be up to six digits")
    valid_from = _date(record, "valid_from")
    valid_to = _date(record, "valid_to") if record.get("valid_to") is not None else None
    if valid_to is not None and valid_to <= valid_from:
        raise InvalidMeasure("valid_to", "valid_to must be after valid_from (it is exclusive)")
    return PremiumProduct(
        product=record["product"],
        role=record["role"],
        title=record["title"],
        combine="sum",
        floor=floor,
        ceiling=ceiling,
        penalty_blocks_discounts=bool(record.get("penalty_blocks_discounts", False)),
        discounts_withheld_when=_trigger(withheld) if withheld else {},
        applies_at=applies_at,
        record_period_months=months,
        region_prefix=prefix,
        valid_from=valid_from,
        valid_to=valid_to,
        source=_source(record, prefix, valid_from),
    )


def _scheme(record: Any) -> Scheme:
    if not isinstance(record, Mapping):
        raise InvalidMeasure("record", "a scheme is a JSON object")
    unknown = sorted(set(record) - _SCHEME_FIELDS)
    if unknown:
        raise InvalidMeasure(unknown[0], f"unknown field {unknown[0]!r}")
    code = record.get("code")
    if not isinstance(code, str) or not _SCHEME_CODE.fullmatch(code):
        raise InvalidMeasure("code", "a scheme code is 2-32 lower-case letters, digits or _")
    for name in ("name", "standard"):
        if not isinstance(record.get(name), str) or not record[name].strip():
            raise InvalidMeasure(name, f"{name} must be a non-empty string")
    if record.get("sector") not in ("national", "provincial"):
        raise InvalidMeasure("sector", "sector is national or provincial")
    try:
        source = parse_source(record.get("source"))
    except InvalidSource as exc:
        raise InvalidMeasure(exc.field, str(exc)) from exc
    return Scheme(code, record["name"], record["standard"], record["sector"], source)


def _finding(record: Any) -> Finding:
    if not isinstance(record, Mapping):
        raise InvalidMeasure("record", "a finding is a JSON object")
    unknown = sorted(set(record) - _FINDING_FIELDS)
    if unknown:
        raise InvalidMeasure(unknown[0], f"unknown field {unknown[0]!r}")
    code = record.get("code")
    if not isinstance(code, str) or not _FINDING_CODE.fullmatch(code):
        raise InvalidMeasure("code", "a finding code is 1-64 lower-case letters, digits, . _ -")
    if not isinstance(record.get("title"), str) or not record["title"].strip():
        raise InvalidMeasure("title", "title must be a non-empty string")
    try:
        source = parse_source(record.get("source"))
    except InvalidSource as exc:
        raise InvalidMeasure(exc.field, str(exc)) from exc
    return Finding(code, record["title"], source)


def _refuse_duplicate_schemes(schemes: Sequence[Scheme]) -> None:
    seen: set[str] = set()
    for index, scheme in enumerate(schemes):
        if scheme.code in seen:
            raise CatalogError(
                index, scheme.code, InvalidMeasure("code", f"scheme {scheme.code} is listed twice")
            )
        seen.add(scheme.code)


@cache
def shipped_document() -> Catalog:
    """The default catalog shipped in data/measures.json, checked whole."""
    text = resources.files("contracts").joinpath("data/measures.json").read_text("utf-8")
    return parse_document(json.loads(text))
