"""The JSON a draw leaves in the log: the request as the gateway resolved it, and the result;
and the one function both the gateway and a verifier run to get a result. docs/draws.md §2, §8.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, cast

from keys.draws import (
    DrawError,
    InsufficientInspectorsError,
    StratumResult,
    assign_inspectors,
    commitment,
    select,
)
from keys.ledger_fold import (
    LEDGERS,
    Ledger,
    LedgerFacts,
    StratumSpec,
    Where,
    candidates,
    candidates_digest,
    split_strata,
)

__all__ = [
    "COMPLETED_TYPE",
    "REQUESTED_TYPE",
    "VOIDED_TYPE",
    "Beacon",
    "DrawFormatError",
    "DrawRequest",
    "draw_candidates",
    "draw_result",
    "previous_assignments",
    "resolve_request",
]

# Types of the gateway-signed log entries of a draw (payload {"id","type","issuer":"gateway",…}).
REQUESTED_TYPE = "gateway.draw.requested"
COMPLETED_TYPE = "gateway.draw.completed"
VOIDED_TYPE = "gateway.draw.voided"

_HEX64 = re.compile(r"[0-9a-f]{64}")
_PREFIX = re.compile(r"[0-9]{0,6}")
_WHERE_KEYS = frozenset({"region_prefix", "schemes", "industries", "levels"})
_FILTER_KEYS = frozenset({"schemes", "industries", "levels"})


class DrawFormatError(DrawError):
    """A draw request or result that does not follow docs/draws.md; the message names the field."""

    code: ClassVar[str] = "draw_format"


def _fail(path: str, expected: str) -> DrawFormatError:
    return DrawFormatError(f"{path}: expected {expected}")


def _str(obj: Mapping[str, Any], key: str, path: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise _fail(f"{path}{key}", "a non-empty string")
    return value


def _int(obj: Mapping[str, Any], key: str, path: str, minimum: int) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise _fail(f"{path}{key}", f"an integer >= {minimum}")
    return value


def _date(obj: Mapping[str, Any], key: str, path: str) -> dt.date:
    value = _str(obj, key, path)
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise _fail(f"{path}{key}", "a date YYYY-MM-DD") from None


def _object(value: object, path: str, keys: frozenset[str] | None = None) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, "an object")
    if keys is not None and not set(value) <= keys:
        raise _fail(path, f"only the members {', '.join(sorted(keys))}")
    return cast(Mapping[str, Any], value)


def _names(value: object, path: str, *, unique: bool = True) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
        raise _fail(path, "a list of non-empty strings")
    if unique and len(set(value)) != len(value):
        raise _fail(path, "no repeated values")
    return tuple(value)


def _set(obj: Mapping[str, Any], key: str, path: str) -> frozenset[str] | None:
    if obj.get(key) is None:
        return None
    values = _names(obj[key], f"{path}{key}")
    if not values:
        raise _fail(f"{path}{key}", "at least one value (omit it to leave the fact open)")
    return frozenset(values)


def _where(obj: Mapping[str, Any], path: str, region_prefix: str) -> Where:
    prefix = obj.get("region_prefix", region_prefix)
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise _fail(f"{path}region_prefix", "0 to 6 digits")
    return Where(
        prefix,
        _set(obj, "schemes", path),
        _set(obj, "industries", path),
        _set(obj, "levels", path),
    )


def _where_json(where: Where, *, with_prefix: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"region_prefix": where.region_prefix} if with_prefix else {}
    for key in ("schemes", "industries", "levels"):
        values = getattr(where, key)
        if values is not None:
            out[key] = sorted(values)
    return out


def _strata(value: object, prefix: str) -> tuple[StratumSpec, ...]:
    if not isinstance(value, list) or not value:
        raise _fail("strata", "a non-empty list")
    strata = []
    for i, item in enumerate(value):
        path = f"strata[{i}]."
        stratum = _object(item, f"strata[{i}]", frozenset({"name", "where", "sample"}))
        where = _object(stratum.get("where", {}), f"{path}where", _WHERE_KEYS)
        strata.append(
            StratumSpec(
                _str(stratum, "name", path),
                _where(where, f"{path}where.", prefix),
                _int(stratum, "sample", path, 0),
            )
        )
    if len({s.name for s in strata}) != len(strata):
        raise _fail("strata", "unique names")
    return tuple(strata)


def _previous(value: object) -> dict[str, frozenset[str]]:
    previous = _object(value, "previous_assignments")
    return {
        code: frozenset(_names(names, f"previous_assignments.{code}"))
        for code, names in previous.items()
    }


def _beacon(value: object) -> Beacon | None:
    if value is None:
        return None
    beacon = _object(value, "beacon", frozenset({"source", "round"}))
    return Beacon(_str(beacon, "source", "beacon."), _int(beacon, "round", "beacon.", 0))


@dataclass(frozen=True)
class Beacon:
    """A public randomness value named before it exists (e.g. a drand round after the request)."""

    source: str
    round: int


@dataclass(frozen=True)
class DrawRequest:
    draw_id: str
    requester: str
    region_prefix: str
    on: dt.date  # the day the candidates are read on
    period_from: dt.date
    period_to: dt.date
    ledger: Ledger
    filters: Where  # its region_prefix is the request's
    strata: tuple[StratumSpec, ...]
    inspectors: tuple[str, ...]
    inspectors_per_enterprise: int
    commitment: str
    previous_assignments: Mapping[str, frozenset[str]]
    candidates_digest: str
    candidates_count: int
    beacon: Beacon | None = None

    @classmethod
    def from_json(cls, data: object) -> DrawRequest:
        """Strict: unknown or missing members, and values of the wrong shape, are refused."""
        obj = _object(data, "request")
        prefix = obj.get("region_prefix")
        if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
            raise _fail("region_prefix", "0 to 6 digits")
        period = _object(obj.get("period"), "period", frozenset({"from", "to"}))
        ledger = obj.get("ledger")
        if ledger not in LEDGERS:
            raise _fail("ledger", " or ".join(LEDGERS))
        for key in ("commitment", "candidates_digest"):
            if not isinstance(obj.get(key), str) or not _HEX64.fullmatch(obj[key]):
                raise _fail(key, "64 lowercase hex digits")
        request = cls(
            draw_id=_str(obj, "draw_id", ""),
            requester=_str(obj, "requester", ""),
            region_prefix=prefix,
            on=_date(obj, "on", ""),
            period_from=_date(period, "from", "period."),
            period_to=_date(period, "to", "period."),
            ledger=cast(Ledger, ledger),
            filters=_where(
                _object(obj.get("filters", {}), "filters", _FILTER_KEYS), "filters.", prefix
            ),
            strata=_strata(obj.get("strata"), prefix),
            inspectors=_names(obj.get("inspectors"), "inspectors"),
            inspectors_per_enterprise=_int(obj, "inspectors_per_enterprise", "", 1),
            commitment=obj["commitment"],
            previous_assignments=_previous(obj.get("previous_assignments", {})),
            candidates_digest=obj["candidates_digest"],
            candidates_count=_int(obj, "candidates_count", "", 0),
            beacon=_beacon(obj.get("beacon")),
        )
        known = {f for f in cls.__dataclass_fields__ if not f.startswith("period_")} | {"period"}
        if not set(obj) <= known:
            raise _fail("request", f"no members beyond {', '.join(sorted(known))}")
        if request.period_from > request.period_to:
            raise _fail("period", "from on or before to")
        return request

    def to_json(self) -> dict[str, Any]:
        """The inverse of `from_json`; lists that are sets come out sorted."""
        out: dict[str, Any] = {
            "draw_id": self.draw_id,
            "requester": self.requester,
            "region_prefix": self.region_prefix,
            "on": self.on.isoformat(),
            "period": {"from": self.period_from.isoformat(), "to": self.period_to.isoformat()},
            "ledger": self.ledger,
            "filters": _where_json(self.filters, with_prefix=False),
            "strata": [
                {
                    "name": s.name,
                    "where": _where_json(s.where, with_prefix=True),
                    "sample": s.sample,
                }
                for s in self.strata
            ],
            "inspectors": list(self.inspectors),
            "inspectors_per_enterprise": self.inspectors_per_enterprise,
            "commitment": self.commitment,
            "previous_assignments": {
                code: sorted(v) for code, v in sorted(self.previous_assignments.items())
            },
            "candidates_digest": self.candidates_digest,
            "candidates_count": self.candidates_count,
        }
        if self.beacon is not None:
            out["beacon"] = {"source": self.beacon.source, "round": self.beacon.round}
        return out

    def opens(self, secret: bytes) -> bool:
        """True iff `secret` is the one this request committed to (constant-time compare)."""
        try:
            return hmac.compare_digest(commitment(secret), self.commitment)
        except ValueError:  # a secret of the wrong length commits to nothing
            return False


def draw_candidates(request: DrawRequest, facts: Mapping[str, LedgerFacts]) -> list[str]:
    """The request's candidates among `facts` (the ledger as of the request's log size)."""
    return candidates(
        facts,
        region_prefix=request.region_prefix,
        ledger=request.ledger,
        schemes=request.filters.schemes,
        industries=request.filters.industries,
        levels=request.filters.levels,
    )


def resolve_request(
    data: Mapping[str, Any],
    facts: Mapping[str, LedgerFacts],
    completed: Iterable[Mapping[str, Any]],
) -> DrawRequest:
    """A requester's request resolved as the gateway logs it (docs/draws.md §1 step 2).

    `facts` is the ledger as of the log size the request entry will take, `completed` the
    results of the completed draws before it, in log order. Fills candidates_digest,
    candidates_count and previous_assignments (whatever `data` says of them), and refuses a
    request that could not be drawn: strata sharing an enterprise or smaller than their
    sample, or a candidate for whom too few inspectors would remain.
    """
    placeholders = {"candidates_digest": "0" * 64, "candidates_count": 0}
    draft = DrawRequest.from_json({**data, **placeholders, "previous_assignments": {}})
    codes = draw_candidates(draft, facts)
    request = replace(
        draft,
        candidates_digest=candidates_digest(codes),
        candidates_count=len(codes),
        previous_assignments=previous_assignments(completed, codes),
    )
    for stratum in split_strata(facts, codes, request.strata):
        if stratum.sample > len(stratum.candidates):
            raise DrawError(
                f"stratum {stratum.name}: sample {stratum.sample} of "
                f"{len(stratum.candidates)} candidates"
            )
    pool, needed = set(request.inspectors), request.inspectors_per_enterprise
    if codes and len(pool) < needed:
        raise InsufficientInspectorsError(codes[0], len(pool), needed)
    for code, names in request.previous_assignments.items():
        if len(pool - names) < needed:
            raise InsufficientInspectorsError(code, len(pool - names), needed)
    return request


def draw_result(
    request: DrawRequest,
    facts: Mapping[str, LedgerFacts],
    *,
    request_index: int,
    seed_checkpoint_size: int,
    seed: bytes,
    secret: bytes,
    beacon: bytes | None = None,
    codes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The result JSON (docs/draws.md §8): strata, then inspectors for the enterprises in
    result order. `codes` are the candidates when the caller has them already."""
    pool = draw_candidates(request, facts) if codes is None else codes
    strata = select(seed, split_strata(facts, pool, request.strata))
    selected = [code for stratum in strata for code in stratum.selected]
    assignments = assign_inspectors(
        seed,
        selected,
        request.inspectors,
        request.inspectors_per_enterprise,
        request.previous_assignments,
    )
    out: dict[str, Any] = {
        "draw_id": request.draw_id,
        "request_index": request_index,
        "seed_checkpoint_size": seed_checkpoint_size,
        "secret": secret.hex(),
        "seed": seed.hex(),
        "strata": [_stratum_json(s) for s in strata],
        "assignments": {code: list(names) for code, names in assignments.items()},
    }
    if beacon is not None:
        out["beacon"] = beacon.hex()
    return out


def _stratum_json(result: StratumResult) -> dict[str, Any]:
    return {
        "name": result.name,
        "population": result.population,
        "sample": result.sample,
        "selected": list(result.selected),
    }


def previous_assignments(
    results: Iterable[Mapping[str, Any]], codes: Iterable[str]
) -> dict[str, frozenset[str]]:
    """For each of `codes` that an earlier completed draw selected, the inspectors the last such
    draw gave it: a request's previous_assignments. `results` are completed draws in log order."""
    last: dict[str, frozenset[str]] = {}
    for result in results:
        for code, names in _object(result.get("assignments"), "assignments").items():
            last[code] = frozenset(_names(names, f"assignments.{code}"))
    return {code: last[code] for code in codes if code in last}
