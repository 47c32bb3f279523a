"""Tables that never cut an id: a rich table when every word of every cell fits the terminal,
else one block per row (`field  value`, as `psql \\x` does), where a long value is left to the
terminal to wrap, whole. `--json` is there for scripts."""

from __future__ import annotations

from rich.cells import cell_len
from rich.console import Console
from rich.rule import Rule
from rich.table import Table
from rich.text import Text


def _text(cell: object) -> str | None:
    if isinstance(cell, Text):
        return cell.plain
    return cell if isinstance(cell, str) else None


def _widths(table: Table, available: int) -> list[int] | None:
    """Each column's width so that no word is broken: full width for a column of single words
    (ids, codes, hashes, numbers), narrowed down to its longest word for a column of text,
    widest first. None when even that does not fit in `available` (or a cell is not text)."""
    full, least = [], []
    for column in table.columns:
        texts = [_text(cell) for cell in (column.header, *column.cells)]
        if any(text is None for text in texts):
            return None
        lines = [line for text in texts if text for line in text.splitlines()] or [""]
        full.append(max(cell_len(line) for line in lines))
        least.append(max(cell_len(word) for line in lines for word in line.split() or [""]))
    if sum(least) > available:
        return None
    widths = list(full)
    while sum(widths) > available:
        narrowable = [i for i, width in enumerate(widths) if width > least[i]]
        widest = max(narrowable, key=lambda i: widths[i])
        widths[widest] -= 1
    return widths


def print_table(table: Table, console: Console) -> None:
    """Print `table` on `console` without an ellipsis anywhere: a USCC, a UUID or a hash is
    shown whole on one line. A `str` cell is shown as the text it is, never read as console
    markup: cells hold data from agencies and receivers (a receiver's answer, a query's
    purpose), where `[/x]` would stop the command with a MarkupError and `[b]` would vanish;
    a cell meant to be styled is given as a `Text`."""
    for column in table.columns:
        # rich keeps a column's cells in `_cells` (a dataclass field of Column)
        column._cells = [Text(cell) if isinstance(cell, str) else cell for cell in column.cells]
    borders = 3 * len(table.columns) + 1 if table.show_edge else 3 * len(table.columns) - 1
    widths = _widths(table, console.width - borders)
    if widths is not None:
        for column, width in zip(table.columns, widths, strict=True):
            column.width, column.min_width, column.overflow = width, width, "fold"
        console.print(table)
        return
    headers = [_text(column.header) or "" for column in table.columns]
    rows = list(zip(*(list(column.cells) for column in table.columns), strict=True))
    label = max(map(cell_len, headers), default=0)
    if table.title:
        console.print(table.title, style="bold", soft_wrap=True)
    indent = Text("\n" + " " * (label + 2))  # a cell's next lines under its first
    for number, row in enumerate(rows, 1):
        console.print(Rule(f"{number}/{len(rows)}", align="left"))
        for header, cell in zip(headers, row, strict=True):
            if isinstance(cell, Text) and "\n" in cell.plain:
                cell = indent.join(cell.split("\n"))
            console.print(
                header + " " * (label - cell_len(header) + 2), cell, sep="", soft_wrap=True
            )
