"""The `gateway` command: `--help` everywhere, and the admin commands on a real database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from gateway.cli import app

runner = CliRunner()


def _all_commands() -> list[list[str]]:
    paths: list[list[str]] = []

    def walk(command: Any, prefix: list[str]) -> None:
        paths.append(prefix)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*prefix, name])

    walk(get_command(app), [])
    assert len(paths) > 10, "the command tree was not walked"
    return paths


@pytest.mark.parametrize("path", _all_commands(), ids=lambda p: " ".join(p) or "gateway")
def test_every_command_has_help(path: list[str]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_admin_commands_on_a_fresh_data_directory(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GATEWAY_DATABASE_URL", database_url)

    init = runner.invoke(app, ["init", "--json"])
    assert init.exit_code == 0, init.output
    assert json.loads(init.output)["revision"]

    added = runner.invoke(
        app,
        [
            "agency",
            "add",
            "fj-yjt",
            "--name",
            "福建省应急管理厅",
            "--uscc",
            "11350000MB0000001W",
            "--role",
            "grading_authority",
            "--publish",
            "grade.awarded",
            "--publish",
            "grade.revoked",
            "--json",
        ],
    )
    assert added.exit_code == 0, added.output
    assert json.loads(added.output)["publish"] == ["grade.awarded", "grade.revoked"]

    key_file = tmp_path / "fj-yjt.pem"
    generated = runner.invoke(app, ["key", "generate", str(key_file)])
    assert generated.exit_code == 0, generated.output
    assert key_file.stat().st_mode & 0o777 == 0o600
    registered = runner.invoke(
        app, ["key", "add", "fj-yjt", "--jwk", f"{key_file}.jwk.json", "--json"]
    )
    assert registered.exit_code == 0, registered.output
    kid = json.loads(registered.output)["kid"]

    listed = json.loads(runner.invoke(app, ["agency", "list", "--json"]).output)
    assert listed[0]["keys"][0]["kid"] == kid
    assert listed[0]["keys"][0]["status"] == "active"

    assert (
        runner.invoke(app, ["key", "revoke", "--reason", "lost laptop", "--", kid]).exit_code == 0
    )
    listed = json.loads(runner.invoke(app, ["agency", "list", "--json"]).output)
    assert listed[0]["keys"][0]["status"] == "revoked"

    table = runner.invoke(app, ["ledger", "list"])
    assert table.exit_code == 0
    assert "0 enterprises" in table.output


def test_bad_input_is_a_clear_error_and_non_zero_exit(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GATEWAY_DATABASE_URL", database_url)
    assert runner.invoke(app, ["init"]).exit_code == 0
    result = runner.invoke(
        app,
        ["agency", "add", "x-1", "--name", "X", "--uscc", "123", "--role", "bank"],
    )
    assert result.exit_code == 1
    assert "invalid_uscc" in result.output
    result = runner.invoke(app, ["ledger", "list", "--status", "good"])
    assert result.exit_code == 1
    assert "invalid_filter" in result.output


def test_publish_reports_bad_files_and_an_unreachable_gateway(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = runner.invoke(app, ["publish", str(bad), "--key", str(tmp_path / "none.pem")])
    assert result.exit_code == 1
    assert "cannot read a JSON envelope" in result.output
    envelope = tmp_path / "ok.json"
    envelope.write_text('{"type": "enterprise.registered"}')
    result = runner.invoke(app, ["publish", str(envelope), "--key", str(tmp_path / "none.pem")])
    assert result.exit_code == 1
    assert "cannot read the key" in result.output
    key = tmp_path / "k.pem"
    assert runner.invoke(app, ["key", "generate", str(key)]).exit_code == 0
    result = runner.invoke(
        app, ["publish", str(envelope), "--key", str(key), "--url", "http://127.0.0.1:9"]
    )
    assert result.exit_code == 1
    assert "cannot reach the gateway" in result.output
