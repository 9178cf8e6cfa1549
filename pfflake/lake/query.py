"""Queries over one committed snapshot of a lake: DuckDB views, Polars scans, images.

Every view and scan reads an explicit list of files taken from the commit log,
never a directory glob, so stray or uncommitted files are invisible. Views
beyond the base tables live in ``sql/views/*.sql`` (one per file).

Images come from the Zarr stores the log names, and only frames below a
stream's committed count are readable. A query result is turned into images
by grouping its frames by store and by stored object (chunk, or shard and
inner chunk): every object is read and decoded once, in a thread pool,
whatever the number or order of the frames that fall into it.

Timestamps are int64 ns since the UNIX epoch everywhere (``unix_t_ns``);
time buckets use integer division and assume non-negative times.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from .. import schema as S
from ..errors import FrameNotFoundError, QueryError
from ..products import get_product
from ..store.read import batch_stop, read_frames
from .tables import TABLES, VIEWS, ViewSpec

if TYPE_CHECKING:
    import polars as pl

    from .lake import Lake
    from .log import Snapshot, StreamState

_FRAME_KEYS = (S.RUN, S.DATA_PRODUCT, S.MODULE, S.FRAME)
_TIME_KEYS = (S.MODULE, S.UNIX_T_NS)


# -- DuckDB views --------------------------------------------------------------------


def frames_schema() -> pa.Schema:
    """All products' frame columns (no image), partition keys included."""
    return TABLES["frames"].schema


def sql_list(paths: list[Path]) -> str:
    return "[" + ", ".join(sql_literal(str(p)) for p in paths) + "]"


def sql_literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def register_views(con, lake: Lake, snap: Snapshot) -> None:
    """Create ``frames``, ``runs``, ``files``, ``hk`` (+ ``sql/views``) on ``con``.

    The files of ``sql/views`` run in name order; one that refers to a view
    not created yet is retried after the others, so files need no numbering.
    """
    import duckdb

    # Committed files never change, so their footers can be cached across queries.
    con.execute("SET parquet_metadata_cache = true")
    for view in VIEWS.values():
        con.execute(f"CREATE OR REPLACE VIEW {view.name} AS {_view_sql(con, lake, snap, view)}")
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


def _view_sql(con, lake: Lake, snap: Snapshot, view: ViewSpec) -> str:
    """The SELECT of one view, from its :class:`~pfflake.lake.tables.ViewSpec` (rules there)."""
    spec = view.spec
    paths = lake.table_paths(spec.name, snap)
    if paths:
        source = f"read_parquet({sql_list(paths)}, union_by_name=true{spec.duckdb_options()})"
    else:
        source = f"_empty_{spec.name}"
        con.register(source, spec.view_schema().empty_table())
    select = "SELECT *"
    if view.hidden:
        select += f" EXCLUDE ({', '.join(sql_ident(c) for c in view.hidden)})"
    sql = f"{select} FROM {source}"
    if view.latest_key:
        keys = ", ".join(sql_ident(k) for k in view.latest_key)
        sql += f" QUALIFY version = max(version) OVER (PARTITION BY {keys})"
    return sql


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


def _connection(lake: Lake):
    """The lake's DuckDB connection for its current version (opened if needed)."""
    return lake.connection()


# -- Polars scans ------------------------------------------------------------------


def scan(lake: Lake, name: str = "frames", snap: Snapshot | None = None) -> pl.LazyFrame:
    """A Polars LazyFrame over the committed Parquet files of a table.

    ``frames`` is hive-partitioned with the pinned key types of
    :data:`pfflake.schema.PARTITION_KEYS`, so filters on ``data_product`` and
    ``module`` drop whole files, and filters on ``unix_t_ns`` skip row groups
    (rows are time-sorted within each file, with statistics). Its columns are
    every product's (a column a file lacks reads as null), as in the DuckDB
    view. ``runs`` and ``files`` give the latest row per run / per (run, file),
    like the DuckDB views; ``runs_all``/``files_all`` keep every version.
    Derived views (``run_quality``, ...) are SQL only: ``lake.sql(...).pl()``.
    """
    import polars as pl

    if name not in VIEWS:
        raise QueryError(
            f"no Polars scan for {name!r}; expected one of {', '.join(VIEWS)} "
            "(derived views: lake.sql('SELECT * FROM <view>').pl())"
        )
    view = VIEWS[name]
    spec = view.spec
    full = pl.from_arrow(spec.view_schema().empty_table()).schema
    paths = [str(p) for p in lake.table_paths(spec.name, snap)]
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


# -- query results -> frames -----------------------------------------------------------


def _result_frame(result: Any, columns: Sequence[str]) -> pl.DataFrame:
    """The ``columns`` of a query result that has them, as a Polars DataFrame (row order kept)."""
    import duckdb
    import polars as pl

    if isinstance(result, pl.LazyFrame):
        names = result.collect_schema().names()
    elif isinstance(result, duckdb.DuckDBPyRelation):
        names = list(result.columns)
    elif isinstance(result, pa.RecordBatch):
        result, names = pa.Table.from_batches([result]), result.schema.names
    elif isinstance(result, (pl.DataFrame, pa.Table)):
        names = list(result.columns) if isinstance(result, pl.DataFrame) else result.column_names
    elif type(result).__module__.split(".")[0] == "pandas":
        names = [str(c) for c in result.columns]
    elif hasattr(result, "__arrow_c_stream__"):
        result = pa.table(result)
        names = result.column_names
    else:
        raise TypeError(
            f"expected a DuckDB relation, Polars DataFrame/LazyFrame, pandas DataFrame or "
            f"Arrow table, got {type(result).__name__}"
        )
    want = [c for c in columns if c in names]
    if isinstance(result, pl.LazyFrame):
        return result.select(want).collect()
    if isinstance(result, pl.DataFrame):
        return result.select(want)
    if isinstance(result, duckdb.DuckDBPyRelation):
        return pl.from_arrow(result.select(*[sql_ident(c) for c in want]).to_arrow_table())
    if isinstance(result, pa.Table):
        return pl.from_arrow(result.select(want))
    return pl.from_pandas(result[want])


def frame_keys(lake: Lake, snap: Snapshot, result: Any) -> pl.DataFrame:
    """``(run, data_product, module, frame)`` of each row of ``result``, in row order."""
    import polars as pl

    req = _result_frame(result, [*_FRAME_KEYS, S.UNIX_T_NS])
    if all(c in req.columns for c in _FRAME_KEYS):
        keys = req.select(_FRAME_KEYS)
    elif all(c in req.columns for c in _TIME_KEYS):
        keys = _match_times(lake, snap, req)
    else:
        raise QueryError(
            "a query result for images needs columns (run, data_product, module, frame) "
            f"or (module, unix_t_ns); got {req.columns or 'none of them'}"
        )
    keys = keys.with_columns(
        pl.col(S.RUN).cast(pl.String),
        pl.col(S.DATA_PRODUCT).cast(pl.String),
        pl.col(S.MODULE).cast(pl.Int32),
        pl.col(S.FRAME).cast(pl.Int64),
    )
    if keys.null_count().sum_horizontal().item():
        raise QueryError(
            "a query result for images has nulls in (run, data_product, module, frame)"
        )
    return keys


def _match_times(lake: Lake, snap: Snapshot, req: pl.DataFrame) -> pl.DataFrame:
    """Frames whose ``unix_t_ns`` equals each row's exactly, within its module (and product).

    Reads each candidate stream's ``unix_t_ns`` array from its Zarr store (8 bytes a
    frame, in frame order, fast to decode) rather than scanning Parquet, and
    binary-searches the requested times in it.
    """
    import polars as pl

    on = [S.MODULE, S.UNIX_T_NS] + [c for c in (S.DATA_PRODUCT, S.RUN) if c in req.columns]
    req = req.select(on).with_columns(
        pl.col(S.MODULE).cast(pl.Int32), pl.col(S.UNIX_T_NS).cast(pl.Int64)
    )
    modules = req[S.MODULE].to_numpy()
    wanted = req[S.UNIX_T_NS].to_numpy()
    found_rows, found_frames, found_streams = [], [], []
    streams = [s for s in snap.streams.values() if s.store and s.frames]
    for k, state in enumerate(streams):
        mask = modules == state.module
        if S.DATA_PRODUCT in req.columns:
            mask &= (req[S.DATA_PRODUCT] == state.data_product).to_numpy()
        if S.RUN in req.columns:
            mask &= (req[S.RUN] == state.run).to_numpy()
        rows = np.flatnonzero(mask)
        if len(rows) == 0:
            continue
        times = np.empty(state.frames, dtype=np.int64)
        every = np.arange(state.frames, dtype=np.int64)
        read_frames([(lake.root / state.store, every, every)], S.UNIX_T_NS, times)
        order = None if np.all(times[1:] >= times[:-1]) else np.argsort(times, kind="stable")
        ordered = times if order is None else times[order]
        lo = np.searchsorted(ordered, wanted[rows], "left")
        counts = np.searchsorted(ordered, wanted[rows], "right") - lo
        positions = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts - lo, counts)
        found_rows.append(np.repeat(rows, counts))
        found_frames.append(positions if order is None else order[positions])
        found_streams.append(np.full(int(counts.sum()), k))
    rows = np.concatenate(found_rows) if found_rows else np.empty(0, dtype=np.int64)
    per_row = np.bincount(rows, minlength=req.height)
    missing = np.flatnonzero(per_row == 0)
    if len(missing):
        row = req.row(int(missing[0]), named=True)
        raise FrameNotFoundError(
            f"{len(missing)} row(s) match no committed frame exactly by (module, unix_t_ns); "
            f"first: row {missing[0]} module {row[S.MODULE]} unix_t_ns {row[S.UNIX_T_NS]}"
        )
    ambiguous = np.flatnonzero(per_row > 1)
    if len(ambiguous):
        row = req.row(int(ambiguous[0]), named=True)
        raise QueryError(
            f"{len(ambiguous)} row(s) match several frames by (module, unix_t_ns) "
            f"(several runs or data products at the same ns); first: row {ambiguous[0]} "
            f"module {row[S.MODULE]} unix_t_ns {row[S.UNIX_T_NS]}; add run/data_product/frame "
            "columns to the result"
        )
    order = np.argsort(rows, kind="stable")
    which = np.concatenate(found_streams)[order] if found_streams else rows
    return pl.DataFrame(
        {
            S.RUN: [streams[i].run for i in which.tolist()],
            S.DATA_PRODUCT: [streams[i].data_product for i in which.tolist()],
            S.MODULE: [streams[i].module for i in which.tolist()],
            S.FRAME: np.concatenate(found_frames)[order] if found_frames else rows,
        },
        schema={S.RUN: pl.String, S.DATA_PRODUCT: pl.String, S.MODULE: pl.Int32,
                S.FRAME: pl.Int64},
    )


def stream_index(snap: Snapshot) -> dict[tuple[str, str, int], StreamState]:
    return {(s.run, s.data_product, int(s.module)): s for s in snap.streams.values()}


def locate(lake: Lake, snap: Snapshot, keys: pl.DataFrame):
    """Group frame keys by stream: ``(product name, [(store, frames, rows), ...])``.

    One data product per call; raises unless every frame is below its
    stream's committed count.
    """
    import polars as pl

    products = keys[S.DATA_PRODUCT].unique().to_list()
    if len(products) > 1:
        raise QueryError(
            f"a query result for images must hold one data product per call, got "
            f"{sorted(products)}; filter on data_product first"
        )
    streams = stream_index(snap)
    groups = (
        keys.with_row_index("_row")
        .group_by([S.RUN, S.DATA_PRODUCT, S.MODULE], maintain_order=True)
        .agg(pl.col(S.FRAME), pl.col("_row"))
    )
    requests = []
    for run, product, module, frames, rows in groups.iter_rows():
        frames = np.asarray(frames, dtype=np.int64)
        store = _committed_store(lake, streams, run, product, module, frames)
        requests.append((store, frames, np.asarray(rows, dtype=np.int64)))
    return (products[0] if products else None), requests


def _committed_store(
    lake: Lake, streams, run: str, product: str, module: int, frames: np.ndarray
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
    return lake.root / state.store


# -- images ------------------------------------------------------------------------


def images(lake: Lake, result: Any, *, as_xarray: bool = False,
           data_product: str | None = None):
    """Images of the frames in a query result, in its row order (duplicates repeat).

    ``result``: a DuckDB relation, Polars DataFrame/LazyFrame, pandas DataFrame
    or Arrow table holding ``(run, data_product, module, frame)``, or just
    ``(module, unix_t_ns)`` (optionally with ``data_product`` and ``run``):
    each row then matches the frame of that module with exactly that time, and
    a row that matches none or several raises. A DuckDB relation is run again here, so
    give it an ORDER BY if its order matters. One data product per call.

    Returns a new ``(N, H, W)`` array of the product's pixel dtype. An empty
    result has shape ``(0, H, W)`` and the dtype of ``data_product`` (or of the
    lake's only data product; ``(0, 0, 0)`` uint16 when neither tells); with
    ``as_xarray`` an ``xarray.DataArray`` over ``(time, y, x)`` with ``time``
    (datetime64[ns], UTC, from the store's ``unix_t_ns``), ``run``, ``module``
    and ``frame`` coordinates.
    Raises :class:`FrameNotFoundError` for frames the log does not count.
    """
    snap = lake.snapshot()
    keys = frame_keys(lake, snap, result)
    product_name, requests = locate(lake, snap, keys)
    if product_name is None:
        products = {st.data_product for st in snap.streams.values()}
        if data_product is None and len(products) == 1:
            data_product = products.pop()
        if data_product is None:
            return np.empty((0, 0, 0), dtype=np.uint16)
        empty = get_product(data_product)
        return np.empty((0, *empty.image_shape), dtype=empty.dtype)
    product = get_product(product_name)
    if data_product is not None and get_product(data_product).name != product.name:
        raise QueryError(f"result holds {product.name} frames, not {data_product}")
    out = np.empty((keys.height, *product.image_shape), dtype=product.dtype)
    read_frames(requests, "images", out)
    if not as_xarray:
        return out
    import xarray as xr

    times = np.empty(keys.height, dtype=np.int64)
    read_frames(requests, S.UNIX_T_NS, times)
    return xr.DataArray(
        out,
        dims=("time", "y", "x"),
        coords={
            "time": times.view("datetime64[ns]"),
            S.RUN: ("time", keys[S.RUN].to_numpy()),
            S.MODULE: ("time", keys[S.MODULE].to_numpy()),
            S.FRAME: ("time", keys[S.FRAME].to_numpy()),
        },
        name="images",
        attrs={S.DATA_PRODUCT: product.name},
    )


def images_at(
    lake: Lake,
    module: int,
    unix_t_ns,
    tolerance_ns: int,
    *,
    data_product: str | None = None,
    run: str | None = None,
):
    """The frames of ``module`` nearest in time to each of ``unix_t_ns`` (int ns, scalar or array).

    Returns ``(images, rows)``: a scalar time gives one ``(H, W)`` image, an
    array ``(N, H, W)``; ``rows`` is an Arrow table of the matched frames in
    request order with ``requested_unix_t_ns`` and ``offset_ns`` (frame time
    minus requested) added. An equidistant pair resolves to the earlier frame.
    Raises :class:`FrameNotFoundError` when a time has no frame within
    ``tolerance_ns``, :class:`QueryError` when the module has several data
    products and ``data_product`` is not given.
    """
    import polars as pl

    scalar = np.ndim(unix_t_ns) == 0
    wanted = np.atleast_1d(np.asarray(unix_t_ns, dtype=np.int64))
    tolerance_ns = int(tolerance_ns)
    snap = lake.snapshot()
    where = (
        (pl.col(S.MODULE) == int(module))
        & pl.col(S.UNIX_T_NS).is_between(
            int(wanted.min()) - tolerance_ns, int(wanted.max()) + tolerance_ns
        )
        if len(wanted)
        else pl.lit(False)
    )
    if data_product is not None:
        where &= pl.col(S.DATA_PRODUCT) == get_product(data_product).name
    if run is not None:
        where &= pl.col(S.RUN) == run
    frames = scan(lake, "frames", snap).filter(where)
    candidates = frames.select([*_FRAME_KEYS, S.UNIX_T_NS]).collect().sort(S.UNIX_T_NS)
    products = candidates[S.DATA_PRODUCT].unique().to_list()
    if len(products) > 1:
        raise QueryError(
            f"module {module} has frames of {sorted(products)} near these times; pass data_product="
        )
    times = candidates[S.UNIX_T_NS].to_numpy()
    best, ok = _nearest(times, wanted, tolerance_ns)
    if not ok.all():
        first = int(wanted[~ok][0])
        raise FrameNotFoundError(
            f"module {module}: {int((~ok).sum())} of {len(wanted)} time(s) have no frame within "
            f"{tolerance_ns} ns; first: unix_t_ns {first}"
        )
    matched = candidates[best].with_columns(
        pl.Series("requested_unix_t_ns", wanted), pl.Series("_row", np.arange(len(wanted)))
    )
    full = (
        frames.join(
            matched.lazy().select([*_FRAME_KEYS, "requested_unix_t_ns", "_row"]),
            on=list(_FRAME_KEYS),
            how="inner",
        )
        .collect()
        .sort("_row")
    )
    full = full.with_columns(
        (pl.col(S.UNIX_T_NS) - pl.col("requested_unix_t_ns")).alias("offset_ns")
    ).drop("_row")
    pictures = images(lake, matched.select(_FRAME_KEYS))
    return (pictures[0] if scalar else pictures), full.to_arrow()


def _nearest(times: np.ndarray, wanted: np.ndarray, tolerance_ns: int):
    """Index into sorted ``times`` of the nearest to each wanted time; whether within tolerance."""
    if len(times) == 0:
        return np.zeros(len(wanted), dtype=np.int64), np.zeros(len(wanted), dtype=bool)
    after = np.clip(np.searchsorted(times, wanted, side="left"), 0, len(times) - 1)
    before = np.clip(after - 1, 0, len(times) - 1)
    take_before = np.abs(times[before] - wanted) <= np.abs(times[after] - wanted)
    best = np.where(take_before, before, after)
    return best, np.abs(times[best] - wanted) <= tolerance_ns


# -- timestamp joins ------------------------------------------------------------------


def _conditions(*parts: str | None) -> str:
    kept = [f"({p})" for p in parts if p]
    return f" WHERE {' AND '.join(kept)}" if kept else ""


def _modules_condition(module: int | Sequence[int] | None) -> str | None:
    if module is None:
        return None
    modules = [module] if np.ndim(module) == 0 else list(module)
    return f"module IN ({', '.join(str(int(m)) for m in modules)})"


def _product_condition(data_product: str | None) -> str | None:
    if data_product is None:
        return None
    return f"data_product = {sql_literal(get_product(data_product).name)}"


def _hk_series(field: str, devices: str | Mapping[int, str] | None) -> tuple[str, str]:
    """SQL of one hk field's readings and the join keys that tie them to a frame."""
    if devices is None:
        return (
            "SELECT run, module, unix_t_ns, value FROM hk_module "
            f"WHERE field = {sql_literal(field)}",
            "f.run = {h}.run AND f.module = {h}.module",
        )
    if isinstance(devices, str):
        return (
            f"SELECT run, unix_t_ns, value FROM hk WHERE device = {sql_literal(devices)} "
            f"AND field = {sql_literal(field)}",
            "f.run = {h}.run",
        )
    pairs = ", ".join(f"({int(m)}, {sql_literal(d)})" for m, d in devices.items())
    return (
        f"SELECT h.run, m.module, h.unix_t_ns, h.value FROM hk AS h "
        f"JOIN (VALUES {pairs}) AS m(module, device) ON m.device = h.device "
        f"WHERE h.field = {sql_literal(field)}",
        "f.run = {h}.run AND f.module = {h}.module",
    )


def frames_with_hk(
    lake: Lake,
    fields: str | Sequence[str] = ("DET_TEMP",),
    *,
    where: str | None = None,
    devices: str | Mapping[int, str] | None = None,
):
    """Each frame (passing the SQL predicate ``where``) with the latest reading of each hk field
    at or before its ``unix_t_ns``, within its run (DuckDB ``ASOF LEFT JOIN``).

    Adds, per field, a column named after it (the value, a double) and
    ``<field>_unix_t_ns`` (when it was read); both null when the run has no
    earlier reading. Field names are canonical (``DET_TEMP``, ``FPGA_TEMP``,
    ``HVMON0``, ...). Which device's readings a frame gets:

    * ``devices=None``: its module's, from the ``hk_module`` view: the
      module's lowest-numbered quabo reporting the field (board location
      ``BOARDLOC = 4 x module + quabo``, so quabo 0 when it reports). One
      fixed board gives a series without jumps between the four boards'
      slightly different sensors; ``hk_quabo`` has every board.
    * a device name (``"WPS"``, ``"GPSPRIM"``, ``"QUABO_1016"``): that device for every frame;
    * a mapping ``{module: device}``: per module; frames of other modules get nulls.

    Returns a lazy DuckDB relation on the lake's connection (unordered). A run
    whose frames get no reading of a field at all (hk and frames do not overlap
    in time, or the run has no such readings) raises an :class:`HKCoverageWarning`
    naming the run, the field and both time spans.
    """
    fields = [fields] if isinstance(fields, str) else list(fields)
    if not fields:
        raise QueryError("frames_with_hk needs at least one hk field")
    ctes = [f"f AS (SELECT * FROM frames{_conditions(where)})"]
    joins, columns = [], []
    for i, field in enumerate(fields):
        h = f"h{i}"
        source, on = _hk_series(field, devices)
        ctes.append(f"{h} AS ({source})")
        joins.append(f"ASOF LEFT JOIN {h} ON {on.format(h=h)} AND f.unix_t_ns >= {h}.unix_t_ns")
        columns += [
            f"{h}.value AS {sql_ident(field)}",
            f"{h}.unix_t_ns AS {sql_ident(field + '_unix_t_ns')}",
        ]
    _warn_hk_coverage(lake, ctes, fields, by_module=devices is None or
                      not isinstance(devices, str))
    return lake.sql(
        f"WITH {', '.join(ctes)} SELECT f.*, {', '.join(columns)} FROM f {' '.join(joins)}"
    )


class HKCoverageWarning(UserWarning):
    """Frames of a run got no housekeeping reading: hk and frames do not overlap in time."""


def _warn_hk_coverage(lake: Lake, ctes: list[str], fields: list[str], by_module: bool) -> None:
    """Warn, per run (and module) and field, when no frame has a reading at or before it.

    One aggregate query over the frames and the field's readings: cheap next to
    the join, and it turns a silent all-NULL column into a sentence naming the
    run, the field and both time spans.
    """
    import warnings

    keys = "run, module" if by_module else "run"
    for i, field in enumerate(fields):
        rows = lake.sql(
            f"WITH {ctes[0]}, {ctes[i + 1]}, "
            f"fr AS (SELECT {keys}, min(unix_t_ns) AS lo, max(unix_t_ns) AS hi "
            f"FROM f GROUP BY ALL), "
            f"hr AS (SELECT {keys}, count(*) AS n, min(unix_t_ns) AS lo, max(unix_t_ns) AS hi "
            f"FROM h{i} GROUP BY ALL) "
            f"SELECT fr.run, {'fr.module' if by_module else 'NULL'}, fr.lo, fr.hi, hr.n, hr.lo, "
            f"hr.hi FROM fr LEFT JOIN hr USING ({keys}) "
            "WHERE hr.n IS NULL OR hr.lo > fr.hi ORDER BY ALL"
        ).fetchall()
        for run, module, f_lo, f_hi, n_hk, h_lo, h_hi in rows:
            who = f"run {run}" + (f" module {module}" if module is not None else "")
            why = (f"no {field} readings" if not n_hk
                   else f"{field} readings only from {_utc(h_lo)} to {_utc(h_hi)}")
            warnings.warn(
                f"frames_with_hk: {who}: {why}, frames from {_utc(f_lo)} to {_utc(f_hi)}; "
                f"its {field} column is all NULL (hk and frames do not overlap)",
                HKCoverageWarning,
                stacklevel=4,  # the caller of Lake.frames_with_hk
            )


def _utc(ns: int | None) -> str:
    from datetime import UTC, datetime

    if ns is None:
        return "?"
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_COINCIDENCE_COLUMNS = (
    S.RUN,
    S.DATA_PRODUCT,
    S.MODULE,
    S.FRAME,
    S.UNIX_T_NS,
    S.TIME_QUALITY,
    S.PIXEL_MAX,
    S.PIXEL_SUM,
)


def coincidence_sql(
    modules: Sequence[int],
    window_ns: int,
    *,
    where: str | None = None,
    data_product: str | None = None,
    method: str = "band",
) -> str:
    """The SQL behind :func:`coincidences`; ``method`` ``"range"``/``"asof"`` exist to measure.

    ``"band"``: bucket = unix_t_ns // window_ns; each other module's frames
    are repeated in buckets b-1, b, b+1 and hash-joined to the first module's
    on the bucket, then filtered to a spread <= window_ns (exact, all tuples).
    ``"range"``: an inequality join (``BETWEEN t - w AND t + w``; DuckDB's
    IEJoin). ``"asof"``: two ASOF joins (nearest earlier and nearest later
    frame): two modules only, and it finds only the nearest neighbour on each
    side, not every frame within the window.
    """
    modules = [int(m) for m in modules]
    if len(modules) < 2 or len(set(modules)) != len(modules):
        raise QueryError(f"coincidences need two or more different modules, got {modules}")
    window_ns = int(window_ns)
    if window_ns <= 0:
        raise QueryError(f"window_ns must be a positive number of ns, got {window_ns}")
    cols = ", ".join(_COINCIDENCE_COLUMNS)
    product = _product_condition(data_product)
    sides = []
    for i, m in enumerate(modules, 1):
        bucket = f"unix_t_ns // {window_ns}"
        if method == "band" and i > 1:
            bucket = f"unnest([{bucket} - 1, {bucket}, {bucket} + 1])"
        sides.append(
            f"s{i} AS (SELECT {cols}, {bucket} AS bucket FROM frames"
            f"{_conditions(f'module = {m}', product, where)})"
        )
    out = ", ".join(
        f"s{i}.{c} AS {c}_{i}" for i in range(1, len(modules) + 1) for c in _COINCIDENCE_COLUMNS
    )
    times = ", ".join(f"s{i}.unix_t_ns" for i in range(1, len(modules) + 1))
    spread = f"greatest({times}) - least({times})"
    extra = ", s2.unix_t_ns - s1.unix_t_ns AS dt_ns" if len(modules) == 2 else ""
    select = f"SELECT {out}, {spread} AS span_ns{extra}"
    order = " ORDER BY " + ", ".join(f"unix_t_ns_{i}" for i in range(1, len(modules) + 1))
    head = f"WITH {', '.join(sides)} "
    if method == "band":
        joins = " ".join(
            f"JOIN s{i} ON s{i}.bucket = s1.bucket" for i in range(2, len(modules) + 1)
        )
        return f"{head}{select} FROM s1 {joins} WHERE {spread} <= {window_ns}{order}"
    if method == "range":
        joins = " ".join(
            f"JOIN s{i} ON s{i}.unix_t_ns BETWEEN s1.unix_t_ns - {window_ns} "
            f"AND s1.unix_t_ns + {window_ns}"
            for i in range(2, len(modules) + 1)
        )
        return f"{head}{select} FROM s1 {joins} WHERE {spread} <= {window_ns}{order}"
    if method == "asof" and len(modules) == 2:
        near = [
            f"{select} FROM s1 ASOF JOIN s2 ON s1.unix_t_ns {op} s2.unix_t_ns "
            f"WHERE {spread} <= {window_ns}"
            for op in (">=", "<")
        ]
        return f"{head}SELECT * FROM ({near[0]} UNION ALL {near[1]}){order}"
    raise QueryError(f"unknown coincidence method {method!r} for {len(modules)} modules")


def coincidences(
    lake: Lake,
    modules: Sequence[int],
    window_ns: int,
    *,
    where: str | None = None,
    data_product: str | None = None,
):
    """Frames of different ``modules`` within ``window_ns`` of each other, each passing ``where``.

    One row per tuple (one frame of each module, in the order given) whose
    times spread over at most ``window_ns`` (so every pair is within
    ±window_ns); every such combination is listed. Modules may belong to
    different runs (simultaneous runs at other sites). Columns:
    ``<column>_<i>`` for run, data_product, module, frame, unix_t_ns,
    time_quality, pixel_max, pixel_sum of the i-th module's frame (1-based),
    ``span_ns``, and for two modules ``dt_ns = unix_t_ns_2 - unix_t_ns_1``;
    ordered by time. Images of side i:
    ``lake.images(rel.select("run_1 AS run, data_product_1 AS data_product, ..."))``.

    Implementation: a banded equi-join (bucket = unix_t_ns // window_ns; the
    other modules' frames repeated in buckets b-1, b, b+1, hash-joined on the
    bucket, filtered to the window): exact, every tuple, linear in the input.
    Chosen over DuckDB's inequality join and ASOF join by measurement
    (``benchmarks/bench_query.py``: two ingested img16 modules of 1,000,000
    frames each at 10 kHz, every frame coincident with one frame of the
    other module, window 1 us, 1,000,000 pairs; 2-core VM shared with other
    jobs, DuckDB 2.0.1, median of 5), join only (``count(*)``) / whole result
    to Arrow, ordered: banded 0.36 s / 1.01 s; inequality join (IEJoin,
    ``BETWEEN t - w AND t + w``) 0.54 s / 1.15 s; two ASOF joins (nearest
    frame before and after; misses frames once the window exceeds a frame
    period) 1.17 s / 1.44 s. With a window of 3 frame periods (6.1M pairs)
    banded and IEJoin tie (1.7 s). With ``where="pixel_max > 1000"`` (1,500
    bright frames per module) the search takes 0.13 s, the scan dominates.
    See :func:`coincidence_sql`.
    """
    return lake.sql(coincidence_sql(modules, window_ns, where=where, data_product=data_product))


# -- light curves ---------------------------------------------------------------------


def light_curve(
    lake: Lake,
    bucket_ns: int,
    *,
    module: int | Sequence[int] | None = None,
    data_product: str | None = None,
    where: str | None = None,
    pixel: tuple[int, int] | None = None,
):
    """Time-bucketed brightness per data product and module, ready to plot.

    Columns: ``bucket_ns`` (bucket start, int ns), ``time`` (the same,
    timestamptz), ``data_product``, ``module``, ``frames``, and ``sum``,
    ``mean``, ``max`` of the frames' ``pixel_sum`` -- or, with
    ``pixel=(row, col)``, of that pixel's value, read from the images stream
    by stream in chunk-aligned batches: memory holds one stream's frame
    numbers and times (16 bytes a frame) and one batch's pixel values, never
    images, and each stored chunk is decoded once. Ordered by data_product,
    module, bucket_ns. Returns a DuckDB relation on the lake's connection.
    """
    bucket_ns = int(bucket_ns)
    if bucket_ns <= 0:
        raise QueryError(f"bucket_ns must be a positive number of ns, got {bucket_ns}")
    parts = [_modules_condition(module), _product_condition(data_product), where]
    conditions = _conditions(*parts)
    if pixel is None:
        bucket = f"unix_t_ns // {bucket_ns} * {bucket_ns}"
        return lake.sql(
            f"SELECT {bucket} AS bucket_ns, "
            f"make_timestamp_ns({bucket}) AT TIME ZONE 'UTC' AS time, "
            "data_product, module, count(*) AS frames, CAST(sum(pixel_sum) AS BIGINT) AS sum, "
            "avg(pixel_sum) AS mean, max(pixel_sum) AS max "
            f"FROM frames{conditions} GROUP BY ALL ORDER BY data_product, module, bucket_ns"
        )
    partials = _pixel_partials(lake, bucket_ns, parts, (int(pixel[0]), int(pixel[1])))
    con = _connection(lake)
    table = pa.concat_tables(partials) if partials else _PARTIAL_SCHEMA.empty_table()
    return con.from_arrow(table).query(
        "partials",
        "SELECT bucket_ns, make_timestamp_ns(bucket_ns) AT TIME ZONE 'UTC' AS time, data_product, "
        "module, CAST(sum(frames) AS BIGINT) AS frames, CAST(sum(sum) AS BIGINT) AS sum, "
        "sum(sum) / sum(frames) AS mean, max(max) AS max FROM partials "
        "GROUP BY bucket_ns, data_product, module ORDER BY data_product, module, bucket_ns",
    )


_PARTIAL_SCHEMA = pa.schema(
    [
        ("bucket_ns", pa.int64()),
        (S.DATA_PRODUCT, pa.string()),
        (S.MODULE, pa.int32()),
        ("frames", pa.int64()),
        ("sum", pa.int64()),
        ("max", pa.int64()),
    ]
)
_PIXEL_BATCH_FRAMES = 1 << 18


def _pixel_partials(
    lake: Lake, bucket_ns: int, parts: list[str | None], pixel: tuple[int, int]
) -> list[pa.Table]:
    """Per-bucket (frames, sum, max) of one pixel, stream by stream, in chunk-aligned batches."""
    con = _connection(lake)
    streams = stream_index(lake.snapshot())
    keys = con.sql(f"SELECT DISTINCT run, data_product, module FROM frames{_conditions(*parts)}")
    partials = []
    for run, product_name, module in keys.fetchall():
        product = get_product(product_name)
        if not all(0 <= p < n for p, n in zip(pixel, product.image_shape, strict=True)):
            raise QueryError(
                f"pixel {pixel} is outside {product.name} images {product.image_shape}"
            )
        stream = _conditions(
            *parts,
            f"run = {sql_literal(run)}",
            f"data_product = {sql_literal(product_name)}",
            f"module = {int(module)}",
        )
        rows = con.sql(f"SELECT frame, unix_t_ns FROM frames{stream} ORDER BY frame").fetchnumpy()
        frames, times = np.asarray(rows[S.FRAME]), np.asarray(rows[S.UNIX_T_NS])
        store = _committed_store(lake, streams, run, product_name, module, frames)
        lo = 0
        while lo < len(frames):
            hi = batch_stop(frames, lo, _PIXEL_BATCH_FRAMES)
            values = np.empty(hi - lo, dtype=np.int64)
            read_frames([(store, frames[lo:hi], np.arange(hi - lo))], "images", values, pixel=pixel)
            buckets = (times[lo:hi] // bucket_ns) * bucket_ns
            partials.append(_bucket_partial(buckets, values, product_name, int(module)))
            lo = hi
    return partials


def _bucket_partial(buckets: np.ndarray, values: np.ndarray, product: str, module: int) -> pa.Table:
    starts, counts = np.unique(buckets, return_counts=True)
    sorted_values = values[np.argsort(buckets, kind="stable")]
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return pa.table(
        {
            "bucket_ns": starts.astype(np.int64),
            S.DATA_PRODUCT: pa.array([product] * len(starts), pa.string()),
            S.MODULE: pa.array(np.full(len(starts), module, dtype=np.int32)),
            "frames": counts.astype(np.int64),
            "sum": np.add.reduceat(sorted_values, offsets)
            if len(starts)
            else np.empty(0, np.int64),
            "max": np.maximum.reduceat(sorted_values, offsets)
            if len(starts)
            else np.empty(0, np.int64),
        },
        schema=_PARTIAL_SCHEMA,
    )


__all__ = [
    "FrameNotFoundError",
    "QueryError",
    "coincidence_sql",
    "coincidences",
    "examples_dir",
    "frames_schema",
    "frames_with_hk",
    "images",
    "images_at",
    "light_curve",
    "register_views",
    "scan",
    "views_dir",
]
