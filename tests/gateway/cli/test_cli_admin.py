"""Admin commands as the README runs them: its publishing sequence, subscriptions by their
full id, key rotation and revocation, rate limits."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from gateway.errors import BadRequest
from gateway.settings import Settings

runner = CliRunner()
README = Path(__file__).parents[3] / "README.md"


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def initialised(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`gateway init` run in a fresh data directory on a fresh database; returns the cwd."""
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GATEWAY_DATABASE_URL", database_url)
    monkeypatch.chdir(tmp_path)
    _ok(["init"])
    return tmp_path


def _add_agency(agency_id: str, uscc: str, role: str, *more: str) -> None:
    _ok(["agency", "add", agency_id, "--name", agency_id, "--uscc", uscc, "--role", role, *more])


def test_the_readme_sequence_publishes_its_example_envelope(initialised: Path) -> None:
    """README "Running a gateway": every command of the block, then its message.json."""
    from loopback import serving

    from gateway.app import create_app

    readme = README.read_text()
    section = readme[readme.index("## Running a gateway") :]
    block = section[section.index("```sh") : section.index("```\n", section.index("```sh") + 5)]
    commands = [line.split("#")[0].strip() for line in block.replace("\\\n", " ").splitlines()]
    commands = [c for c in commands if c.startswith("gateway ")]
    served = False
    for command in commands:
        args = re.findall(r"\S+", command)[1:]
        if args[0] == "serve":
            served = True
            continue
        if args[0] == "publish":
            assert served, "the README publishes before it serves"
            start = section.index("```json\n") + len("```json\n")
            initialised.joinpath(args[1]).write_text(section[start : section.index("```", start)])
            with serving(create_app(Settings())) as base:
                output = _ok([*args, "--url", base, "--json"])
            assert json.loads(output)["status"] == 201
            continue
        _ok(args)
    assert served


def test_subscriptions_show_the_whole_id_that_other_commands_take(initialised: Path) -> None:
    _add_agency("fj-picc", "11350000MB0000035C", "insurer")
    _ok(["agency", "grant", "fj-picc", "--subscribe", "grade.revoked"])
    shown = _ok(["subscription", "add", "fj-picc", "--type", "grade.revoked"])
    assert "{" not in shown  # key: value lines, not a Python dict
    sub_id = re.search(r"^id: (\S+)$", shown, re.MULTILINE)
    assert sub_id is not None, shown
    listed = _ok(["subscription", "list"])
    assert sub_id[1] in listed
    assert f"{sub_id[1]}: paused" in _ok(["subscription", "status", sub_id[1], "paused"])
    _ok(["subscription", "dead-letters", sub_id[1]])


@pytest.mark.parametrize(
    ("option", "signing"),
    [([], ["v1a"]), (["--signing", "v1"], ["v1"]), (["--signing", "both"], ["v1a", "v1"])],
)
def test_a_subscription_signs_as_chosen(
    initialised: Path, option: list[str], signing: list[str]
) -> None:
    """v1 alone serves receivers on the standardwebhooks libraries (HMAC only)."""
    _add_agency("fj-picc", "11350000MB0000035C", "insurer")
    _ok(["agency", "grant", "fj-picc", "--subscribe", "grade.revoked"])
    shown = json.loads(
        _ok(["subscription", "add", "fj-picc", "--type", "grade.revoked", *option, "--json"])
    )
    assert shown["signing"] == signing
    assert bool(shown.get("hmac_secret")) == ("v1" in signing)


def test_key_rotation_refuses_a_negative_overlap(runtime: Any) -> None:
    from gateway.registry import service
    from keys.suites import get_suite

    now = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    with runtime.db.transaction() as session, pytest.raises(BadRequest) as refused:
        service.rotate_key(
            session,
            runtime.signer,
            agency_id="fj-yjt",
            jwk=get_suite("ed25519").generate().public_key.jwk(),
            suite="ed25519",
            now=now,
            overlap=dt.timedelta(hours=-5),
        )
    assert refused.value.code == "invalid_overlap"


def test_a_kid_starting_with_a_dash_is_revoked_as_the_help_says(initialised: Path) -> None:
    from keys.suites import get_suite

    _add_agency("fj-yjt", "11350000MB0000019N", "grading_authority")
    key = get_suite("ed25519").generate()
    while not key.kid.startswith("-"):  # one kid in 64
        key = get_suite("ed25519").generate()
    jwk = initialised / "dash.jwk.json"
    jwk.write_text(json.dumps(key.public_key.jwk()))
    _ok(["key", "add", "fj-yjt", "--jwk", str(jwk)])
    assert "gateway key revoke --reason lost -- -KID" in _ok(["key", "revoke", "--help"])
    assert f"revoked {key.kid}" in _ok(["key", "revoke", "--reason", "lost", "--", key.kid])


def test_a_rate_limit_needs_both_options(initialised: Path) -> None:
    _add_agency("fj-cib", "11350000MB0000035C", "bank")
    result = runner.invoke(app, ["agency", "rate-limit", "fj-cib", "--per-second", "5"])
    assert result.exit_code == 2, result.output
    assert "give both --per-second and --burst" in result.output
    assert "5/s, burst 10" in _ok(
        ["agency", "rate-limit", "fj-cib", "--per-second", "5", "--burst", "10"]
    )
