"""Clock offsets between telescopes, per time bin, exact in int64 ns and robust to accidentals.

The high-energy pipeline pairs every frame of a telescope with the frames of
a reference within +-20 ms, takes the median of the time differences per
120 s bin and subtracts it. At realistic trigger rates the accidental pairs
inside +-20 ms are as many as the true ones and spread uniformly, so a plain
median is dragged toward 0 (or wherever the window is centred). Here, per bin:

1. every pair within ``window_ns`` (``dt = t_module - t_reference``);
2. **peak**: a histogram of ``dt`` in ``peak_bin_ns`` steps, smoothed over
   three steps; the fullest place is the first estimate (ties: the earliest);
3. **refine**: within ``refine_ns`` of the estimate, the median of the
   *signal*: the ``dt`` where the cumulative count minus the accidentals
   expected up to there (uniform, density from the pairs outside the window)
   reaches half of the excess; repeated ``iterations`` times, recentring;
4. ``n_pairs`` = pairs inside the final refine window, ``n_background`` = the
   accidental pairs expected there, ``spread_ns`` = half the 16-84 percentile
   range of the signal. ``offset_ns`` is null unless the excess
   ``n_pairs - n_background`` is at least ``min_pairs`` and ``MIN_SIGMA`` (5)
   sigma above the background (``excess**2 >= 25 * n_background``). Five, not
   three: the peak is the fullest of ~80 histogram cells, so a 3-sigma local
   excess turns up by chance in a few percent of pure-background bins (the
   look-elsewhere effect) and would be reported as an offset anywhere in the
   window; at 5 sigma that happens about once in 10^5 bins.

Bins are aligned to multiples of ``bin_ns`` since the epoch (by reference
time), so two runs or two calls agree on them. Everything is int64: the
medians are order statistics, never float averages.

:func:`apply_offsets` subtracts a module's offset in the bin holding each
frame (the nearest estimated bin when its own has no estimate).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .cuts import Y2000_NS, lake_frames, lake_select

__all__ = [
    "OFFSETS_SCHEMA",
    "apply_offsets",
    "estimate_offsets",
    "offsets_parameters",
    "offsets_table",
]

#: Significance an excess of pairs needs before a bin gets an offset (see the module doc).
MIN_SIGMA = 5

OFFSETS_SCHEMA = pa.schema(
    [
        pa.field("module", pa.int32()),
        pa.field("reference", pa.int32()),
        pa.field("bin_start_ns", pa.int64()),
        pa.field("bin_end_ns", pa.int64()),
        pa.field("offset_ns", pa.int64()),  # null: no estimate in this bin
        pa.field("n_pairs", pa.int64()),
        pa.field("n_background", pa.int64()),
        pa.field("n_candidates", pa.int64()),
        pa.field("spread_ns", pa.int64()),
    ]
)
#: Threads for the modules of :func:`offsets_table` (numpy releases the GIL in its loops).
_THREADS = os.cpu_count() or 1
#: Reference frames per chunk of work in :func:`estimate_offsets` (whole bins per chunk).
_CHUNK_FRAMES = 1 << 16
#: Schema metadata key holding the parameters of an offsets table (JSON).
PARAMS_KEY = b"pfflake.time_offsets"


def estimate_offsets(
    t_ref: np.ndarray,
    t_mod: np.ndarray,
    *,
    window_ns: int = 20_000_000,
    bin_ns: int = 120_000_000_000,
    peak_bin_ns: int | None = None,
    refine_ns: int | None = None,
    iterations: int = 3,
    min_pairs: int = 5,
    _pool: ThreadPoolExecutor | None = None,
) -> dict[str, np.ndarray]:
    """Offset of one module's clock against a reference, per bin (see the module doc).

    ``t_ref``/``t_mod``: int64 ns (any order; sorted copies are made).
    ``peak_bin_ns`` defaults to ``window_ns // 40`` (500 us for 20 ms),
    ``refine_ns`` to ``window_ns // 10``. Returns int64 arrays ``bin_start_ns``,
    ``bin_end_ns``, ``offset_ns``, ``n_pairs``, ``n_background``,
    ``n_candidates``, ``spread_ns`` and a bool ``valid`` (``offset_ns`` and
    ``spread_ns`` are meaningful only where valid), one entry per bin holding
    reference frames, in time order.
    """
    window_ns, bin_ns = int(window_ns), int(bin_ns)
    if window_ns <= 0 or bin_ns <= 0:
        raise ValueError(f"window_ns and bin_ns must be > 0, got {window_ns}, {bin_ns}")
    h = max(1, int(peak_bin_ns) if peak_bin_ns else window_ns // 40)
    r = max(0, int(refine_ns) if refine_ns is not None else window_ns // 10)
    tr = _sorted(_int_ns(t_ref, "t_ref"))
    tm = _sorted(_int_ns(t_mod, "t_mod"))
    ref_bins = tr // bin_ns
    new_bin = np.empty(len(tr), bool)
    new_bin[:1] = True
    np.not_equal(ref_bins[1:], ref_bins[:-1], out=new_bin[1:])
    bins = ref_bins[new_bin]
    ref_bin_index = np.cumsum(new_bin) - 1  # bin of each reference frame
    nb = len(bins)
    out = {
        "bin_start_ns": bins * bin_ns,
        "bin_end_ns": (bins + 1) * bin_ns,
        "offset_ns": np.zeros(nb, np.int64),
        "n_pairs": np.zeros(nb, np.int64),
        "n_background": np.zeros(nb, np.int64),
        "n_candidates": np.zeros(nb, np.int64),
        "spread_ns": np.zeros(nb, np.int64),
        "valid": np.zeros(nb, bool),
    }
    if nb == 0 or len(tm) == 0:
        return out
    # Whole bins at a time, about _CHUNK_FRAMES reference frames each: the arrays of a
    # chunk stay in cache, which at 10^6 frames is worth more than any single step.
    bin_first = np.flatnonzero(new_bin)
    cuts = np.searchsorted(bin_first, np.arange(_CHUNK_FRAMES, len(tr), _CHUNK_FRAMES))
    edges = np.unique(np.concatenate([[0], cuts, [nb]]))
    def chunk(b0: int, b1: int) -> dict[str, np.ndarray] | None:
        r0 = int(bin_first[b0])
        r1 = int(bin_first[b1]) if b1 < nb else len(tr)
        trc = tr[r0:r1]
        m0 = int(np.searchsorted(tm, trc[0] - window_ns, side="left"))
        m1 = int(np.searchsorted(tm, trc[-1] + window_ns, side="right"))
        return _estimate_bins(trc, tm[m0:m1], ref_bin_index[r0:r1] - b0, b1 - b0,
                              window_ns, h, r, iterations, min_pairs)

    spans = list(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True))
    mapper = map if _pool is None else _pool.map
    for (b0, b1), part in zip(spans, mapper(lambda s: chunk(*s), spans), strict=True):
        if part is not None:
            for k, v in part.items():
                out[k][b0:b1] = v
    return out


def _estimate_bins(
    tr: np.ndarray, tm: np.ndarray, ref_bin_index: np.ndarray, nb: int, window_ns: int,
    h: int, r: int, iterations: int, min_pairs: int,
) -> dict[str, np.ndarray] | None:
    """Steps 1-4 of the module doc for ``nb`` consecutive bins (``None``: no pairs)."""
    # 1. all pairs within the window, grouped by reference frame (so by bin).
    lo = np.searchsorted(tm, tr - window_ns, side="left")
    hi = np.searchsorted(tm, tr + window_ns, side="right")
    per_ref = hi - lo
    total = int(per_ref.sum())
    if total == 0:
        return None
    has = np.flatnonzero(per_ref)  # most frames have no partner at low rates
    count = per_ref[has]
    first = np.cumsum(count) - count
    mod_idx = np.arange(total)
    mod_idx += np.repeat(lo[has] - first, count)
    dt = tm[mod_idx]
    dt -= np.repeat(tr[has], count)
    bi = np.repeat(ref_bin_index[has], count)  # non-decreasing: pairs in reference order
    del mod_idx, first, has, count, lo, hi, per_ref
    # 2. peak of a smoothed histogram per bin.
    nh = (2 * window_ns) // h + 1
    hb = (dt + window_ns) // h
    hist = np.bincount(bi * nh + hb, minlength=nb * nh).reshape(nb, nh)
    smooth = hist.copy()
    smooth[:, 1:] += hist[:, :-1]
    smooth[:, :-1] += hist[:, 1:]
    centre = np.argmax(smooth, axis=1).astype(np.int64) * h - window_ns + h // 2
    # 3. refine: background-subtracted median inside +-r, on pairs sorted by (bin, dt).
    # The centre moves at most r from the peak, so only pairs within 2r of it are sorted.
    cand = np.bincount(bi, minlength=nb).astype(np.int64)
    centre0 = centre
    near = np.abs(dt - np.repeat(centre0, cand)) <= 2 * r  # bi is sorted: cand per bin
    span = 2 * window_ns + 1
    key = bi[near].astype(np.int64) * span + (dt[near] + window_ns)
    del dt, bi, hb, near
    key.sort()
    dt_sorted = key % span - window_ns
    base = np.arange(nb, dtype=np.int64) * span + window_ns
    for _ in range(max(1, iterations)):
        win = _Window(key, dt_sorted, base, centre, r, window_ns, cand)
        moved = np.clip(win.quantiles((1, 2))[0], centre0 - r, centre0 + r)
        centre = np.where(win.n_in > 0, moved, centre)
    win = _Window(key, dt_sorted, base, centre, r, window_ns, cand)
    n_in, background = win.n_in, win.n_bg
    signal = n_in - background
    # Valid: enough pairs above the background, and a MIN_SIGMA excess over it.
    valid = (
        (n_in > 0)
        & (signal >= min_pairs)
        & (signal * signal >= MIN_SIGMA * MIN_SIGMA * background)
    )
    p16, p84 = win.quantiles((16, 100), (84, 100))
    spread = (p84 - p16) // 2
    return {
        "offset_ns": np.where(valid, centre, 0),
        "n_pairs": n_in,
        "n_background": background,
        "n_candidates": cand,
        "spread_ns": np.where(valid, spread, 0),
        "valid": valid,
    }


class _Window:
    """The pairs of each bin within ``+-r`` of its centre (contiguous in the sorted keys).

    ``n_bg``: accidental pairs expected inside, from the pairs outside scaled by
    width (accidentals are uniform in ``dt``). :meth:`quantile` is the
    ``dt`` where the background-subtracted cumulative count first reaches
    ``num/den`` of the signal, in integer arithmetic.
    """

    def __init__(self, key, dt_sorted, base, centre, r, window_ns, cand) -> None:
        self.dt = dt_sorted
        self.lo = np.maximum(centre - r, -window_ns)
        hi = np.minimum(centre + r, window_ns)
        self.start = np.searchsorted(key, base + self.lo, side="left")
        self.stop = np.searchsorted(key, base + hi, side="right")
        self.n_in = self.stop - self.start
        self.width = hi - self.lo + 1
        width_out = 2 * window_ns + 1 - self.width
        out_pairs = cand - self.n_in
        self.n_bg = np.where(width_out > 0, out_pairs * self.width // np.maximum(width_out, 1), 0)
        self.n_bg = np.minimum(self.n_bg, self.n_in)

    def quantiles(self, *fractions: tuple[int, int]) -> list[np.ndarray]:
        """Per bin, for each ``(num, den)``: the first ``dt`` where the pairs so far, less
        the accidentals expected up to it, reach ``num/den`` of the excess."""
        nb = len(self.n_in)
        has = np.flatnonzero(self.n_in > 0)
        if len(has) == 0:
            return [np.zeros(nb, np.int64) for _ in fractions]
        counts = self.n_in[has]
        owner = np.repeat(np.arange(len(has)), counts)
        rank = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        pos = np.repeat(self.start[has], counts) + rank
        d = self.dt[pos]
        w = np.repeat(self.width[has], counts)
        bg = np.repeat(self.n_bg[has], counts)
        sig_w = np.repeat(np.maximum(counts - self.n_bg[has], 1) * self.width[has], counts)
        # den * ((rank + 1) * w - bg * (d - lo + 1)) vs num * sig * w: exact integers
        excess = (rank + 1) * w - bg * (d - np.repeat(self.lo[has], counts) + 1)
        last = self.start[has] + counts - 1
        out = []
        for num, den in fractions:
            hit = np.flatnonzero(den * excess >= num * sig_w)
            first = np.full(len(has), -1, np.int64)
            if len(hit):  # owner is non-decreasing: the first hit of each bin
                oh = owner[hit]
                lead = np.concatenate([[True], oh[1:] != oh[:-1]])
                first[oh[lead]] = pos[hit[lead]]
            result = np.zeros(nb, np.int64)
            result[has] = self.dt[np.where(first >= 0, first, last)]
            out.append(result)
        return out


def _sorted(a: np.ndarray) -> np.ndarray:
    """``a`` itself when already sorted (the lake returns frames in time order), else a
    sorted copy."""
    if len(a) < 2 or bool((a[1:] >= a[:-1]).all()):
        return a
    return np.sort(a)


def _int_ns(values: Any, name: str) -> np.ndarray:
    a = np.asarray(values)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integer ns (int64), got {a.dtype}")
    return a.astype(np.int64, copy=False)


def offsets_parameters(
    reference: int, *, window_ns: int, bin_ns: int, time_base: str, peak_bin_ns: int | None,
    refine_ns: int | None, iterations: int, min_pairs: int, where: str | None = None,
    source_version: int | None = None, **extra: Any,
) -> dict[str, Any]:
    """The parameters an offsets table was made with (kept in its schema metadata)."""
    return {
        "reference": int(reference),
        "window_ns": int(window_ns),
        "bin_ns": int(bin_ns),
        "time_base": time_base,
        "peak_bin_ns": peak_bin_ns,
        "refine_ns": refine_ns,
        "iterations": iterations,
        "min_pairs": min_pairs,
        "where": where,
        "source_version": source_version,
        **extra,
    }


def offsets_table(
    t_by_module: Mapping[int, np.ndarray],
    reference: int,
    *,
    params: Mapping[str, Any] | None = None,
    **kw: Any,
) -> pa.Table:
    """:func:`estimate_offsets` of every module in ``t_by_module`` against ``reference``.

    ``t_by_module`` maps module id -> int64 ns; the reference's own frames are
    ``t_by_module[reference]``. Rows follow :data:`OFFSETS_SCHEMA` ordered by
    module and bin; ``params`` go to the schema metadata (JSON).
    """
    if reference not in t_by_module:
        raise ValueError(f"reference module {reference} has no frames")
    others = [m for m in t_by_module if m != reference]
    ref = _sorted(_int_ns(t_by_module[reference], "t_ref"))
    # numpy releases the GIL in the heavy steps: the chunks of each module run on threads
    # (same results, balanced whatever the number of modules).
    with ThreadPoolExecutor(max(1, _THREADS), thread_name_prefix="pfflake-offsets") as pool:
        estimates = [estimate_offsets(ref, t_by_module[m], _pool=pool, **kw) for m in others]
    parts = []
    for module, est in zip(others, estimates, strict=True):
        n = len(est["bin_start_ns"])
        valid = est["valid"]
        parts.append(
            pa.table(
                [
                    np.full(n, module, np.int32),
                    np.full(n, reference, np.int32),
                    est["bin_start_ns"],
                    est["bin_end_ns"],
                    pa.array(est["offset_ns"], pa.int64(), mask=~valid),
                    est["n_pairs"],
                    est["n_background"],
                    est["n_candidates"],
                    pa.array(est["spread_ns"], pa.int64(), mask=~valid),
                ],
                schema=OFFSETS_SCHEMA,
            )
        )
    table = pa.concat_tables(parts) if parts else OFFSETS_SCHEMA.empty_table()
    table = table.sort_by([("module", "ascending"), ("bin_start_ns", "ascending")])
    meta = {PARAMS_KEY: json.dumps(dict(params or {}), sort_keys=True).encode()}
    return table.replace_schema_metadata(meta)


def table_parameters(table: pa.Table) -> dict[str, Any]:
    """The parameters stored in an offsets table's schema metadata ({} if none)."""
    meta = table.schema.metadata or {}
    raw = meta.get(PARAMS_KEY)
    return json.loads(raw) if raw else {}


def apply_offsets(
    t_ns: np.ndarray, module: np.ndarray | int, offsets: pa.Table | None
) -> np.ndarray:
    """``t_ns - offset`` per frame: a new int64 array on the reference's clock.

    ``module``: one module id for all frames, or one per frame. The offset is
    that of the frame's module in the bin holding ``t_ns``; a bin without an
    estimate borrows the nearest estimated bin of the same module (by time);
    modules absent from ``offsets`` (the reference) keep their times. A module
    present but never estimated raises ``ValueError`` (its frames cannot be
    put on the reference clock).
    """
    t = _int_ns(t_ns, "t_ns").copy()
    if offsets is None or offsets.num_rows == 0:
        return t
    o_mod = offsets.column("module").to_numpy()
    valid = offsets.column("offset_ns").is_valid().to_numpy(zero_copy_only=False)
    starts_all = offsets.column("bin_start_ns").to_numpy()
    ends_all = offsets.column("bin_end_ns").to_numpy()
    values_all = offsets.column("offset_ns").fill_null(0).to_numpy()
    scalar = np.ndim(module) == 0
    mod = None if scalar else np.asarray(module)
    for m in np.unique(o_mod) if not scalar else [module]:
        if scalar and m not in o_mod:
            return t
        rows = slice(None) if scalar else mod == m
        if not scalar and not rows.any():
            continue
        ok = (o_mod == m) & valid
        if not ok.any():
            raise ValueError(f"module {int(m)}: no bin of the offsets table has an estimate")
        order = np.argsort(starts_all[ok], kind="stable")
        starts, ends, values = starts_all[ok][order], ends_all[ok][order], values_all[ok][order]
        tm = t[rows]
        dense = _dense_lookup(starts, ends, values, tm)
        t[rows] = tm - (dense if dense is not None else _nearest_lookup(starts, ends, values, tm))
    return t


def _dense_lookup(
    starts: np.ndarray, ends: np.ndarray, values: np.ndarray, t: np.ndarray
) -> np.ndarray | None:
    """Offsets for ``t`` by bin number when the bins are epoch-aligned and of one length
    (what :func:`estimate_offsets` makes): one division and one gather per frame; frames
    in bins without an estimate go through :func:`_nearest_lookup`. ``None`` when the
    bins are irregular or span too long a table."""
    length = int(ends[0] - starts[0])
    if len(t) == 0 or length <= 0 or ((ends - starts) != length).any() or (
            starts % length).any():
        return None
    lo_b = min(int(starts[0]), int(t.min())) // length
    hi_b = max(int(starts[-1]), int(t.max())) // length
    if hi_b - lo_b > 50_000_000:
        return None
    table = np.zeros(hi_b - lo_b + 1, np.int64)
    known = np.zeros(hi_b - lo_b + 1, bool)
    table[starts // length - lo_b] = values
    known[starts // length - lo_b] = True
    b = t // length - lo_b
    out = table[b]
    missing = np.flatnonzero(~known[b])
    if len(missing):
        out[missing] = _nearest_lookup(starts, ends, values, t[missing])
    return out


def _nearest_lookup(
    starts: np.ndarray, ends: np.ndarray, values: np.ndarray, t: np.ndarray
) -> np.ndarray:
    """Offset of the bin holding each ``t``, else of the nearest bin (ties: the earlier)."""
    i = np.searchsorted(starts, t, side="right") - 1
    left = np.clip(i, 0, len(starts) - 1)
    right = np.clip(i + 1, 0, len(starts) - 1)
    big = np.iinfo(np.int64).max
    d_left = np.where(i >= 0, np.maximum(t - (ends[left] - 1), 0), big)
    d_right = np.where(i + 1 < len(starts), np.maximum(starts[right] - t, 0), big)
    return values[np.where(d_left <= d_right, left, right)]


def rms_of_offsets(table: pa.Table, module: int) -> int | None:
    """The pipeline's summary: RMS (int ns) of the bin offsets' deviations from their median."""
    rows = table.filter(pc.equal(table.column("module"), module))
    v = rows.column("offset_ns").drop_null().to_numpy()
    if len(v) == 0:
        return None
    med = int(np.sort(v)[(len(v) - 1) // 2])
    return math.isqrt(sum((int(x) - med) ** 2 for x in v) // len(v))


def modules_list(modules: Sequence[int] | str) -> list[int]:
    """``"1,2,3"`` or ``[1, 2, 3]`` -> ``[1, 2, 3]`` (distinct, order kept)."""
    items = modules.split(",") if isinstance(modules, str) else modules
    out: list[int] = []
    for m in items:
        m = int(m)
        if m not in out:
            out.append(m)
    return out


# -- over a lake ---------------------------------------------------------------------------


def time_offsets(
    lake: Any,
    reference: int,
    modules: Sequence[int] | str,
    *,
    window_ns: int = 20_000_000,
    bin_ns: int = 120_000_000_000,
    time_base: str = "host",
    where: str | None = None,
    data_product: str | None = None,
    cuts: Any = None,
    peak_bin_ns: int | None = None,
    refine_ns: int | None = None,
    iterations: int = 3,
    min_pairs: int = 5,
) -> pa.Table:
    """Clock offset of each of ``modules`` against ``reference``, per ``bin_ns`` bin.

    Frames are the lake's ``frames`` passing the SQL predicate ``where`` (and
    ``data_product``), on the ``time_base`` clock (``"host"``:
    ``host_unix_t_ns``, ``"wr"``: ``unix_t_ns``); frames dated before
    2000-01-01 (no clock) are never paired. ``cuts``: a
    :class:`pfflake.cuts.Cuts` applied first. Returns :data:`OFFSETS_SCHEMA`
    rows (``offset_ns`` = typical ``t_module - t_reference``; null where the
    bin has too few pairs above the accidental background); the parameters and
    the lake version are in the schema metadata (:func:`table_parameters`).
    """

    ref = int(reference)
    mods = [m for m in modules_list(modules) if m != ref]
    if not mods:
        raise ValueError("time_offsets needs at least one module besides the reference")
    wanted = [ref, *mods]
    if cuts is not None:
        sel = lake_select(lake, cuts, modules=wanted, time_base=time_base, where=where,
                          data_product=data_product)
        frames = sel.kept()
    else:
        frames = lake_frames(lake, wanted, time_base=time_base, where=where,
                             data_product=data_product)
    t = frames.column("t_ns").to_numpy(zero_copy_only=False)
    m = frames.column("module").to_numpy(zero_copy_only=False)
    good = t >= Y2000_NS
    by_module = {mod: t[good & (m == mod)] for mod in wanted}
    if len(by_module[ref]) == 0:
        raise ValueError(f"reference module {ref} has no frames with a valid time"
                         + (f" where {where}" if where else ""))
    params = offsets_parameters(
        ref, window_ns=window_ns, bin_ns=bin_ns, time_base=time_base, peak_bin_ns=peak_bin_ns,
        refine_ns=refine_ns, iterations=iterations, min_pairs=min_pairs, where=where,
        source_version=lake.version, data_product=data_product, modules=mods,
        cuts=None if cuts is None else cuts.parameters(),
    )
    return offsets_table(by_module, ref, params=params, window_ns=window_ns, bin_ns=bin_ns,
                         peak_bin_ns=peak_bin_ns, refine_ns=refine_ns, iterations=iterations,
                         min_pairs=min_pairs)


def write_offsets(table: pa.Table, path: Any) -> None:
    """Save an offsets table as Parquet, parameters and source version included."""
    import pyarrow.parquet as pq

    pq.write_table(table, path, compression="zstd")


def read_offsets(path: Any) -> pa.Table:
    """An offsets table saved by :func:`write_offsets` (schema and parameters checked)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    missing = [f.name for f in OFFSETS_SCHEMA if f.name not in table.column_names]
    if missing:
        raise ValueError(f"{path}: not an offsets table (missing columns {missing})")
    return table
