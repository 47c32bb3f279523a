"""`gateway ledger list` and `gateway ledger export` on a real database: the API's filters,
a bounded page size, and an export that replaces its file only when it is complete."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from contract_factories import make_award, make_registration
from fastapi.testclient import TestClient
from gateway_factories import Publisher, publish_many
from typer.testing import CliRunner

from contracts.uscc import complete_uscc
from gateway.cli import app
from gateway.settings import Settings

runner = CliRunner()
MINING = complete_uscc("91350203MA000002")
CHEMICALS = complete_uscc("91350200MA000001")
NEW = complete_uscc("91350100MA000003")


@pytest.fixture
def cli(
    client: TestClient, authority: Publisher, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three enterprises in the ledgers, and the CLI pointed at the same database."""
    tokens = [
        authority.message(
            "enterprise.registered",
            make_registration(
                name="=厦门某某矿业",
                region_code="350203",
                industry_section="B",
                scheme="non_coal_mining",
            ),
            subject=MINING,
        ),
        authority.message(
            "grade.awarded", make_award(level="3", scheme="non_coal_mining"), subject=MINING
        ),
        authority.message(
            "enterprise.registered", make_registration(region_code="350200"), subject=CHEMICALS
        ),
        authority.message("grade.awarded", make_award(), subject=CHEMICALS),
        authority.message(
            "enterprise.registered", make_registration(registered_on="2026-06-01"), subject=NEW
        ),
    ]
    assert publish_many(client, tokens).json()["rejected"] == 0
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("GATEWAY_DATABASE_URL", settings.effective_database_url)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """A directory for the exports alone (tmp_path also holds the data directory)."""
    path = tmp_path / "exports"
    path.mkdir()
    return path


def listed(*options: str) -> list[str]:
    result = runner.invoke(app, ["ledger", "list", "--json", *options])
    assert result.exit_code == 0, result.output
    return [item["uscc"] for item in json.loads(result.output)["items"]]


@pytest.mark.usefixtures("cli")
def test_list_takes_the_api_filters() -> None:
    assert listed("--industry", "b") == [MINING]
    assert listed("--grade", "3") == [MINING]
    assert listed("--status", "新增") == [NEW]
    assert listed("--ledger", "achieved", "--region", "3502") == sorted([CHEMICALS, MINING])
    assert listed("--limit", "1") == [NEW]


@pytest.mark.usefixtures("cli")
@pytest.mark.parametrize("limit", ["-1", "0", "1001"])
def test_list_limit_is_between_1_and_1000(limit: str) -> None:
    """`--limit -1` listed every row."""
    result = runner.invoke(app, ["ledger", "list", "--limit", limit])
    assert result.exit_code == 2
    assert "--limit" in result.output


@pytest.mark.usefixtures("cli")
def test_export_takes_the_api_filters_and_writes_what_the_api_sends(
    client: TestClient, out: Path
) -> None:
    output = out / "mining.csv"
    filters = ["--industry", "b", "--grade", "3", "--status", "达标", "--region", "3502"]
    result = runner.invoke(
        app, ["ledger", "export", "-o", str(output), "--ledger", "achieved", *filters]
    )
    assert result.exit_code == 0, result.output
    sent = client.get("/v1/ledgers/achieved/export.csv?industry=b&grade=3&status=达标&region=3502")
    assert output.read_bytes() == sent.content
    assert output.read_bytes().startswith(b"\xef\xbb\xbfuscc,")
    (row,) = csv.DictReader(io.StringIO(output.read_text(encoding="utf-8-sig"), newline=""))
    assert (row["uscc"], row["name"]) == (MINING, "'=厦门某某矿业")
    assert [p.name for p in out.iterdir()] == ["mining.csv"], "a partial file was left"


@pytest.mark.usefixtures("cli")
@pytest.mark.parametrize(
    "refused",
    [["--industry", "Z"], ["--grade", "4"], ["--region", "３５"], ["--ledger", "other"]],
)
def test_a_refused_export_leaves_the_existing_file_alone(out: Path, refused: list[str]) -> None:
    """The file was opened (emptied) before the filter was checked."""
    output = out / "ledger.csv"
    output.write_text("last month's export\n", encoding="utf-8")
    result = runner.invoke(app, ["ledger", "export", "-o", str(output), *refused])
    assert result.exit_code == 1
    assert "invalid_filter" in result.output
    assert output.read_text(encoding="utf-8") == "last month's export\n"
    assert [p.name for p in out.iterdir()] == ["ledger.csv"]


@pytest.mark.usefixtures("cli")
def test_an_export_replaces_the_file_and_keeps_its_mode(out: Path) -> None:
    output = out / "ledger.csv"
    output.write_text("last month's export\n", encoding="utf-8")
    output.chmod(0o640)
    result = runner.invoke(app, ["ledger", "export", "-o", str(output)])
    assert result.exit_code == 0, result.output
    assert output.stat().st_mode & 0o777 == 0o640
    rows = list(csv.DictReader(io.StringIO(output.read_text(encoding="utf-8-sig"), newline="")))
    assert sorted(r["uscc"] for r in rows) == sorted([CHEMICALS, MINING, NEW])


@pytest.mark.usefixtures("cli")
def test_an_export_into_a_missing_directory_is_a_clear_error(out: Path) -> None:
    result = runner.invoke(app, ["ledger", "export", "-o", str(out / "no" / "x.csv")])
    assert result.exit_code == 1
    assert "cannot write" in result.output
