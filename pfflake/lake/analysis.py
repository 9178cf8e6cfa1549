"""Analysis over one snapshot of a lake: frames with housekeeping, coincidences, light curves.

Each function takes a :class:`~pfflake.lake.views.LakeView` (a ``Lake`` is
accepted and means its latest version) and returns a lazy DuckDB relation on
that view's connection, so a result always describes one version.

Timestamps are int64 ns since the UNIX epoch everywhere (``unix_t_ns``);
time buckets use integer division and assume non-negative times.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from .. import schema as S
from ..errors import PFFWarning, QueryError
from ..products import get_product
from ..store.read import batch_stop, read_frames
from .views import LakeView, as_view, committed_store, sql_ident, sql_literal

if TYPE_CHECKING:
    import duckdb


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
    view: LakeView,
    fields: str | Sequence[str] = ("DET_TEMP",),
    *,
    where: str | None = None,
    devices: str | Mapping[int, str] | None = None,
) -> duckdb.DuckDBPyRelation:
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

    Returns a lazy DuckDB relation on the view's connection (unordered). A run
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
    view = as_view(view)
    _warn_hk_coverage(view, ctes, fields, by_module=devices is None or
                      not isinstance(devices, str))
    return view.sql(
        f"WITH {', '.join(ctes)} SELECT f.*, {', '.join(columns)} FROM f {' '.join(joins)}"
    )


class HKCoverageWarning(PFFWarning):
    """Frames of a run got no housekeeping reading: hk and frames do not overlap in time."""


def _warn_hk_coverage(view: LakeView, ctes: list[str], fields: list[str], by_module: bool) -> None:
    """Warn, per run (and module) and field, when no frame has a reading at or before it.

    One aggregate query over the frames and the field's readings: cheap next to
    the join, and it turns a silent all-NULL column into a sentence naming the
    run, the field and both time spans.
    """
    keys = "run, module" if by_module else "run"
    for i, field in enumerate(fields):
        rows = view.sql(
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
    view: LakeView,
    modules: Sequence[int],
    window_ns: int,
    *,
    where: str | None = None,
    data_product: str | None = None,
) -> duckdb.DuckDBPyRelation:
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
    sql = coincidence_sql(modules, window_ns, where=where, data_product=data_product)
    return as_view(view).sql(sql)


# -- light curves ---------------------------------------------------------------------


def light_curve(
    view: LakeView,
    bucket_ns: int,
    *,
    module: int | Sequence[int] | None = None,
    data_product: str | None = None,
    where: str | None = None,
    pixel: tuple[int, int] | None = None,
) -> duckdb.DuckDBPyRelation:
    """Time-bucketed brightness per data product and module, ready to plot.

    Columns: ``bucket_ns`` (bucket start, int ns), ``time`` (the same,
    timestamptz), ``data_product``, ``module``, ``frames``, and ``sum``,
    ``mean``, ``max`` of the frames' ``pixel_sum`` -- or, with
    ``pixel=(row, col)``, of that pixel's value, read from the images stream
    by stream in chunk-aligned batches: memory holds one stream's frame
    numbers and times (16 bytes a frame) and one batch's pixel values, never
    images, and each stored chunk is decoded once. Ordered by data_product,
    module, bucket_ns. Returns a DuckDB relation on the view's connection.
    """
    bucket_ns = int(bucket_ns)
    if bucket_ns <= 0:
        raise QueryError(f"bucket_ns must be a positive number of ns, got {bucket_ns}")
    view = as_view(view)
    parts = [_modules_condition(module), _product_condition(data_product), where]
    conditions = _conditions(*parts)
    if pixel is None:
        bucket = f"unix_t_ns // {bucket_ns} * {bucket_ns}"
        return view.sql(
            f"SELECT {bucket} AS bucket_ns, "
            f"make_timestamp_ns({bucket}) AT TIME ZONE 'UTC' AS time, "
            "data_product, module, count(*) AS frames, CAST(sum(pixel_sum) AS BIGINT) AS sum, "
            "avg(pixel_sum) AS mean, max(pixel_sum) AS max "
            f"FROM frames{conditions} GROUP BY ALL ORDER BY data_product, module, bucket_ns"
        )
    partials = _pixel_partials(view, bucket_ns, parts, (int(pixel[0]), int(pixel[1])))
    con = view.connection()
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
    view: LakeView, bucket_ns: int, parts: list[str | None], pixel: tuple[int, int]
) -> list[pa.Table]:
    """Per-bucket (frames, sum, max) of one pixel, stream by stream, in chunk-aligned batches."""
    con = view.connection()
    streams = view.snapshot.stream_index()
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
        store = committed_store(view, streams, run, product_name, module, frames)
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
    "HKCoverageWarning",
    "coincidence_sql",
    "coincidences",
    "frames_with_hk",
    "light_curve",
]
