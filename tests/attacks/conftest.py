"""The attacks replay issue 20's findings, and the classes of attack that held, against real
gateways on loopback: one server per module (tests/attacks/live_gateway.py)."""

from __future__ import annotations

import sys
from pathlib import Path

# the gateway tests' factories (contract_factories is on the path already: tests/)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway"))
