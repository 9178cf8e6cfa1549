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
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import pyarrow as pa

from .cuts import Y2000_NS, lake_frames, lake_select
from .timing import apply_offsets, modules_list, table_parameters

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
#: Frames per chunk of :func:`find_groups` (a chunk's arrays stay in cache).
_CHUNK = 1 << 18
#: Threads for independent time ranges of :func:`find_groups` (numpy releases the GIL).
_THREADS = os.cpu_count() or 1
NS_PER_S = 1_000_000_000
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
    n_mod = len(arrays)
    code = np.int8 if n_mod < 128 else np.int32  # small codes: less memory traffic
    sorted_t, index_of, bases = [], [], []
    base = 0
    for a in arrays:
        bases.append(base)
        a = a.astype(np.int64, copy=False)
        if len(a) > 1 and not bool((a[1:] >= a[:-1]).all()):
            o = np.argsort(a, kind="stable")
            sorted_t.append(a[o])
            index_of.append(o + base)
        else:
            sorted_t.append(a)
            index_of.append(None)  # identity: base + position
        base += len(a)
    n = base
    if n == 0:
        return _empty_groups()
    # Independent time ranges (split where no link can cross) on threads, each worked
    # through in cache-sized chunks; groups are renumbered in time order after.
    splits = _safe_splits(sorted_t, window_ns, min(_THREADS, max(1, n // (4 * _CHUNK))))
    ranges = [([int(np.searchsorted(t, lo, side="left")) if lo is not None else 0
                for t in sorted_t],
               [int(np.searchsorted(t, hi, side="left")) if hi is not None else len(t)
                for t in sorted_t])
              for lo, hi in zip([None, *splits], [*splits, None], strict=True)]

    def work(bounds: tuple[list[int], list[int]]) -> list[Groups]:
        return _groups_in_range(sorted_t, index_of, bases, bounds[0], bounds[1], window_ns,
                                min_multiplicity, code)

    if len(ranges) == 1:
        parts = work(ranges[0])
    else:
        with ThreadPoolExecutor(len(ranges), thread_name_prefix="pfflake-groups") as pool:
            parts = [p for chunk in pool.map(work, ranges) for p in chunk]
    if not parts:
        return _empty_groups()
    n_groups = 0
    numbered = []
    for part in parts:
        numbered.append(replace(part, group_id=part.group_id + n_groups))
        n_groups += part.n_groups
    return Groups(*[np.concatenate([getattr(p, f.name) for p in numbered])
                    for f in fields(Groups)])


def _safe_splits(sorted_t: list[np.ndarray], w: int, parts: int) -> list[int]:
    """Up to ``parts - 1`` times T, near equal shares of the frames, such that the last
    frame before T and the first at or after it are more than ``w`` apart (no link
    crosses T). A place with no such gap within +-1 s of the share is skipped."""
    if parts < 2:
        return []
    allt = np.sort(np.concatenate([t[:: max(1, len(t) // 64)] for t in sorted_t if len(t)]))
    out: list[int] = []
    for q in range(1, parts):
        guess = int(allt[len(allt) * q // parts])
        near = np.sort(np.concatenate([t[np.searchsorted(t, guess - NS_PER_S):
                                         np.searchsorted(t, guess + NS_PER_S)]
                                       for t in sorted_t]))
        wide = np.flatnonzero(near[1:] - near[:-1] > w)
        if len(wide):
            k = wide[np.argmin(np.abs(near[wide] - guess))]
            cut = int(near[k]) + 1
            if not out or cut > out[-1]:
                out.append(cut)
    return out


def _groups_in_range(
    sorted_t: list[np.ndarray], index_of: list[np.ndarray | None], bases: list[int],
    start: list[int], stop: list[int], window_ns: int, min_multiplicity: int, code: type,
) -> list[Groups]:
    """Groups among frames ``start[i]:stop[i]`` of each module, chunk by chunk (one
    :class:`Groups` per chunk, ids from 0 in each, chunks in time order): a chunk ends
    at its last gap wider than the window (no group crosses one) and the rest carries
    over to the next."""
    n_mod = len(sorted_t)
    step = max(1, _CHUNK // n_mod)
    sample = np.sort(np.concatenate([t[a:b][step::step]
                                     for t, a, b in zip(sorted_t, start, stop, strict=True)]))
    bounds = [*np.unique(sample[n_mod - 1::n_mod]).tolist(), None]
    pos = list(start)
    carry = (np.empty(0, np.int64), np.empty(0, code), np.empty(0, np.int64))
    parts: list[Groups] = []
    for bound in bounds:
        ts, ms, gs = [carry[0]], [carry[1]], [carry[2]]
        for i, t in enumerate(sorted_t):
            end = stop[i] if bound is None else min(
                stop[i], int(np.searchsorted(t, bound, side="left")))
            lo = pos[i]
            if end > lo:
                ts.append(t[lo:end])
                ms.append(np.full(end - lo, i, dtype=code))
                gs.append(index_of[i][lo:end] if index_of[i] is not None else
                          np.arange(bases[i] + lo, bases[i] + end, dtype=np.int64))
                pos[i] = end
        t_c = np.concatenate(ts)
        if len(t_c) == 0:
            continue
        # (time, module, input order): pieces are module-major, the sort stable
        # (timsort merges the already sorted pieces).
        order = np.argsort(t_c, kind="stable")
        t_c, m_c, g_c = t_c[order], np.concatenate(ms)[order], np.concatenate(gs)[order]
        cut = len(t_c)
        if bound is not None:
            wide = np.flatnonzero(t_c[1:] - t_c[:-1] > window_ns)
            cut = int(wide[-1]) + 1 if len(wide) else 0
        carry = (t_c[cut:], m_c[cut:], g_c[cut:])
        if cut == 0:
            continue
        part = _groups_sorted(t_c[:cut], m_c[:cut], g_c[:cut], window_ns, min_multiplicity,
                              n_mod)
        if part.n_groups:
            parts.append(part)
    return parts


def _groups_sorted(
    t_sorted: np.ndarray, m_sorted: np.ndarray, order: np.ndarray, window_ns: int,
    min_multiplicity: int, n_mod: int,
) -> Groups:
    """:func:`find_groups` on frames already in (time, module, input) order; ``order``
    holds their indices into the caller's concatenation."""
    n = len(t_sorted)
    # A gap wider than the window cannot be spanned by any link (a link across it is at
    # least that long), so only frames next to a narrow gap matter; the rule is applied
    # to those alone (a neighbour it skips is more than a window away, so the time test
    # fails there as it would on the dropped frames).
    narrow = t_sorted[1:] - t_sorted[:-1] <= window_ns
    near = np.zeros(n, dtype=bool)
    near[:-1] = narrow
    near[1:] |= narrow
    keep_pos = np.flatnonzero(near)
    if len(keep_pos) == 0:
        return _empty_groups()
    order = order[keep_pos]
    t = t_sorted[keep_pos]
    m = m_sorted[keep_pos]
    n = len(t)
    spanned = _spanned_gaps(t, m, window_ns) & (keep_pos[1:] == keep_pos[:-1] + 1)
    del narrow, near, keep_pos
    # Only frames next to a spanned gap can be in a group; the rest are singletons.
    touched = np.zeros(n, dtype=bool)
    touched[:-1] = spanned
    touched[1:] |= spanned
    active = np.flatnonzero(touched)
    if len(active) == 0:
        return _empty_groups()
    # Components among them: a new one starts wherever the gap before is not spanned
    # (for consecutive active frames k, k+1 that is the gap k; across skipped
    # singletons the gap before the next active frame is unspanned by construction).
    new_comp = np.ones(len(active), dtype=bool)
    new_comp[1:] = ~spanned[active[1:] - 1]
    comp = np.cumsum(new_comp) - 1
    n_comp = int(comp[-1]) + 1
    starts = np.flatnonzero(new_comp)
    size = np.diff(np.concatenate([starts, [len(active)]]))
    ta, ma = t[active], m[active]
    # Distinct modules per component: one flag per (component, module).
    present = np.zeros((n_comp, n_mod), dtype=bool)
    present[comp, ma] = True
    mult = np.zeros(n_comp, dtype=np.int32)
    for j in range(n_mod):
        mult += present[:, j]
    keep = mult >= min_multiplicity
    member = keep[comp]
    kept_ids = np.flatnonzero(keep)
    new_id = np.full(n_comp, -1, dtype=np.int64)
    new_id[kept_ids] = np.arange(len(kept_ids))
    ends = starts + size - 1
    return Groups(
        group_id=new_id[comp[member]],
        index=order[active[member]].astype(np.int64),
        module_pos=ma[member].astype(np.int32),
        t_ns=ta[member],
        multiplicity=mult[kept_ids],
        ambiguous=size[kept_ids] > mult[kept_ids],
        span_ns=ta[ends[kept_ids]] - ta[starts[kept_ids]],
        t_first_ns=ta[starts[kept_ids]],
    )


def _spanned_gaps(t: np.ndarray, m: np.ndarray, w: int) -> np.ndarray:
    """Bool per gap ``k`` (between sorted frames k and k+1): does some link cross it?

    A link ``x <= k < y`` needs different modules and ``t_y - t_x <= w``. If
    frames k and k+1 differ in module, the tightest pair across the gap is
    (k, k+1). If both are module M, any crossing link has one end outside M,
    and the tightest such ends are the last non-M frame before M's run through
    k (paired with k+1) or the first non-M frame after it (paired with k), so
    two lookups per gap decide, from the runs of equal modules: O(n).
    """
    n = len(t)
    differ = m[1:] != m[:-1]
    spanned = differ & (t[1:] - t[:-1] <= w)
    change = np.flatnonzero(differ) + 1
    run_start = np.concatenate([[0], change])
    run_stop = np.concatenate([change, [n]])
    same = np.flatnonzero(~differ)
    if len(same):
        run = np.cumsum(differ)[same]  # index of the run holding frames k and k+1
        before = run_start[run] - 1
        after = run_stop[run]
        left = (before >= 0) & (t[same + 1] - t[np.maximum(before, 0)] <= w)
        right = (after < n) & (t[np.minimum(after, n - 1)] - t[same] <= w)
        spanned[same] = left | right
    return spanned


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
