"""k-of-N coincidences between telescopes: groups of frames close in time, exact in int64 ns.

The high-energy pipeline pairs frames of two telescopes within +-window,
joins the pairs into groups (union-find) and drops groups in which one
telescope matched more than one image. This module computes the same groups
for any number of modules, in one vectorised sweep:

* Two frames of **different** modules are *linked* when
  ``|t_a - t_b| <= window_ns``; a *group* is a connected set of linked frames
  (two frames of one module are never linked directly, only through another
  module's frame).
* In time order, a group is a contiguous run of frames (any frame that lies
  between two linked frames is within the window of both and differs in
  module from at least one of them, so it is linked too). A group is therefore
  found from the gaps between consecutive frames that some link spans: one
  ``searchsorted`` for the earliest frame of another module within the window
  of each frame, a difference array over the gaps it spans, a cumulative sum.
  O(n log n) for the sort, linear after it, no Python loop over frames.
* ``multiplicity`` = number of distinct modules in the group; ``ambiguous`` =
  some module has more than one frame in it (the pipeline drops these; here
  they are kept and flagged). ``span_ns`` = last minus first time: a chain
  A-B-C can span up to ``(k - 1) * window_ns``.
* Deterministic: frames are ordered by (time, module, input order) with a
  stable sort, and groups are numbered in that order from 0.

Times are whatever the caller passes (host clock or WR time, raw or corrected
for clock offsets); no float seconds anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = [
    "GROUPS_SCHEMA",
    "Groups",
    "brute_force_groups",
    "coincidence_groups",
    "coincidence_rate",
    "coincidence_rate_arrays",
    "find_groups",
    "predicted_accidentals",
]

GROUPS_SCHEMA = pa.schema(
    [
        pa.field("group_id", pa.int64()),
        pa.field("run", pa.string()),
        pa.field("data_product", pa.string()),
        pa.field("module", pa.int32()),
        pa.field("frame", pa.int64()),
        pa.field("t_ns", pa.int64()),
        pa.field("t_corrected_ns", pa.int64()),
        pa.field("multiplicity", pa.int32()),
        pa.field("ambiguous", pa.bool_()),
        pa.field("span_ns", pa.int64()),
    ]
)
#: Schema metadata key of a groups table's parameters (JSON).
PARAMS_KEY = b"pfflake.coincidence_groups"


@dataclass(frozen=True)
class Groups:
    """Members of the groups found by :func:`find_groups`, one entry per member frame.

    ``index`` points into the concatenated input (``np.concatenate(times)``);
    ``module_pos`` is the position of the member's module in the input list.
    Members are ordered by group, then time. Per-group arrays (``starts``,
    ``multiplicity``, ``ambiguous``, ``span_ns``, ``t_first_ns``) are indexed
    by group id.
    """

    group_id: np.ndarray  # int64 per member
    index: np.ndarray  # int64 per member
    module_pos: np.ndarray  # int32 per member
    t_ns: np.ndarray  # int64 per member (the times that were matched)
    multiplicity: np.ndarray  # int32 per group
    ambiguous: np.ndarray  # bool per group
    span_ns: np.ndarray  # int64 per group
    t_first_ns: np.ndarray  # int64 per group

    @property
    def n_groups(self) -> int:
        return len(self.multiplicity)


def find_groups(
    times: Sequence[np.ndarray], window_ns: int, *, min_multiplicity: int = 2
) -> Groups:
    """Groups of frames from ``len(times)`` modules linked within ``window_ns`` (see module doc).

    ``times[i]`` holds module ``i``'s frame times in int64 ns (any order).
    Keeps groups of ``min_multiplicity`` or more distinct modules (>= 2).
    """
    window_ns = int(window_ns)
    if window_ns < 0:
        raise ValueError(f"window_ns must be >= 0, got {window_ns}")
    if min_multiplicity < 2:
        raise ValueError(f"min_multiplicity must be >= 2, got {min_multiplicity}")
    arrays = [np.asarray(t) for t in times]
    for a in arrays:
        if a.dtype.kind not in "iu":
            raise TypeError(f"times must be integer ns (int64), got {a.dtype}")
    t_all = np.concatenate([a.astype(np.int64, copy=False) for a in arrays]) if arrays else (
        np.empty(0, np.int64)
    )
    mod_all = np.concatenate(
        [np.full(len(a), i, dtype=np.int32) for i, a in enumerate(arrays)]
    ) if arrays else np.empty(0, np.int32)
    n = len(t_all)
    if n == 0:
        return _empty_groups()
    # Stable (time, module, input order): lexsort sorts by the last key first.
    order = np.lexsort((mod_all, t_all))
    t = t_all[order]
    m = mod_all[order]

    # Earliest frame of another module within the window before each frame.
    lo = np.searchsorted(t, t - window_ns, side="left")
    # End of the run of equal modules that starts at each position.
    change = np.flatnonzero(m[1:] != m[:-1]) + 1  # first index of each new module run
    run_end = np.empty(n, dtype=np.int64)
    bounds = np.concatenate([change, [n]])
    run_id = np.zeros(n, dtype=np.int64)
    run_id[change] = 1
    np.cumsum(run_id, out=run_id)
    run_end[:] = bounds[run_id]
    # If m[lo] differs from m[y], the earliest other-module frame is lo; else the first
    # frame after lo's run (whose module then differs from m[lo] == m[y]).
    lo_mod = m[lo]
    earliest = np.where(lo_mod != m, lo, run_end[lo])
    linked = earliest < np.arange(n)
    # Frame y links back to `earliest`, so gaps earliest..y-1 are spanned.
    y = np.flatnonzero(linked)
    diff = np.zeros(n + 1, dtype=np.int64)
    _bincount_into(diff, earliest[y], 1)
    _bincount_into(diff, y, -1)
    spanned = np.cumsum(diff[: n - 1]) > 0  # gap k (between k and k+1) is spanned
    # Components: a new component starts wherever a gap is not spanned.
    comp = np.zeros(n, dtype=np.int64)
    comp[1:] = ~spanned
    np.cumsum(comp, out=comp)
    n_comp = int(comp[-1]) + 1
    size = np.bincount(comp, minlength=n_comp)
    # Distinct modules per component: count (component, module) pairs once.
    n_mod = len(arrays)
    key = comp * n_mod + m
    present = np.zeros(n_comp * n_mod, dtype=bool)
    present[key] = True
    mult = present.reshape(n_comp, n_mod).sum(axis=1)
    keep = mult >= min_multiplicity
    member = keep[comp]
    kept_ids = np.flatnonzero(keep)
    new_id = np.full(n_comp, -1, dtype=np.int64)
    new_id[kept_ids] = np.arange(len(kept_ids))
    starts = np.concatenate([[0], np.cumsum(size)[:-1]])
    ends = starts + size - 1
    return Groups(
        group_id=new_id[comp[member]],
        index=order[member].astype(np.int64),
        module_pos=m[member],
        t_ns=t[member],
        multiplicity=mult[kept_ids].astype(np.int32),
        ambiguous=size[kept_ids] > mult[kept_ids],
        span_ns=t[ends[kept_ids]] - t[starts[kept_ids]],
        t_first_ns=t[starts[kept_ids]],
    )


def _bincount_into(out: np.ndarray, idx: np.ndarray, sign: int) -> None:
    out += sign * np.bincount(idx, minlength=len(out))[: len(out)]


def _empty_groups() -> Groups:
    e64 = np.empty(0, np.int64)
    return Groups(e64, e64, np.empty(0, np.int32), e64, np.empty(0, np.int32),
                  np.empty(0, bool), e64, e64)


def brute_force_groups(
    times: Sequence[Sequence[int]], window_ns: int, *, min_multiplicity: int = 2
) -> list[frozenset[tuple[int, int]]]:
    """The definition, O(n^2) in plain Python: every pair, union-find. For tests only.

    Returns the groups as sets of ``(module position, index within that module)``.
    """
    nodes = [(i, j, int(v)) for i, ts in enumerate(times) for j, v in enumerate(ts)]
    parent = list(range(len(nodes)))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a in range(len(nodes)):
        for b in range(a + 1, len(nodes)):
            if nodes[a][0] != nodes[b][0] and abs(nodes[a][2] - nodes[b][2]) <= window_ns:
                parent[find(a)] = find(b)
    comps: dict[int, set[tuple[int, int]]] = {}
    for a, (i, j, _) in enumerate(nodes):
        comps.setdefault(find(a), set()).add((i, j))
    return [
        frozenset(c) for c in comps.values() if len({i for i, _ in c}) >= min_multiplicity
    ]


def predicted_accidentals(
    rates_hz: Sequence[float], window_ns: int, duration_ns: int
) -> dict[int, float]:
    """Expected number of purely accidental 2-fold and 3-fold groups (Poisson triggers).

    For independent Poisson triggers at ``rates_hz`` (one per module) and
    links within ``+-w``: a pair of modules i, j gives ``R_i R_j 2w`` pairs per
    second, of which a fraction ``~ 1 - 2.5 w R_other - w (R_i + R_j)`` stays a
    2-fold group (no third module within reach; two pairs sharing a frame are
    one group). Three modules give ``R_i R_j R_k 6 w^2`` connected triples per
    second (the area where at least two of the three links hold). First order
    in ``R w``: a prediction for checking, not part of any computation.
    """
    w = int(window_ns) / 1e9
    t = int(duration_ns) / 1e9
    rates = [float(r) for r in rates_hz]
    total = sum(rates)
    n2 = 0.0
    for a in range(len(rates)):
        for b in range(a + 1, len(rates)):
            s = rates[a] + rates[b]
            n2 += rates[a] * rates[b] * 2 * w * (1 - 2.5 * w * (total - s) - w * s)
    n3 = 0.0
    for a in range(len(rates)):
        for b in range(a + 1, len(rates)):
            for c in range(b + 1, len(rates)):
                n3 += rates[a] * rates[b] * rates[c] * 6 * w * w
    return {2: n2 * t, 3: n3 * t}


def coincidence_rate_arrays(
    t_first_ns: np.ndarray, multiplicity: np.ndarray, bin_ns: int
) -> pa.Table:
    """Groups per time bin (``bin_start_ns = t // bin_ns * bin_ns``) and multiplicity.

    Columns ``bin_start_ns``, ``bin_end_ns``, ``multiplicity``, ``groups`` and
    ``rate_mhz`` (groups per second x 1000, an integer: exact for any bin).
    Bins between the first and last group with no group of some multiplicity
    appear with 0, so the table plots as a rate without gaps.
    """
    bin_ns = int(bin_ns)
    if bin_ns <= 0:
        raise ValueError(f"bin_ns must be > 0, got {bin_ns}")
    t = np.asarray(t_first_ns, dtype=np.int64)
    k = np.asarray(multiplicity, dtype=np.int64)
    schema = pa.schema([("bin_start_ns", pa.int64()), ("bin_end_ns", pa.int64()),
                        ("multiplicity", pa.int32()), ("groups", pa.int64()),
                        ("rate_mhz", pa.int64())])
    if len(t) == 0:
        return schema.empty_table()
    b = t // bin_ns
    b0 = int(b.min())
    nb = int(b.max()) - b0 + 1
    ks = np.unique(k)
    ki = np.searchsorted(ks, k)
    counts = np.bincount((b - b0) * len(ks) + ki, minlength=nb * len(ks)).reshape(nb, len(ks))
    starts = (np.arange(nb, dtype=np.int64) + b0) * bin_ns
    bins = np.repeat(starts, len(ks))
    groups = counts.reshape(-1).astype(np.int64)
    return pa.table(
        [bins, bins + bin_ns, np.tile(ks, nb).astype(np.int32), groups,
         groups * 1_000_000_000_000 // bin_ns],
        schema=schema,
    )


# -- over a lake ---------------------------------------------------------------------------


def coincidence_groups(
    lake: Any,
    modules: Sequence[int] | str,
    window_ns: int,
    *,
    min_multiplicity: int = 2,
    time_base: str = "host",
    offsets: pa.Table | None = None,
    where: str | None = None,
    data_product: str | None = None,
    cuts: Any = None,
) -> pa.Table:
    """k-of-N coincidences in the lake: one row per member frame of each group.

    Frames of ``modules`` passing ``where`` (SQL) and ``data_product`` (and
    ``cuts``, a :class:`pfflake.cuts.Cuts`, if given) on the ``time_base``
    clock; frames dated before 2000-01-01 never match. ``offsets`` (a
    :func:`pfflake.timing.time_offsets` table) are subtracted per bin first
    (``t_corrected_ns``; equal to ``t_ns`` without offsets). Groups of at
    least ``min_multiplicity`` modules linked within ``window_ns`` (see
    :func:`find_groups`), numbered 0.. in time order; rows follow
    :data:`GROUPS_SCHEMA`, ordered by group then corrected time. A frame
    with several products of one module in the input counts as that module:
    pass ``data_product`` to match one product. Parameters and the lake
    version are in the schema metadata.
    """
    from .cuts import Y2000_NS, lake_frames, lake_select
    from .timing import apply_offsets, modules_list

    mods = modules_list(modules)
    if len(mods) < 2:
        raise ValueError(f"coincidences need two or more different modules, got {mods}")
    if not 2 <= min_multiplicity <= len(mods):
        raise ValueError(f"min_multiplicity must be in 2..{len(mods)}, got {min_multiplicity}")
    if cuts is not None:
        frames = lake_select(lake, cuts, modules=mods, time_base=time_base, where=where,
                             data_product=data_product).kept()
    else:
        frames = lake_frames(lake, mods, time_base=time_base, where=where,
                             data_product=data_product)
    t = frames.column("t_ns").to_numpy(zero_copy_only=False)
    m = frames.column("module").to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(t >= Y2000_NS)
    t_corr = apply_offsets(t[rows], m[rows], offsets)
    positions = np.concatenate([np.flatnonzero(m[rows] == mod) for mod in mods])
    groups = find_groups([t_corr[m[rows] == mod] for mod in mods], window_ns,
                         min_multiplicity=min_multiplicity)
    src = rows[positions[groups.index]]
    taken = frames.select(["run", "data_product", "module", "frame", "t_ns"]).take(src)
    gid = groups.group_id
    table = pa.table(
        [
            gid,
            taken.column("run"),
            taken.column("data_product"),
            taken.column("module").cast(pa.int32()),
            taken.column("frame"),
            taken.column("t_ns"),
            groups.t_ns,
            groups.multiplicity[gid],
            groups.ambiguous[gid],
            groups.span_ns[gid],
        ],
        schema=GROUPS_SCHEMA,
    )
    params = {
        "modules": mods, "window_ns": int(window_ns), "min_multiplicity": min_multiplicity,
        "time_base": time_base, "where": where, "data_product": data_product,
        "offsets": None if offsets is None else _offsets_params(offsets),
        "cuts": None if cuts is None else cuts.parameters(), "source_version": lake.version,
    }
    return table.replace_schema_metadata({PARAMS_KEY: json.dumps(params, sort_keys=True)})


def _offsets_params(offsets: pa.Table) -> dict[str, Any]:
    from .timing import table_parameters

    return table_parameters(offsets) or {"rows": offsets.num_rows}


def coincidence_rate(groups: pa.Table, bin_ns: int) -> pa.Table:
    """Groups per ``bin_ns`` bin and multiplicity, from a :func:`coincidence_groups` table.

    A group is dated by its earliest corrected time. See
    :func:`coincidence_rate_arrays` for the columns.
    """
    gid = groups.column("group_id").to_numpy(zero_copy_only=False)
    if len(gid) == 0:
        return coincidence_rate_arrays(np.empty(0, np.int64), np.empty(0, np.int32), bin_ns)
    t = groups.column("t_corrected_ns").to_numpy(zero_copy_only=False)
    k = groups.column("multiplicity").to_numpy(zero_copy_only=False)
    order = np.argsort(gid, kind="stable")
    gid, t, k = gid[order], t[order], k[order]
    starts = np.flatnonzero(np.concatenate([[True], gid[1:] != gid[:-1]]))
    return coincidence_rate_arrays(np.minimum.reduceat(t, starts), k[starts], bin_ns)
