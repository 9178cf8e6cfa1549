"""Report sections about the recording itself: runs and streams, frame rate with the cut
intervals shaded, packet loss and timestamp quality, and what was damaged or skipped.

Everything is a query of the lake (``run_quality``, ``frames``, ``files``) or the lake's
event selection (``Lake.select``: packet_loss, invalid_time, rate_spike, not_tracking).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from .context import (
    NS_PER_S,
    Y2000_NS,
    Context,
    Section,
    new_figure,
    nice_bin_ns,
    sql_str,
    to_datetime64,
    utc,
    utc_axis,
)

CUT_NAMES = ("packet_loss", "invalid_time", "rate_spike", "not_tracking")
#: Cuts that remove stretches of time (shaded on the rate plot); the others remove frames.
INTERVAL_CUTS = {"rate_spike": ("tab:red", "rate spike"),
                 "not_tracking": ("tab:gray", "not tracking")}


def run_spans(ctx: Context) -> list[tuple[str, int, int]]:
    """``(run, first_ns, last_ns)`` per run with a datable time span, in time order."""
    out: dict[str, list[int]] = {}
    for p in panels(ctx):
        lo, hi = out.setdefault(p["run"], [p["lo"], p["hi"]])
        out[p["run"]] = [min(lo, p["lo"]), max(hi, p["hi"])]
    return sorted(((r, a, b) for r, (a, b) in out.items()), key=lambda x: x[1])


#: Streams of one run further apart than this are drawn in separate panels.
PANEL_GAP_NS = 3600 * NS_PER_S


def panels(ctx: Context) -> list[dict]:
    """Time panels for timelines: per run, its streams grouped where their spans are within
    an hour of each other (one run directory can hold files of different nights).
    Each: ``run``, ``lo``, ``hi`` (ns), ``streams`` [(data_product, module, time_source)]."""
    if "panels" in ctx.cache:
        return ctx.cache["panels"]
    rows = ctx.lake.sql(
        "SELECT run, data_product, module, first_unix_t_ns, last_unix_t_ns, time_source "
        "FROM run_quality" + ctx.where(f"first_unix_t_ns >= {Y2000_NS}")
        + " ORDER BY run, first_unix_t_ns").fetchall()
    out: list[dict] = []
    for run, dp, m, lo, hi, src in rows:
        last = out[-1] if out and out[-1]["run"] == run else None
        if last is not None and lo <= last["hi"] + PANEL_GAP_NS:
            last["hi"] = max(last["hi"], int(hi))
            last["streams"].append((dp, int(m), src))
        else:
            out.append({"run": run, "lo": int(lo), "hi": int(hi), "streams": [(dp, int(m), src)]})
    out.sort(key=lambda p: p["lo"])
    ctx.cache["panels"] = out
    return out


def _stream_time_sql(p: dict) -> str:
    """Frames of a panel's streams, each on the clock run_quality used for it: trusted times
    (no desync), or for a stream with none the host second its desynchronised frames carry."""
    parts = []
    for dp, m, src in p["streams"]:
        clock = "(time_quality & 2) = 0" if src == "wr" else "TRUE"
        parts.append(f"(data_product = {sql_str(dp)} AND module = {m} AND {clock})")
    return (f"run = {sql_str(p['run'])} AND unix_t_ns >= {Y2000_NS} "
            f"AND unix_t_ns BETWEEN {p['lo']} AND {p['hi']} AND (" + " OR ".join(parts) + ")")


def selection(ctx: Context) -> tuple[Any | None, str | None]:
    """The lake's event selection (default cuts, host clock) of the report's runs, or
    ``(None, why not)``. Computed once per report."""
    if "selection" not in ctx.cache:
        sel, why = None, None
        if not hasattr(ctx.lake, "select"):
            why = "this pfflake has no event selection (Lake.select)"
        else:
            try:
                sel = ctx.lake.select(where=ctx.run_filter)
            except ValueError as e:
                why = f"the cuts could not run: {e}"
        ctx.cache["selection"] = (sel, why)
    return ctx.cache["selection"]


# -- runs and streams -----------------------------------------------------------------------


def runs_section(ctx: Context) -> Section:
    s = Section("runs", "Runs and streams",
                "Every stream (run, data product, module) of the report: frames, trusted time "
                "span, mean rate and damage (view run_quality).")
    t = ctx.table(
        "SELECT run, data_product, module, frames, first_time, round(duration_s, 3) AS "
        "duration_s, round(frame_rate_hz, 2) AS rate_hz, time_source, files, damaged_files, "
        "damaged_frames, truncated_files FROM run_quality" + ctx.where() + " ORDER BY ALL")
    if t.num_rows == 0:
        s.empty = "no data: the lake holds no frames for the chosen runs"
        return s
    runs = ctx.table("SELECT run, observatory, start, run_type, complete FROM runs"
                     + ctx.where() + " ORDER BY start, run")
    spans = {r: (a, b) for r, a, b in run_spans(ctx)}
    rows = t.to_pylist()
    fig = new_figure(9, 0.5 + 0.32 * max(3, len(rows)))
    ax = fig.add_subplot()
    labels = []
    for i, r in enumerate(rows):
        labels.append(f"{_short(r['run'])}  {r['data_product']} m{r['module']}")
        ax.barh(i, r["frames"], color="tab:blue")
        ax.text(r["frames"], i, f" {r['frames']:,}", va="center", fontsize=7)
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("frames (log scale)")
    ax.set_title("frames per stream", fontsize=9)
    s.figures.append((ctx.save(fig, "runs_streams"),
                      "Frames per stream (run, data product, module)."))
    s.tables.append(("Runs", runs))
    s.tables.append(("Streams (run_quality)", t))
    no_span = [r for r in {x["run"] for x in rows} if r not in spans]
    if no_span:
        s.notes.append("runs without any trusted frame time: " + ", ".join(sorted(no_span)))
    return s


def _short(run: str, n: int = 28) -> str:
    return run if len(run) <= n else run[: n - 1] + "…"


# -- frame rate and cuts ----------------------------------------------------------------------


def _cut_intervals(sel, cut: str, spike_bin_ns: int) -> dict[tuple[str, int], list]:
    """``{(run, module): [(start_ns, stop_ns), ...]}`` of the stretches ``cut`` removed."""
    t = sel.table
    mask = t.column(f"cut_{cut}").to_numpy(zero_copy_only=False)
    if not mask.any():
        return {}
    idx = np.flatnonzero(mask)
    ts = t.column("t_ns").to_numpy(zero_copy_only=False)[idx]
    mods = t.column("module").to_numpy(zero_copy_only=False)[idx]
    runs = np.asarray(t.column("run").take(pa.array(idx)).to_pylist(), dtype=object)
    out: dict[tuple[str, int], list] = {}
    for key in sorted({(r, int(m)) for r, m in zip(runs, mods, strict=True)}):
        sel_k = (runs == key[0]) & (mods == key[1])
        tk = np.sort(ts[sel_k])
        if cut == "rate_spike":  # whole bins are cut
            starts = np.unique(tk // spike_bin_ns * spike_bin_ns)
            spans = [(int(a), int(a + spike_bin_ns)) for a in starts]
        else:  # consecutive cut frames; a break longer than 30 s starts a new stretch
            breaks = np.flatnonzero(np.diff(tk) > 30 * NS_PER_S)
            lo = np.concatenate([[0], breaks + 1])
            hi = np.concatenate([breaks, [len(tk) - 1]])
            spans = [(int(tk[a]), int(tk[b])) for a, b in zip(lo, hi, strict=True)]
        out[key] = spans
    return out


def rate_section(ctx: Context) -> Section:
    s = Section("rate", "Frame rate over time",
                "Frames per second per stream in time bins (trusted times only), one panel "
                "per run; time removed by the rate-spike and not-tracking cuts is shaded.")
    spans = panels(ctx)
    if not spans:
        s.empty = "no data: no frame with a trusted time in the chosen runs"
        return s
    sel, why = selection(ctx)
    spike_bin = int(sel.parameters.get("spike_bin_ns", 30 * NS_PER_S)) if sel else 30 * NS_PER_S
    intervals = {c: _cut_intervals(sel, c, spike_bin) for c in INTERVAL_CUTS} if sel else {}
    fig = new_figure(9, 0.6 + 2.3 * len(spans))
    axes = fig.subplots(len(spans), 1, squeeze=False)[:, 0]
    rows = []
    for ax, panel in zip(axes, spans, strict=True):
        run, lo, hi = panel["run"], panel["lo"], panel["hi"]
        host = {(dp, m) for dp, m, src in panel["streams"] if src == "host"}
        b = ctx.options.rate_bin_ns or nice_bin_ns(hi - lo)
        t = ctx.table(
            f"SELECT data_product, module, unix_t_ns // {b} * {b} AS bin_ns, count(*) AS n "
            f"FROM frames WHERE {_stream_time_sql(panel)} GROUP BY ALL ORDER BY ALL")
        d = {k: t.column(k).to_numpy(zero_copy_only=False) for k in t.column_names}
        streams = sorted({(p, int(m)) for p, m in zip(d["data_product"], d["module"],
                                                       strict=True)})
        for p, m in streams[: ctx.options.max_streams_plotted]:
            k = (d["data_product"] == p) & (d["module"] == m)
            # empty bins between the first and last are zero rate, not skipped
            full = np.arange(d["bin_ns"][k].min(), d["bin_ns"][k].max() + b, b)
            n = np.zeros(len(full))
            n[(d["bin_ns"][k] - full[0]) // b] = d["n"][k]
            ax.step(to_datetime64(np.append(full, full[-1] + b)),
                    np.append(n, n[-1]) / (b / NS_PER_S), where="post", lw=1,
                    label=f"{p} module {m}" + (" (host clock)" if (p, m) in host else ""))
            rows.append({"run": run, "data_product": p, "module": m, "bin_s": b / NS_PER_S,
                         "median_hz": float(np.median(n)) / (b / NS_PER_S),
                         "max_hz": float(n.max()) / (b / NS_PER_S),
                         "empty_bins": int((n == 0).sum())})
        shaded = set()
        for cut, (colour, label) in INTERVAL_CUTS.items():
            panel_modules = {m for _, m, _ in panel["streams"]}
            for (r, m), spans_m in intervals.get(cut, {}).items():
                if r != run or m not in panel_modules:
                    continue
                for a, z in spans_m:
                    if z < lo or a > hi:
                        continue
                    lab = label if (cut not in shaded) else None
                    ax.axvspan(to_datetime64(np.array([a]))[0], to_datetime64(np.array([z]))[0],
                               color=colour, alpha=0.2, lw=0, label=lab)
                    shaded.add(cut)
        ax.set_ylim(bottom=0)
        ax.set_ylabel("frames / s")
        ax.set_title(f"{run}  (bins of {b / NS_PER_S:g} s)", fontsize=8)
        utc_axis(ax)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper right", ncols=2)
    s.figures.append((ctx.save(fig, "frame_rate"), "Frame rate per stream against UTC."))
    s.tables.append(("Rate per stream", pa.Table.from_pylist(rows)))
    if sel is None:
        s.notes.append(f"no cut intervals shaded: {why}")
    else:
        spans_t = [{"cut": c, "run": r, "module": m, "start": _iso(a), "stop": _iso(z),
                    "seconds": round((z - a) / NS_PER_S, 3)}
                   for c in INTERVAL_CUTS for (r, m), v in intervals[c].items() for a, z in v]
        if spans_t:
            s.tables.append(("Time removed by cuts", pa.Table.from_pylist(spans_t[:200])))
        else:
            s.notes.append("no rate spike and no not-tracking interval was cut")
        s.notes.extend(getattr(sel, "notes", []) or [])
    return s


def _iso(ns: int) -> str:
    return utc(ns)


# -- packet loss and timestamp quality ----------------------------------------------------------


def timing_quality_section(ctx: Context) -> Section:
    s = Section("quality", "Packet loss and timestamp quality",
                "Fraction of frames per stream with a lost packet (some quabo's pkt_num == 0), "
                "no White Rabbit time, a WR/host clock desync (> 1 s) or a quabo missing; "
                "and when the desyncs and losses happened.")
    has_pl = ctx.has_column("frames", "packet_loss")
    pl = "count(*) FILTER (WHERE packet_loss)" if has_pl else "NULL"
    t = ctx.table(
        "SELECT run, data_product, module, count(*) AS frames, "
        f"round(100.0 * {pl} / count(*), 3) AS packet_loss_pct, "
        "round(100.0 * count(*) FILTER (WHERE (time_quality & 1) <> 0) / count(*), 3) "
        "AS no_wr_pct, "
        "round(100.0 * count(*) FILTER (WHERE (time_quality & 2) <> 0) / count(*), 3) "
        "AS clock_desync_pct, "
        "round(100.0 * count(*) FILTER (WHERE (time_quality & 4) <> 0) / count(*), 3) "
        "AS quabo_missing_pct, "
        f"count(*) FILTER (WHERE unix_t_ns < {Y2000_NS}) AS before_2000 "
        "FROM frames" + ctx.where() + " GROUP BY ALL ORDER BY ALL")
    if t.num_rows == 0:
        s.empty = "no data: no frames in the chosen runs"
        return s
    rows = t.to_pylist()
    spans = panels(ctx)
    fig = new_figure(9, 0.6 + 2.6 * (1 + len(spans)))
    axes = fig.subplots(1 + len(spans), 1, squeeze=False)[:, 0]
    ax = axes[0]
    flags = [("packet_loss_pct", "packet loss"), ("no_wr_pct", "no WR time"),
             ("clock_desync_pct", "clock desync"), ("quabo_missing_pct", "quabo missing")]
    x = np.arange(len(rows))
    w = 0.2
    for j, (col, label) in enumerate(flags):
        v = [r[col] if r[col] is not None else 0.0 for r in rows]
        ax.bar(x + (j - 1.5) * w, v, w, label=label)
    ax.set_xticks(x, [f"{_short(r['run'], 16)}\n{r['data_product']} m{r['module']}"
                      for r in rows], fontsize=6)
    ax.set_ylabel("% of frames")
    ax.set_ylim(0, 125)
    ax.set_yticks([0, 25, 50, 75, 100])
    ax.legend(fontsize=7, ncols=4, loc="upper center")
    ax.set_title("flagged frames per stream", fontsize=9)
    pl_expr = "packet_loss" if has_pl else "FALSE"
    for ax, panel in zip(axes[1:], spans, strict=True):
        run, lo, hi = panel["run"], panel["lo"], panel["hi"]
        b = nice_bin_ns(hi - lo, 100)
        streams = " OR ".join(f"(data_product = {sql_str(dp)} AND module = {m})"
                              for dp, m, _ in panel["streams"])
        tl = ctx.table(
            f"SELECT data_product, module, unix_t_ns // {b} * {b} AS bin_ns, count(*) AS n, "
            "count(*) FILTER (WHERE (time_quality & 2) <> 0) AS desync, "
            f"count(*) FILTER (WHERE {pl_expr}) AS lost FROM frames "
            f"WHERE run = {sql_str(run)} AND unix_t_ns BETWEEN {lo} AND {hi} AND ({streams}) "
            "GROUP BY ALL ORDER BY ALL")
        d = {k: tl.column(k).to_numpy(zero_copy_only=False) for k in tl.column_names}
        for p, m in sorted({(p, int(m)) for p, m in zip(d["data_product"], d["module"],
                                                         strict=True)}):
            k = (d["data_product"] == p) & (d["module"] == m)
            tt = to_datetime64(d["bin_ns"][k])
            line = ax.plot(tt, 100 * d["desync"][k] / d["n"][k], lw=1, marker=".", ms=3,
                           label=f"{p} m{m} desync")[0]
            if has_pl:
                ax.plot(tt, 100 * d["lost"][k] / d["n"][k], lw=1, ls="--",
                        color=line.get_color(), label=f"{p} m{m} packet loss")
        ax.set_ylabel("% of frames in bin")
        ax.set_ylim(-3, 103)
        ax.set_title(f"{run}: clock desync (solid) and packet loss (dashed), bins of "
                     f"{b / NS_PER_S:g} s", fontsize=8)
        utc_axis(ax)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, ncols=2, loc="upper right")
    s.figures.append((ctx.save(fig, "timing_quality"),
                      "Flag fractions per stream, and desync / packet-loss timelines."))
    s.tables.append(("Flagged frames per stream (%)", t))
    if not has_pl:
        s.notes.append("packet loss unknown: the lake's frames have no packet_loss column "
                       "(ingested by an older pfflake)")
    return s


# -- skipped and damaged ------------------------------------------------------------------------


def damage_section(ctx: Context) -> Section:
    s = Section("damage", "What was skipped or damaged, and why",
                "Files with damaged frames or a cut-short tail, frames no clock can date, "
                "frames each cut removed, and housekeeping readings dropped as 'no reading' "
                "sentinels.")
    files = ctx.table(
        "SELECT run, file, data_product, module, frames, damaged_frames, truncated_tail_bytes, "
        "status, CASE status WHEN 'damaged' THEN 'frames failed their checks and were skipped '"
        "|| '(ingest --lenient)' WHEN 'tail_cut' THEN 'the last frame was cut short '"
        "|| '(recording stopped): dropped' ELSE status END AS why FROM files"
        + ctx.where("status <> 'ok'") + " ORDER BY ALL")
    counts = ctx.table(
        "SELECT run, data_product, module, "
        f"count(*) FILTER (WHERE unix_t_ns < {Y2000_NS}) AS frames_without_clock, "
        "count(*) FILTER (WHERE (time_quality & 2) <> 0) AS clock_desync_frames "
        "FROM frames" + ctx.where() + " GROUP BY ALL ORDER BY ALL")
    hk = ctx.table(
        "SELECT run, device, field, count(*) AS sentinel_readings, any_value(text) AS written "
        "FROM hk" + ctx.where("value IS NULL", "text IS NOT NULL",
                              "TRY_CAST(text AS DOUBLE) IS NOT NULL")
        + " GROUP BY ALL ORDER BY sentinel_readings DESC LIMIT 30")
    if not ctx.runs:
        s.empty = "no data: no run chosen"
        return s
    sel, why = selection(ctx)
    cut_rows = sel.summary() if sel is not None else None
    labels, values = [], []
    for r in files.to_pylist():
        labels.append(f"{_short(r['file'], 40)} ({r['status']})")
        values.append(r["damaged_frames"] or 0)
    if cut_rows is not None:
        for c in CUT_NAMES:
            labels.append(f"cut: {c}")
            values.append(int(np.sum(cut_rows.column(c).to_numpy(zero_copy_only=False))))
    nc = int(np.sum(counts.column("frames_without_clock").to_numpy(zero_copy_only=False))) \
        if counts.num_rows else 0
    labels.append("frames dated before 2000 (no clock)")
    values.append(nc)
    labels.append("hk sentinel readings dropped")
    values.append(int(np.sum(hk.column("sentinel_readings").to_numpy(zero_copy_only=False)))
                  if hk.num_rows else 0)
    fig = new_figure(9, 0.6 + 0.3 * max(4, len(labels)))
    ax = fig.add_subplot()
    y = np.arange(len(labels))
    ax.barh(y, values, color=["tab:red" if v else "tab:green" for v in values])
    for i, v in enumerate(values):
        ax.text(max(v, 0), i, f" {v:,}", va="center", fontsize=7)
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("frames (files: damaged frames; hk: readings)")
    ax.set_title("what was left out", fontsize=9)
    s.figures.append((ctx.save(fig, "damage"), "What was left out, by reason."))
    if files.num_rows:
        s.tables.append(("Damaged or cut-short files", files))
    else:
        s.notes.append("no damaged or cut-short file: every ingested file read whole")
    if cut_rows is not None:
        s.tables.append(("Frames removed by each cut (they overlap); host clock", cut_rows))
    else:
        s.notes.append(f"cuts not applied: {why}")
    if hk.num_rows:
        s.tables.append(("Housekeeping sentinel readings (value NULL, text kept)", hk))
    s.notes.append("files the ingest refused (not PFF, unknown product, malformed name) are "
                   "not recorded in the lake; `pfflake info RUN` lists them")
    return s
