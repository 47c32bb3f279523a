"""Where a catalog or policy number comes from: the rule's title, the region it was found for,
the day it took effect, and whether it is a verified rule or our labelled assumption.

domain.md §5: every record names its source and the region it was found for; a rule found for
one city applies under that city's code, not province-wide, unless the province adopts it; no
record takes effect before its source did; an unverified number is an assumption, said so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

__all__ = ["KINDS", "InvalidSource", "Source", "check_record_against", "parse_source"]

Kind = Literal["rule", "assumption", "legacy"]
# rule: a published rule, title and date verified; assumption: a number we chose (the note says
# what it is modelled on); legacy: a stored record of a catalog older than this shape (a plain
# text source), read as it was stored and never accepted anew.
KINDS: tuple[str, ...] = ("rule", "assumption")
_REGION = re.compile(r"(?:[1-9][0-9]{0,5})?")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_FIELDS = frozenset({"title", "region", "effective", "kind", "note"})


class InvalidSource(ValueError):
    """A source refused; `field` names the member (``source region``), the message how."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Source:
    title: str
    region: str  # the region the rule was found for: "" nationwide, "35" Fujian, "3502" Xiamen
    effective: date | None  # the day the source took effect (None: an assumption without one)
    kind: Kind
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "region": self.region,
            "effective": self.effective.isoformat() if self.effective else None,
            "kind": self.kind,
            "note": self.note,
        }

    @classmethod
    def legacy(cls, text: str) -> Source:
        return cls(title=text, region="", effective=None, kind="legacy")


def parse_source(value: object) -> Source:
    """A source object checked whole: title (non-empty), region (0-6 digits), effective
    (a date; required for a rule), kind (rule | assumption), note (required for an
    assumption: what the number is modelled on, or why it was chosen)."""
    if not isinstance(value, Mapping):
        raise InvalidSource(
            "source",
            "source must be an object with title, region, effective, kind and note",
        )
    unknown = sorted(set(value) - _FIELDS)
    if unknown:
        raise InvalidSource(f"source {unknown[0]}", f"unknown source field {unknown[0]!r}")
    title, region, kind = value.get("title"), value.get("region"), value.get("kind")
    note = value.get("note", "")
    if not isinstance(title, str) or not title.strip():
        raise InvalidSource("source title", "source title must name the rule or the assumption")
    if not isinstance(region, str) or not _REGION.fullmatch(region):
        raise InvalidSource(
            "source region",
            "source region must be the region the rule was found for: 0-6 division digits",
        )
    if kind not in KINDS:
        raise InvalidSource("source kind", f"source kind must be one of {', '.join(KINDS)}")
    if not isinstance(note, str):
        raise InvalidSource("source note", "source note must be text")
    effective = _effective(value.get("effective"))
    if kind == "rule" and effective is None:
        raise InvalidSource("source effective", "a rule's source names the day it took effect")
    if kind == "assumption" and not note.strip():
        raise InvalidSource(
            "source note", "an assumption's note says what it is modelled on or why it was chosen"
        )
    return Source(title=title, region=region, effective=effective, kind=kind, note=note)


def _effective(value: object) -> date | None:
    if value is None:
        return None
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise InvalidSource("source effective", "source effective must be a date like 2017-02-17")


def check_record_against(source: Source, region_prefix: str, valid_from: date) -> None:
    """A record may not take effect before its source did, and a rule found for one region
    applies only within it (an assumption is our own choice for the region it names)."""
    if source.effective is not None and valid_from < source.effective:
        raise InvalidSource(
            "valid_from",
            f"valid_from {valid_from} is before its source took effect ({source.effective})",
        )
    if source.kind == "rule" and not region_prefix.startswith(source.region):
        found = source.region or "nationwide"
        raise InvalidSource(
            "region_prefix",
            f"region_prefix {region_prefix!r} reaches beyond the region the rule was found for "
            f"({found}): a local rule applies under its own region code, or label the record "
            "an assumption",
        )
