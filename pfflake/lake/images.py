"""Query results -> frame keys -> images, from the Zarr stores of one snapshot.

Only frames below a stream's committed count are readable. A query result is
turned into images by grouping its frames by store and by stored object
(chunk, or shard and inner chunk): every object is read and decoded once, in a
thread pool, whatever the number or order of the frames that fall into it.

Every function takes a :class:`~pfflake.lake.views.LakeView` (a ``Lake`` is
accepted and means its latest version), so the rows and the pixels of one call
always come from the same snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from .. import schema as S
from ..errors import FrameNotFoundError, QueryError
from ..products import get_product
from ..store.read import read_frames
from .views import LakeView, as_view, committed_store, scan_files, sql_ident

if TYPE_CHECKING:
    import polars as pl

FRAME_KEYS = (S.RUN, S.DATA_PRODUCT, S.MODULE, S.FRAME)
TIME_KEYS = (S.MODULE, S.UNIX_T_NS)


# -- query results -> frames -----------------------------------------------------------


def result_frame(result: Any, columns: Sequence[str]) -> pl.DataFrame:
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


def frame_keys(view: LakeView, result: Any) -> pl.DataFrame:
    """``(run, data_product, module, frame)`` of each row of ``result``, in row order."""
    import polars as pl

    req = result_frame(result, [*FRAME_KEYS, S.UNIX_T_NS])
    if all(c in req.columns for c in FRAME_KEYS):
        keys = req.select(FRAME_KEYS)
    elif all(c in req.columns for c in TIME_KEYS):
        keys = _match_times(view, req)
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


def _match_times(view: LakeView, req: pl.DataFrame) -> pl.DataFrame:
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
    streams = [s for s in view.snapshot.streams.values() if s.store and s.frames]
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
        read_frames([(view.root / state.store, every, every)], S.UNIX_T_NS, times)
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


def locate(view: LakeView, keys: pl.DataFrame) -> tuple[str | None, list]:
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
    streams = view.snapshot.stream_index()
    groups = (
        keys.with_row_index("_row")
        .group_by([S.RUN, S.DATA_PRODUCT, S.MODULE], maintain_order=True)
        .agg(pl.col(S.FRAME), pl.col("_row"))
    )
    requests = []
    for run, product, module, frames, rows in groups.iter_rows():
        frames = np.asarray(frames, dtype=np.int64)
        store = committed_store(view, streams, run, product, module, frames)
        requests.append((store, frames, np.asarray(rows, dtype=np.int64)))
    return (products[0] if products else None), requests


# -- images ------------------------------------------------------------------------


def images(view: LakeView, result: Any, *, as_xarray: bool = False,
           data_product: str | None = None) -> Any:
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
    view = as_view(view)
    keys = frame_keys(view, result)
    product_name, requests = locate(view, keys)
    if product_name is None:
        products = {st.data_product for st in view.snapshot.streams.values()}
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
    view: LakeView,
    module: int,
    unix_t_ns,
    tolerance_ns: int,
    *,
    data_product: str | None = None,
    run: str | None = None,
) -> tuple[np.ndarray, pa.Table]:
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
    view = as_view(view)  # one snapshot for the rows and the pixels
    lo = int(wanted.min()) - tolerance_ns if len(wanted) else 0
    hi = int(wanted.max()) + tolerance_ns if len(wanted) else -1
    where = (
        (pl.col(S.MODULE) == int(module))
        & pl.col(S.UNIX_T_NS).is_between(lo, hi)
        if len(wanted)
        else pl.lit(False)
    )
    if data_product is not None:
        where &= pl.col(S.DATA_PRODUCT) == get_product(data_product).name
    if run is not None:
        where &= pl.col(S.RUN) == run
    # only files whose committed time range meets the window: fewer footers to open
    files = [view.root / e.path for e in view.snapshot.files_between("frames", lo, hi)]
    frames = scan_files("frames", files).filter(where)
    candidates = frames.select([*FRAME_KEYS, S.UNIX_T_NS]).collect().sort(S.UNIX_T_NS)
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
            matched.lazy().select([*FRAME_KEYS, "requested_unix_t_ns", "_row"]),
            on=list(FRAME_KEYS),
            how="inner",
        )
        .collect()
        .sort("_row")
    )
    full = full.with_columns(
        (pl.col(S.UNIX_T_NS) - pl.col("requested_unix_t_ns")).alias("offset_ns")
    ).drop("_row")
    pictures = images(view, matched.select(FRAME_KEYS))
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


__all__ = [
    "FRAME_KEYS",
    "TIME_KEYS",
    "frame_keys",
    "images",
    "images_at",
    "locate",
    "result_frame",
]
