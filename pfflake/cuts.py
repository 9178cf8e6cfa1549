"""Event selection: the high-energy pipeline's cuts, each a function with recorded parameters.

Cuts flag frames to remove (``True`` = cut); nothing is deleted, so a
selection can be inspected, summarised per module and reproduced from its
parameters. In the pipeline's order:

* ``packet_loss``: some quabo's ``pkt_num == 0`` (the frames' ``packet_loss``
  column; an absent quabo counts).
* ``invalid_time``: the chosen frame time is before 2000-01-01 (a host clock
  of 0 when no quabo sent; a DAQ whose clock was never set), or, on the WR
  time base, the WR and host clocks disagree (``time_quality`` bit 2).
* ``rate_spike``: per run, data product and module, bins of ``spike_bin_ns``
  (default 30 s, aligned to the epoch) of the frames left by the cuts above;
  a bin whose count exceeds ``spike_factor`` (default 3) times the median
  count of the bins between the stream's first and last frame (empty ones
  included), or ``spike_max_hz`` (if given), is cut whole. A stream so sparse
  that its median bin is empty gets no relative cut (it would cut everything).
* ``not_tracking``: housekeeping ``MOUNT_<...>`` device, field ``tracking``
  == ``"False"``; from the hk sample before the first such sample to the one
  after the last, plus ``pad_after_ns`` (default 60 s). Without a neighbour
  sample the median hk cadence pads instead. Frames of a module with no mount
  records are not cut (the summary says so).

All comparisons are on int64 ns; the thresholds ``spike_factor`` and
``spike_max_hz`` are compared with integer counts.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .timestamps import NS_PER_S, QUALITY_DESYNC

if TYPE_CHECKING:
    from .lake import Lake

__all__ = [
    "CUT_NAMES",
    "TIME_BASES",
    "Cuts",
    "Selection",
    "invalid_time_cut",
    "lake_frames",
    "not_tracking_cut",
    "not_tracking_intervals",
    "packet_loss_cut",
    "rate_spike_cut",
    "select",
    "time_column",
]

CUT_NAMES = ("packet_loss", "invalid_time", "rate_spike", "not_tracking")
#: 2000-01-01T00:00:00Z in ns since the epoch.
Y2000_NS = 946_684_800 * NS_PER_S
#: time_base -> frames column.
TIME_BASES = {"host": "host_unix_t_ns", "wr": "unix_t_ns"}
#: Module id -> telescope used by the collaboration's ctapipe plugin (ANALYSIS-FACTS.md);
#: mount hk devices may be named after either.
TELESCOPES = {254: ("1", "Gattini"), 253: ("2", "Winter"), 252: ("3", "Fern"),
              250: ("4", "PTI-Heli")}
#: Schema metadata key of a selection's parameters (JSON).
PARAMS_KEY = b"pfflake.cuts"


def time_column(time_base: str) -> str:
    """The frames column of a time base: ``"host"`` -> ``host_unix_t_ns``, ``"wr"`` ->
    ``unix_t_ns``."""
    try:
        return TIME_BASES[time_base]
    except KeyError:
        raise ValueError(f"time_base must be 'host' or 'wr', got {time_base!r}") from None


@dataclass(frozen=True)
class Cuts:
    """Which cuts to apply and their parameters (defaults: the pipeline's current config).

    ``mounts``: module -> hk device holding its mount state; ``None`` looks for
    ``MOUNT_<module>``, then ``MOUNT_<telescope number>`` and
    ``MOUNT_<telescope name>`` (:data:`TELESCOPES`).
    """

    packet_loss: bool = True
    invalid_time: bool = True
    rate_spike: bool = True
    not_tracking: bool = True
    spike_bin_ns: int = 30 * NS_PER_S
    spike_factor: float | None = 3.0
    spike_max_hz: float | None = None
    pad_after_ns: int = 60 * NS_PER_S
    mounts: Mapping[int, str] | None = field(default=None)

    def parameters(self) -> dict[str, Any]:
        """JSON-ready parameters (what a selection records)."""
        p = asdict(self)
        p["mounts"] = None if self.mounts is None else {str(k): v for k, v in self.mounts.items()}
        return p


NO_CUTS = Cuts(packet_loss=False, invalid_time=False, rate_spike=False, not_tracking=False)


# -- functional core --------------------------------------------------------------------


def packet_loss_cut(packet_loss: np.ndarray) -> np.ndarray:
    """Cut mask of the packet-loss rule: the frames' ``packet_loss`` flags, as bool."""
    return np.asarray(packet_loss, dtype=bool).copy()


def invalid_time_cut(t_ns: np.ndarray, time_quality: np.ndarray, time_base: str) -> np.ndarray:
    """Frames dated before 2000-01-01, or (WR base) with WR/host clock desync."""
    time_column(time_base)
    cut = np.asarray(t_ns, dtype=np.int64) < Y2000_NS
    if time_base == "wr":
        cut |= (np.asarray(time_quality).astype(np.uint8) & QUALITY_DESYNC) != 0
    return cut


def rate_spike_cut(
    stream: np.ndarray,
    t_ns: np.ndarray,
    *,
    spike_bin_ns: int = 30 * NS_PER_S,
    spike_factor: float | None = 3.0,
    spike_max_hz: float | None = None,
    eligible: np.ndarray | None = None,
) -> np.ndarray:
    """Frames in spiking bins, per stream code (``stream``: one int per frame).

    Only ``eligible`` frames (default all) are counted; a spiking bin cuts every
    frame in it, eligible or not. See the module doc for the rule.
    """
    spike_bin_ns = int(spike_bin_ns)
    if spike_bin_ns <= 0:
        raise ValueError(f"spike_bin_ns must be > 0, got {spike_bin_ns}")
    t = np.asarray(t_ns, dtype=np.int64)
    s = np.asarray(stream, dtype=np.int64)
    ok = np.ones(len(t), bool) if eligible is None else np.asarray(eligible, bool)
    cut = np.zeros(len(t), bool)
    if spike_factor is None and spike_max_hz is None:
        return cut
    b = t // spike_bin_ns
    limit_abs = None if spike_max_hz is None else spike_max_hz * spike_bin_ns / NS_PER_S
    for code in np.unique(s[ok]):
        rows = s == code
        counted = rows & ok
        bins = b[counted]
        b0, b1 = int(bins.min()), int(bins.max())
        counts = np.bincount(bins - b0, minlength=b1 - b0 + 1)
        spiking = np.zeros(len(counts), bool)
        median = np.median(counts)  # an exact half-integer at worst
        if spike_factor is not None and median > 0:  # a median of 0 would cut every frame
            spiking |= counts > spike_factor * median
        if limit_abs is not None:
            spiking |= counts > limit_abs
        rb = b[rows] - b0
        inside = (rb >= 0) & (rb < len(counts))
        hit = np.zeros(int(rows.sum()), bool)
        hit[inside] = spiking[rb[inside]]
        cut[rows] = hit
    return cut


def not_tracking_intervals(
    hk_t_ns: np.ndarray, tracking: np.ndarray, *, pad_after_ns: int = 60 * NS_PER_S
) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, stops)`` (int64 ns, half-open) to cut, from one mount's hk samples.

    ``tracking``: bool per sample (``False`` = not tracking). Each run of
    not-tracking samples widens to the neighbouring samples (or one median
    cadence), plus ``pad_after_ns`` after.
    """
    t = np.asarray(hk_t_ns, dtype=np.int64)
    order = np.argsort(t, kind="stable")
    t = t[order]
    off = ~np.asarray(tracking, bool)[order]
    if not off.any():
        return np.empty(0, np.int64), np.empty(0, np.int64)
    cadence = int(np.median(np.diff(t))) if len(t) > 1 else 0
    edges = np.diff(np.concatenate([[0], off.astype(np.int8), [0]]))
    first = np.flatnonzero(edges == 1)
    last = np.flatnonzero(edges == -1) - 1
    starts = np.where(first > 0, t[np.maximum(first - 1, 0)], t[first] - cadence)
    stops = np.where(last < len(t) - 1, t[np.minimum(last + 1, len(t) - 1)], t[last] + cadence)
    return starts, stops + int(pad_after_ns) + 1


def not_tracking_cut(t_ns: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Frames inside any ``[start, stop)`` interval."""
    t = np.asarray(t_ns, dtype=np.int64)
    if len(starts) == 0:
        return np.zeros(len(t), bool)
    # Merge overlaps, then one searchsorted.
    order = np.argsort(starts, kind="stable")
    s, e = np.asarray(starts)[order], np.maximum.accumulate(np.asarray(stops)[order])
    i = np.searchsorted(s, t, side="right") - 1
    return (i >= 0) & (t < e[np.maximum(i, 0)])


# -- selections over a frames table -------------------------------------------------------


@dataclass
class Selection:
    """Frames with one cut column per cut (``cut_<name>``, True = removed) and ``keep``.

    ``table`` carries the parameters in its schema metadata (key ``pfflake.cuts``);
    ``parameters`` is the same as a dict; ``notes`` says what a cut could not check.
    """

    table: pa.Table
    parameters: dict[str, Any]
    notes: list[str]

    @property
    def keep(self) -> np.ndarray:
        return self.table.column("keep").to_numpy(zero_copy_only=False)

    def kept(self) -> pa.Table:
        """The frames that pass every cut."""
        return self.table.filter(self.table.column("keep"))

    def summary(self) -> pa.Table:
        """Per run, data product and module: frames, frames each cut flags (cuts overlap),
        frames kept, and the kept fraction."""
        import duckdb

        t = self.table  # noqa: F841  (DuckDB reads the local by name)
        cuts = ", ".join(f"count(*) FILTER (WHERE cut_{c}) AS {c}" for c in CUT_NAMES)
        return duckdb.sql(
            f"SELECT run, data_product, module, count(*) AS frames, {cuts}, "
            "count(*) FILTER (WHERE keep) AS kept, "
            "round(count(*) FILTER (WHERE keep) / count(*), 4) AS kept_fraction "
            "FROM t GROUP BY ALL ORDER BY ALL"
        ).to_arrow_table()


def select(
    frames: pa.Table,
    cuts: Cuts = Cuts(),
    *,
    time_base: str = "host",
    hk: pa.Table | None = None,
) -> Selection:
    """Apply ``cuts`` to a frames table (columns ``run, data_product, module, frame``, the
    time base's column, ``packet_loss``, ``time_quality``).

    ``hk``: long-form housekeeping (``run, unix_t_ns, device, field, text``), needed by
    ``not_tracking``. Returns a :class:`Selection` (a new table; ``frames`` untouched).
    """
    col = time_column(time_base)
    n = frames.num_rows
    t = frames.column(col).to_numpy(zero_copy_only=False)
    notes: list[str] = []
    masks = {c: np.zeros(n, bool) for c in CUT_NAMES}
    if cuts.packet_loss:
        masks["packet_loss"] = packet_loss_cut(
            frames.column("packet_loss").to_numpy(zero_copy_only=False))
    if cuts.invalid_time:
        masks["invalid_time"] = invalid_time_cut(
            t, frames.column("time_quality").to_numpy(zero_copy_only=False), time_base)
    stream = _codes(frames, ("run", "data_product", "module"))
    if cuts.rate_spike:
        eligible = ~(masks["packet_loss"] | masks["invalid_time"])
        if eligible.any():
            masks["rate_spike"] = rate_spike_cut(
                stream, t, spike_bin_ns=cuts.spike_bin_ns, spike_factor=cuts.spike_factor,
                spike_max_hz=cuts.spike_max_hz, eligible=eligible)
    if cuts.not_tracking:
        masks["not_tracking"] = _not_tracking(frames, t, cuts, hk, notes)
    keep = ~np.logical_or.reduce([masks[c] for c in CUT_NAMES])
    params = {"time_base": time_base, **cuts.parameters()}
    out = frames
    for c in CUT_NAMES:
        out = out.append_column(f"cut_{c}", pa.array(masks[c]))
    out = out.append_column("keep", pa.array(keep))
    meta = dict(out.schema.metadata or {})
    meta[PARAMS_KEY] = json.dumps(params, sort_keys=True).encode()
    return Selection(out.replace_schema_metadata(meta), params, notes)


def _codes(table: pa.Table, keys: Sequence[str]) -> np.ndarray:
    """One int64 code per row for the combination of ``keys``."""
    code = np.zeros(table.num_rows, np.int64)
    for k in keys:
        enc = pc.dictionary_encode(table.column(k)).combine_chunks()
        idx = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        code = code * (len(enc.dictionary) + 1) + idx
    return code


def mount_device_candidates(module: int) -> list[str]:
    names = [f"MOUNT_{module}"]
    names += [f"MOUNT_{x}" for x in TELESCOPES.get(int(module), ())]
    return names


def _not_tracking(
    frames: pa.Table, t: np.ndarray, cuts: Cuts, hk: pa.Table | None, notes: list[str]
) -> np.ndarray:
    cut = np.zeros(frames.num_rows, bool)
    if hk is not None:
        hk = hk.filter(pc.equal(hk.column("field"), "tracking"))
    if hk is None or hk.num_rows == 0:
        notes.append("not_tracking: no mount housekeeping (field 'tracking'), nothing cut")
        return cut
    runs = frames.column("run").to_numpy(zero_copy_only=False)
    mods = frames.column("module").to_numpy(zero_copy_only=False)
    hk_run = hk.column("run").to_numpy(zero_copy_only=False)
    hk_dev = hk.column("device").to_numpy(zero_copy_only=False)
    hk_t = hk.column("unix_t_ns").to_numpy(zero_copy_only=False)
    hk_text = hk.column("text").to_numpy(zero_copy_only=False)
    for run in np.unique(runs):
        for module in np.unique(mods[runs == run]):
            if cuts.mounts is not None:
                devices = [cuts.mounts[int(module)]] if int(module) in cuts.mounts else []
            else:
                devices = mount_device_candidates(int(module))
            in_run = hk_run == run
            device = next((d for d in devices if (in_run & (hk_dev == d)).any()), None)
            if device is None:
                notes.append(f"not_tracking: run {run} module {int(module)}: no mount "
                             "housekeeping, not cut")
                continue
            sel = in_run & (hk_dev == device)
            tracking = np.char.lower(hk_text[sel].astype(str)) != "false"
            starts, stops = not_tracking_intervals(hk_t[sel], tracking,
                                                   pad_after_ns=cuts.pad_after_ns)
            rows = (runs == run) & (mods == module)
            cut[rows] = not_tracking_cut(t[rows], starts, stops)
    return cut


# -- reading from a lake ------------------------------------------------------------------


def _sql_str(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _where(*parts: str | None) -> str:
    kept = [f"({p})" for p in parts if p]
    return f" WHERE {' AND '.join(kept)}" if kept else ""


def lake_frames(
    lake: Lake,
    modules: Sequence[int] | None = None,
    *,
    time_base: str = "host",
    where: str | None = None,
    data_product: str | None = None,
) -> pa.Table:
    """The columns the chain needs, from the lake's ``frames`` (``where``: a SQL predicate).

    Columns ``run`` and ``data_product`` (dictionary-encoded: a night of
    frames does not repeat the run name per row), ``module``, ``frame``,
    ``t_ns`` (the time base's column, also under its own name),
    ``packet_loss``, ``time_quality``; ordered by module, then time (ties:
    run, data product, frame). Read one stream at a time, each pruned to its
    partition. Raises ``ValueError`` for frames ingested before the lake had
    ``host_unix_t_ns``/``packet_loss`` (re-ingest them into a new lake).
    """
    import duckdb

    col = time_column(time_base)
    mods = None if modules is None else ", ".join(str(int(m)) for m in modules)
    base = [None if mods is None else f"module IN ({mods})",
            None if data_product is None else f"data_product = {_sql_str(data_product)}", where]
    streams = sorted(
        lake.sql(f"SELECT DISTINCT run, data_product, module FROM frames{_where(*base)}")
        .fetchall(), key=lambda s: (s[2], s[0], s[1]))
    runs = sorted({s[0] for s in streams})
    products = sorted({s[1] for s in streams})
    cols: dict[str, list[np.ndarray]] = {k: [] for k in (
        "run", "data_product", "module", "frame", "t_ns", "packet_loss", "time_quality")}
    for run, product, module in streams:
        cond = _where(*base, f"run = {_sql_str(run)}", f"data_product = {_sql_str(product)}",
                      f"module = {int(module)}")
        try:
            got = lake.sql(f"SELECT frame, {col} AS t_ns, packet_loss, time_quality "
                           f"FROM frames{cond}").fetchnumpy()
        except duckdb.BinderException as e:
            raise ValueError(f"the lake's frames lack {col}/packet_loss ({e}); "
                             "re-ingest the runs into a new lake") from None
        if any(np.ma.isMaskedArray(got[k]) and np.ma.getmaskarray(got[k]).any()
               for k in ("t_ns", "packet_loss")):
            raise ValueError(f"run {run} {product} module {module}: frames without {col} or "
                             "packet_loss (ingested by an older pfflake); re-ingest them")
        # (time, frame) order inside the stream: two stable sorts of nearly sorted data
        by_frame = np.argsort(np.asarray(got["frame"]), kind="stable")
        t_f = np.asarray(got["t_ns"])[by_frame]
        o = by_frame[np.argsort(t_f, kind="stable")]
        got = {k: np.asarray(v)[o] for k, v in got.items()}
        n = len(got["frame"])
        cols["run"].append(np.full(n, runs.index(run), np.int32))
        cols["data_product"].append(np.full(n, products.index(product), np.int32))
        cols["module"].append(np.full(n, module, np.int32))
        for k in ("frame", "t_ns", "packet_loss", "time_quality"):
            cols[k].append(np.asarray(got[k]))
    if not streams:
        arrays = {k: np.empty(0, np.int32) for k in ("run", "data_product", "module")}
        arrays.update(frame=np.empty(0, np.int64), t_ns=np.empty(0, np.int64),
                      packet_loss=np.empty(0, bool), time_quality=np.empty(0, np.uint8))
    else:
        arrays = {k: np.concatenate(v) for k, v in cols.items()}
    # Streams come in (module, run, product) order, each sorted by (time, frame): one
    # stable sort on time inside each module with several streams gives (module, time,
    # run, product, frame).
    a = arrays
    if len(streams) > len({s[2] for s in streams}):
        mod = arrays["module"]
        edges = np.flatnonzero(np.concatenate([[True], mod[1:] != mod[:-1], [True]]))
        order = np.concatenate([lo + np.argsort(arrays["t_ns"][lo:hi], kind="stable")
                                for lo, hi in itertools.pairwise(edges)])
        a = {k: v[order] for k, v in arrays.items()}
    t = pa.array(a["t_ns"].astype(np.int64, copy=False))
    return pa.table({
        "run": pa.DictionaryArray.from_arrays(a["run"], pa.array(runs, pa.string())),
        "data_product": pa.DictionaryArray.from_arrays(a["data_product"],
                                                       pa.array(products, pa.string())),
        "module": a["module"],
        "frame": a["frame"].astype(np.int64, copy=False),
        "t_ns": t,
        col: t,
        "packet_loss": a["packet_loss"].astype(bool, copy=False),
        "time_quality": a["time_quality"].astype(np.uint8, copy=False),
    })


def lake_select(
    lake: Lake,
    cuts: Cuts = Cuts(),
    *,
    modules: Sequence[int] | None = None,
    time_base: str = "host",
    where: str | None = None,
    data_product: str | None = None,
) -> Selection:
    """:func:`select` over the lake's frames and housekeeping; records the lake version."""
    frames = lake_frames(lake, modules, time_base=time_base, where=where,
                         data_product=data_product)
    hk = None
    if cuts.not_tracking:
        hk = lake.sql("SELECT run, unix_t_ns, device, field, text FROM hk "
                      "WHERE device LIKE 'MOUNT%' AND field = 'tracking'").to_arrow_table()
    result = select(frames, cuts, time_base=time_base, hk=hk)
    result.parameters.update(where=where, data_product=data_product,
                             source_version=lake.version)
    meta = dict(result.table.schema.metadata or {})
    meta[PARAMS_KEY] = json.dumps(result.parameters, sort_keys=True).encode()
    result.table = result.table.replace_schema_metadata(meta)
    return result
