"""Calibration tables in the lake: pedestals, pedvar, hot/dead masks, gain maps.

One Parquet table, ``calibration``, one row per (kind, data product, module,
validity interval): ``values`` holds the ``H * W`` pixel values (row-major;
masks as 0/1), ``valid_from_ns``/``valid_to_ns`` the half-open interval of
frame times (int64 ns) it applies to, ``recipe`` the recipe's parameters
(JSON), ``source_version`` the lake version the values were computed from,
and ``source`` where they came from (``window``, ``reused:<valid_from_ns>``
for a short window, or the gain's star fields / ``flat``). ph256 frames each
hold one quabo's 16x16 packet (``quabo_num``), so ph256 rows are per quabo
(column ``quabo``; null for module products) and lookups take ``quabo=``. Tables are
versioned by the commit log: a recomputation adds rows, and a lookup takes
the latest committed row valid at the time asked (``as_of`` a lake version
gives an earlier state).

:func:`compute_pedestals` runs one work unit per stream (frames read from
Zarr in batches, two passes per window; see :mod:`pfflake.calibration`) on
local processes or a Dask cluster (:mod:`pfflake.derived`).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .. import schema as S
from ..calibration import PedestalRecipe, gain_with_fallbacks, window_pedestals
from ..errors import QueryError
from ..products import get_product
from ..store.read import read_frames as gather_frames
from .derived import UnitOutput, cleanup, commit_outputs, new_staging, run_tasks, write_staged
from .images import frame_keys, locate
from .layout import safe_name
from .tables import CALIBRATION_SCHEMA
from .views import LakeView, as_view

if TYPE_CHECKING:
    import distributed

    from .lake import Lake
    from .log import Snapshot

KINDS = ("pedestal", "pedvar", "hot", "dead", "gain")
#: Frames dated before 2000-01-01 are never used (the pipeline's invalid-time cut).
MIN_VALID_NS = 946_684_800 * 1_000_000_000
READ_BATCH_FRAMES = 16_384



class CalibrationNotFoundError(QueryError, LookupError):
    """No committed calibration of that kind is valid at the time asked."""


@dataclass
class Calibration:
    """One calibration row: ``values`` ``(H, W)`` float64 (masks: bool)."""

    kind: str
    data_product: str
    module: int
    valid_from_ns: int
    valid_to_ns: int
    values: np.ndarray
    source: str
    recipe: dict[str, Any]
    source_version: int
    n_frames: int
    run: str | None = None
    qc_ok: bool | None = None
    quabo: int | None = None


@dataclass
class CalibrationResult:
    version: int | None
    rows: int = 0
    streams: int = 0
    seconds: float = 0.0


# -- pedestal work units ----------------------------------------------------------------


@dataclass
class PedestalTask:
    run: str
    data_product: str
    module: int
    store: str
    frames: np.ndarray
    times: np.ndarray
    recipe: PedestalRecipe
    staging: str
    rel_path: str
    source_version: int
    calibration_id: str
    computed_at_ns: int
    extra: dict[str, Any] = field(default_factory=dict)
    quabo: int | None = None


def read_frames(store: str, frames: np.ndarray, product) -> np.ndarray:
    """Images of ``frames`` of one committed store (new array, in the order given)."""
    out = np.empty((len(frames), *product.image_shape), dtype=product.dtype)
    frames = np.asarray(frames, dtype=np.int64)
    gather_frames([(store, frames, np.arange(len(frames)))], "images", out)
    return out


def _pedestal_unit(task: PedestalTask) -> UnitOutput:
    product = get_product(task.data_product)
    h, w = product.image_shape

    def images_of(pos: np.ndarray):
        frames = task.frames[pos]

        def batches():
            for lo in range(0, len(frames), READ_BATCH_FRAMES):
                yield read_frames(task.store, frames[lo:lo + READ_BATCH_FRAMES], product)

        return batches

    windows = window_pedestals(images_of, task.times, task.recipe)
    recipe = json.dumps(task.recipe.params(), sort_keys=True)
    rows = []
    for k, win in enumerate(windows):
        own = win["source_window"] == k
        source = "window" if own else f"reused:{win['source_valid_from_ns']}"
        for kind in ("pedestal", "pedvar", "hot", "dead"):
            rows.append({
                "kind": kind, S.DATA_PRODUCT: task.data_product, S.MODULE: task.module,
                "quabo": task.quabo, S.RUN: task.run, "valid_from_ns": win["valid_from_ns"],
                "valid_to_ns": win["valid_to_ns"], "height": h, "width": w,
                "values": np.asarray(win[kind], dtype=np.float64).ravel(),
                "n_frames": win["n_frames"], "source": source, "qc_ok": win["qc_ok"],
                "recipe_name": task.recipe.name, "recipe": recipe,
                "source_version": task.source_version, "computed_at_ns": task.computed_at_ns,
                "calibration_id": task.calibration_id,
            })
    return write_staged(_to_table(rows), task.staging, task.rel_path, task.extra)


def _to_table(rows: list[dict[str, Any]]) -> pa.Table:
    cols = {f.name: [r[f.name] for r in rows] for f in CALIBRATION_SCHEMA}
    cols["values"] = [v.tolist() for v in cols["values"]]
    return pa.table(cols, schema=CALIBRATION_SCHEMA)


def _conditions(where: str | None, data_product: str | None, module) -> str:
    parts = [f"unix_t_ns >= {MIN_VALID_NS}"]
    if where:
        parts.append(f"({where})")
    if data_product is not None:
        parts.append(f"data_product = '{get_product(data_product).name}'")
    if module is not None:
        mods = [module] if np.ndim(module) == 0 else list(module)
        parts.append(f"module IN ({', '.join(str(int(m)) for m in mods)})")
    return " WHERE " + " AND ".join(parts)


def selected_frames(view: LakeView, where: str | None, data_product: str | None,
                    module) -> list[tuple[tuple[str, str, int, int | None], np.ndarray,
                                          np.ndarray]]:
    """``((run, data_product, module, quabo), frames, unix_t_ns)`` per stream of the
    selection (ph256 streams split by ``quabo_num``, ``quabo`` None for module products),
    frames ascending, from the view's snapshot."""
    import polars as pl

    has_quabo = "quabo_num" in view.sql("SELECT * FROM frames LIMIT 0").columns
    quabo = ("CASE WHEN data_product = 'ph256' THEN quabo_num END" if has_quabo
             else "CAST(NULL AS INTEGER)")
    df = view.sql(
        f"SELECT run, data_product, module, frame, unix_t_ns, {quabo} AS quabo FROM frames"
        + _conditions(where, data_product, module)
    ).pl()
    out = []
    df = df.sort([S.RUN, S.DATA_PRODUCT, S.MODULE, "quabo", S.FRAME], nulls_last=True)
    for (run, dp, mod, quabo), part in df.group_by([S.RUN, S.DATA_PRODUCT, S.MODULE, "quabo"],
                                                   maintain_order=True):
        out.append(((run, dp, int(mod), None if quabo is None else int(quabo)),
                    part[S.FRAME].to_numpy().astype(np.int64),
                    part[S.UNIX_T_NS].cast(pl.Int64).to_numpy()))
    return out


def compute_pedestals(
    lake: Lake,
    *,
    where: str | None = None,
    data_product: str | None = None,
    module: int | list[int] | None = None,
    recipe: PedestalRecipe = PedestalRecipe(),
    workers: int | None = None,
    client: distributed.Client | None = None,
) -> CalibrationResult:
    """Pedestal, pedvar, hot and dead rows for every stream's windows, in one commit.

    ``where``: a SQL predicate on ``frames`` choosing the frames used (e.g.
    ``"time_quality = 0"``); frames dated before 2000 are always left out.
    One work unit per stream, on ``workers`` local processes or ``client``'s
    Dask cluster; the result is the same either way.
    """
    t0 = time.perf_counter()
    view = lake.at()  # every read from one snapshot
    snap = view.snapshot
    streams = snap.stream_index()
    cid = uuid.uuid4().hex[:12]
    now = time.time_ns()
    txn, staging = new_staging(lake)
    try:
        tasks = []
        for (run, dp, mod, quabo), frames, times in selected_frames(view, where,
                                                                    data_product, module):
            state = streams[(run, dp, mod)]
            q = "" if quabo is None else f".q{quabo}"
            rel = f"{dp}/{mod}/{_safe(run)}{q}.{txn}.parquet"
            tasks.append(PedestalTask(
                run, dp, mod, str((lake.root / state.store).resolve()), frames, times, recipe,
                str(staging.resolve()), rel, snap.version, cid, now,
                {"run": run, "data_product": dp, "module": mod, "kind": "pedestal"}, quabo))
        outputs = run_tasks(_pedestal_unit, tasks, workers=workers, client=client)
        version = commit_outputs(lake, staging, "calibration", "calibration", outputs,
                                 extra={"source_version": snap.version})
    finally:
        cleanup(staging)
    return CalibrationResult(version, sum(o.rows for o in outputs if o), len(tasks),
                             time.perf_counter() - t0)


def _safe(name: str) -> str:

    return safe_name(name)


# -- lookups ------------------------------------------------------------------------------


def calibration_rows(lake: Lake | LakeView, snap: Snapshot | None = None, *,
                     kind: str | None = None, data_product: str | None = None,
                     module: int | None = None) -> pa.Table:
    """Committed calibration rows (in commit order, column ``_order``), filtered, of a view's
    snapshot (a ``Lake``: ``snap``, default its latest version)."""
    import pyarrow.compute as pc

    view = as_view(lake, snap)
    parts = []
    for i, path in enumerate(view.table_paths("calibration")):
        t = pq.read_table(path, schema=CALIBRATION_SCHEMA)
        mask = None
        for col, val in (("kind", kind), (S.DATA_PRODUCT, data_product), (S.MODULE, module)):
            if val is not None:
                m = pc.equal(t.column(col), pa.scalar(val, t.schema.field(col).type))
                mask = m if mask is None else pc.and_(mask, m)
        if mask is not None:
            t = t.filter(mask)
        parts.append(t.append_column("_order", pa.array(np.full(t.num_rows, i, np.int64))))
    if not parts:
        return CALIBRATION_SCHEMA.append(pa.field("_order", pa.int64())).empty_table()
    return pa.concat_tables(parts)


def _product_of(rows: pa.Table, module: int, data_product: str | None, kind: str) -> str:
    if data_product is not None:
        return get_product(data_product).name
    products = sorted(set(rows.column(S.DATA_PRODUCT).to_pylist()))
    if len(products) > 1:
        raise QueryError(f"module {module} has {kind} calibrations for {products}; "
                         "pass data_product=")
    if not products:
        raise CalibrationNotFoundError(f"no {kind} calibration for module {module} in the lake")
    return products[0]


def lookup(lake: Lake | LakeView, kind: str, module: int, at_ns: int, *,
           data_product: str | None = None, quabo: int | None = None,
           as_of: int | None = None) -> Calibration:
    """The latest committed ``kind`` calibration of ``module`` valid at ``at_ns`` (int ns),
    in a view's version (a ``Lake``: version ``as_of``, default the latest).

    ph256 frames hold one quabo's 16x16 packet each, so ph256 calibrations are per
    quabo: pass ``quabo=`` (0..3) for them."""
    if kind not in KINDS:
        raise QueryError(f"unknown calibration kind {kind!r}; expected one of {KINDS}")
    at_ns = int(at_ns)
    if as_of is None or (isinstance(lake, LakeView) and lake.version == as_of):
        view = as_view(lake)
    elif isinstance(lake, LakeView):
        raise QueryError(f"as_of={as_of} given with a view of version {lake.version}")
    else:
        view = lake.at(as_of)
    snap = view.snapshot
    rows = calibration_rows(view, kind=kind, module=int(module))
    dp = _product_of(rows, module, data_product, kind)
    quabos = {q for q, p in zip(rows.column("quabo").to_pylist(),
                                rows.column(S.DATA_PRODUCT).to_pylist(), strict=True) if p == dp}
    if quabo is None and quabos - {None}:
        raise QueryError(f"{dp} module {module} has {kind} calibrations per quabo "
                         f"{sorted(quabos - {None})}; pass quabo=")
    table = resolve(rows, dp, np.array([at_ns], np.int64), kind, module, quabo)
    row = table[0]
    if row is None:
        raise CalibrationNotFoundError(
            f"no {kind} calibration of {dp} module {module}"
            f"{'' if quabo is None else f' quabo {quabo}'} valid at unix_t_ns {at_ns} "
            f"(lake version {snap.version})")
    h, w = row["height"], row["width"]
    values = np.asarray(row["values"], dtype=np.float64).reshape(h, w)
    if kind in ("hot", "dead"):
        values = values.astype(bool)
    return Calibration(kind, dp, int(module), row["valid_from_ns"], row["valid_to_ns"], values,
                       row["source"], json.loads(row["recipe"]), row["source_version"],
                       row["n_frames"], row[S.RUN], row["qc_ok"], row["quabo"])


def select_rows(rows: pa.Table, kind: str, data_product: str, module: int,
                quabo: int | None = None) -> pa.Table:
    """The rows of one (kind, data product, module, quabo); ``quabo`` None: rows without one."""
    import pyarrow.compute as pc

    mask = pc.and_(pc.equal(rows.column("kind"), kind),
                   pc.and_(pc.equal(rows.column(S.DATA_PRODUCT), data_product),
                           pc.equal(rows.column(S.MODULE), int(module))))
    q = rows.column("quabo")
    mask = pc.and_(mask, pc.is_null(q) if quabo is None
                   else pc.fill_null(pc.equal(q, int(quabo)), False))
    return rows.filter(mask)


def resolve(rows: pa.Table, data_product: str, times: np.ndarray, kind: str,
            module: int, quabo: int | None = None) -> list[dict[str, Any] | None]:
    """Per time, the latest row (commit order, then row order) whose interval holds it."""
    rows = select_rows(rows, kind, data_product, module, quabo)
    index = resolve_index(rows, times)
    pylist = rows.to_pylist() if rows.num_rows else []
    return [pylist[i] if i >= 0 else None for i in index.tolist()]


def resolve_index(rows: pa.Table, times: np.ndarray) -> np.ndarray:
    """Per time, the index in ``rows`` of the last row whose interval holds it (-1: none)."""
    times = np.asarray(times, dtype=np.int64)
    out = np.full(len(times), -1, dtype=np.int64)
    if rows.num_rows == 0 or len(times) == 0:
        return out
    lo_all = rows.column("valid_from_ns").to_numpy()
    hi_all = rows.column("valid_to_ns").to_numpy()
    order = np.argsort(times, kind="stable")
    ts = times[order]
    for i in range(rows.num_rows):  # rows in commit order: later ones win
        a = np.searchsorted(ts, lo_all[i], "left")
        b = np.searchsorted(ts, hi_all[i], "left")
        out[order[a:b]] = i
    return out


def values_per_frame(rows: pa.Table, data_product: str, module: int, kind: str,
                     times: np.ndarray, quabo: int | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """``(values (K, H*W), index per time into them; -1 where none)`` for one stream."""
    rows = select_rows(rows, kind, data_product, module, quabo)
    index = resolve_index(rows, times)
    if rows.num_rows == 0:
        return np.empty((0, 0)), index
    values = np.stack([np.asarray(v, dtype=np.float64) for v in rows.column("values").to_pylist()])
    return values, index


# -- gain ---------------------------------------------------------------------------------


def compute_gain(lake: Lake, data_product: str, module: int, *, fields: list[tuple[str, int, int]],
                 valid_from_ns: int, valid_to_ns: int, sigma: float = 3.0,
                 quabo: int | None = None) -> CalibrationResult:
    """A relative gain map for ``module``, valid over ``[valid_from_ns, valid_to_ns)``.

    ``fields``: candidates ``(label, t_a_ns, t_b_ns)`` in the pipeline's order of
    preference (the night's fields before / after the meridian flip, another
    source that night, a prior night); each is the pair of committed pedvar
    maps valid at those times. The first pair that exists and is usable wins;
    with none, the map is flat 1.0 (``source = "flat"``). One commit.
    """
    product = get_product(data_product)
    shape = product.image_shape
    view = lake.at()  # the pedvar maps and source_version of one snapshot
    candidates = []
    for label, ta, tb in fields:
        pair = []
        for t in (ta, tb):
            try:
                pair.append(lookup(view, "pedvar", module, t, data_product=product.name,
                                   quabo=quabo).values)
            except CalibrationNotFoundError:
                pair.append(None)
        candidates.append((f"{label}:{ta}/{tb}", *pair))
    gain, source = gain_with_fallbacks(candidates, shape, sigma)
    snap = view.snapshot
    row = {
        "kind": "gain", S.DATA_PRODUCT: product.name, S.MODULE: int(module),
        "quabo": quabo, S.RUN: None,
        "valid_from_ns": int(valid_from_ns), "valid_to_ns": int(valid_to_ns),
        "height": shape[0], "width": shape[1], "values": gain.ravel(), "n_frames": 0,
        "source": source, "qc_ok": source != "flat", "recipe_name": "heap-gain-v1",
        "recipe": json.dumps({"sigma": sigma, "fields": [list(f) for f in fields]}),
        "source_version": snap.version, "computed_at_ns": time.time_ns(),
        "calibration_id": uuid.uuid4().hex[:12],
    }
    txn, staging = new_staging(lake)
    try:
        out = write_staged(_to_table([row]), str(staging),
                           f"{product.name}/{int(module)}/gain{'' if quabo is None else quabo}"
                           f".{txn}.parquet",
                           {"data_product": product.name, "module": int(module), "kind": "gain"})
        version = commit_outputs(lake, staging, "calibration", "calibration", [out])
    finally:
        cleanup(staging)
    return CalibrationResult(version, 1, 1)


# -- calibrated images --------------------------------------------------------------------


def calibrated_images(lake: Lake | LakeView, result: Any, *, gain: bool = True) -> np.ndarray:
    """``(raw - pedestal) / gain`` of the frames of a query result, in row order, float32.

    Each frame gets the latest committed pedestal (and gain, flat 1.0 where
    none is committed) valid at its ``unix_t_ns``. Raises
    :class:`CalibrationNotFoundError` for a frame with no pedestal.
    """
    view = as_view(lake)  # the frames and the calibrations of one snapshot
    keys = frame_keys(view, result)
    product_name, requests = locate(view, keys)
    if product_name is None:
        return np.empty((0, 0, 0), dtype=np.float32)
    product = get_product(product_name)
    raw = np.empty((keys.height, *product.image_shape), dtype=product.dtype)
    gather_frames(requests, "images", raw)
    times = np.empty(keys.height, dtype=np.int64)
    gather_frames(requests, S.UNIX_T_NS, times)
    out = raw.reshape(keys.height, -1).astype(np.float32)
    rows = calibration_rows(view, data_product=product.name)
    modules = keys[S.MODULE].to_numpy()
    quabos = np.full(keys.height, -1, dtype=np.int64)
    if product.header_kind == "quabo":  # ph256: calibrations per quabo
        gather_frames(requests, "quabo_num", quabos)
    groups = np.unique(np.stack([modules, quabos], axis=1), axis=0)
    for mod, q in groups.tolist():
        sel = np.flatnonzero((modules == mod) & (quabos == q))
        quabo = None if q < 0 else int(q)
        ped, idx = values_per_frame(rows, product.name, int(mod), "pedestal", times[sel], quabo)
        if (idx < 0).any():
            bad = sel[idx < 0][0]
            raise CalibrationNotFoundError(
                f"{product.name} module {int(mod)}{'' if quabo is None else f' quabo {quabo}'}"
                f": no pedestal valid at unix_t_ns {int(times[bad])} (row {int(bad)}); run "
                "Lake.compute_pedestals first")
        out[sel] -= ped[idx].astype(np.float32)
        if gain:
            g, gidx = values_per_frame(rows, product.name, int(mod), "gain", times[sel], quabo)
            has = gidx >= 0
            if has.any():
                out[sel[has]] /= g[gidx[has]].astype(np.float32)
    return out.reshape(raw.shape)


__all__ = [
    "CALIBRATION_SCHEMA",
    "KINDS",
    "Calibration",
    "CalibrationNotFoundError",
    "CalibrationResult",
    "calibrated_images",
    "calibration_rows",
    "compute_gain",
    "compute_pedestals",
    "lookup",
]
