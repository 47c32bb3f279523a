"""An overdue report must match its order and come after the deadline."""

from __future__ import annotations

from typing import Any

import pytest
from contract_factories import make_overdue, make_rectification_order

from contracts.rectifications import RectificationRuleError, check_overdue


def refused(**overrides: Any) -> str:
    with pytest.raises(RectificationRuleError) as caught:
        check_overdue(make_rectification_order(), make_overdue(**overrides))
    return caught.value.message


@pytest.mark.parametrize("found_on", ["2025-04-01", "2025-06-30"])
def test_overdue_after_the_deadline(found_on: str) -> None:
    check_overdue(make_rectification_order(), make_overdue(found_on=found_on))


@pytest.mark.parametrize("found_on", ["2025-03-31", "2025-03-01"])
def test_not_overdue_on_or_before_the_deadline(found_on: str) -> None:
    assert "not after the deadline 2025-03-31" in refused(found_on=found_on)


def test_another_order_is_refused() -> None:
    assert "is not order ND-2025-0042" in refused(rectification_id="ND-2025-0043")


def test_another_deadline_is_refused() -> None:
    message = refused(deadline="2025-04-30", found_on="2025-05-02")
    assert "deadline is 2025-03-31, not 2025-04-30" in message
