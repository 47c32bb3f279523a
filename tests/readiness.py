"""Waiting for a server a test started: a deadline that holds on a busy machine (120 s unless
GATEWAY_TEST_READY_SECONDS says otherwise; a healthy start takes about a second), and, when
it fails, what the server printed, so the failure says why."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import httpx

READY_SECONDS = float(os.environ.get("GATEWAY_TEST_READY_SECONDS", "120"))


def _tail(output: Path | None, lines: int = 40) -> str:
    if output is None or not output.exists():
        return ""
    text = output.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    return "\n--- it printed ---\n" + "\n".join(text)


def wait_until_ready(
    process: subprocess.Popen[bytes] | subprocess.Popen[str],
    port: int,
    what: str,
    *,
    output: Path | None = None,
    health: str | None = "/healthz",
    seconds: float = READY_SECONDS,
) -> None:
    """Until `process` answers 200 on `health` at 127.0.0.1:`port` (or, with `health=None`,
    accepts a connection there). Raises AssertionError with the output's last lines when the
    process exits first or the deadline passes."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            raise AssertionError(f"{what} exited with {code} before it was ready{_tail(output)}")
        if health is None:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return
        else:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}{health}", timeout=2)
                if answer.status_code == 200:
                    return
            except httpx.TransportError:
                pass
        time.sleep(0.05)
    raise AssertionError(f"{what} was not ready on port {port} in {seconds:.0f} s{_tail(output)}")
