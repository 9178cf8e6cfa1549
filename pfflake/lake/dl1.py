"""The ``dl1`` table: cleaned-image Hillas parameters per selected frame.

For each frame of a selection (a SQL predicate on ``frames``), the recipe of
the high-energy pipeline: subtract the frame's pedestal (the committed
``pedestal`` calibration valid at its ``unix_t_ns``), clean with thresholds
``picture_pedvar * pedvar`` and ``boundary_pedvar * pedvar`` (8-connected;
2-pixel islands with a boundary pixel removed), divide by the gain map (flat
1.0 where none is committed), and compute Hillas parameters on the module's
:class:`~pfflake.camera.Camera` (raw ph1024 gets its true pixel positions; a
ph256 frame is calibrated with its quabo's pedestals and placed where that
quabo sits in the module, column ``quabo``).

Rows carry ``(run, data_product, module, frame)``, the join key of
``frames``, and ``unix_t_ns``; ``pedestal_valid_from_ns`` names the pedestal
window used, ``gain_source`` the gain (``flat`` if none), ``source_version``
the lake version read. Frames with no valid pedestal are skipped and counted.

Computation: work units of up to :data:`UNIT_FRAMES` frames of one stream, on
local processes or a Dask cluster (:mod:`pfflake.derived`), one commit. The
``dl1`` table keeps the latest computation per stream: a new one replaces
the rows of every stream it covers (in the same commit).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from .. import schema as S
from ..camera import Camera
from ..images import HILLAS_SCHEMA, hillas_parameters, tailcuts_clean
from ..products import get_product
from .caltables import calibration_rows, read_frames, resolve_index, select_rows, selected_frames
from .derived import UnitOutput, cleanup, commit_outputs, new_staging, run_tasks, write_staged
from .layout import safe_name
from .tables import DL1_SCHEMA

if TYPE_CHECKING:
    import distributed

    from .lake import Lake

UNIT_FRAMES = 65_536
BATCH_FRAMES = 16_384



@dataclass(frozen=True)
class Dl1Recipe:
    """Cleaning and geometry parameters of a dl1 computation (stored in its commit)."""

    picture_pedvar: float = 4.0
    boundary_pedvar: float = 2.0
    remove_boundary_pairs: bool = True
    min_picture_neighbors: int = 0
    plate_scale_deg: float | str | None = None
    name: str = "heap-dl1-v1"

    def params(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Dl1Result:
    version: int | None
    rows: int = 0
    skipped: int = 0
    units: int = 0
    seconds: float = 0.0


@dataclass
class Dl1Task:
    run: str
    data_product: str
    module: int
    store: str
    frames: np.ndarray
    times: np.ndarray
    pedestal: np.ndarray  # (K, P)
    pedvar: np.ndarray  # (K, P)
    ped_index: np.ndarray  # per frame, into pedestal/pedvar
    ped_from: np.ndarray  # (K,) valid_from_ns of each pedestal row
    gain: np.ndarray  # (G, P)
    gain_index: np.ndarray  # per frame, -1: flat
    gain_source: list[str]
    recipe: Dl1Recipe
    staging: str
    rel_path: str
    source_version: int
    dl1_id: str
    extra: dict[str, Any] = field(default_factory=dict)
    quabo: int | None = None


def _dl1_unit(task: Dl1Task) -> UnitOutput:
    product = get_product(task.data_product)
    cam = Camera.for_product(product.name, plate_scale_deg=task.recipe.plate_scale_deg,
                             quabo=task.quabo)
    h, w = product.image_shape
    parts = []
    for lo in range(0, len(task.frames), BATCH_FRAMES):
        hi = min(lo + BATCH_FRAMES, len(task.frames))
        raw = read_frames(task.store, task.frames[lo:hi], product).reshape(hi - lo, h * w)
        pi = task.ped_index[lo:hi]
        signal = raw.astype(np.float64) - task.pedestal[pi]
        mask = np.empty((hi - lo, h, w), dtype=bool)
        for k in np.unique(pi):
            sel = np.flatnonzero(pi == k)
            var = task.pedvar[k].reshape(h, w)
            mask[sel] = tailcuts_clean(
                signal[sel].reshape(-1, h, w), task.recipe.picture_pedvar * var,
                task.recipe.boundary_pedvar * var,
                min_picture_neighbors=task.recipe.min_picture_neighbors,
                remove_boundary_pairs=task.recipe.remove_boundary_pairs, camera=cam)
        gi = task.gain_index[lo:hi]
        has_gain = gi >= 0
        if has_gain.any():
            signal[has_gain] /= task.gain[gi[has_gain]]
        table = hillas_parameters(signal.reshape(-1, h, w), mask, cam)
        n = hi - lo
        parts.append(pa.table({
            S.RUN: pa.array([task.run] * n, pa.string()),
            S.DATA_PRODUCT: pa.array([task.data_product] * n, pa.string()),
            S.MODULE: pa.array(np.full(n, task.module, np.int32)),
            S.FRAME: pa.array(task.frames[lo:hi]),
            S.UNIX_T_NS: pa.array(task.times[lo:hi]),
            "quabo": pa.array([task.quabo] * n, pa.int32()),
            **{f.name: table.column(f.name) for f in HILLAS_SCHEMA},
            "pedestal_valid_from_ns": pa.array(task.ped_from[pi]),
            "gain_source": pa.array([task.gain_source[g] if g >= 0 else "flat"
                                     for g in gi.tolist()], pa.string()),
            "recipe_name": pa.array([task.recipe.name] * n, pa.string()),
            "source_version": pa.array(np.full(n, task.source_version, np.int64)),
            "dl1_id": pa.array([task.dl1_id] * n, pa.string()),
        }, schema=DL1_SCHEMA))
    table = pa.concat_tables(parts) if parts else DL1_SCHEMA.empty_table()
    return write_staged(table, task.staging, task.rel_path, task.extra)


def _calib_arrays(rows: pa.Table, dp: str, module: int, kind: str, times: np.ndarray,
                  quabo: int | None):

    sub = select_rows(rows, kind, dp, module, quabo)
    index = resolve_index(sub, times)
    used = np.unique(index[index >= 0])
    remap = np.full(sub.num_rows, -1, np.int64)
    remap[used] = np.arange(len(used))
    values = [np.asarray(sub.column("values")[int(i)].as_py(), np.float64) for i in used]
    info = sub.select(["valid_from_ns", "source"]).take(pa.array(used, pa.int64())).to_pydict()
    new_index = np.full(len(index), -1, np.int64)
    new_index[index >= 0] = remap[index[index >= 0]]
    return (np.stack(values) if values else np.empty((0, 0))), new_index, info


def compute_dl1(
    lake: Lake,
    *,
    where: str | None = None,
    data_product: str | None = None,
    module: int | list[int] | None = None,
    recipe: Dl1Recipe = Dl1Recipe(),
    workers: int | None = None,
    client: distributed.Client | None = None,
) -> Dl1Result:
    """Compute the ``dl1`` rows of the frames passing ``where`` and commit them (one commit).

    Needs committed pedestals (:meth:`Lake.compute_pedestals`); frames with
    none valid at their time are skipped (``Dl1Result.skipped``). Replaces the
    dl1 rows of every stream it covers.
    """
    t0 = time.perf_counter()
    view = lake.at()  # every read from one snapshot
    snap = view.snapshot
    streams = snap.stream_index()
    rows = calibration_rows(view, data_product=data_product)
    did = uuid.uuid4().hex[:12]
    txn, staging = new_staging(lake)
    skipped = 0
    covered: set[tuple[str, str, int]] = set()
    try:
        tasks = []
        for (run, dp, mod, quabo), frames, times in selected_frames(view, where,
                                                                    data_product, module):
            covered.add((run, dp, mod))
            ped, pidx, pinfo = _calib_arrays(rows, dp, mod, "pedestal", times, quabo)
            var, vidx, _ = _calib_arrays(rows, dp, mod, "pedvar", times, quabo)
            gain, gidx, ginfo = _calib_arrays(rows, dp, mod, "gain", times, quabo)
            ok = (pidx >= 0) & (vidx >= 0)
            skipped += int((~ok).sum())
            if not ok.any():
                continue
            # pedestal and pedvar rows come in pairs from one window: align pedvar to pedestal
            var_for = np.empty_like(ped)
            var_for[pidx[ok]] = var[vidx[ok]]
            frames, times, pidx, gidx = frames[ok], times[ok], pidx[ok], gidx[ok]
            store = str((lake.root / streams[(run, dp, mod)].store).resolve())
            for lo in range(0, len(frames), UNIT_FRAMES):
                hi = min(lo + UNIT_FRAMES, len(frames))
                q = "" if quabo is None else f".q{quabo}"
                rel = (f"{dp}/{mod}/{_safe(run)}{q}.{int(frames[lo])}-{int(frames[hi - 1])}."
                       f"{txn}.parquet")
                tasks.append(Dl1Task(
                    run, dp, mod, store, frames[lo:hi], times[lo:hi], ped, var_for,
                    pidx[lo:hi], np.asarray(pinfo["valid_from_ns"], np.int64), gain,
                    gidx[lo:hi], list(ginfo["source"]), recipe, str(staging.resolve()), rel,
                    snap.version, did,
                    {"run": run, "data_product": dp, "module": mod,
                     "first_frame": int(frames[lo]), "last_frame": int(frames[hi - 1])},
                    quabo))
        outputs = run_tasks(_dl1_unit, tasks, workers=workers, client=client)

        def replaced(current):
            return [e for e in current.table_files("dl1")
                    if (e.get("run"), e.get("data_product"), e.get("module")) in covered]

        version = commit_outputs(lake, staging, "dl1", "dl1", outputs, remove=replaced,
                                 extra={"source_version": snap.version, "dl1_id": did,
                                        "recipe": json.dumps(recipe.params(), sort_keys=True)})
    finally:
        cleanup(staging)
    return Dl1Result(version, sum(o.rows for o in outputs if o), skipped, len(tasks),
                     time.perf_counter() - t0)


def _safe(name: str) -> str:

    return safe_name(name)


__all__ = ["DL1_SCHEMA", "Dl1Recipe", "Dl1Result", "compute_dl1"]
