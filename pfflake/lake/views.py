"""Snapshot-bound reads: :class:`LakeView`, the DuckDB views and the Polars scans of one version.

A :class:`LakeView` is a read-only view of a lake bound to one committed
:class:`~pfflake.lake.log.Snapshot` and its own DuckDB connection. Every query
function of :mod:`pfflake.lake.images` and :mod:`pfflake.lake.analysis` takes
one, so a query never mixes two versions (the images of a result come from the
snapshot its rows came from). :meth:`pfflake.lake.Lake.at` makes them.

Every view and scan reads an explicit list of files taken from the snapshot,
never a directory glob, so stray or uncommitted files are invisible. Views
beyond the base tables live in ``sql/views/*.sql`` (one per file).

Timestamps are int64 ns since the UNIX epoch everywhere (``unix_t_ns``).
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Mapping
from datetime import UTC, datetime
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ..errors import FrameNotFoundError, LakeError, QueryError
from .log import Snapshot, StreamState, load_snapshot, log_versions, read_commit
from .tables import TABLES, VIEWS, ViewSpec

if TYPE_CHECKING:  # duckdb and polars load on first query: ingest workers import lake/ too
    import duckdb
    import polars as pl


# -- SQL text helpers ----------------------------------------------------------------


def frames_schema() -> pa.Schema:
    """All products' frame columns (no image), partition keys included."""
    return TABLES["frames"].schema


def sql_list(paths: list[Path]) -> str:
    return "[" + ", ".join(sql_literal(str(p)) for p in paths) + "]"


def sql_literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def views_dir() -> Path:
    """``sql/views`` in a source checkout, ``pfflake/sql/views`` in a wheel."""
    return _sql_dir("views")


def examples_dir() -> Path:
    """``sql/examples``: one question per file, each runnable with ``Lake.sql``."""
    return _sql_dir("examples")


def _sql_dir(kind: str) -> Path:
    here = Path(__file__).parents[1]  # the pfflake package directory (this is pfflake/lake/)
    for candidate in (here / "sql" / kind, here.parent / "sql" / kind):
        if candidate.is_dir():
            return candidate
    return here / "sql" / kind


# -- DuckDB views ----------------------------------------------------------------------


def _root(lake: Any) -> Path:
    """The lake root of a :class:`LakeView`, a ``Lake`` or a path."""
    return Path(lake) if isinstance(lake, (str, PathLike)) else Path(lake.root)


def register_views(con: duckdb.DuckDBPyConnection, lake: Any, snap: Snapshot) -> None:
    """Create ``frames``, ``runs``, ``files``, ``hk`` (+ ``sql/views``) on ``con`` over ``snap``.

    ``lake``: the lake root, a ``Lake`` or a :class:`LakeView` (only its root is used).
    The files of ``sql/views`` run in name order; one that refers to a view
    not created yet is retried after the others, so files need no numbering.
    """
    import duckdb

    root = _root(lake)
    # Committed files never change, so their footers can be cached across queries.
    con.execute("SET parquet_metadata_cache = true")
    for view in VIEWS.values():
        con.execute(f"CREATE OR REPLACE VIEW {view.name} AS {_view_sql(con, root, snap, view)}")
    pending = sorted(views_dir().glob("*.sql"))
    while pending:
        waiting: list[tuple[Path, Exception]] = []
        for sql_file in pending:
            try:
                con.execute(sql_file.read_text())
            except duckdb.CatalogException as exc:  # refers to a view made by a later file
                waiting.append((sql_file, exc))
        if len(waiting) == len(pending):
            path, exc = waiting[0]
            raise QueryError(f"{path}: {exc}") from exc
        pending = [p for p, _ in waiting]


def _view_sql(con, root: Path, snap: Snapshot, view: ViewSpec) -> str:
    """The SELECT of one view, from its :class:`~pfflake.lake.tables.ViewSpec` (rules there)."""
    spec = view.spec
    paths = [root / e.path for e in snap.table_files(spec.name)]
    if paths:
        source = f"read_parquet({sql_list(paths)}, union_by_name=true{spec.duckdb_options()})"
    else:  # typed NULLs, no rows: registering an empty Arrow table would import pandas
        source = f"({empty_select(spec.view_schema())})"
    select = "SELECT *"
    if view.hidden:
        select += f" EXCLUDE ({', '.join(sql_ident(c) for c in view.hidden)})"
    sql = f"{select} FROM {source}"
    if view.latest_key:
        keys = ", ".join(sql_ident(k) for k in view.latest_key)
        sql += f" QUALIFY version = max(version) OVER (PARTITION BY {keys})"
    return sql


# Arrow type -> the DuckDB type read_parquet gives a column of it (what a view over
# committed files has, so a view keeps its column types from empty to first commit).
_DUCKDB_TYPES = {
    pa.bool_(): "BOOLEAN",
    pa.int8(): "TINYINT", pa.int16(): "SMALLINT", pa.int32(): "INTEGER", pa.int64(): "BIGINT",
    pa.uint8(): "UTINYINT", pa.uint16(): "USMALLINT", pa.uint32(): "UINTEGER",
    pa.uint64(): "UBIGINT", pa.float32(): "FLOAT", pa.float64(): "DOUBLE",
    pa.string(): "VARCHAR", pa.large_string(): "VARCHAR", pa.binary(): "BLOB",
    pa.date32(): "DATE",
}
_TIMESTAMP_TYPES = {
    "s": "TIMESTAMP_S", "ms": "TIMESTAMP_MS", "us": "TIMESTAMP", "ns": "TIMESTAMP_NS"
}


def duckdb_type(t: pa.DataType) -> str:
    """The DuckDB type name of Arrow type ``t``, as ``read_parquet`` reads a column of it.

    Raises ``TypeError`` for a type the lake's tables do not use.
    """
    if pa.types.is_timestamp(t):
        if t.tz is None:
            return _TIMESTAMP_TYPES[t.unit]
        return _tz_ns_type() if t.unit == "ns" else "TIMESTAMP WITH TIME ZONE"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"{duckdb_type(t.value_type)}[]"
    if pa.types.is_fixed_size_list(t):
        return f"{duckdb_type(t.value_type)}[{t.list_size}]"
    try:
        return _DUCKDB_TYPES[t]
    except KeyError:
        raise TypeError(f"no DuckDB type for Arrow type {t}") from None


@functools.cache  # a property of the installed DuckDB: probed once per process
def _tz_ns_type() -> str:
    """DuckDB >= 1.5 keeps nanoseconds of UTC timestamps (TIMESTAMPTZ_NS); older ones read
    them as microsecond TIMESTAMP WITH TIME ZONE."""
    import duckdb

    try:
        with duckdb.connect() as con:
            con.execute("SELECT CAST(NULL AS TIMESTAMPTZ_NS)").fetchall()
    except duckdb.Error:
        return "TIMESTAMP WITH TIME ZONE"
    return "TIMESTAMPTZ_NS"


def empty_select(schema: pa.Schema) -> str:
    """A SELECT of no rows with ``schema``'s columns (typed NULLs, no table or Python object)."""
    cols = ", ".join(
        f"CAST(NULL AS {duckdb_type(f.type)}) AS {sql_ident(f.name)}" for f in schema
    )
    return f"SELECT {cols} WHERE false"


def connect(root: Path, snap: Snapshot) -> duckdb.DuckDBPyConnection:
    """A new DuckDB connection with the lake's views over ``snap`` (the caller closes it)."""
    import duckdb

    con = duckdb.connect()
    try:
        register_views(con, root, snap)
    except BaseException:
        con.close()
        raise
    return con


# -- Polars scans ----------------------------------------------------------------------


def scan(lake: Any, name: str = "frames", snap: Snapshot | None = None) -> pl.LazyFrame:
    """A Polars LazyFrame over the committed Parquet files of a table.

    ``lake``: a :class:`LakeView` (its snapshot), or a ``Lake`` (``snap``, default the
    latest version). ``frames`` is hive-partitioned with the pinned key types of
    :data:`pfflake.schema.PARTITION_KEYS`, so filters on ``data_product`` and
    ``module`` drop whole files, and filters on ``unix_t_ns`` skip row groups
    (rows are time-sorted within each file, with statistics). Its columns are
    every product's (a column a file lacks reads as null), as in the DuckDB
    view. ``runs`` and ``files`` give the latest row per run / per (run, file),
    like the DuckDB views; ``runs_all``/``files_all`` keep every version.
    Derived views (``run_quality``, ...) are SQL only: ``lake.sql(...).pl()``.
    """
    view = as_view(lake, snap)
    return scan_files(name, [view.root / e.path for e in _entries(view.snapshot, name)])


def _entries(snap: Snapshot, name: str):
    if name not in VIEWS:
        raise QueryError(
            f"no Polars scan for {name!r}; expected one of {', '.join(VIEWS)} "
            "(derived views: lake.sql('SELECT * FROM <view>').pl())"
        )
    return snap.table_files(VIEWS[name].spec.name)


def scan_files(name: str, files: list[Path]) -> pl.LazyFrame:
    """The Polars scan of view ``name`` over exactly ``files`` (committed files of its table)."""
    import polars as pl

    if name not in VIEWS:
        raise QueryError(f"no Polars scan for {name!r}; expected one of {', '.join(VIEWS)}")
    view = VIEWS[name]
    spec = view.spec
    full = pl.from_arrow(spec.view_schema().empty_table()).schema
    paths = [str(p) for p in files]
    if not paths:
        lf = pl.LazyFrame(schema=full)
    elif spec.partition_keys:
        keys = set(spec.key_names)
        lf = pl.scan_parquet(
            paths,
            schema=pl.Schema({c: t for c, t in full.items() if c not in keys}),
            hive_partitioning=True,
            hive_schema={k: full[k] for k in spec.key_names},
            missing_columns="insert",
            glob=False,
        )
    else:
        lf = pl.scan_parquet(paths, schema=full, hive_partitioning=False, glob=False)
    if view.latest_key:
        by = list(view.latest_key)
        lf = lf.filter(pl.col("version") == pl.col("version").max().over(by))
    if view.hidden:
        lf = lf.drop(list(view.hidden))
    return lf


# -- the view ------------------------------------------------------------------------


class LakeView:
    """A read-only view of the lake at ``root`` as of one snapshot, with its own connection.

    Made by :meth:`pfflake.lake.Lake.at`. The DuckDB connection is opened on
    first use, with the views registered once. A relation it returned stays
    valid for as long as the user holds it, even after this view is dropped
    (DuckDB keeps its connection alive), until :meth:`close` (or
    ``Lake.close()`` of the lake that made it). Not thread-safe: give each
    thread its own view (``Lake.at(version)`` from each thread).
    """

    def __init__(self, root: str | Path, snapshot: Snapshot) -> None:
        self.root = Path(root)
        self.snapshot = snapshot
        self._con: duckdb.DuckDBPyConnection | None = None
        self._closed = False

    @property
    def version(self) -> int:
        return self.snapshot.version

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<LakeView {self.root} version {self.version}{state}>"

    def connection(self) -> duckdb.DuckDBPyConnection:
        """This view's DuckDB connection (opened on first use; the caller must not close it)."""
        if self._closed:
            raise LakeError(f"{self.root}: this view of version {self.version} is closed")
        if self._con is None:
            self._con = connect(self.root, self.snapshot)
        return self._con

    def sql(self, query: str) -> duckdb.DuckDBPyRelation:
        """Run SQL over this version (a lazy DuckDB relation on the view's connection)."""
        return self.connection().sql(query)

    def scan(self, name: str = "frames") -> pl.LazyFrame:
        """A Polars LazyFrame over this version's committed files of a table (see :func:`scan`)."""
        return scan(self, name)

    def table_paths(self, table: str) -> list[Path]:
        """Committed data files of ``table`` in this version (from the log, never a glob)."""
        return [self.root / e.path for e in self.snapshot.table_files(table)]

    def close(self) -> None:
        """Close the connection: relations it returned stop working. Idempotent."""
        self._closed = True
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> LakeView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def as_view(lake: Any, snap: Snapshot | None = None) -> LakeView:
    """``lake`` as a :class:`LakeView`: a view is returned as is (``snap`` must be None or
    its own), a ``Lake`` gives ``Lake.at()`` (or a view of ``snap`` when given)."""
    if isinstance(lake, LakeView):
        if snap is not None and snap is not lake.snapshot:
            return LakeView(lake.root, snap)
        return lake
    if snap is not None:
        return LakeView(lake.root, snap)
    return lake.at()


def committed_store(
    view: LakeView, streams: Mapping[tuple[str, str, int], StreamState], run: str, product: str,
    module: int, frames: np.ndarray,
) -> Path:
    """The Zarr store of a stream; raises if any of ``frames`` is not committed."""
    state = streams.get((run, product, int(module)))
    committed = state.frames if state is not None and state.store else 0
    bad = (frames < 0) | (frames >= committed)
    if bad.any():
        raise FrameNotFoundError(
            f"run {run!r} {product} module {module}: frame {int(frames[bad][0])} is not "
            f"committed (the lake has {committed} frames of this stream)"
        )
    return view.root / state.store


# -- which version --------------------------------------------------------------------


def time_ns(when: datetime | str | int) -> int:
    """``when`` as int ns since the UNIX epoch: a datetime or ISO 8601 string (naive means
    UTC), or an int (already ns)."""
    if isinstance(when, bool):
        raise TypeError(f"expected a datetime, ISO 8601 string or int ns, got {when!r}")
    if isinstance(when, int) or (hasattr(when, "__index__") and not isinstance(when, str)):
        return int(when)
    if isinstance(when, str):
        try:
            when = datetime.fromisoformat(when.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"not an ISO 8601 time: {when!r}") from None
    if not isinstance(when, datetime):
        raise TypeError(f"expected a datetime, ISO 8601 string or int ns, got {when!r}")
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _available(versions: list[int]) -> str:
    if not versions:
        return "the lake has no commits (only version 0)"
    first = 0 if versions[0] == 1 else versions[0]
    return f"versions {first}..{versions[-1]} are available"


def commit_time_ns(root: Path, version: int) -> int:
    """When commit ``version`` was published (its ``committed_at``), int ns."""
    at = read_commit(root, version).committed_at
    if at is None:
        raise LakeError(f"{root}: commit {version} records no time (committed_at)")
    return time_ns(at)


def version_at(root: Path, when: datetime | str | int) -> int:
    """The latest version committed at or before ``when`` (binary search over commit times,
    which grow with the version: a writer publishes version N+1 only after reading N)."""
    t = time_ns(when)
    versions = log_versions(root)
    pos = bisect.bisect_right(versions, t, key=lambda v: commit_time_ns(root, v))
    if pos == 0:
        first = (f"; the first commit (version {versions[0]}) is at "
                 f"{read_commit(root, versions[0]).committed_at}" if versions else "")
        raise LakeError(f"{root}: no commit at or before {_iso(t)}{first} (Lake.at(0) is the "
                        "empty lake)")
    return versions[pos - 1]


def _iso(t: int) -> str:
    return datetime.fromtimestamp(t // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S") + (
        f".{t % 1_000_000_000:09d}Z")


def snapshot_at(root: Path, version: int | None = None, *,
                time: datetime | str | int | None = None) -> Snapshot:
    """The snapshot of ``version`` (None: the latest) or of the last commit at or before
    ``time``; :class:`LakeError` naming the lake and the versions available otherwise."""
    if version is not None and time is not None:
        raise ValueError("give a version or a time, not both")
    if time is not None:
        version = version_at(root, time)
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise TypeError(f"a lake version is an int, got {version!r}")
    snap = load_snapshot(root, version)  # lists the log once (opening a lake: ~10^4 names)
    if version is None or snap.version == version:
        return snap
    versions = log_versions(root)  # only to say what is there
    if version != 0 and version not in versions:
        raise LakeError(f"{root}: no version {version}; {_available(versions)}")
    # a log that changed under us (vacuumed meanwhile)
    raise LakeError(f"{root}: version {version} cannot be read; {_available(versions)}")


__all__ = [
    "LakeView",
    "as_view",
    "committed_store",
    "connect",
    "examples_dir",
    "frames_schema",
    "register_views",
    "scan",
    "scan_files",
    "snapshot_at",
    "sql_ident",
    "sql_list",
    "sql_literal",
    "version_at",
    "views_dir",
]
