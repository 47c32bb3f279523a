"""CLI tables never cut an id: whole on one line in a table when the terminal is wide enough
for every word, else one block per row; never an ellipsis, never a code folded in two."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.table import Table
from rich.text import Text

from gateway.cli.tables import print_table

USCC = "91350203AY4CL12T2P"
SUBSCRIPTION = "7cc31130-de06-44c1-8a2b-490cc20329a5"
LEAF = "328f91d970bba2df2a4cd429af9f8dd244441ccfc722e08d9ec7357364082463"


def rendered(width: int) -> str:
    table = Table("enterprise", "name", "subscription", "leaf hash", title="deliveries")
    table.add_row(USCC, "宁德某某化工有限公司 (Ningde chemicals, a long name)", SUBSCRIPTION, LEAF)
    table.add_row(USCC[:-1] + "X", "short", SUBSCRIPTION[:-1] + "6", LEAF[:-1] + "0")
    out = io.StringIO()
    print_table(table, Console(file=out, width=width, color_system=None))
    return out.getvalue()


@pytest.mark.parametrize("width", [40, 60, 80, 100, 120, 160, 200])
def test_every_id_is_whole_on_one_line_at_any_width(width: int) -> None:
    text = rendered(width)
    assert "…" not in text
    lines = text.splitlines()
    for ident in (USCC, SUBSCRIPTION, LEAF, USCC[:-1] + "X", SUBSCRIPTION[:-1] + "6"):
        assert any(ident in line for line in lines), (ident, text)
    # wide enough for every word: a table; else one block per row
    assert ("┃ enterprise" in text) == (width >= 160)


@pytest.mark.parametrize("width", [40, 200])
def test_a_cell_is_shown_as_the_text_it_is_never_as_markup(width: int) -> None:
    """A receiver's answer or a query's purpose ends up in a cell: `[/x]` stopped the command
    with a MarkupError, `[b]…[/b]` vanished."""
    table = Table("subscription", "last error")
    table.add_row(SUBSCRIPTION, "http_502: [/error] upstream [b]timed out[/b]")
    table.add_row(SUBSCRIPTION[:-1] + "6", Text("styled", style="green"))
    out = io.StringIO()
    print_table(table, Console(file=out, width=width, color_system=None))
    text = out.getvalue()
    assert "http_502: [/error] upstream [b]timed out[/b]" in " ".join(text.split())
    assert "styled" in text
    assert ("┃ subscription" in text) == (width == 200)


def test_a_cell_of_several_lines_stays_under_its_label_in_blocks() -> None:
    table = Table("agency", "keys")
    table.add_row("fj-yjt", f"{LEAF} ed25519 active\n{LEAF[::-1]} es256 retired")
    out = io.StringIO()
    print_table(table, Console(file=out, width=60, color_system=None))
    lines = out.getvalue().splitlines()
    assert f"keys    {LEAF} ed25519 active" in lines
    assert f"        {LEAF[::-1]} es256 retired" in lines
