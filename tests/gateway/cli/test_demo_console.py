"""`gateway demo --console` as a user runs it (issue 23 §7): a subprocess that keeps its
gateway up after the summary and prints a login link that signs in, and a line for more links
that works; Ctrl-C stops it and its temporary data goes with it, even where whatever started it
left SIGINT ignored and blocked (it hung so in whole-suite runs until it handled the signal
itself)."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from gateway.cli import app

LINK = re.compile(r"^(http://127\.0\.0\.1:\d+)/console/login\?token=(\S+)$")
MORE = re.compile(r"^more links: GATEWAY_DATA_DIR=(\S+) gateway console login AGENCY")


def _sigint_ignored_and_blocked() -> None:
    """What a launcher may leave a child (both outlive exec)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


class Demo:
    """The running `gateway demo --console`, its output read line by line as it comes."""

    def __init__(self, cwd: Path) -> None:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        # PYTHONFAULTHANDLER: a demo that ignores Ctrl-C prints its threads' stacks on SIGABRT
        environment.update(
            COLUMNS="120", NO_COLOR="1", PYTHONUNBUFFERED="1", PYTHONFAULTHANDLER="1"
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "demo", "--console", "--enterprises", "20"],
            cwd=cwd,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=_sigint_ignored_and_blocked,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)
        self.process.stdout.close()  # read to its end: let go of the pipe (ResourceWarning)

    def until(self, pattern: re.Pattern[str], seconds: float) -> re.Match[str]:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if found := pattern.match(line):
                return found
        pytest.fail(f"no line like {pattern.pattern}:\n" + "\n".join(self.seen[-40:]))

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # Ctrl-C
            try:
                return self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGABRT)  # where it is stuck, then gone
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        return self.process.returncode


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    running = Demo(tmp_path)
    try:
        yield running
    finally:
        running.stop()
        running.reader.join(timeout=10)


def test_demo_console_keeps_serving_and_its_link_signs_in(
    demo: Demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, token = demo.until(LINK, seconds=240).groups()
    data_dir = Path(demo.until(MORE, seconds=10)[1])
    assert data_dir.is_dir()
    with httpx.Client(base_url=base, trust_env=False, timeout=10) as browser:
        shown = browser.get("/console/login", params={"token": token})
        assert shown.status_code == 200
        assert "fj-dsj" in shown.text
        signed = browser.post("/console/login", data={"token": token})
        assert signed.status_code == 303
        overview = browser.get("/console/overview")
        assert overview.status_code == 200
        log_size = re.search(r'data-figure="log_size">(\d+)<', overview.text)
        assert log_size, overview.text[:500]
        checkpoint = browser.get("/v1/log/checkpoint").text
        assert int(log_size[1]) == int(checkpoint.splitlines()[1]) > 20
    # the line it prints for more links works as printed, while the demo runs
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(data_dir))
    monkeypatch.delenv("GATEWAY_DATABASE_URL", raising=False)
    more = CliRunner().invoke(app, ["console", "login", "fj-picc", "--base-url", base])
    assert more.exit_code == 0, more.output
    other = LINK.match(more.output.strip())
    assert other
    assert other[1] == base
    with httpx.Client(base_url=base, trust_env=False, timeout=10) as browser:
        assert browser.post("/console/login", data={"token": other[2]}).status_code == 303
        assert browser.get("/console/agency/").status_code == 200
    stopped = demo.stop()
    printed = [line.strip() for line in (*demo.seen, *drain(demo))]
    assert stopped == 0, "\n".join(printed[-40:])
    assert "stopped" in printed
    assert not data_dir.exists()  # no --keep: the temporary directory is removed
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{base}/health", trust_env=False, timeout=2)


def drain(demo: Demo) -> list[str]:
    rest = []
    while (line := demo.lines.get(timeout=10)) is not None:
        rest.append(line)
    return rest
