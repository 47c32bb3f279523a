"""A revocation's cause (domain.md §3; 应急〔2021〕83号): `check_causes` refuses a fatal-accident
revocation with no fatal accident of the enterprise on file, one citing another enterprise's
message, and a major-hazard revocation citing an order that was not of a major hazard; each
with its stable code."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from contract_factories import USCC, make_accident, make_overdue

from contracts.revocations import Cause, CauseError, check_causes

DECIDED = date(2025, 6, 15)
OTHER = "91350000157987632G"  # another enterprise


def accident(subject: str = USCC, **overrides: Any) -> Cause:
    return Cause("a-1", "accident.reported", subject, make_accident(**overrides))


def overdue(order: dict[str, Any] | None, subject: str = USCC) -> Cause:
    return Cause("o-1", "rectification.overdue", subject, make_overdue(), order)


def refused(reason_code: str, *causes: Cause) -> CauseError:
    with pytest.raises(CauseError) as caught:
        check_causes(reason_code, USCC, DECIDED, causes)
    return caught.value


def test_a_fatal_accident_revocation_with_no_accident_on_file_is_refused() -> None:
    missing = refused("fatal_accident")
    assert missing.code == "cause_missing"
    assert missing.needs is not None
    assert "death" in missing.needs
    not_in_log = refused("fatal_accident", Cause("6ba7b810-9dad-11d1-80b4-00c04fd430c8", None))
    assert not_in_log.code == "cause_not_in_log"


def test_a_fatal_accident_revocation_citing_a_non_fatal_accident_is_refused() -> None:
    injured = accident(deaths=0, serious_injuries=2, accident_class="ordinary")
    assert refused("fatal_accident", injured).code == "cause_mismatch"


def test_a_fatal_accident_after_the_decision_is_not_its_cause() -> None:
    later = accident(occurred_on="2025-06-16")
    assert refused("fatal_accident", later).code == "cause_mismatch"


def test_a_revocation_citing_another_enterprise_s_accident_is_refused() -> None:
    theirs = accident(subject=OTHER)
    error = refused("fatal_accident", theirs)
    assert error.code == "cause_other_enterprise"
    assert OTHER in str(error)
    # even beside a cause of its own: every cited message is about the enterprise
    assert refused("fatal_accident", accident(), theirs).code == "cause_other_enterprise"


@pytest.mark.parametrize(
    "order",
    [
        {"kind": "hazard", "hazard_level": "general"},
        {"kind": "system_not_running", "hazard_level": None},
        None,  # the order was not found
    ],
)
def test_a_major_hazard_revocation_citing_a_non_major_order_is_refused(
    order: dict[str, Any] | None,
) -> None:
    assert refused("major_hazard_unrectified", overdue(order)).code == "cause_mismatch"


def test_a_major_hazard_revocation_citing_an_accident_is_refused() -> None:
    assert refused("major_hazard_unrectified", accident()).code == "cause_mismatch"


def test_the_causes_each_reason_needs_are_accepted() -> None:
    check_causes("fatal_accident", USCC, DECIDED, [accident()])  # one death, 2025-05-20
    major = overdue({"kind": "hazard", "hazard_level": "major"})
    check_causes("major_hazard_unrectified", USCC, DECIDED, [major])
    # one fitting cause among others of the same enterprise is enough
    injured = accident(deaths=0, serious_injuries=2)
    check_causes("fatal_accident", USCC, DECIDED, [injured, accident()])
