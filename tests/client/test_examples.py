"""Issue 22 §2: the three examples run in a fresh virtualenv holding only the client
(`pip install ./client`; fastapi and uvicorn added for the receiver alone), against a real
gateway started here on a loopback port: a grade is published, the insurer's receiver gets
its premium document once (and a replay as a duplicate) and answers with a consumer receipt
the gateway keeps, the bank's attested query sees the grade, and the award's evidence
bundle passes the client's checks and `gateway verify`'s alike."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from example_gateway import Running, serving, stop, wait_until_listening

from contracts.uscc import complete_uscc
from gateway.transparency.bundle_check import check_bundle

pytestmark = pytest.mark.slow  # about 30 s, most of it building the virtualenv; runs in CI

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
# Installed with the client, they would mean it is not installed alone.
NOT_WITH_THE_CLIENT = {"credit-gateway", "fastapi", "starlette", "sqlalchemy", "uvicorn"}


def run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result


def pip(python: Path) -> list[str]:
    """This process's pip acting on another environment (`--python`): the virtualenv needs
    no pip of its own, whose installation was a third of the fixture's time."""
    return [sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check"]


def installed(python: Path) -> set[str]:
    listing = run([*pip(python), "list", "--format=json"]).stdout
    return {p["name"].lower().replace("_", "-") for p in json.loads(listing)}


@pytest.fixture(scope="session")
def client_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a fresh virtualenv holding the client installed alone (a copy of
    client/, so the build leaves nothing in the work tree), then fastapi and uvicorn, which
    the receiver example runs on. Built once per test session."""
    base = tmp_path_factory.mktemp("client-venv")
    source = base / "client"
    shutil.copytree(
        ROOT / "client",
        source,
        ignore=shutil.ignore_patterns("tests", "build", "*.egg-info", "__pycache__", ".*"),
    )
    run([sys.executable, "-m", "venv", "--without-pip", str(base / "venv")])
    python = base / "venv" / "bin" / "python"
    run([*pip(python), "install", "--quiet", str(source)])
    alone = installed(python)
    assert "credit-gateway-client" in alone
    assert not alone & NOT_WITH_THE_CLIENT, alone & NOT_WITH_THE_CLIENT
    run([*pip(python), "install", "--quiet", "fastapi", "uvicorn"])
    return python


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Running]:
    with serving(tmp_path) as running:
        yield running


@dataclass
class Agencies:
    """The agencies' side: the examples run in the client's virtualenv, in a directory of
    their own, with only what an agency's process would have in its environment."""

    python: Path
    gateway: Running
    work: Path

    def env(self, agency: str, **extra: str) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "PYTHONIOENCODING": "utf-8",
            "GATEWAY_URL": self.gateway.url,
            "AGENCY_ID": agency,
            "AGENCY_KEY": str(self.gateway.keys[agency]),
            **extra,
        }

    def run(self, script: str, agency: str, *args: str) -> list[str]:
        command = [str(self.python), str(EXAMPLES / script), *args]
        return run(command, env=self.env(agency), cwd=self.work).stdout.splitlines()

    @contextmanager
    def receiver(self, out: Path) -> Iterator[None]:
        """insurer_receiver.py under uvicorn, at the subscription's URL."""
        port = self.gateway.receiver_port
        app = ["--app-dir", str(EXAMPLES), "insurer_receiver:app"]
        with out.open("w") as sink:
            process = subprocess.Popen(
                [str(self.python), "-m", "uvicorn", *app, "--port", str(port)],
                env=self.env("fj-picc", GATEWAY_WHPK=self.gateway.whpk),
                cwd=self.work,
                stdout=sink,
                stderr=subprocess.STDOUT,
                text=True,
            )
        try:
            wait_until_listening(port, process, "the receiver", out)
            yield
        finally:
            stop(process)


def lines_of(path: Path, prefix: str, count: int = 1, timeout: float = 30) -> list[list[str]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [line.split() for line in path.read_text().splitlines() if line.startswith(prefix)]
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no {prefix!r} line in {path}:\n{path.read_text()}")


def test_the_examples_run_with_only_the_client_installed(
    client_python: Path, gateway: Running, tmp_path: Path
) -> None:
    agencies = Agencies(client_python, gateway, tmp_path / "agency")
    agencies.work.mkdir()  # nothing of the gateway in it, nor on the examples' path
    probe = "import importlib.util as u; print(u.find_spec('gateway'), u.find_spec('keys'))"
    assert run([str(client_python), "-c", probe], cwd=agencies.work).stdout.split() == [
        "None",
        "None",
    ]
    code = complete_uscc("91350203MA" + uuid.uuid4().hex[:6].upper())
    out = tmp_path / "receiver.out"
    with agencies.receiver(out):
        award_index, award_id = publish_a_grade(agencies, code)
        # the premium document reaches the receiver, which answers with a consumer receipt
        [[_, subject, factor]] = lines_of(out, "premium")
        assert subject == code
        assert 0 < float(factor) < 1  # a discount: a level-2 grade, no accident
        receipts = wait_for_consumer_receipts(gateway, award_id)
        assert [r["agency_id"] for r in receipts] == ["fj-picc"]
        # the same delivery again (an operator's replay): handled once, receipted again
        replay = httpx.post(
            f"{gateway.url}/v1/subscriptions/{gateway.subscription}/replay",
            json={"from_index": award_index, "to_index": award_index},
            headers=gateway.admin,
        )
        assert replay.status_code == 200, replay.text
        [[_, webhook_id]] = lines_of(out, "duplicate")
        assert webhook_id == f"msg_{award_id}.{gateway.subscription}"
        assert len(lines_of(out, "premium")) == 1
    ask_as_a_bank(agencies, code, award_index)
    check_the_bundle(gateway, award_id)


def publish_a_grade(agencies: Agencies, code: str) -> tuple[int, str]:
    """publish_grade.py: the registration and the award, each with its verified receipt."""
    registered, awarded = (
        line.split() for line in agencies.run("publish_grade.py", "fj-yjt", code)
    )
    assert registered[:2] == ["enterprise.registered", code]
    assert awarded[:2] == ["grade.awarded", code]
    assert int(awarded[2]) == int(registered[2]) + 1
    return int(awarded[2]), awarded[3]


def ask_as_a_bank(agencies: Agencies, code: str, award_index: int) -> None:
    """bank_query.py: the attested standing, then a batch with a code that is no code."""
    not_a_code = code[:-1] + ("0" if code[-1] != "0" else "1")
    first, *batch = agencies.run("bank_query.py", "fj-ccb", code, not_a_code)
    uscc, status, level, log_size = first.split()
    assert (uscc, status, level) == (code, "active", "2")
    assert int(log_size) > award_index
    assert batch == [f"{code} 200 active", f"{not_a_code} 400 invalid_uscc"]


def wait_for_consumer_receipts(gateway: Running, message_id: str) -> list[dict[str, str]]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = httpx.get(
            f"{gateway.url}/v1/messages/{message_id}/consumer-receipts", headers=gateway.admin
        )
        assert answer.status_code == 200, answer.text
        found: list[dict[str, str]] = answer.json()["receipts"]
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("the gateway kept no consumer receipt")


def check_the_bundle(gateway: Running, message_id: str) -> None:
    """The client's verify_bundle and `gateway verify`'s check_bundle agree on a live bundle."""
    from credit_gateway_client import Client, load_agency_key, verify_bundle

    with Client(gateway.url, "fj-yjt", gateway.keys["fj-yjt"]) as client:
        bundle = client.bundle(message_id)
        jwks, vkey = client.gateway_jwks(), client.log_vkey()
    publisher = load_agency_key(gateway.keys["fj-yjt"]).public.jwk
    ours = verify_bundle(bundle, jwks, vkey, publisher)
    theirs = check_bundle(bundle, gateway_jwks=jwks, log_vkey=vkey, publisher_jwk=publisher)
    assert ours.ok, ours.checks
    assert [(c.name, c.ok) for c in ours.checks] == [(c.name, c.ok) for c in theirs]
