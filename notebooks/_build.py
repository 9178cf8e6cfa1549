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
