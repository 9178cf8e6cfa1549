"""Terminal output shared by the command line, the demo and the ingest: a console as wide as
the terminal, Arrow tables as rows / grids / csv / json / parquet, the ingest progress bar.

rich and pyarrow are imported inside the functions that use them: the lake imports this
module for its progress bar (``import pfflake.lake`` should not pay for rich when nothing
is drawn), and ``import pfflake.cli`` stays free of pyarrow until a command needs it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa
    from rich.console import Console


def make_console(min_width: int = 0) -> Console:
    """A console as wide as the terminal (COLUMNS, else 80 when not a terminal)."""
    from rich.console import Console

    width = None
    if not sys.stdout.isatty():
        width = int(os.environ.get("COLUMNS", "0") or 0) or max(80, min_width)
    return Console(width=width, soft_wrap=False)


def plain_rows(table: pa.Table) -> list[dict[str, Any]]:
    """Rows as Python values, timestamps as ISO strings (nanoseconds kept, no pandas needed)."""
    import pyarrow as pa

    columns = [
        col.cast(pa.string()) if pa.types.is_timestamp(col.type) else col
        for col in table.columns
    ]
    return pa.table(columns, names=table.column_names).to_pylist()


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def print_table(console: Console, table: pa.Table, title: str | None = None,
                limit: int = 200) -> None:
    """An Arrow table on ``console``: a grid when it fits the width, else one block per
    row (``column | value``, like psql's ``\\x``), so it stays readable at 80 columns."""
    from rich.table import Table

    rows = plain_rows(table.slice(0, limit))
    cells = [[_cell(v) for v in row.values()] for row in rows]
    natural = sum(
        max([len(name)] + [len(r[j]) for r in cells]) + 3
        for j, name in enumerate(table.column_names)
    ) + 1
    if title:
        console.print(f"[bold]{title}[/]")
    if natural <= console.width:
        view = Table(show_lines=False)
        for name in table.column_names:
            view.add_column(name, no_wrap=True)
        for row in cells:
            view.add_row(*row)
        console.print(view)
    else:
        key_w = max((len(n) for n in table.column_names), default=0)
        for i, row in enumerate(cells):
            console.print(f"-[ row {i + 1} ]-", highlight=False)
            for k, v in zip(table.column_names, row, strict=True):
                console.print(f"{k:<{key_w}} | {v}", highlight=False, markup=False,
                              soft_wrap=True)
    if table.num_rows > limit:
        console.print(f"... {table.num_rows - limit:,} more rows (use --format csv)")
    elif table.num_rows == 0:
        console.print("(0 rows)")


def emit_table(table: pa.Table, fmt: str, out: Path | None) -> None:
    """``table`` as ``fmt`` (table, csv, json: one object a line; parquet needs ``out``)
    to ``out`` or standard output."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if fmt == "table":
        print_table(make_console(), table)
    elif fmt == "csv":
        pacsv.write_csv(table, str(out) if out else sys.stdout.buffer)
    elif fmt == "json":
        text = "\n".join(json.dumps(r, default=str) for r in plain_rows(table))
        if out:
            out.write_text(text + "\n" if text else "")
        elif text:
            print(text)
    elif fmt == "parquet":
        pq.write_table(table, out, compression="zstd")


def progress_bar(enabled: bool | None, total: int,
                 label: str = "ingest") -> Callable[[int | None], None]:
    """A rich progress bar on a TTY (silent otherwise, or with ``enabled=False``); call the
    returned function with the frames done since the last call, and with None to end."""
    if enabled is False or (enabled is None and not sys.stderr.isatty()) or total == 0:
        return lambda _n: None
    from rich.progress import BarColumn, Progress, TimeRemainingColumn

    bar = Progress(label, BarColumn(), "{task.completed:,}/{task.total:,} frames",
                   TimeRemainingColumn(), transient=True)
    task = bar.add_task(label, total=total)
    bar.start()

    def update(n: int | None) -> None:
        if n is None:
            bar.stop()
        else:
            bar.advance(task, n)

    return update


__all__ = ["emit_table", "make_console", "plain_rows", "print_table", "progress_bar"]
