"""DuckDB views and Polars scans over one committed snapshot of a lake.

Every view reads an explicit list of files taken from the commit log, never
a directory glob, so stray or uncommitted files are invisible. The view
definitions that go beyond the base tables live in ``sql/views/*.sql``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from . import schema as S
from .products import PRODUCTS

if TYPE_CHECKING:
    from .lake import Lake
    from .log import Snapshot


def frames_schema() -> pa.Schema:
    """All products' frame columns (no image), partition keys included."""
    fields: dict[str, pa.Field] = {}
    for product in PRODUCTS.values():
        for f in S.frame_schema(product, images=False, stats=True):
            fields.setdefault(f.name, f)
    return pa.schema(list(fields.values()))


def _sql_list(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def register_views(con, lake: Lake, snap: Snapshot) -> None:
    """Create ``frames``, ``runs``, ``files``, ``hk`` (+ sql/views) on ``con``."""
    from .lake import FILES_SCHEMA, HK_SCHEMA, RUNS_SCHEMA

    hive_types = "{" + ", ".join(
        f"'{k}': '{'VARCHAR' if t == pa.string() else 'INTEGER'}'" for k, t in S.PARTITION_KEYS
    ) + "}"
    tables = {
        "frames": (frames_schema(), f", hive_partitioning=true, hive_types={hive_types}"),
        "runs_all": (RUNS_SCHEMA, ""),
        "files_all": (FILES_SCHEMA, ""),
        "hk": (HK_SCHEMA, ""),
    }
    source = {"runs_all": "runs", "files_all": "files"}
    for view, (schema, extra) in tables.items():
        paths = lake.table_paths(source.get(view, view), snap)
        if paths:
            con.execute(
                f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM read_parquet("
                f"{_sql_list(paths)}, union_by_name=true{extra})"
            )
        else:
            empty = schema.empty_table()
            con.register(f"_empty_{view}", empty)
            con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM _empty_{view}")
    con.execute(
        "CREATE OR REPLACE VIEW runs AS SELECT * EXCLUDE (version) FROM runs_all "
        "QUALIFY row_number() OVER (PARTITION BY run ORDER BY version DESC) = 1"
    )
    con.execute(
        "CREATE OR REPLACE VIEW files AS SELECT * FROM files_all "
        "QUALIFY row_number() OVER (PARTITION BY run, file ORDER BY version DESC) = 1"
    )
    for sql_file in sorted(views_dir().glob("*.sql")):
        con.execute(sql_file.read_text())


def views_dir() -> Path:
    """``sql/views`` in a source checkout, ``pfflake/sql/views`` in a wheel."""
    here = Path(__file__).parent
    for candidate in (here / "sql" / "views", here.parent / "sql" / "views"):
        if candidate.is_dir():
            return candidate
    return here / "sql" / "views"
