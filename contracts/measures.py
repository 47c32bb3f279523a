"""The measure catalog (domain.md §4–5): which measure each agency role applies to an
enterprise's standing on a date, effective-dated, per region and with its source. Pure: no I/O
but reading the shipped data file. Premium products and schemes: contracts.catalog."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from functools import cache
from importlib import resources
from typing import Any, Protocol

from contracts.dates import add_months
from contracts.grades import GradeStatus
from contracts.sources import InvalidSource, Source, check_record_against, parse_source

TRIGGER_KEYS = frozenset(
    {
        "grade_level",
        "grade_status",
        "ungraded",
        "scheme",
        "scheme_not",
        "accident_class",
        "accident_free_prior_year",
        "list_type",
        "self_assessment_published",
    }
)
# The accident record a measure of no premium product counts (and a product with no rule in
# force, as documents were made before products stated theirs): the 12 months the trigger keys
# are documented with in data/measures.json. A product's rule states its own record period.
DEFAULT_RECORD_PERIOD_MONTHS = 12
# The longest record period a product rule may state (contracts.catalog refuses more): a
# standing carries the accidents of this many months, so any rule's period can be counted.
MAX_RECORD_PERIOD_MONTHS = 60
_ACCIDENT_KEYS = frozenset({"accident_class", "accident_free_prior_year"})


@dataclass(frozen=True)
class Measure:
    code: str
    role: str
    trigger: Mapping[str, Any]
    effect: Mapping[str, Any]
    legal_basis: str
    term_months: int | None
    region_prefix: str
    valid_from: date
    valid_to: date | None
    source: Source
    # The premium product (contracts.catalog) a premium_float belongs to; None: no product.
    product: str | None = None

    def in_force(self, region_code: str, on: date) -> bool:
        return (
            region_code.startswith(self.region_prefix)
            and self.valid_from <= on
            and (self.valid_to is None or on < self.valid_to)
        )

    def as_dict(self) -> dict[str, Any]:
        found = {
            "code": self.code,
            "role": self.role,
            "trigger": dict(self.trigger),
            "effect": dict(self.effect),
            "legal_basis": self.legal_basis,
            "term_months": self.term_months,
            "region_prefix": self.region_prefix,
            "valid_from": self.valid_from.isoformat(),
            "valid_to": self.valid_to.isoformat() if self.valid_to else None,
            "source": self.source.as_dict(),
        }
        if self.product is not None:
            found["product"] = self.product
        return found


@dataclass(frozen=True)
class Standing:
    """What the triggers look at, as of one date."""

    grade_status: str  # none | active | revoked | expired
    grade_level: str | None
    scheme: str
    # the classes of the accidents counted: by default those of the 12 months before `on`
    accident_classes: Sequence[str] = field(default_factory=tuple)
    list_types: Sequence[str] = field(default_factory=tuple)  # active entries
    # the latest year whose self-assessment report was published (年度自评报告公示), if any
    self_assessment_year: int | None = None
    closed: bool = False  # deregistered or licence revoked by then: no measure applies
    on: date | None = None  # the day this standing is of (self_assessment_published reads it)
    # Every accident on file (occurred_on, class) of the MAX_RECORD_PERIOD_MONTHS up to `on`,
    # so that each premium product counts its own record period (`over_months`). None: only
    # accident_classes is known, and it is what every period counts.
    accident_record: tuple[tuple[date, str], ...] | None = None

    def over_months(self, months: int) -> Standing:
        """This standing counting the accidents that occurred after the day `months` before
        `on` and up to `on`: the record period of a product rule (record_period_months)."""
        if self.accident_record is None or self.on is None:
            return self
        start, end = add_months(self.on, -months), self.on
        counted = tuple(kind for day, kind in self.accident_record if start < day <= end)
        return replace(self, accident_classes=counted)


class InvalidMeasure(ValueError):
    """One measure record refused: `field` names what is wrong (``trigger scheme``,
    ``valid_to``), and the message says how, in a sentence that starts with the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class CatalogError(ValueError):
    """A catalog refused because of record `index` (0-based, its place in the list; None
    when the catalog as a whole is wrong)."""

    def __init__(self, index: int | None, code: str | None, problem: InvalidMeasure) -> None:
        if index is None:
            super().__init__(str(problem))
        else:
            named = f"record {index} ({code})" if code else f"record {index}"
            super().__init__(f"{named}: {problem}")
        self.index = index
        self.code = code
        self.field = problem.field


_FIELDS = frozenset(
    {
        "code",
        "role",
        "product",
        "trigger",
        "effect",
        "legal_basis",
        "term_months",
        "region_prefix",
        "valid_from",
        "valid_to",
        "source",
    }
)
_REQUIRED = ("code", "role", "trigger", "effect", "legal_basis", "valid_from", "source")
# What `triggered` does with each key's value: tests membership in a list of strings, or
# compares truth with a boolean. Anything else would crash or misread every standing query.
_FLAG_KEYS = frozenset({"ungraded", "accident_free_prior_year", "self_assessment_published"})
_LIST_TRIGGERS = frozenset(TRIGGER_KEYS - _FLAG_KEYS)
# Effect members the connectors compute with (premiums, bank_credit, supervision); the others
# are free for the implementing agencies to read.
_NUMERIC_EFFECTS = {
    "premium_float": "a number",
    "credit_factor": "a number",
    "inspections_per_year_min": "an integer",
    "inspections_per_year_max": "an integer",
}
PENALTY_SCALES = ("standard", "upper_limit")
_PREMIUM_FLOAT_BOUND = 1.0  # a float of ±100 % or more is no float: a typo of a percentage
_REGION_PREFIX = re.compile(r"\d{0,6}")  # "" (nationwide) up to a whole six-digit division code
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_measure(record: Any, roles: Collection[str] | None = None) -> Measure:
    """One catalog record checked whole and parsed, or InvalidMeasure naming the first wrong
    field. `roles`: the agency roles a measure may name (None: any)."""
    if not isinstance(record, Mapping):
        raise InvalidMeasure("record", "a record is a JSON object")
    unknown = sorted(set(record) - _FIELDS)
    if unknown:
        raise InvalidMeasure(unknown[0], f"unknown field {unknown[0]!r}")
    missing = [name for name in _REQUIRED if record.get(name) is None]
    if missing:
        raise InvalidMeasure(missing[0], f"{missing[0]} is required")
    for name in ("code", "role", "legal_basis"):
        if not isinstance(record[name], str) or not record[name].strip():
            raise InvalidMeasure(name, f"{name} must be a non-empty string")
    product = record.get("product")
    if product is not None and (not isinstance(product, str) or not product.strip()):
        raise InvalidMeasure("product", "product must name a premium product or be left out")
    if roles is not None and record["role"] not in roles:
        raise InvalidMeasure(
            "role", f"role {record['role']!r} is not an agency role ({', '.join(sorted(roles))})"
        )
    term_months = record.get("term_months")
    if term_months is not None and (_not_int(term_months) or term_months < 0):
        raise InvalidMeasure("term_months", "term_months must be an integer >= 0 or null")
    region_prefix = record.get("region_prefix", "")
    if not isinstance(region_prefix, str) or not _REGION_PREFIX.fullmatch(region_prefix):
        raise InvalidMeasure("region_prefix", "region_prefix must be up to six digits")
    valid_from = _date(record, "valid_from")
    valid_to = _date(record, "valid_to") if record.get("valid_to") is not None else None
    if valid_to is not None and valid_to <= valid_from:
        # valid_to is exclusive (data/measures.json): an equal date is a period of no day
        raise InvalidMeasure("valid_to", "valid_to must be after valid_from (it is exclusive)")
    try:
        source = parse_source(record["source"])
        check_record_against(source, region_prefix, valid_from)
    except InvalidSource as exc:
        raise InvalidMeasure(exc.field, str(exc)) from exc
    effect = _effect(record["effect"])
    if "premium_float" in effect and product is None:
        raise InvalidMeasure("product", "a premium_float names the product it floats (product)")
    return Measure(
        code=record["code"],
        role=record["role"],
        trigger=_trigger(record["trigger"]),
        effect=effect,
        legal_basis=record["legal_basis"],
        term_months=term_months,
        region_prefix=region_prefix,
        valid_from=valid_from,
        valid_to=valid_to,
        source=source,
        product=product,
    )


def _not_int(value: object) -> bool:
    return isinstance(value, bool) or not isinstance(value, int)


def _date(record: Mapping[str, Any], name: str) -> date:
    value = record[name]
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise InvalidMeasure(name, f"{name} must be a date like 2026-01-01")


def _trigger(trigger: object) -> dict[str, Any]:
    if not isinstance(trigger, Mapping) or not trigger:
        raise InvalidMeasure("trigger", "trigger must be a non-empty object")
    unknown = sorted(set(trigger) - TRIGGER_KEYS)
    if unknown:
        raise InvalidMeasure(
            f"trigger {unknown[0]}",
            f"unknown trigger key {unknown[0]!r} (known: {', '.join(sorted(TRIGGER_KEYS))})",
        )
    for key, value in trigger.items():
        if key in _LIST_TRIGGERS:
            if (
                not isinstance(value, list)
                or not value
                or not all(isinstance(item, str) for item in value)
            ):
                raise InvalidMeasure(
                    f"trigger {key}", f"trigger {key} must be a non-empty list of strings"
                )
        elif not isinstance(value, bool):
            raise InvalidMeasure(f"trigger {key}", f"trigger {key} must be true or false")
    statuses = {status.value for status in GradeStatus}
    wrong = sorted(set(trigger.get("grade_status", ())) - statuses)
    if wrong:
        raise InvalidMeasure(
            "trigger grade_status",
            f"trigger grade_status {wrong[0]!r} is not a grade status "
            f"({', '.join(sorted(statuses))})",
        )
    return dict(trigger)


def _effect(effect: object) -> dict[str, Any]:
    if not isinstance(effect, Mapping) or not effect:
        raise InvalidMeasure("effect", "effect must be a non-empty object")
    for key, kind in _NUMERIC_EFFECTS.items():
        value = effect.get(key, 0)
        if _not_int(value) and (kind == "an integer" or not isinstance(value, float)):
            raise InvalidMeasure(f"effect {key}", f"effect {key} must be {kind}")
        if value != value or value in (float("inf"), float("-inf")) or value < -1e9:
            raise InvalidMeasure(f"effect {key}", f"effect {key} must be a finite number")
    if abs(float(effect.get("premium_float", 0))) >= _PREMIUM_FLOAT_BOUND:
        raise InvalidMeasure(
            "effect premium_float", "effect premium_float is a fraction: −0.1 for −10 %"
        )
    scale = effect.get("penalty_scale")
    if scale is not None and scale not in PENALTY_SCALES:
        raise InvalidMeasure(
            "effect penalty_scale", f"effect penalty_scale must be {' or '.join(PENALTY_SCALES)}"
        )
    return dict(effect)


def parse_catalog(records: Any, roles: Collection[str] | None = None) -> tuple[Measure, ...]:
    """A whole catalog checked and parsed, or CatalogError naming the first bad record.

    Besides each record (`parse_measure`), no two records of one code and one region prefix
    may be in force on the same day: a revision from a date ends the earlier record with
    valid_to (exclusive) at that date, so which record is in force is never a matter of
    list order."""
    if not isinstance(records, list) or not records:
        problem = InvalidMeasure("records", "a catalog is a non-empty list of measure records")
        raise CatalogError(None, None, problem)
    parsed: list[Measure] = []
    for index, record in enumerate(records):
        try:
            parsed.append(parse_measure(record, roles))
        except InvalidMeasure as exc:
            code = record.get("code") if isinstance(record, Mapping) else None
            raise CatalogError(index, code if isinstance(code, str) else None, exc) from exc
    _refuse_overlaps(parsed)
    return tuple(parsed)


def _refuse_overlaps(catalog: Sequence[Measure]) -> None:
    scopes: dict[tuple[str, str], list[int]] = {}
    for index, measure in enumerate(catalog):
        scopes.setdefault((measure.code, measure.region_prefix), []).append(index)
    for indexes in scopes.values():
        indexes.sort(key=lambda i: (catalog[i].valid_from, i))
        # Sorted by start, periods overlap somewhere only if two neighbours do.
        for earlier, later in itertools.pairwise(indexes):
            first, second = catalog[earlier], catalog[later]
            if first.valid_to is None or first.valid_to > second.valid_from:
                end = first.valid_to.isoformat() if first.valid_to else "open"
                raise CatalogError(
                    max(earlier, later),
                    second.code,
                    InvalidMeasure(
                        "valid_from",
                        f"valid_from {second.valid_from} falls in record {min(earlier, later)}'s "
                        f"period ({first.valid_from} to {end}) for the same code and region "
                        f"prefix {first.region_prefix!r}: end the earlier one with valid_to "
                        f"{second.valid_from}",
                    ),
                )


@cache
def shipped_catalog() -> tuple[Measure, ...]:
    text = resources.files("contracts").joinpath("data/measures.json").read_text("utf-8")
    return parse_catalog(json.loads(text)["records"])


class HasMeasures(Protocol):
    """A whole catalog version (contracts.catalog.Catalog): its measures are what count here."""

    @property
    def measures(self) -> tuple[Measure, ...]: ...

    def record_periods(self, region_code: str, on: date) -> Mapping[str, int]: ...


CatalogLike = Sequence[Measure] | HasMeasures | None


def _measures(catalog: CatalogLike) -> Sequence[Measure]:
    if catalog is None:
        return shipped_catalog()
    if isinstance(catalog, Sequence):
        return catalog
    return catalog.measures


def in_force(region_code: str, on: date, catalog: CatalogLike = None) -> list[Measure]:
    """Measures in force for a region on a date; per code, the longest region prefix wins.

    At one prefix the record whose period holds `on` is the one in force: `parse_catalog`
    refuses a catalog where two would be. A catalog that was not checked so (a version stored
    before that rule) gets the later valid_from, the newer revision, not the earlier in the list.
    """
    chosen: dict[str, Measure] = {}
    for measure in _measures(catalog):
        if not measure.in_force(region_code, on):
            continue
        current = chosen.get(measure.code)
        if current is None or (len(measure.region_prefix), measure.valid_from) > (
            len(current.region_prefix),
            current.valid_from,
        ):
            chosen[measure.code] = measure
    return sorted(chosen.values(), key=lambda m: (m.role, m.code))


_PRODUCT_PREFIXES = {"insurance.premium.": "liability", "insurance.work_injury.": "work_injury"}


def parse_stored_measure(record: Mapping[str, Any]) -> Measure:
    """A record of a catalog version already in the log, read as it was read when stored
    (the reading before parse_measure's checks: unknown fields ignored, an empty valid_to
    open, any role), so that a version reads the same now as then: the documents made from
    it re-render byte for byte (protocol.md §4, §5). Only a trigger `triggered` cannot
    evaluate (a list key whose value is not a list) is refused: InvalidMeasure."""
    trigger = dict(record["trigger"])
    unknown = set(trigger) - TRIGGER_KEYS
    if unknown or not trigger:
        raise InvalidMeasure("trigger", f"unknown trigger keys {sorted(unknown)}")
    for key, value in trigger.items():
        if key not in _FLAG_KEYS and not isinstance(value, list):
            raise InvalidMeasure("trigger", f"trigger {key} must be a list")
    source = record["source"]
    code = str(record["code"])
    product = record.get("product")
    if product is None and "premium_float" in record["effect"]:
        # before products were named, the code's prefix said it (connectors then)
        product = next((p for pre, p in _PRODUCT_PREFIXES.items() if code.startswith(pre)), None)
    return Measure(
        code=code,
        role=str(record["role"]),
        trigger=trigger,
        effect=dict(record["effect"]),
        legal_basis=str(record["legal_basis"]),
        term_months=record.get("term_months"),
        region_prefix=str(record.get("region_prefix", "")),
        valid_from=date.fromisoformat(record["valid_from"]),
        valid_to=date.fromisoformat(record["valid_to"]) if record.get("valid_to") else None,
        source=Source.legacy(source) if isinstance(source, str) else parse_source(source),
        product=str(product) if product is not None else None,
    )


def triggered(trigger: Mapping[str, Any], standing: Standing) -> bool:
    active = standing.grade_status == "active"
    # 四（一）: the self-assessment of the year before the day asked was published (annual)
    published = (
        standing.on is not None
        and standing.self_assessment_year is not None
        and standing.self_assessment_year >= standing.on.year - 1
    )
    checks = {
        "grade_level": lambda v: active and standing.grade_level in v,
        "grade_status": lambda v: standing.grade_status in v,
        "ungraded": lambda v: (not active) is bool(v),
        "scheme": lambda v: standing.scheme in v,
        "scheme_not": lambda v: standing.scheme not in v,
        "accident_class": lambda v: any(c in v for c in standing.accident_classes),
        "accident_free_prior_year": lambda v: (not standing.accident_classes) is bool(v),
        "list_type": lambda v: any(t in v for t in standing.list_types),
        "self_assessment_published": lambda v: published is bool(v),
    }
    return all(checks[key](value) for key, value in trigger.items())


def record_periods(catalog: CatalogLike, region_code: str, on: date) -> Mapping[str, int]:
    """Each premium product's record period in months under its rule in force for the region
    on the day; a bare list of measures names no rule (every period the default)."""
    if catalog is None:
        # the shipped document holds the product rules; it imports this module, hence here
        from contracts.catalog import shipped_document

        return shipped_document().record_periods(region_code, on)
    if isinstance(catalog, Sequence):
        return {}
    return catalog.record_periods(region_code, on)


def applicable(
    standing: Standing,
    region_code: str,
    on: date,
    catalog: CatalogLike = None,
    role: str | None = None,
    periods: Mapping[str, int] | None = None,
) -> dict[str, list[Measure]]:
    """The measures that apply to this standing, grouped by implementing role; none for a
    closed enterprise (it is no longer anyone's to act on). A measure's accident triggers count
    the record period of its product (`periods`, by product; default: the catalog's rules in
    force, `record_periods`), DEFAULT_RECORD_PERIOD_MONTHS for a measure of no product."""
    result: dict[str, list[Measure]] = {}
    if standing.closed:
        return result
    if periods is None:
        periods = record_periods(catalog, region_code, on)
    counted: dict[int, Standing] = {}
    for measure in in_force(region_code, on, catalog):
        if role is not None and measure.role != role:
            continue
        seen = standing
        if standing.accident_record is not None and not _ACCIDENT_KEYS.isdisjoint(measure.trigger):
            months = periods.get(measure.product or "", DEFAULT_RECORD_PERIOD_MONTHS)
            if months not in counted:
                counted[months] = standing.over_months(months)
            seen = counted[months]
        if triggered(measure.trigger, seen):
            result.setdefault(measure.role, []).append(measure)
    return result
