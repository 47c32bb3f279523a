"""The `gateway` command: `--help` everywhere, and the admin commands on a real database."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
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
            "11350000MB0000019N",
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

    granted = runner.invoke(
        app,
        [
            "agency",
            "grant",
            "fj-yjt",
            "grade.expired",
            "--subscribe",
            "grade.revoked=reason_code,decided_on",
            "--query",
            "standing",
            "--json",
        ],
    )
    assert granted.exit_code == 0, granted.output
    shown = json.loads(granted.output)
    assert shown["publish"] == ["grade.awarded", "grade.expired", "grade.revoked"]
    assert shown["subscribe"] == {"grade.revoked": ["decided_on", "reason_code"]}
    assert shown["query"] == {"standing": None}
    limited = runner.invoke(
        app, ["agency", "rate-limit", "fj-yjt", "--per-second", "5", "--burst", "10"]
    )
    assert limited.exit_code == 0, limited.output
    assert "5/s, burst 10" in limited.output
    revoked = runner.invoke(
        app, ["agency", "revoke", "fj-yjt", "--query", "standing", "--publish", "grade.expired"]
    )
    assert revoked.exit_code == 0, revoked.output
    table = runner.invoke(app, ["agency", "rights", "fj-yjt"]).output
    assert "grade.revoked" in table
    assert "standing" not in table
    assert "grade.expired" not in table
    bad = runner.invoke(app, ["agency", "grant", "fj-yjt", "--subscribe", "grade.revoked=pay"])
    assert bad.exit_code == 1
    assert "unknown_field" in bad.output


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


def _agency_with_a_key_file(
    tmp_path: Path, runtime: Any, clock: Any, agency_id: str, role: str
) -> tuple[Path, dt.datetime]:
    """An agency whose key `gateway key generate` wrote to a file, registered as of now (the
    CLI signs its login with the real time, so the clock is set to it)."""
    from gateway.registry import service
    from keys.store import read_key_file

    key_file = tmp_path / f"{agency_id}.pem"
    assert runner.invoke(app, ["key", "generate", str(key_file)]).exit_code == 0
    clock.at = dt.datetime.now(dt.UTC)
    now: dt.datetime = clock.now()
    with runtime.db.transaction() as session:
        service.add_agency(
            session,
            runtime.signer,
            agency_id=agency_id,
            name=agency_id,
            uscc="11350000MB0000019N",
            roles=[role],
            now=now,
        )
        service.add_key(
            session,
            runtime.signer,
            agency_id=agency_id,
            jwk=read_key_file(key_file).public_key.jwk(),
            suite="ed25519",
            now=now,
            valid_from=now - dt.timedelta(days=1),
        )
    return key_file, now


def test_publish_logs_in_with_the_key_and_publishes(
    tmp_path: Path, runtime: Any, settings: Any, clock: Any
) -> None:
    """`gateway publish` signs with the key file, logs in with the same key
    (private_key_jwt) and publishes; without the publish scope it stops at the login."""
    from contract_factories import USCC, make_registration
    from loopback import serving

    from gateway.app import create_app
    from gateway.registry import service
    from gateway.registry.scopes import grant_scopes

    key_file, now = _agency_with_a_key_file(tmp_path, runtime, clock, "fj-yjt", "grading_authority")
    with runtime.db.transaction() as session:
        service.grant_publish(session, runtime.signer, "fj-yjt", ["enterprise.registered"], now)
    envelope = tmp_path / "registered.json"
    envelope.write_text(
        json.dumps(
            {
                "type": "enterprise.registered",
                "issuer": "fj-yjt",
                "subject": USCC,
                "issued_at": (now - dt.timedelta(minutes=1)).isoformat(),
                "data": make_registration(),
            }
        )
    )
    with serving(create_app(settings, clock=clock)) as base:
        args = ["publish", str(envelope), "--key", str(key_file), "--url", base, "--json"]
        refused = runner.invoke(app, args)
        assert refused.exit_code == 1
        assert json.loads(refused.output)["code"] == "scope_not_granted"
        with runtime.db.transaction() as session:
            grant_scopes(session, runtime.signer, "fj-yjt", ["publish"], now)
        accepted = runner.invoke(app, args)
    assert accepted.exit_code == 0, accepted.output
    body = json.loads(accepted.output)
    assert body["status"] == 201
    assert body["receipt"].count(".") == 2


def test_token_prints_an_access_token_that_the_api_takes(
    tmp_path: Path, runtime: Any, settings: Any, clock: Any
) -> None:
    """`gateway token AGENCY --key FILE`: the access token for curl (issue 22 §3)."""
    import httpx
    from loopback import serving

    from gateway.app import create_app
    from gateway.registry.scopes import grant_scopes

    key_file, now = _agency_with_a_key_file(tmp_path, runtime, clock, "fj-cib", "bank")
    with runtime.db.transaction() as session:
        grant_scopes(session, runtime.signer, "fj-cib", ["ledger.read"], now)
    with serving(create_app(settings, clock=clock)) as base:
        args = ["token", "fj-cib", "--key", str(key_file), "--url", base, "--scope", "ledger.read"]
        printed = runner.invoke(app, args)
        assert printed.exit_code == 0, printed.output
        token = printed.stdout.strip()
        answer = httpx.get(f"{base}/v1/ledgers/basic", headers={"authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.text
        described = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
        assert described["scope"] == "ledger.read"
        assert dt.datetime.fromisoformat(described["expires_at"]) > dt.datetime.now(dt.UTC)
        refused = runner.invoke(app, [*args[:-1], "publish"])
        assert refused.exit_code == 1
        assert "scope" in refused.output


def test_the_cli_starts_without_the_web_framework() -> None:
    """Every `gateway …` command imports the whole CLI; FastAPI and Starlette (0.4 s of a
    1.5 s `gateway --help`) are the server's, not the commands'."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, gateway.cli; print(sorted(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "'gateway.cli.agency'" in loaded
    assert "'fastapi'" not in loaded
    assert "'starlette'" not in loaded
