"""The README's walkthrough runs as written (issue 22 §7): its shell blocks, in order, in a
temporary directory, against the real `gateway serve` and the example receiver they start.
Only the two ports are changed, to free ones, so that runs in parallel do not collide."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
MARK = "<!-- walkthrough -->"


def walkthrough_blocks(readme: str) -> list[str]:
    """The ```sh blocks right after a `<!-- walkthrough -->` line, in order."""
    return re.findall(re.escape(MARK) + r"\n```sh\n(.*?)\n```", readme, flags=re.DOTALL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_readme_walkthrough_runs_as_written(tmp_path: Path) -> None:
    blocks = walkthrough_blocks((ROOT / "README.md").read_text())
    assert len(blocks) >= 6, "the walkthrough's blocks were not found"
    script = "\n".join(blocks)
    api, receiver = free_port(), free_port()
    script = re.sub(r"\b8000\b", str(api), script)
    script = re.sub(r"\b9000\b", str(receiver), script)
    for name in ("examples", "client"):  # the walkthrough runs from the repository
        (tmp_path / name).symlink_to(ROOT / name)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment['PATH']}"
    environment["COLUMNS"] = "160"  # the tables as a wide terminal shows them, one line a row
    process = subprocess.Popen(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its background servers are killed with it, whatever happens
    )
    try:
        output, _ = process.communicate(timeout=240)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    logs = "".join(
        f"\n--- {name}\n{(tmp_path / name).read_text()[-3000:]}"
        for name in ("gateway.log", "receiver.log")
        if (tmp_path / name).exists()
    )
    assert process.returncode == 0, output + logs
    assert re.search(r"^premium 91350900587527783P \d", output, flags=re.MULTILINE), output
    assert '"status":"active"' in output.replace(" ", ""), output  # the bank's standing answer
    assert '"attestation"' in output, output
    # gateway verify printed its checks (and exited 0: the script stops on a failure)
    assert re.search(r"│ publisher signature\s+│ ok", output), output
    assert re.search(r"│ inclusion in the[^│]*│ ok", output), output
    # the operator's token reads the deliveries' health: the insurer's one delivery succeeded
    compact = output.replace(" ", "")
    assert '"agency_id":"fj-picc"' in compact, output
    assert '"succeeded_24h":1' in compact, output
