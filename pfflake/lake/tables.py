"""Every lake table in one place: its schema, its partition keys, its views.

One :class:`TableSpec` per table stored in the log (``frames``, ``runs``, ``files``, ``hk``,
``calibration``, ``dl1``) and one :class:`ViewSpec` per name a reader accepts. The DuckDB
views (:func:`pfflake.lake.query.register_views`), the Polars scans
(:func:`pfflake.lake.query.scan`) and the Dask frames (:func:`pfflake.lake.cluster.to_dask`)
all derive from these, so they agree on the rules:

(a) a table's columns are the union over its files (a file that lacks a column, e.g.
    another data product's header field, reads as null);
(b) ``frames`` is hive-partitioned by ``data_product`` (string) and ``module`` (int32):
    the keys live in the path and the commit entry, not in the file, and come last in
    the view's columns (:meth:`TableSpec.view_schema`);
(c) ``runs`` and ``files`` are the latest rows per key (``run``; ``run, file``): the
    rows whose ``version`` equals the key's maximum (every such row when a commit wrote
    two for one key: DuckDB, Polars and Dask agree); ``runs`` hides ``version``;
    ``runs_all``/``files_all`` keep every row;
(d) the file list comes from the snapshot, never a directory glob.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from .. import schema as S
from ..images import HILLAS_SCHEMA
from ..products import PRODUCTS


def _frames_schema() -> pa.Schema:
    fields: dict[str, pa.Field] = {}
    for product in PRODUCTS.values():
        for f in S.frame_schema(product, images=False, stats=True):
            fields.setdefault(f.name, f)
    return pa.schema(list(fields.values()))


FRAMES_SCHEMA = _frames_schema()

RUNS_SCHEMA = pa.schema(
    [
        pa.field(S.RUN, pa.string()),
        pa.field("observatory", pa.string()),
        pa.field("start", pa.timestamp("s", tz="UTC")),
        pa.field("run_type", pa.string()),
        pa.field("source_path", pa.string()),
        pa.field("complete", pa.bool_()),
        pa.field("configs", pa.string()),  # JSON, credentials redacted
        pa.field("sw_info", pa.string()),  # JSON
        pa.field("version", pa.int64()),
        # pixel value above which frames.pixels_above counts (null: not computed)
        pa.field("pixels_above_threshold", pa.float64()),
    ]
)

FILES_SCHEMA = pa.schema(
    [
        pa.field(S.RUN, pa.string()),
        pa.field("file", pa.string()),
        pa.field(S.DATA_PRODUCT, pa.string()),
        pa.field(S.MODULE, pa.int32()),
        pa.field(S.SEQNO, pa.int32()),
        pa.field("size", pa.int64()),
        pa.field("frames", pa.int64()),
        pa.field("damaged_frames", pa.int64()),
        pa.field("truncated_tail_bytes", pa.int64()),
        pa.field("fingerprint", pa.string()),
        pa.field("status", pa.string()),
        pa.field("version", pa.int64()),
    ]
)

HK_SCHEMA = pa.schema(
    [
        pa.field(S.RUN, pa.string()),
        pa.field(S.UNIX_T_NS, pa.int64()),
        pa.field(S.TIME, pa.timestamp("ns", tz="UTC")),
        pa.field("device", pa.string()),
        pa.field("field", pa.string()),
        pa.field("value", pa.float64()),
        pa.field("text", pa.string()),
    ]
)

CALIBRATION_SCHEMA = pa.schema(
    [
        pa.field("kind", pa.string()),
        pa.field(S.DATA_PRODUCT, pa.string()),
        pa.field(S.MODULE, pa.int32()),
        pa.field("quabo", pa.int32()),  # ph256 (one quabo's packets per frame); null otherwise
        pa.field(S.RUN, pa.string()),  # the run it was computed from (null for gain)
        pa.field("valid_from_ns", pa.int64()),
        pa.field("valid_to_ns", pa.int64()),
        pa.field("height", pa.int32()),
        pa.field("width", pa.int32()),
        pa.field("values", pa.list_(pa.float64())),
        pa.field("n_frames", pa.int64()),
        pa.field("source", pa.string()),
        pa.field("qc_ok", pa.bool_()),
        pa.field("recipe_name", pa.string()),
        pa.field("recipe", pa.string()),
        pa.field("source_version", pa.int64()),
        pa.field("computed_at_ns", pa.int64()),
        pa.field("calibration_id", pa.string()),
    ]
)

DL1_SCHEMA = pa.schema(
    [
        pa.field(S.RUN, pa.string()),
        pa.field(S.DATA_PRODUCT, pa.string()),
        pa.field(S.MODULE, pa.int32()),
        pa.field(S.FRAME, pa.int64()),
        pa.field(S.UNIX_T_NS, pa.int64()),
        pa.field("quabo", pa.int32()),  # ph256: the frame's quabo (positions in the module)
        *HILLAS_SCHEMA,
        pa.field("pedestal_valid_from_ns", pa.int64()),
        pa.field("gain_source", pa.string()),
        pa.field("recipe_name", pa.string()),
        pa.field("source_version", pa.int64()),
        pa.field("dl1_id", pa.string()),
    ]
)


@dataclass(frozen=True)
class TableSpec:
    """A table of the log: ``name`` is also its directory under the lake root."""

    name: str
    schema: pa.Schema  # every column, partition keys included
    partition_keys: tuple[tuple[str, pa.DataType], ...] = ()  # hive keys, in path order

    @property
    def key_names(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.partition_keys)

    def file_schema(self) -> pa.Schema:
        """The columns stored in the table's Parquet files (partition keys removed)."""
        keys = set(self.key_names)
        return pa.schema([f for f in self.schema if f.name not in keys])

    def view_schema(self) -> pa.Schema:
        """The columns every reader returns, in order: file columns, then partition keys
        with their pinned types (DuckDB's hive order)."""
        return pa.schema(
            list(self.file_schema()) + [pa.field(k, t) for k, t in self.partition_keys]
        )

    def duckdb_options(self) -> str:
        """``read_parquet`` options after the file list (hive typing of the keys)."""
        if not self.partition_keys:
            return ", hive_partitioning=false"
        types = ", ".join(
            f"'{k}': '{'VARCHAR' if t == pa.string() else 'INTEGER'}'"
            for k, t in self.partition_keys
        )
        return f", hive_partitioning=true, hive_types={{{types}}}"


@dataclass(frozen=True)
class ViewSpec:
    """A name readers accept: a table, or the latest rows per key of one."""

    name: str
    table: str
    latest_key: tuple[str, ...] = ()  # keep rows whose version is the key's maximum
    hidden: tuple[str, ...] = ()  # columns the view drops (runs: version)

    @property
    def spec(self) -> TableSpec:
        return TABLES[self.table]

    def columns(self) -> list[str]:
        return [c for c in self.spec.view_schema().names if c not in self.hidden]


TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (
        TableSpec("frames", FRAMES_SCHEMA, S.PARTITION_KEYS),
        TableSpec("runs", RUNS_SCHEMA),
        TableSpec("files", FILES_SCHEMA),
        TableSpec("hk", HK_SCHEMA),
        TableSpec("calibration", CALIBRATION_SCHEMA),
        TableSpec("dl1", DL1_SCHEMA),
    )
}

VIEWS: dict[str, ViewSpec] = {
    v.name: v
    for v in (
        ViewSpec("frames", "frames"),
        ViewSpec("runs", "runs", latest_key=(S.RUN,), hidden=("version",)),
        ViewSpec("files", "files", latest_key=(S.RUN, "file")),
        ViewSpec("hk", "hk"),
        ViewSpec("runs_all", "runs"),
        ViewSpec("files_all", "files"),
        ViewSpec("calibration", "calibration"),
        ViewSpec("dl1", "dl1"),
    )
}

#: view -> table (the names ``scan``/``to_dask`` accept); kept for ``pfflake.query``.
SCAN_TABLES = {v.name: v.table for v in VIEWS.values()}
#: view -> key of its "latest row per key" rule.
LATEST_KEYS = {v.name: v.latest_key for v in VIEWS.values() if v.latest_key}


def table_schema(table: str) -> pa.Schema:
    """Arrow schema of a lake table (``frames``: every product's columns, keys included)."""
    return TABLES[table].schema


__all__ = [
    "CALIBRATION_SCHEMA",
    "DL1_SCHEMA",
    "FILES_SCHEMA",
    "FRAMES_SCHEMA",
    "HK_SCHEMA",
    "LATEST_KEYS",
    "RUNS_SCHEMA",
    "SCAN_TABLES",
    "TABLES",
    "VIEWS",
    "TableSpec",
    "ViewSpec",
    "table_schema",
]
