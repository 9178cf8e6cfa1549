"""Report sections about the pixels: pedestal and pedvar camera maps with hot and dead
pixels marked, and a gallery of the brightest events (calibrated, hot pixels masked).

Pedestals come from the lake's ``calibration`` table; for streams without one the
report can commit them first with ``Lake.compute_pedestals`` (the pipeline's recipe).
ph256 frames hold one quabo's 16x16 packet, so its calibrations are per quabo and the
maps put the four quabos in module place (:func:`pfflake.camera.module_from_quabos`).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..camera import module_from_quabos
from ..lake.caltables import CalibrationNotFoundError
from .context import Y2000_NS, Context, Section, new_figure, sql_str, utc

#: The pipeline's pixel QC: hot fraction <= 0.10, dead <= 0.30.
HOT_MAX, DEAD_MAX = 0.10, 0.30


def _missing_streams(ctx: Context) -> list[tuple[str, str, int, int]]:
    """``(run, data_product, module, frames)`` of the chosen streams without pedestals."""
    return [tuple(r) for r in ctx.lake.sql(
        "SELECT DISTINCT q.run, q.data_product, q.module, q.frames FROM run_quality AS q "
        "ANTI JOIN (SELECT DISTINCT run, data_product, module FROM calibration "
        "WHERE kind = 'pedestal') AS c USING (run, data_product, module)"
        + ctx.where("q.frames > 0", f"q.first_unix_t_ns >= {Y2000_NS}", alias="q")
        + " ORDER BY ALL").fetchall()]


def ensure_pedestals(ctx: Context) -> str | None:
    """Commit pedestals for the chosen streams that have none (if the options allow);
    returns a note for the page, or None."""
    missing = _missing_streams(ctx)
    if not missing:
        return None
    if not ctx.options.compute_pedestals:
        return ("no calibration for " + ", ".join(f"{r} {p} m{m}" for r, p, m, _ in missing)
                + " (computing it was switched off)")
    limit = max(1, int(ctx.options.pedestal_frames_per_stream))
    steps = {(r, p, m): -(-int(n) // limit) for r, p, m, n in missing}
    where = " OR ".join(
        f"(run = {sql_str(r)} AND data_product = {sql_str(p)} AND module = {m}"
        + (f" AND frame % {steps[(r, p, m)]} = 0" if steps[(r, p, m)] > 1 else "") + ")"
        for r, p, m, _ in missing)
    before = ctx.lake.version
    try:
        result = ctx.lake.compute_pedestals(where=where, workers=ctx.options.workers)
    except (OSError, ValueError) as e:
        return f"no calibration: computing pedestals failed ({e})"
    sampled = {f"{r} {p} m{m}": k for (r, p, m), k in steps.items() if k > 1}
    ctx.computed["pedestals"] = {"streams": [list(x[:3]) for x in missing],
                                 "every_nth_frame": sampled,
                                 "from_version": before, "version": result.version,
                                 "rows": result.rows, "seconds": round(result.seconds, 2)}
    return (f"pedestals computed by this report for {len(missing)} stream(s) "
            f"(lake version {before} -> {result.version}, {result.seconds:.1f} s"
            + (f"; from every {max(steps.values())}th frame at most, "
               f"<= {limit:,} frames per stream" if sampled else "") + ")")


def _maps(ctx: Context) -> list[dict]:
    """Per stream: the pedestal, pedvar, hot and dead maps of its best window (the one
    with the most frames; latest computed on ties), in module place."""
    t = ctx.table(
        "SELECT kind, run, data_product, module, quabo, valid_from_ns, n_frames, qc_ok, "
        "height, width, values FROM calibration"
        + ctx.where("kind IN ('pedestal', 'pedvar', 'hot', 'dead')")
        + " QUALIFY row_number() OVER (PARTITION BY kind, run, data_product, module, quabo "
        "ORDER BY n_frames DESC, computed_at_ns DESC) = 1 ORDER BY run, data_product, module")
    out: dict[tuple, dict] = {}
    for r in t.to_pylist():
        key = (r["run"], r["data_product"], r["module"])
        d = out.setdefault(key, {"run": key[0], "data_product": key[1], "module": key[2],
                                 "n_frames": 0, "quabos": {}})
        v = np.asarray(r["values"], dtype=np.float64).reshape(r["height"], r["width"])
        d["quabos"].setdefault(r["quabo"], {})[r["kind"]] = v
        d["n_frames"] = max(d["n_frames"], r["n_frames"] or 0)
        d["valid_from_ns"] = r["valid_from_ns"]
    maps = []
    for d in out.values():
        q = d.pop("quabos")
        for kind in ("pedestal", "pedvar", "hot", "dead"):
            if None in q:
                d[kind] = q[None].get(kind)
            else:  # per quabo (ph256): put them in module place, NaN for a quabo without
                stack = np.full((4, 16, 16), np.nan)
                for i in range(4):
                    if kind in q.get(i, {}):
                        stack[i] = q[i][kind]
                d[kind] = module_from_quabos(stack)
                d["quabos_present"] = sorted(k for k in q if k is not None)
        if d["pedestal"] is not None:
            maps.append(d)
    return maps


def pedestal_section(ctx: Context) -> Section:
    s = Section("pedestals", "Pedestals and pixel health",
                "Pedestal (clipped mean) and pedvar (width) per pixel of each stream's best "
                "calibration window, in module coordinates; hot pixels (pedestal > 3 x camera "
                "mean) marked x, dead pixels (pedestal 0) marked o.")
    note = ensure_pedestals(ctx)
    if note:
        s.notes.append(note)
    maps = _maps(ctx)
    if not maps:
        s.empty = "no calibration: " + (note or "the lake has no pedestals for these runs")
        return s
    shown = maps[: ctx.options.max_streams_plotted]
    fig = new_figure(8.6, 0.4 + 3.1 * len(shown))
    axes = fig.subplots(len(shown), 2, squeeze=False)
    rows = []
    for (a1, a2), d in zip(axes, shown, strict=True):
        ped, var = d["pedestal"], d["pedvar"]
        hot = d["hot"] if d["hot"] is not None else np.zeros_like(ped)
        dead = d["dead"] if d["dead"] is not None else np.zeros_like(ped)
        hot, dead = np.nan_to_num(hot) > 0, np.nan_to_num(dead) > 0
        for ax, img, label in ((a1, ped, "pedestal (ADC)"), (a2, var, "pedvar (ADC)")):
            if img is None:
                ax.text(0.5, 0.5, "no pedvar", ha="center", transform=ax.transAxes)
                ax.set_axis_off()
                continue
            lo, hi = _stretch(img, ~hot, (1, 99))
            shown_img = ax.imshow(img, cmap="viridis", vmin=lo, vmax=hi,
                                  interpolation="nearest")
            fig.colorbar(shown_img, ax=ax, label=label, shrink=0.85)
            yy, xx = np.nonzero(hot)
            ax.scatter(xx, yy, marker="x", c="red", s=14, lw=1, label=f"hot ({len(xx)})")
            yy, xx = np.nonzero(dead)
            ax.scatter(xx, yy, marker="o", facecolors="none", edgecolors="white", s=14,
                       label=f"dead ({len(xx)})")
            qs = d.get("quabos_present")
            qtext = "" if qs is None or len(qs) == 4 else \
                f" (quabo{'s' if len(qs) > 1 else ''} {', '.join(map(str, qs))} only)"
            ax.set_title(f"{_wrap(d['run'])}\n{d['data_product']} module {d['module']}{qtext}: "
                         f"{label}", fontsize=7)
            ax.set_xlabel("pixel column")
            ax.set_ylabel("pixel row")
            ax.legend(fontsize=6, loc="upper right", framealpha=0.6)
        n = int(np.isfinite(ped).sum())
        rows.append({
            "run": d["run"], "data_product": d["data_product"], "module": d["module"],
            "window_frames": d["n_frames"], "valid_from": utc(d.get("valid_from_ns")),
            "pedestal_mean": round(float(np.nanmean(ped)), 2),
            "pedvar_median": None if var is None else round(float(np.nanmedian(var)), 2),
            "hot": int(hot.sum()), "dead": int(dead.sum()),
            "qc": "ok" if n and hot.sum() / n <= HOT_MAX and dead.sum() / n <= DEAD_MAX
            else "FAIL",
        })
    s.figures.append((ctx.save(fig, "pedestals"), "Pedestal and pedvar maps per stream."))
    s.tables.append(("Pixel health per stream (QC: hot <= 10 %, dead <= 30 %)",
                     pa.Table.from_pylist(rows)))
    if len(maps) > len(shown):
        s.notes.append(f"{len(maps) - len(shown)} more streams not drawn (table above lists "
                       "the drawn ones)")
    return s


# -- brightest events ----------------------------------------------------------------------


def _brightest(ctx: Context) -> list[dict]:
    quabo = ("CASE WHEN f.data_product = 'ph256' THEN f.quabo_num END"
             if ctx.has_column("frames", "quabo_num") else "NULL")
    t = ctx.table(
        "WITH s AS (SELECT run, data_product, module, median(pixel_max) AS med FROM frames"
        + ctx.where() + " GROUP BY ALL) "
        f"SELECT f.run, f.data_product, f.module, f.frame, f.unix_t_ns, f.pixel_max, "
        f"f.pixel_max - s.med AS excess, {quabo} AS quabo FROM frames AS f "
        "JOIN s USING (run, data_product, module)"
        + ctx.where(f"f.unix_t_ns >= {Y2000_NS}", alias="f")
        + f" ORDER BY excess DESC, f.unix_t_ns LIMIT {int(ctx.options.gallery_size)}")
    return t.to_pylist()


def _hot_mask(ctx: Context, r: dict) -> np.ndarray | None:
    try:
        cal = ctx.lake.calibration("hot", r["module"], r["unix_t_ns"],
                                   data_product=r["data_product"], quabo=r["quabo"])
    except (CalibrationNotFoundError, ValueError):
        return None
    return np.asarray(cal.values, dtype=bool)


def gallery_section(ctx: Context) -> Section:
    s = Section("gallery", "Brightest events",
                "The frames whose brightest pixel rises most above its stream's median "
                "pixel_max, calibrated ((raw - pedestal) / gain), hot pixels masked in grey.")
    rows = _brightest(ctx)
    if not rows:
        s.empty = "no data: no frame with a valid time in the chosen runs"
        return s

    table_rows = []
    for i, r in enumerate(rows):
        key = pa.Table.from_pylist([{k: r[k] for k in ("run", "data_product", "module",
                                                         "frame")}])
        try:
            img = ctx.lake.images(key, calibrated=True)[0].astype(np.float64)
            units, state = "ADC counts above pedestal", "calibrated"
        except CalibrationNotFoundError:
            img = ctx.lake.images(key)[0].astype(np.float64)
            units, state = "raw ADC counts (no pedestal)", "raw"
        hot = _hot_mask(ctx, r)
        masked = 0
        if hot is not None and hot.shape == img.shape:
            img[hot] = np.nan
            masked = int(hot.sum())
        rel = _event_png(ctx, f"event_{i}", img, r, units)
        s.figures.append((rel, f"{r['run']} {r['data_product']} module {r['module']} frame "
                               f"{r['frame']}"))
        table_rows.append({"rank": i + 1, "run": r["run"], "data_product": r["data_product"],
                           "module": r["module"], "frame": r["frame"], "utc": utc(r["unix_t_ns"]),
                           "pixel_max_raw": r["pixel_max"], "image": state,
                           "hot_masked": masked})
    s.tables.append(("Gallery", pa.Table.from_pylist(table_rows)))
    return s


def _event_png(ctx: Context, name: str, img: np.ndarray, r: dict, units: str) -> str:
    import matplotlib as mpl

    fig = new_figure(4.2, 3.7)
    ax = fig.add_subplot()
    cmap = mpl.colormaps["magma"].with_extremes(bad="lightgrey")
    lo, hi = _stretch(img, None, (1, 99.7))
    im = ax.imshow(np.ma.masked_invalid(img), cmap=cmap, vmin=lo, vmax=hi,
                   interpolation="nearest")
    fig.colorbar(im, ax=ax, label=units, shrink=0.9)
    q = "" if r.get("quabo") is None else f" quabo {r['quabo']}"
    ax.set_title(f"{_wrap(r['run'])}\n{r['data_product']} module {r['module']}{q} frame "
                 f"{r['frame']}\n{utc(r['unix_t_ns'])} UTC", fontsize=7)
    ax.set_xlabel("pixel column")
    ax.set_ylabel("pixel row")
    return ctx.save(fig, name)


def _stretch(img: np.ndarray, use: np.ndarray | None, pct: tuple[float, float]
             ) -> tuple[float, float]:
    """Colour limits: percentiles of the finite (and ``use``) pixels; min..max when they
    coincide (a mostly flat map), never an empty range."""
    ok = np.isfinite(img) if use is None else np.isfinite(img) & use
    v = img[ok] if ok.any() else img[np.isfinite(img)]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = (float(x) for x in np.percentile(v, pct))
    if hi <= lo:
        lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        hi = lo + 1.0
    return lo, hi


def _wrap(run: str, width: int = 44) -> str:
    return "\n".join(run[i:i + width] for i in range(0, len(run), width))
