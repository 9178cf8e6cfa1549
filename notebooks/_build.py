"""Regenerate the notebooks from the cells below (keeps them reviewable as Python).

Run: uv run python notebooks/_build.py
"""

from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).parent

SETUP = """\
import tempfile, warnings
from pathlib import Path
import numpy as np
import polars as pl
import matplotlib.pyplot as plt
%matplotlib inline
from pfflake import PanosetiRun, PFFWarning
from pfflake.png import stretch, utc_text
from pfflake.lake import Lake
from pfflake.simulate import simulate_run, BrightEvent

warnings.simplefilter("ignore", PFFWarning)
ROOT = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
SAMPLES = ROOT / "tests" / "data"
WORK = Path(tempfile.mkdtemp(prefix="pfflake-nb-"))
"""

NOTEBOOKS = {
    "01_quickstart.ipynb": [
        ("md", "# pfflake quickstart\nRead a real PANOSETI run, ingest it into a lake, query "
               "it with SQL and Polars, fetch images, plot a frame and a light curve."),
        ("code", SETUP),
        ("md", "## Read a run directly"),
        ("code", """\
run = PanosetiRun(SAMPLES / "example-data")
print(run.list_products())
seq = run.get_product("dp_img16.bpp_2.module_1")
ts = seq.timestamps()            # int64 ns
print(len(seq), "frames over", (ts[-1] - ts[0]) / 1e9, "s")
print(run.get_config("obs_config"))   # credentials redacted
"""),
        ("md", "## Ingest into a lake and ask SQL"),
        ("code", """\
lake = Lake(WORK / "lake")
print(lake.ingest([SAMPLES / "example-data", SAMPLES / "legacy-run"], workers=1).summary())
lake.sql("SELECT data_product, module, count(*) AS frames, max(pixel_max) AS brightest "
         "FROM frames GROUP BY ALL ORDER BY ALL").show()
"""),
        ("code", """\
lf = lake.scan("frames").filter(pl.col("module") == 1).select("frame", "unix_t_ns", "pixel_sum")
df = lf.collect()
df.head()
"""),
        ("md", "## Images of a query result, and a light curve"),
        ("code", """\
hits = lake.sql("SELECT run, data_product, module, frame, unix_t_ns FROM frames "
                "WHERE module = 1 ORDER BY pixel_max DESC LIMIT 4")
imgs = lake.images(hits)
rows = hits.pl().to_dicts()
fig, axes = plt.subplots(1, 4, figsize=(13, 3.4), layout="constrained")
for ax, img, row in zip(axes, imgs, rows):
    lo, hi = stretch(img)              # 1-99.5 percentile: one hot pixel does not blacken it
    im = ax.imshow(img, vmin=lo, vmax=hi, interpolation="nearest")
    ax.set_title(f"module {row['module']} frame {row['frame']}\\n{utc_text(row['unix_t_ns'])}",
                 fontsize=8)
    fig.colorbar(im, ax=ax, shrink=0.8, label="ADC counts")
assert imgs.shape == (4, 32, 32)
"""),
        ("code", """\
curve = lake.light_curve(100_000_000, module=1).pl()
t = curve["bucket_ns"].cast(pl.Datetime("ns"))   # UTC
fig, ax = plt.subplots(figsize=(8, 3), layout="constrained")
ax.plot(t, curve["mean"])
ax.set_xlabel("time (UTC)"); ax.set_ylabel("mean pixel_sum per frame")
ax.set_title("example-data img16 module 1, 100 ms buckets")
assert curve["frames"].sum() == 400
"""),
    ],
    "02_coincidences.ipynb": [
        ("md", "# Coincidence search across two modules\nA simulated run with flashes "
               "injected at the same true time in modules 1 and 2."),
        ("code", SETUP),
        ("code", """\
flashes = [300, 900, 1600]
sim = simulate_run(WORK / "sim", products=("img16",), modules=(1, 2), n_frames=2000,
                   bright_events=[BrightEvent(frame=f, amplitude=3000.0) for f in flashes])
lake = Lake(WORK / "lake")
lake.ingest([sim.path], workers=1)
pairs = lake.coincidences([1, 2], 1_000, where="pixel_max > 1000").pl()
pairs
"""),
        ("code", """\
assert sorted(pairs["frame_1"].to_list()) == flashes, pairs
hits = lake.sql("SELECT run, data_product, module, frame, unix_t_ns FROM frames "
                "WHERE frame = 900 ORDER BY module")
imgs = lake.images(hits)
fig, axes = plt.subplots(1, 2, figsize=(8, 3.4), layout="constrained")
for ax, img, row in zip(axes, imgs, hits.pl().to_dicts()):
    lo, hi = stretch(img)
    im = ax.imshow(img, vmin=lo, vmax=hi, interpolation="nearest")
    ax.set_title(f"module {row['module']} frame 900\\n{utc_text(row['unix_t_ns'])}", fontsize=8)
    fig.colorbar(im, ax=ax, label="ADC counts")
"""),
    ],
    "03_quality_and_housekeeping.ipynb": [
        ("md", "# Data quality and housekeeping quicklook"),
        ("code", SETUP),
        ("code", """\
lake = Lake(WORK / "lake")
lake.ingest([SAMPLES / "example-data", SAMPLES / "legacy-run"], workers=1)
lake.sql("SELECT * FROM run_quality ORDER BY ALL").show()
"""),
        ("code", """\
hk = lake.sql("SELECT run, device, field, time, value FROM hk "
              "WHERE field IN ('DET_TEMP', 'FPGA_TEMP') ORDER BY time").pl()
fig, ax = plt.subplots(figsize=(8, 3), layout="constrained")
for (run, field), part in hk.group_by(["run", "field"], maintain_order=True):
    ax.plot(part["time"], part["value"], ".", label=f"{run} {field}")
ax.legend(); ax.set_ylabel("deg C"); ax.set_xlabel("time (UTC)")
assert len(hk) > 0
"""),
        ("code", """\
desync = lake.sql("SELECT run, count(*) AS frames, "
                  "count(*) FILTER (WHERE time_quality & 2 = 2) AS desync FROM frames GROUP BY run "
                  "ORDER BY run").pl()
print(desync)
assert desync.filter(desync["run"] == "legacy-run")["desync"][0] == 207
"""),
    ],
    "04_offsets_and_coincidences.ipynb": [
        ("md", "# The high-energy chain: cuts, clock offsets, k-of-N coincidences\n"
               "A simulated night of four telescopes (pfflake.simulate_sky): random "
               "triggers, air showers seen by several telescopes, host clocks that are "
               "off by milliseconds and drift, packet loss, a rate spike and a mount "
               "that stops tracking. Everything is int64 ns; the truth is known."),
        ("code", """\
import tempfile, warnings
from pathlib import Path
import numpy as np
import matplotlib.pyplot as plt
from pfflake import PFFWarning
from pfflake.lake import Lake
from pfflake.cuts import Cuts
from pfflake.simulate_sky import simulate_sky

warnings.simplefilter("ignore", PFFWarning)
ROOT = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
SAMPLES = ROOT / "tests" / "data"
WORK = Path(tempfile.mkdtemp(prefix="pfflake-nb-"))
truth = simulate_sky(WORK / "runs", modules=(1, 2, 3, 4), duration_s=1800, seed=4,
                     packet_loss_fraction=0.01, spikes=[(3, 600, 20, 80.0)],
                     not_tracking=[(2, 1200, 45)])
lake = Lake(WORK / "lake")
print(lake.ingest([truth.path], workers=1).summary())
"""),
        ("md", "## Event selection\nEach cut flags frames (nothing is deleted); the "
               "parameters travel with the result."),
        ("code", """\
import polars as pl
cuts = Cuts()
sel = lake.select(cuts)
print(sel.parameters)
pl.from_arrow(sel.summary()).drop("run")
"""),
        ("md", "## Clock offsets against telescope 1\nPairs within +-20 ms, 120 s bins: "
               "peak first, then a background-subtracted median. The dashed lines are "
               "the simulator's truth."),
        ("code", """\
offsets = lake.time_offsets(1, [2, 3, 4], cuts=cuts)
o = offsets.to_pydict()
fig, ax = plt.subplots(figsize=(8, 3.5))
for m in (2, 3, 4):
    rows = [i for i, mm in enumerate(o["module"]) if mm == m and o["offset_ns"][i] is not None]
    mid = np.array([(o["bin_start_ns"][i] + o["bin_end_ns"][i]) // 2 for i in rows])
    est = np.array([o["offset_ns"][i] for i in rows])
    x = (mid - truth.t0_ns) / 60e9
    ax.errorbar(x, est / 1e6, yerr=np.array([o["spread_ns"][i] for i in rows]) / 1e6,
                fmt="o", ms=3, label=f"module {m}")
    ax.plot(x, truth.expected_offset(m, 1, mid) / 1e6, "k--", lw=0.8)
    err = est - truth.expected_offset(m, 1, mid)
    signal = np.array([o["n_pairs"][i] - o["n_background"][i] for i in rows])
    tolerance = 5 * np.array([o["spread_ns"][i] for i in rows]) / np.sqrt(signal) + 20_000
    assert (np.abs(err) < tolerance).all(), (m, err, tolerance)
ax.set_xlabel("minutes into the run"); ax.set_ylabel("t_module - t_1 (ms)"); ax.legend()
"""),
        ("md", "## Before and after the correction\nTime differences of every pair within "
               "+-20 ms: the true pairs sit milliseconds off zero until the offsets are "
               "subtracted; the flat floor is accidental pairs."),
        ("code", """\
from pfflake.timing import apply_offsets
t = lake.sql("SELECT module, host_unix_t_ns AS t FROM frames ORDER BY t").fetchnumpy()
ref = t["t"][t["module"] == 1]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
for m in (2, 3, 4):
    raw = t["t"][t["module"] == m]
    for ax, times, title in ((axes[0], raw, "before"),
                             (axes[1], apply_offsets(raw, m, offsets), "after")):
        lo = np.searchsorted(times, ref - 20_000_000)
        hi = np.searchsorted(times, ref + 20_000_000, side="right")
        dt = np.concatenate([times[a:b] - r for a, b, r in zip(lo, hi, ref) if b > a])
        ax.hist(dt / 1e6, bins=160, range=(-20, 20), histtype="step", label=f"module {m}")
        ax.set_title(f"{title} correction"); ax.set_xlabel("t_module - t_1 (ms)")
axes[0].legend()
"""),
        ("md", "## k-of-N coincidences within +-2 ms, after the correction"),
        ("code", """\
groups = lake.coincidence_groups([1, 2, 3, 4], 2_000_000, offsets=offsets, cuts=cuts)
g = groups.to_pydict()
first = np.unique(g["group_id"], return_index=True)[1]
k = np.array(g["multiplicity"])[first]
print(f"{len(first)} groups: 2-fold {np.sum(k == 2)}, 3-fold {np.sum(k == 3)}, "
      f"4-fold {np.sum(k == 4)}, ambiguous {np.sum(np.array(g['ambiguous'])[first])}")
# every shower seen by >= 2 telescopes whose frames all passed the cuts is one group
kept = {(r["module"], r["frame"]) for r in sel.kept().select(["module", "frame"]).to_pylist()}
group_of = {(m, f): gid for gid, m, f in zip(g["group_id"], g["module"], g["frame"])}
members = {}
for m, f in truth.frames.items():
    for frame in np.flatnonzero(f["shower"] >= 0):
        members.setdefault(int(f["shower"][frame]), []).append((m, int(frame)))
seen = [v for v in members.values() if len(v) >= 2 and all(x in kept for x in v)]
assert all(len({group_of.get(x) for x in v}) == 1 and group_of.get(v[0]) is not None
           for v in seen)
print(f"{len(seen)} showers, each found in exactly one group")
groups.slice(0, 6).to_pylist()
"""),
        ("md", "Coincidence rate per 240 s: the 4-fold rate dips while telescope 2's "
               "mount is not tracking (20 min, plus padding); the last bin is partial."),
        ("code", """\
rate = lake.coincidence_rate(groups, 240_000_000_000).to_pydict()
fig, ax = plt.subplots(figsize=(8, 3))
for mult in (2, 3, 4):
    rows = [i for i, x in enumerate(rate["multiplicity"]) if x == mult]
    x = (np.array(rate["bin_start_ns"])[rows] - truth.t0_ns) / 60e9
    ax.stairs(np.array(rate["rate_mhz"])[rows] / 1000, np.append(x, x[-1] + 4),
              label=f"{mult}-fold")
ax.set_xlabel("minutes into the run"); ax.set_ylabel("groups / s (240 s bins)"); ax.legend()
assert sum(rate["groups"]) == len(first)
"""),
        ("md", "## The same calls on the real samples\nThe bundled runs hold one module "
               "each, on different dates: the chain runs and finds nothing to pair."),
        ("code", """\
real = Lake(WORK / "real")
real.ingest([SAMPLES / "example-data", SAMPLES / "legacy-run"], workers=1)
print(pl.from_arrow(real.select().summary()))
print(real.coincidence_groups([1, 254], 1_000_000).num_rows, "coincident frames")
"""),
    ],
}


def main() -> None:
    for name, cells in NOTEBOOKS.items():
        nb = nbf.v4.new_notebook()
        nb.cells = [nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src)
                    for kind, src in cells]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
        nbf.write(nb, HERE / name)


if __name__ == "__main__":
    main()
