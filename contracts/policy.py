"""Configurable rule parameters (grade validity, re-apply wait, list terms, how long 新增 lasts)
as effective-dated, per-region records with their sources, read from data/policy.json, and the
lookup that picks the one in force.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date
from functools import cache
from importlib import resources
from itertools import pairwise

from contracts.sources import InvalidSource, Source, check_record_against, parse_source

__all__ = [
    "PARAMETERS",
    "Policy",
    "PolicyRecord",
    "load_policy_records",
    "parse_policy_records",
    "policy_for",
]

_REGION_CODE = re.compile(r"[1-9][0-9]{5}")
_PREFIX = re.compile(r"(?:[1-9][0-9]{0,5})?")
_RECORD_KEYS = {"parameter", "value", "region_prefix", "valid_from", "valid_to", "source"}


@dataclass(frozen=True)
class Policy:
    """The parameters in force for one region on one day (domain.md §3, §5)."""

    grade_validity_years: int
    reapply_wait_months: int
    black_list_max_term_months: int
    black_list_early_removal_min_months: int
    red_list_term_months: int
    focus_list_max_term_months: int
    new_status_months: int  # how long 新增 lasts without a grade (domain.md §4)
    # (parameter, source) of each chosen record, so a refusal can name the rule behind it.
    sources: tuple[tuple[str, str], ...] = field(default=(), repr=False, compare=False)


PARAMETERS: tuple[str, ...] = tuple(f.name for f in fields(Policy) if f.name != "sources")


@dataclass(frozen=True)
class PolicyRecord:
    """One parameter's value for region codes starting with `region_prefix` ("" = nationwide),
    from `valid_from` (inclusive) to `valid_to` (exclusive; None = open-ended)."""

    parameter: str
    value: int
    region_prefix: str
    valid_from: date
    valid_to: date | None
    source: Source

    def applies(self, region_code: str, on: date) -> bool:
        return (
            region_code.startswith(self.region_prefix)
            and self.valid_from <= on
            and (self.valid_to is None or on < self.valid_to)
        )


def policy_for(region_code: str, on: date, records: Sequence[PolicyRecord] | None = None) -> Policy:
    """The policy for a six-digit GB/T 2260 region code on a day.

    Each parameter comes from the record with the longest prefix of `region_code` that is in
    force on `on`, so a province or city overrides only what it sets. LookupError when a
    parameter has no record in force; ValueError when two equally specific records overlap.
    """
    if not _REGION_CODE.fullmatch(region_code):
        raise ValueError(f"region code {region_code!r} is not six GB/T 2260 digits")
    chosen = records if records is not None else _shipped_records()
    values: dict[str, int] = {}
    sources: list[tuple[str, str]] = []
    for parameter in PARAMETERS:
        record = _most_specific(parameter, region_code, on, chosen)
        values[parameter] = record.value
        sources.append((parameter, record.source.title))
    return Policy(**values, sources=tuple(sources))


def _most_specific(
    parameter: str, region_code: str, on: date, records: Sequence[PolicyRecord]
) -> PolicyRecord:
    matches = [r for r in records if r.parameter == parameter and r.applies(region_code, on)]
    if not matches:
        raise LookupError(f"no policy record sets {parameter} for region {region_code} on {on}")
    longest = max(len(r.region_prefix) for r in matches)
    best = [r for r in matches if len(r.region_prefix) == longest]
    if len(best) > 1:
        raise ValueError(
            f"{len(best)} policy records set {parameter} for prefix {best[0].region_prefix!r} "
            f"on {on}; periods of one prefix must not overlap"
        )
    return best[0]


def load_policy_records() -> list[PolicyRecord]:
    """The records shipped in contracts/data/policy.json, checked (see parse_policy_records)."""
    return list(_shipped_records())


@cache
def _shipped_records() -> tuple[PolicyRecord, ...]:
    source = resources.files("contracts") / "data" / "policy.json"
    document = json.loads(source.read_text(encoding="utf-8"))
    return tuple(parse_policy_records(document))


def parse_policy_records(document: Mapping[str, object]) -> list[PolicyRecord]:
    """Records from a policy document ({"records": [...]}); ValueError naming the first bad one.

    Checks each record's shape, that periods of one parameter and prefix do not overlap, and
    that every parameter has a nationwide record, so a lookup can only fail for dates before it.
    """
    raw = document.get("records")
    if not isinstance(raw, list):
        raise ValueError("a policy document needs a list of records")
    records = [_record(item, number) for number, item in enumerate(raw, start=1)]
    _check_overlaps(records)
    missing = set(PARAMETERS) - {r.parameter for r in records if r.region_prefix == ""}
    if missing:
        raise ValueError(f"no nationwide record for {', '.join(sorted(missing))}")
    return records


def _record(item: object, number: int) -> PolicyRecord:
    if not isinstance(item, dict) or set(item) != _RECORD_KEYS:
        raise ValueError(f"policy record {number} must have exactly {sorted(_RECORD_KEYS)}")
    parameter, value, prefix = item["parameter"], item["value"], item["region_prefix"]
    valid_to = item["valid_to"]
    if parameter not in PARAMETERS:
        raise ValueError(f"policy record {number}: unknown parameter {parameter!r}")
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"policy record {number}: value must be a positive integer")
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise ValueError(f"policy record {number}: region_prefix must be 0-6 region digits")
    valid_from = _day(item["valid_from"], "valid_from", number)
    try:
        source = parse_source(item["source"])
        check_record_against(source, prefix, valid_from)
    except InvalidSource as exc:
        raise ValueError(f"policy record {number}: {exc.field}: {exc}") from exc
    record = PolicyRecord(
        parameter=parameter,
        value=value,
        region_prefix=prefix,
        valid_from=valid_from,
        valid_to=None if valid_to is None else _day(valid_to, "valid_to", number),
        source=source,
    )
    if record.valid_to is not None and record.valid_to <= record.valid_from:
        raise ValueError(f"policy record {number}: valid_to must be after valid_from")
    return record


def _day(value: object, name: str, number: int) -> date:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return date.fromisoformat(value)
    raise ValueError(f"policy record {number}: {name} must be a YYYY-MM-DD date")


def _check_overlaps(records: Sequence[PolicyRecord]) -> None:
    by_key: dict[tuple[str, str], list[PolicyRecord]] = {}
    for record in records:
        by_key.setdefault((record.parameter, record.region_prefix), []).append(record)
    for (parameter, prefix), group in by_key.items():
        group.sort(key=lambda r: r.valid_from)
        for earlier, later in pairwise(group):
            if earlier.valid_to is None or earlier.valid_to > later.valid_from:
                raise ValueError(
                    f"records for {parameter} with prefix {prefix!r} overlap from "
                    f"{later.valid_from}"
                )
