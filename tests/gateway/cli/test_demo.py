"""The demo is the README's first command: it must run clean end to end on SQLite."""

from __future__ import annotations

import datetime as dt
import io
import json
import sqlite3
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from contracts.dates import add_months
from gateway.cli import app
from gateway.demo.dataset import build_enterprises, dramatic_events
from gateway.demo.run import run_demo


def test_demo_runs_clean_and_leaves_a_consistent_log(tmp_path: Path) -> None:
    out = io.StringIO()
    code = run_demo(enterprises=45, keep=tmp_path, seed=7, console=Console(file=out, width=120))
    text = out.getvalue()
    assert code == 0, text
    assert "receipts verified against /.well-known/jwks.json" in text
    assert "grade REVOKED (fatal_accident)" in text
    # the exact line to use the kept data next, and it works
    export = next(line for line in text.splitlines() if line.strip().startswith("export "))
    assert f"GATEWAY_DATA_DIR={tmp_path.resolve()}" in export
    environment = dict(pair.split("=", 1) for pair in export.split()[1:])
    listed = CliRunner().invoke(app, ["ledger", "list", "--json"], env=environment)
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output)["total"] > 0
    with sqlite3.connect(tmp_path / "gateway.db") as db:
        size = db.execute("SELECT size FROM log_head").fetchone()[0]
        indexes = [row[0] for row in db.execute("SELECT idx FROM log_entries ORDER BY idx")]
        revoked = db.execute(
            "SELECT count(*) FROM enterprises WHERE grade_status = 'revoked'"
        ).fetchone()[0]
        states = dict(db.execute("SELECT status, count(*) FROM deliveries GROUP BY status"))
        receipts = db.execute("SELECT count(*) FROM consumer_receipts").fetchone()[0]
    assert indexes == list(range(size)), "the log has a gap or a duplicate"
    assert revoked >= 2
    assert set(states) == {"delivered"}, states  # every push reached the agencies' receivers
    assert receipts == states["delivered"]  # and each answered with a verified signed receipt
    assert (tmp_path / "agency-keys" / "fj-yjt.pem").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("today", [dt.date(2026, 11, 29), dt.date(2028, 2, 29)])
def test_every_seed_builds_a_data_set_of_valid_dates(today: dt.date) -> None:
    """Seeds 45, 48, 63 and 145 drew an award on 29 February and failed on its validity
    (`date.replace(year=…)`); every seed builds, and its validities end the day before the
    same date three years on (28 February from 29 February)."""
    for seed in range(200):
        enterprises = build_enterprises(40, seed, today)
        steps = [step for ent in enterprises for step in ent.steps]
        steps += dramatic_events(enterprises, today)
        for step in steps:
            if step.type == "grade.awarded":
                start = dt.date.fromisoformat(step.data["valid_from"])
                end = dt.date.fromisoformat(step.data["valid_to"])
                assert end == add_months(start, 36) - dt.timedelta(days=1)
