"""Report section: housekeeping trends (detector and FPGA temperatures, high voltage) per
module, from the lake's ``hk_module`` view (one fixed quabo per module, so a series has no
jumps between boards). "No reading" sentinels (DET_TEMP 511.75, raw 2047) are NULL
``value`` in ``hk`` and are dropped here; the table says how many.
"""

from __future__ import annotations

import numpy as np

from .context import Context, Section, new_figure, to_datetime64, utc_axis

TEMPERATURES = ("DET_TEMP", "FPGA_TEMP")
HIGH_VOLTAGE = ("HVMON0", "HVMON1", "HVMON2", "HVMON3")
LOW_VOLTAGE = ("V12MON", "V18MON", "V33MON", "V37MON")
FIELDS = TEMPERATURES + HIGH_VOLTAGE + LOW_VOLTAGE


def hk_section(ctx: Context) -> Section:
    s = Section("housekeeping", "Housekeeping trends",
                "Detector and FPGA temperatures and the detectors' high voltage per module "
                "against UTC (hk_module: the module's lowest-numbered reporting quabo); "
                "sentinel 'no reading' values dropped.")
    names = ", ".join(f"'{f}'" for f in FIELDS)
    summary = ctx.table(
        "SELECT run, module, field, count(value) AS readings, "
        "count(*) - count(value) AS sentinels_dropped, round(min(value), 3) AS min, "
        "round(median(value), 3) AS median, round(max(value), 3) AS max FROM hk_module"
        + ctx.where(f"field IN ({names})") + " GROUP BY ALL ORDER BY ALL")
    if summary.num_rows == 0 or sum(summary.column("readings").to_pylist()) == 0:
        s.empty = "no data: no temperature or voltage housekeeping for the chosen runs"
        return s
    series = ctx.table(
        "SELECT run, module, field, unix_t_ns, value FROM hk_module"
        + ctx.where(f"field IN ({names})", "value IS NOT NULL") + " ORDER BY ALL")
    d = {k: series.column(k).to_numpy(zero_copy_only=False) for k in series.column_names}
    runs = [r for r in ctx.runs if (d["run"] == r).any()]
    fig = new_figure(10, 0.5 + 2.6 * len(runs))
    axes = fig.subplots(len(runs), 2, squeeze=False)
    for (a_t, a_hv), run in zip(axes, runs, strict=True):
        in_run = d["run"] == run
        for m in np.unique(d["module"][in_run]):
            k = in_run & (d["module"] == m)
            colour = None
            for f, ls in zip(TEMPERATURES, ("-", "--"), strict=True):
                kk = k & (d["field"] == f)
                if kk.any():
                    line = a_t.plot(to_datetime64(d["unix_t_ns"][kk]), d["value"][kk], ls=ls,
                                    marker=".", ms=3, lw=1, color=colour,
                                    label=f"m{m} {f}")[0]
                    colour = line.get_color()
            hv = k & np.isin(d["field"], HIGH_VOLTAGE)
            if hv.any():  # mean over the four detectors' supplies at each reading
                t, inv = np.unique(d["unix_t_ns"][hv], return_inverse=True)
                mean = np.bincount(inv, d["value"][hv]) / np.bincount(inv)
                a_hv.plot(to_datetime64(t), mean, marker=".", ms=3, lw=1, color=colour,
                          label=f"m{m} mean HVMON0-3")
        a_t.set_ylabel("temperature (°C)")
        a_t.set_title(f"{run[:40]}: temperatures", fontsize=8)
        a_hv.set_ylabel("high voltage (V)")
        a_hv.set_title(f"{run[:40]}: detector high voltage", fontsize=8)
        for ax in (a_t, a_hv):
            utc_axis(ax)
            if ax.lines:
                ax.legend(fontsize=6, ncols=2)
            else:
                ax.text(0.5, 0.5, "no readings", ha="center", transform=ax.transAxes)
    s.figures.append((ctx.save(fig, "housekeeping"),
                      "Temperatures (solid DET_TEMP, dashed FPGA_TEMP) and mean high voltage."))
    s.tables.append(("Readings per module and field (sentinels dropped)", summary))
    return s
