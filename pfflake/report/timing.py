"""Report sections about time between telescopes: clock offsets before and after the
correction, and the coincidence rate by multiplicity.

They use the lake's timing functions (``Lake.time_offsets``, ``Lake.coincidence_groups``,
``Lake.coincidence_rate``) on the host clock, over the "events" of the chosen runs: every
frame of a triggered pulse-height product (ph256, ph1024), and the frames of fixed-rate
imaging products matching ``ReportOptions.image_event_where``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .context import (
    NS_PER_S,
    Y2000_NS,
    Context,
    Section,
    new_figure,
    nice_bin_ns,
    sql_str,
    to_datetime64,
    utc_axis,
)

TRIGGERED = ("ph256", "ph1024")
#: Reference telescope preference (module ids of Gattini, Winter, Fern, PTI-Heli).
REFERENCE_ORDER = (254, 253, 252, 250)
CLOCKS = {"host": "DAQ host clock", "wr": "White Rabbit clock"}


def _event_where(ctx: Context, product: str) -> str | None:
    return None if product in TRIGGERED else ctx.options.image_event_where


def plan(ctx: Context) -> dict[str, Any] | None:
    """The data product, modules, reference and event predicate the timing sections use:
    the product with the most modules whose events overlap in time (triggered first), or
    None when no two modules recorded at the same time."""
    if "timing_plan" in ctx.cache:
        return ctx.cache["timing_plan"]
    rows = ctx.lake.sql(
        "SELECT data_product, module, min(first_unix_t_ns), max(last_unix_t_ns), sum(frames) "
        "FROM run_quality" + ctx.where(f"first_unix_t_ns >= {Y2000_NS}")
        + " GROUP BY ALL ORDER BY ALL").fetchall()
    best = None
    for dp in sorted({r[0] for r in rows}, key=lambda p: (p not in TRIGGERED, p)):
        mods = [r for r in rows if r[0] == dp]
        for ref in sorted(mods, key=lambda r: (r[1] not in REFERENCE_ORDER,
                                               REFERENCE_ORDER.index(r[1])
                                               if r[1] in REFERENCE_ORDER else 0, -r[4])):
            overlap = [r[1] for r in mods if r[1] != ref[1] and r[2] <= ref[3] and r[3] >= ref[2]]
            if overlap and (best is None or len(overlap) + 1 > len(best["modules"])):
                best = {"data_product": dp, "reference": int(ref[1]),
                        "modules": [int(ref[1]), *map(int, overlap)],
                        "lo": int(ref[2]), "hi": int(ref[3])}  # the reference's span
            break  # the preferred reference of this product decides
    if best is not None:
        ew = _event_where(ctx, best["data_product"])
        best["where"] = " AND ".join(f"({p})" for p in (ctx.run_filter, ew) if p)
        best["event_where"] = ew
        best["time_base"] = _time_base(ctx, best)
    ctx.cache["timing_plan"] = best
    return best


#: Share of a module's frames with a White Rabbit time in sync above which "auto" uses WR.
WR_TRUSTED = 0.99


def _time_base(ctx: Context, p: dict[str, Any]) -> str:
    """``ReportOptions.time_base``, or for "auto": White Rabbit when every module of the
    plan has WR time in sync for >= 99 % of its frames, else the DAQ host clock (the
    pipeline's choice: WR is often out of sync on real nights)."""
    if ctx.options.time_base != "auto":
        return ctx.options.time_base
    mods = ", ".join(map(str, p["modules"]))
    rows = ctx.lake.sql(
        "SELECT module, sum(frames), sum(no_wr_frames + clock_desync_frames) FROM run_quality"
        + ctx.where(f"data_product = {sql_str(p['data_product'])}", f"module IN ({mods})")
        + " GROUP BY module").fetchall()
    ok = all(n and 1 - bad / n >= WR_TRUSTED for _, n, bad in rows)
    return "wr" if ok and len(rows) == len(p["modules"]) else "host"


def offsets(ctx: Context) -> tuple[pa.Table | None, str | None]:
    """The offsets table of the plan (None and why not)."""
    if "offsets" in ctx.cache:
        return ctx.cache["offsets"]
    p = plan(ctx)
    result: tuple[pa.Table | None, str | None]
    if p is None:
        result = (None, "no two modules recorded at the same time in the chosen runs")
    elif not hasattr(ctx.lake, "time_offsets"):
        result = (None, "this pfflake has no clock-offset estimator (Lake.time_offsets)")
    else:
        try:
            t = ctx.lake.time_offsets(p["reference"], p["modules"][1:],
                                      window_ns=ctx.options.offset_window_ns,
                                      bin_ns=ctx.options.offset_bin_ns, where=p["where"],
                                      data_product=p["data_product"],
                                      time_base=p["time_base"])
            result = (t, None)
        except ValueError as e:
            result = (None, f"clock offsets could not be estimated: {e}")
    ctx.cache["offsets"] = result
    return result


def _usable_offsets(table: pa.Table) -> tuple[pa.Table, list[int]]:
    """Rows of modules with at least one estimate; the modules without any."""
    mod = table.column("module").to_numpy(zero_copy_only=False)
    ok = table.column("offset_ns").is_valid().to_numpy(zero_copy_only=False)
    good = sorted({int(m) for m in mod[ok]})
    none = sorted({int(m) for m in mod} - set(good))
    return table.filter(pa.array(np.isin(mod, good))), none


def groups(ctx: Context, corrected: bool) -> tuple[pa.Table | None, str | None]:
    key = f"groups:{corrected}"
    if key in ctx.cache:
        return ctx.cache[key]
    p = plan(ctx)
    result: tuple[pa.Table | None, str | None]
    if p is None:
        result = (None, "no two modules recorded at the same time in the chosen runs")
    elif not hasattr(ctx.lake, "coincidence_groups"):
        result = (None, "this pfflake has no k-of-N coincidence finder (Lake.coincidence_groups)")
    else:
        off = None
        if corrected:
            table, _ = offsets(ctx)
            if table is not None:
                off, _ = _usable_offsets(table)
                off = off if off.num_rows else None
        try:
            g = ctx.lake.coincidence_groups(p["modules"], ctx.options.coincidence_window_ns,
                                            offsets=off, where=p["where"],
                                            data_product=p["data_product"],
                                            time_base=p["time_base"])
            result = (g, None)
        except ValueError as e:
            result = (None, f"coincidences could not be found: {e}")
    ctx.cache[key] = result
    return result


def _dt_to_reference(g: pa.Table, reference: int, column: str) -> dict[int, np.ndarray]:
    """Per module: member time minus the reference member's time of the same group (ns);
    groups without a reference member are left out (an ambiguous group's first one)."""
    gid = g.column("group_id").to_numpy(zero_copy_only=False)
    mod = g.column("module").to_numpy(zero_copy_only=False)
    t = g.column(column).to_numpy(zero_copy_only=False)
    is_ref = mod == reference
    order = np.argsort(gid[is_ref], kind="stable")
    ref_gid, ref_t = gid[is_ref][order], t[is_ref][order]
    out: dict[int, np.ndarray] = {}
    if len(ref_gid) == 0:
        return out
    for m in sorted(set(mod.tolist()) - {reference}):
        k = np.flatnonzero(mod == m)
        i = np.minimum(np.searchsorted(ref_gid, gid[k]), len(ref_gid) - 1)
        hit = ref_gid[i] == gid[k]
        out[m] = t[k][hit] - ref_t[i][hit]
    return out


def offsets_section(ctx: Context) -> Section:
    s = Section("offsets", "Clock offsets between telescopes",
                "Host-clock offset of each module against the reference per bin (frames paired "
                "within the offset window, background-subtracted median), and the time "
                "differences inside coincidence groups before and after subtracting it.")
    table, why = offsets(ctx)
    if table is None:
        s.empty = f"no data: {why}"
        return s
    p = plan(ctx)
    ref = p["reference"]
    usable, never = _usable_offsets(table)
    g, gwhy = groups(ctx, corrected=True)
    fig = new_figure(10, 3.6)
    ax1, ax2 = fig.subplots(1, 2, width_ratios=[3, 2])
    rows = []
    mods = table.column("module").to_numpy(zero_copy_only=False)
    before = _dt_to_reference(g, ref, "t_ns") if g is not None and g.num_rows else {}
    after = _dt_to_reference(g, ref, "t_corrected_ns") if g is not None and g.num_rows else {}
    for m in sorted(set(mods.tolist())):
        k = mods == m
        v = table.column("offset_ns").filter(pa.array(k))
        starts = table.column("bin_start_ns").to_numpy(zero_copy_only=False)[k]
        ok = v.is_valid().to_numpy(zero_copy_only=False)
        vals = v.fill_null(0).to_numpy(zero_copy_only=False)
        if ok.any():
            ax1.plot(to_datetime64(starts[ok]), vals[ok] / 1e6, marker="o", ms=3, lw=1,
                     label=f"module {m} - module {ref}")
        est = vals[ok]
        med = int(np.median(est)) if len(est) else None
        b, a = before.get(m), after.get(m)
        rows.append({
            "module": m, "reference": ref, "bins": int(k.sum()), "bins_estimated": int(ok.sum()),
            "median_offset_ms": None if med is None else round(med / 1e6, 4),
            "rms_of_bins_us": None if len(est) == 0 else
            round(float(np.sqrt(np.mean((est - med) ** 2))) / 1e3, 2),
            "pairs": int(np.sum(table.column("n_pairs").to_numpy(zero_copy_only=False)[k])),
            "groups_with_ref": 0 if b is None else len(b),
            "median_abs_dt_before_us": None if b is None or not len(b) else
            round(float(np.median(np.abs(b))) / 1e3, 2),
            "median_abs_dt_after_us": None if a is None or not len(a) else
            round(float(np.median(np.abs(a))) / 1e3, 2),
        })
    ax1.axhline(0, color="k", lw=0.5)
    ax1.set_ylabel("offset (ms)")
    ax1.set_title(f"per-bin offsets ({ctx.options.offset_bin_ns / NS_PER_S:g} s bins), "
                  f"{p['data_product']}, {CLOCKS[p['time_base']]}", fontsize=8)
    utc_axis(ax1)
    if usable.num_rows:
        ax1.legend(fontsize=7)
    else:
        ax1.text(0.5, 0.5, "no bin had enough pairs for an estimate", ha="center",
                 transform=ax1.transAxes)
        # the bins' own span, not matplotlib's empty default (1970-01-01)
        span = np.array([pc.min(table.column("bin_start_ns")).as_py(),
                         pc.max(table.column("bin_end_ns")).as_py()], dtype=np.int64)
        ax1.set_xlim(*to_datetime64(span))
    if before:
        allv = np.concatenate([*before.values(), *after.values()]) / 1e6
        edges = np.linspace(allv.min() - 0.05, allv.max() + 0.05, 60)
        for m in before:
            ax2.hist(before[m] / 1e6, edges, histtype="step", lw=1, ls="--",
                     label=f"m{m} before")
            ax2.hist(after[m] / 1e6, edges, histtype="stepfilled", alpha=0.4,
                     label=f"m{m} after")
        ax2.set_xlabel(f"t(module) - t(module {ref}) in a group (ms)")
        ax2.set_ylabel("groups")
        ax2.legend(fontsize=6)
    else:
        ax2.text(0.5, 0.5, "no coincidence group\nwith the reference module", ha="center",
                 va="center", transform=ax2.transAxes)
        ax2.set_axis_off()
    ax2.set_title(f"before / after correction (window ±{ctx.options.coincidence_window_ns / 1e6:g}"
                  " ms)", fontsize=8)
    s.figures.append((ctx.save(fig, "clock_offsets"),
                      "Left: measured offsets per bin. Right: time differences of the same "
                      "coincident events before (dashed) and after (filled) the correction."))
    s.tables.append(("Offsets per module", pa.Table.from_pylist(rows)))
    if never:
        s.notes.append("no offset estimate for module(s) " + ", ".join(map(str, never))
                       + " (too few pairs above the accidental background); their times are "
                       "left uncorrected")
    s.notes.append(_clock_note(p))
    if p["event_where"]:
        s.notes.append(f"events of {p['data_product']}: frames with {p['event_where']}")
    if gwhy:
        s.notes.append(gwhy)
    return s


def coincidence_section(ctx: Context) -> Section:
    s = Section("coincidences", "Coincidence rate by multiplicity",
                "k-of-N coincidence groups after the clock correction (modules linked within "
                "the coincidence window), counted per time bin and multiplicity.")
    g, why = groups(ctx, corrected=True)
    if g is None:
        s.empty = f"no data: {why}"
        return s
    p = plan(ctx)
    tc = g.column("t_corrected_ns").to_numpy(zero_copy_only=False)
    lo, hi = (int(tc.min()), int(tc.max())) if len(tc) else (p["lo"], p["hi"])
    full = hi - lo  # the stretch where modules recorded together
    b = ctx.options.coincidence_bin_ns or (300 * NS_PER_S if full >= 3000 * NS_PER_S
                                           else nice_bin_ns(full, 30))
    rate = ctx.lake.coincidence_rate(g, b)
    raw, _ = groups(ctx, corrected=False)
    n_groups = _n_groups(g)
    if n_groups == 0:
        s.empty = (f"no data: no coincidence of modules {p['modules']} within "
                   f"±{ctx.options.coincidence_window_ns / 1e6:g} ms"
                   + (f" ({p['event_where']})" if p["event_where"] else ""))
        return s
    fig = new_figure(9, 3.2)
    ax = fig.add_subplot()
    k = rate.column("multiplicity").to_numpy(zero_copy_only=False)
    t = rate.column("bin_start_ns").to_numpy(zero_copy_only=False)
    n = rate.column("groups").to_numpy(zero_copy_only=False)
    for m in np.unique(k):
        sel = k == m
        ax.step(to_datetime64(np.append(t[sel], t[sel][-1] + b)),
                np.append(n[sel], n[sel][-1]) / (b / NS_PER_S), where="post", lw=1.2,
                label=f"{m}-fold")
    acc_t, acc = _accidental_2fold(ctx, p, b, lo // b * b, hi // b * b + b)
    if len(acc_t):
        ax.step(to_datetime64(np.append(acc_t, acc_t[-1] + b)), np.append(acc, acc[-1]),
                where="post", lw=1, ls=":", color="k",
                label="2-fold expected by chance (singles rates)")
    ax.set_ylabel("groups / s")
    ax.set_title(f"coincidences of modules {', '.join(map(str, p['modules']))} "
                 f"({p['data_product']}, {CLOCKS[p['time_base']]}), bins of {b / NS_PER_S:g} s",
                 fontsize=8)
    utc_axis(ax)
    ax.legend(fontsize=7)
    s.figures.append((ctx.save(fig, "coincidence_rate"), "Coincidence rate per multiplicity."))
    per = pa.table({"group_id": g.column("group_id"),  # noqa: F841 (DuckDB reads it by name)
                    "multiplicity": g.column("multiplicity"),
                    "ambiguous": g.column("ambiguous"), "span_ns": g.column("span_ns")})
    import duckdb

    summary = duckdb.sql(
        "SELECT multiplicity, count(DISTINCT group_id) AS groups, "
        "count(DISTINCT group_id) FILTER (WHERE ambiguous) AS ambiguous_groups, "
        "round(median(span_ns) / 1e3, 2) AS median_span_us FROM per GROUP BY ALL ORDER BY 1"
    ).to_arrow_table()
    chance = float(acc.sum() * b / NS_PER_S) if len(acc) else None
    summary = summary.append_column(
        "expected_by_chance",
        pa.array([round(chance, 1) if (m == 2 and chance is not None) else None
                  for m in summary.column("multiplicity").to_pylist()], pa.float64()))
    s.tables.append((f"Groups (window ±{ctx.options.coincidence_window_ns / 1e6:g} ms, "
                     f"after clock correction; {n_groups} groups over "
                     f"{full / NS_PER_S:.1f} s from the first to the last)", summary))
    s.notes.append(_clock_note(p))
    if raw is not None:
        s.notes.append(f"without the clock correction the same search finds {_n_groups(raw)} "
                       "groups")
    s.notes.append("expected by chance: sum over module pairs of 2 x window x rate_a x rate_b "
                   "per bin, from the events' singles rates (k = 2; an upper bound when "
                   "events are correlated)")
    if p["event_where"]:
        s.notes.append(f"events of {p['data_product']}: frames with {p['event_where']}")
    return s


def _n_groups(g: pa.Table) -> int:
    import pyarrow.compute as pc

    return int(pc.count_distinct(g.column("group_id")).as_py()) if g.num_rows else 0


def _accidental_2fold(ctx: Context, p: dict[str, Any], b: int, lo: int, hi: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Per bin of ``[lo, hi)``: the 2-fold rate (groups/s) chance alone gives, from each
    module's event rate in the bin: sum over module pairs of 2 w r_a r_b (w = half-window
    in s). Raw times: a clock offset only shifts a rate by milliseconds."""
    col = "host_unix_t_ns" if p["time_base"] == "host" else "unix_t_ns"
    mods = ", ".join(map(str, p["modules"]))
    t = ctx.table(
        f"SELECT module, {col} // {b} * {b} AS bin_ns, count(*) AS n FROM frames"
        + ctx.where(p["event_where"], f"data_product = {sql_str(p['data_product'])}",
                    f"module IN ({mods})", f"{col} >= {max(lo, Y2000_NS)}", f"{col} < {hi}")
        + " GROUP BY ALL ORDER BY ALL")
    if t.num_rows == 0:
        return np.empty(0, np.int64), np.empty(0)
    mod = t.column("module").to_numpy(zero_copy_only=False)
    bins = t.column("bin_ns").to_numpy(zero_copy_only=False)
    n = t.column("n").to_numpy(zero_copy_only=False).astype(np.float64)
    starts = np.arange(bins.min(), bins.max() + b, b)
    r = np.zeros((len(p["modules"]), len(starts)))
    for i, m in enumerate(p["modules"]):
        k = mod == m
        r[i, (bins[k] - starts[0]) // b] = n[k] / (b / NS_PER_S)
    w = ctx.options.coincidence_window_ns / NS_PER_S
    total = r.sum(axis=0)
    pairs = (total ** 2 - (r ** 2).sum(axis=0)) / 2  # sum over a < b of r_a r_b
    return starts, 2 * w * pairs


def _clock_note(p: dict[str, Any]) -> str:
    why = ("White Rabbit time is in sync for >= 99 % of every module's frames"
           if p["time_base"] == "wr" else "White Rabbit time is missing or out of sync for "
           "some module (or the host clock was asked for)")
    return f"times on the {CLOCKS[p['time_base']]}: {why}"


__all__ = ["coincidence_section", "offsets_section", "plan", "sql_str"]
