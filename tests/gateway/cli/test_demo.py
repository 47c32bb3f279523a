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
    shows_issue_18(text)


def table_rows(text: str, title: str) -> list[list[str]]:
    """The body rows of the rich table whose title starts with `title`, cell by cell."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(title))
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("└"))
    return [
        [cell.strip() for cell in line.strip().strip("│").split("│")]
        for line in lines[start:end]
        if line.startswith("│")
    ]


def factors(cell: str) -> list[float]:
    """0.80×10  1.10×1 → [0.8, 1.1]: the factors a premium cell shows, with their counts."""
    return [float(shown.split("×")[0]) for shown in cell.split()]


def shows_issue_18(text: str) -> None:
    """What the demo shows of issue 18: the liability factor follows the grade, a revoked or
    lapsed grade gets no grade discount, work injury beside it (social insurance's), the
    register changes by periodic verification (a rename) and a closure, which leaves the
    premium table."""
    assert "renamed, found by periodic verification" in text
    assert "deregistered (注销)" in text
    rows = {row[0]: row for row in table_rows(text, "Premium factors by grade today")}
    assert {"二级", "未定级", "已撤销", "已过期"} <= set(rows), rows
    assert all(len(row) == 4 for row in rows.values()), "grade, count, liability, work injury"
    liability = {grade: factors(row[2]) for grade, row in rows.items()}
    work_injury = {grade: factors(row[3]) for grade, row in rows.items()}
    assert 0.8 in liability["二级"]  # level 2, no accident: −10 % grade, −10 % no accident
    assert 0.85 in work_injury["二级"]
    assert min(liability["未定级"]) == 0.9  # the no-accident discount alone
    assert min(liability["已撤销"]) >= 1.0  # no discount of any kind after a revocation
    # lapsed, whether or not its grade.expired was published: no grade discount is left
    assert min(liability["已过期"]) == 0.9
    assert min(work_injury["已过期"]) == 1.0
    enterprises = sum(int(row[1]) for row in rows.values())
    basic = int(text.split(" enterprises in the basic ledger")[0].rsplit("(", 1)[1])
    assert enterprises == basic - 1  # the closed enterprise is no one's premium any more


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
