"""`gateway supervision plan` shows what `GET /v1/supervision/plan` answers, and `gateway draw
verify` refuses a draw it cannot check with a stable code scripts can rely on (issue 21 §3, §5)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from gateway_factories import Publisher, bearer, publish
from sqlalchemy import delete
from test_supervision import draw, draw_body, inspection, province, supervisor
from typer.testing import CliRunner

from gateway.cli import app
from gateway.cli import supervision as supervision_cli
from gateway.clock import FixedClock
from gateway.models import Checkpoint, Cosignature, LogEntry
from gateway.runtime import Runtime
from gateway.settings import Settings

__all__ = ["supervisor"]  # the fixture, shared with test_supervision

runner = CliRunner()


@pytest.fixture
def cli(settings: Settings, clock: FixedClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI on the test's database, on the test's clock."""
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("GATEWAY_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("GATEWAY_LOG_ORIGIN", settings.log_origin)
    monkeypatch.setattr(supervision_cli, "now", clock.now)


PLAN = ("supervision", "plan", "--region", "3501", "--year", "2026")


def invoke(*args: str, exit_code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    return result.output


def test_supervision_plan_prints_the_api_s_plan_as_json_and_as_a_table(
    cli: None, client: TestClient, runtime: Runtime, authority: Publisher, supervisor: Publisher
) -> None:
    codes = province(client, authority, 24)  # 8 in 350102, three in four of them graded
    headers = bearer(runtime, "fj-yjt-zf", "supervise")
    url = "/v1/supervision/plan?region=3501&year=2026"
    level_1 = codes[9]  # in 350102, level 1: brought up to date, so one is not behind
    due = next(i for i in client.get(url, headers=headers).json()["items"] if i["uscc"] == level_1)
    for n in range(due["due_by_now"]):
        done = inspection(inspection_id=f"JC-{n}", inspected_on=f"2026-10-{n + 10}")
        answer = publish(client, supervisor.message("inspection.recorded", done, subject=level_1))
        assert answer.status_code == 201, answer.text
    api = client.get(url, headers=headers).json()
    shown = json.loads(
        invoke("supervision", "plan", "--region", "3501", "--year", "2026", "--json")
    )
    assert shown["items"] == api["items"]
    assert shown["totals"] == api["totals"]
    assert [item["uscc"] for item in shown["items"]] == sorted(c for c in codes if c[2:6] == "3501")
    behind = json.loads(
        invoke(
            "supervision", "plan", "--region", "3501", "--year", "2026", "--behind-only", "--json"
        )
    )
    assert behind["items"]
    assert all(item["behind"] for item in behind["items"])
    assert level_1 in {item["uscc"] for item in shown["items"]} - {
        i["uscc"] for i in behind["items"]
    }
    assert {item["uscc"] for item in behind["items"]} == {
        item["uscc"] for item in shown["items"] if item["behind"]
    }
    table = invoke(*PLAN)
    title = f"Supervision plan 3501 2026 as of {api['on']}: {api['totals']['enterprises']}"
    assert title in " ".join(table.split())
    assert all(item["uscc"] in table for item in shown["items"])  # a code is never cut
    invoke("supervision", "plan", "--region", "35x", "--year", "2026", exit_code=1)


def verify(draw_id: str, exit_code: int) -> dict[str, Any]:
    return dict(json.loads(invoke("draw", "verify", draw_id, "--json", exit_code=exit_code)))


def test_draw_verify_names_why_it_cannot_check_a_draw_with_a_stable_code(
    cli: None, client: TestClient, runtime: Runtime, authority: Publisher, supervisor: Publisher
) -> None:
    province(client, authority, 24)
    small = [{"name": "l1", "where": {"levels": ["1"]}, "sample": 2}]
    drawn = draw(client, runtime, draw_body("CLI-1", strata=small))
    assert verify("CLI-1", 0) | {"differences": []} == {
        "draw_id": "CLI-1",
        "verified": True,
        "code": None,
        "differences": [],
    }
    assert verify("no-such-draw", 1)["code"] == "unknown_draw"
    requested = client.post(
        "/v1/inspections/draws",
        json=draw_body("CLI-2", strata=small),
        headers=bearer(runtime, "fj-yjt-zf", "supervise"),
    )
    assert requested.status_code == 201, requested.text
    assert verify("CLI-2", 1)["code"] == "draw_not_completed"

    # the log holds fewer entries than the seed checkpoint's size
    size = drawn["result"]["seed_checkpoint_size"]
    with runtime.db.transaction() as session:
        removed = session.get(LogEntry, size - 1)
        assert removed is not None
        kept = {c.name: getattr(removed, c.name) for c in LogEntry.__table__.columns}
        session.delete(removed)
    assert verify("CLI-1", 1)["code"] == "size_not_committed"
    with runtime.db.transaction() as session:
        session.add(LogEntry(**kept))

    # the seed checkpoint is gone
    with runtime.db.transaction() as session:
        session.execute(delete(Cosignature).where(Cosignature.size == size))
        session.execute(delete(Checkpoint).where(Checkpoint.size == size))
    refused = verify("CLI-1", 1)
    assert (refused["verified"], refused["code"]) == (False, "seed_checkpoint_missing")
    assert str(size) in refused["detail"]
    assert "error: seed_checkpoint_missing" in invoke("draw", "verify", "CLI-1", exit_code=1)
