"""A user's mistake on the command line is one `error:` line with a hint, never a traceback,
and an admin command creates nothing where `gateway init` has not run."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from gateway.cli import app
from gateway.settings import Settings
from gateway.signing import ensure_gateway_keys

runner = CliRunner()
PG_URL = os.environ.get("GATEWAY_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _refused(args: list[str], *fragments: str, code: int = 1) -> str:
    """Run `gateway ARGS`: it must exit `code` with one `error:` naming every fragment."""
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output
    return result.output


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """GATEWAY_DATA_DIR pointing at a directory that does not exist yet."""
    monkeypatch.delenv("GATEWAY_DATABASE_URL", raising=False)
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.mark.parametrize(
    "args",
    [
        ["agency", "list"],
        ["agency", "rights", "fj-yjt"],
        ["ledger", "list"],
        ["ledger", "export", "-o", "out.csv"],
        ["audit"],
        ["worker"],
        ["subscription", "list"],
        ["key", "rotate-webhook"],
        ["deliveries", "failing"],
        ["deliveries", "dead-letters"],
        ["deliveries", "health"],
        ["feedback", "overdue"],
        ["ledger", "summary", "--by", "region"],
        ["console", "login", "fj-dsj"],
    ],
    ids=" ".join,
)
def test_admin_commands_refuse_an_uninitialised_data_directory_and_create_nothing(
    data_dir: Path, args: list[str]
) -> None:
    _refused(args, "error:", "run `gateway init` first")
    assert not data_dir.exists()


def test_a_missing_database_file_is_not_created_empty(data_dir: Path) -> None:
    assert runner.invoke(app, ["init"]).exit_code == 0
    (data_dir / "gateway.db").unlink()
    _refused(["agency", "list"], "no database file", "run `gateway init` first")
    assert not (data_dir / "gateway.db").exists()


def test_a_database_without_the_gateway_tables_is_named(data_dir: Path) -> None:
    ensure_gateway_keys(Settings())
    sqlite3.connect(data_dir / "gateway.db").close()  # an empty file
    _refused(["ledger", "list"], "holds no gateway tables", "run `gateway init` first")


def test_a_postgresql_database_missing_or_empty_is_one_sentence(
    data_dir: Path, pg_template: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"gw_cli_{uuid.uuid4().hex[:12]}"
    url = f"{PG_URL.rpartition('/')[0]}/{name}"
    monkeypatch.setenv("GATEWAY_DATABASE_URL", url)
    _refused(["init"], "cannot use the database", f'database "{name}" does not exist')
    assert not data_dir.exists()
    ensure_gateway_keys(Settings())
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        _refused(["agency", "list"], "holds no gateway tables", "run `gateway init` first")
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_an_unreachable_database_or_a_bad_url_is_one_sentence(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", "postgresql://postgres@127.0.0.1:9/gateway")
    _refused(["init"], "cannot use the database", "Connection refused")
    _refused(["serve"], "cannot use the database")
    monkeypatch.setenv("GATEWAY_DATABASE_URL", "notaurl")
    _refused(["init"], "GATEWAY_DATABASE_URL is not a usable database URL")
    assert not data_dir.exists()


def test_invalid_settings_name_their_variable(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_OBSERVABILITY__LOG_FORMAT", "xml")
    _refused(["agency", "list"], "GATEWAY_OBSERVABILITY__LOG_FORMAT", "'json' or 'text'")
    monkeypatch.delenv("GATEWAY_OBSERVABILITY__LOG_FORMAT")
    monkeypatch.setenv("GATEWAY_DELIVERY__ALLOWED_HOSTS", "[127.0.0.1")
    _refused(["init"], "cannot read the settings", "settings are JSON")
    assert not data_dir.exists()


def test_gateway_debug_shows_the_traceback_and_bugs_keep_theirs(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import ArgumentError

    monkeypatch.setenv("GATEWAY_DATABASE_URL", "notaurl")
    monkeypatch.setenv("GATEWAY_DEBUG", "1")
    assert isinstance(runner.invoke(app, ["init"]).exception, ArgumentError)
    monkeypatch.delenv("GATEWAY_DEBUG")

    def broken() -> Settings:
        raise RuntimeError("a bug")

    monkeypatch.setattr("gateway.cli.settings", broken)
    assert isinstance(runner.invoke(app, ["agency", "list"]).exception, RuntimeError)


def test_key_generate_refuses_an_existing_file_a_missing_directory_and_a_suite(
    tmp_path: Path,
) -> None:
    key = tmp_path / "k.pem"
    assert runner.invoke(app, ["key", "generate", str(key)]).exit_code == 0
    before = key.read_bytes()
    _refused(["key", "generate", str(key)], "already exists")
    assert key.read_bytes() == before
    _refused(["key", "generate", str(tmp_path / "no" / "k.pem")], "no directory")
    _refused(["key", "generate", str(tmp_path / "r.pem"), "--suite", "rsa"], "rsa", code=2)
    assert not (tmp_path / "r.pem").exists()


def test_verify_names_an_input_that_is_not_what_it_should_be(tmp_path: Path) -> None:
    array = tmp_path / "array.json"
    array.write_text("[]")
    text = tmp_path / "text.json"
    text.write_text("not json")
    vkey = tmp_path / "log.vkey"
    vkey.write_text("x\n")
    obj = tmp_path / "object.json"
    obj.write_text('{"jws": "", "receipt": "", "tlog_proof": "", "keys": [], "kty": "OKP"}')
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    paths = {"bundle": obj, "jwks": obj, "jwk": obj}
    cases = (
        ("bundle", "an evidence bundle (from GET /v1/messages/ID/bundle)", "'tlog_proof'"),
        ("jwks", "a JWK set (from GET /.well-known/jwks.json)", "'keys'"),
        ("jwk", "a public JWK", "'kty'"),
    )
    for name, what, member in cases:
        for wrong, why in ((array, "not an object"), (empty, f"it has no {member}")):
            given = paths | {name: wrong}
            args = ["verify", str(given["bundle"]), "--gateway-jwks", str(given["jwks"])]
            args += ["--log-vkey", str(vkey), "--publisher-jwk", str(given["jwk"])]
            _refused(args, f"{wrong} is not {what}", why)
    args = ["verify", str(text), "--gateway-jwks", str(obj), "--log-vkey", str(vkey)]
    _refused([*args, "--publisher-jwk", str(obj)], f"{text} is not JSON, so not an evidence")


def test_a_port_in_use_is_one_line(data_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        _refused(["serve", "--port", str(port)], f"port {port} on 127.0.0.1 is in use", "--port")
        init = ["witness", "init", "--data", str(data_dir / "w"), "--name", "w.test/w"]
        assert runner.invoke(app, init).exit_code == 0
        witness = ["witness", "serve", "--data", str(data_dir / "w"), "--port", str(port)]
        _refused(witness, f"port {port} on 127.0.0.1 is in use")


@pytest.mark.parametrize("url", ["mysql://u@127.0.0.1/db", "postgresql+psycopg2://u@127.0.0.1/db"])
def test_a_database_driver_not_installed_is_one_line(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", url)
    _refused(["init"], "needs the database driver", "not installed", "psycopg")


@pytest.mark.parametrize(
    "args",
    [
        ["serve", "--port", "99999"],
        ["serve", "--workers", "0"],
        ["witness", "serve", "--data", "w", "--port", "0"],
        ["demo", "--enterprises", "0"],
        ["key", "rotate", "fj-yjt", "--jwk", "k.jwk", "--overlap-hours", "-5"],
    ],
    ids=" ".join,
)
def test_out_of_range_options_are_usage_errors(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Invalid value" in result.output


def test_demo_refuses_a_used_directory_and_too_few_enterprises(tmp_path: Path) -> None:
    import io

    from rich.console import Console

    from gateway.demo.run import run_demo

    used = tmp_path / "kept"
    used.mkdir()
    (used / "gateway.db").touch()
    _refused(["demo", "--keep", str(used)], "not a new or empty directory", code=2)
    out = io.StringIO()
    fresh = tmp_path / "fresh"
    assert run_demo(enterprises=3, keep=fresh, seed=2017, console=Console(file=out)) == 2
    assert "too few" in out.getvalue()
    assert not fresh.exists()


def test_witness_init_checks_the_name_first_and_never_renames(tmp_path: Path) -> None:
    data = tmp_path / "w1"
    _refused(["witness", "init", "--data", str(data), "--name", ""], "cannot name", code=2)
    assert not data.exists()
    first = runner.invoke(app, ["witness", "init", "--data", str(data), "--name", "w.example/1"])
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, ["witness", "init", "--data", str(data), "--name", "w.example/1"])
    assert again.output == first.output  # the same vkey
    _refused(
        ["witness", "init", "--data", str(data), "--name", "w.example/2"],
        "already holds the witness 'w.example/1'",
        "another --data directory",
    )
    assert json.loads((data / "witness.json").read_text()) == {"name": "w.example/1"}


def test_a_reader_that_goes_away_ends_the_output_quietly(tmp_path: Path) -> None:
    """`gateway uscc make --count 5000 | head -1`: no `error: Broken pipe`, no traceback."""
    gateway = Path(sys.executable).parent / "gateway"
    result = subprocess.run(
        f"{gateway} uscc make --region 350000 --count 5000 | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert len(result.stdout.split()) == 1
    assert result.stderr == ""
