"""`gateway uscc check` names the failing part; `gateway uscc make` makes codes that pass."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from contracts.uscc import is_valid_uscc
from gateway.cli import app

runner = CliRunner()


def test_check_names_the_failing_part_and_exits_1() -> None:
    result = runner.invoke(
        app, ["uscc", "check", "--json", "91350900587527784T", "91350900587527783P"]
    )
    assert result.exit_code == 1
    first, second = json.loads(result.stdout)
    assert first["valid"] is False
    assert first["part"] == "organisation_code"
    assert second == {"code": "91350900587527783P", "valid": True, "part": None, "detail": None}


def test_check_of_valid_codes_exits_0() -> None:
    result = runner.invoke(app, ["uscc", "check", "91350900587527783P", "914403001922038216"])
    assert result.exit_code == 0, result.output
    assert "valid" in result.stdout


def test_make_gives_distinct_valid_codes_of_the_region_asked() -> None:
    result = runner.invoke(
        app, ["uscc", "make", "--region", "350203", "--count", "50", "--seed", "7", "--json"]
    )
    assert result.exit_code == 0, result.output
    codes = json.loads(result.stdout)
    assert len(set(codes)) == 50
    assert all(is_valid_uscc(code) and code[2:8] == "350203" for code in codes)
    again = runner.invoke(
        app, ["uscc", "make", "--region", "350203", "--count", "50", "--seed", "7", "--json"]
    )
    assert json.loads(again.stdout) == codes


def test_make_refuses_an_unknown_department_or_region() -> None:
    assert runner.invoke(app, ["uscc", "make", "--kind", "94"]).exit_code == 2
    result = runner.invoke(app, ["uscc", "make", "--region", "990000"])
    assert result.exit_code == 2
    assert "region" in result.stderr or "division" in result.stderr
