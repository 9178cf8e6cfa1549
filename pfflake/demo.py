"""``pfflake demo``: a lake from the bundled sample runs plus a simulated pair of modules.

It shows the whole path in one command: real PFF files and a simulated run
with coincident flashes in two modules are ingested into a lake (Parquet +
Zarr v3), a few example questions from ``sql/examples`` are answered, the
brightest frames are written as PNGs, a light curve as CSV and PNG, the lake's
quality report (:mod:`pfflake.report`) as a static HTML page, and the
demo says where everything is.
"""

from __future__ import annotations

import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from .console import make_console, print_table
from .file import PFFWarning
from .lake import Lake
from .png import frame_title, write_frame_png, write_light_curve_png
from .query import light_curve
from .report import ReportOptions, write_report
from .simulate import BrightEvent, simulate_run

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "tests" / "data"
FLASH_FRAMES = (400, 1300, 2200)


@dataclass
class DemoResult:
    out: Path
    lake: Path
    pngs: list[Path] = field(default_factory=list)
    light_curve_csv: Path | None = None
    light_curve_png: Path | None = None
    coincidences: int = 0
    report: Path | None = None


def sample_runs() -> list[Path]:
    """The real sample runs shipped in the source tree (empty in a bare wheel install)."""
    return [p for p in (SAMPLE_DIR / "example-data", SAMPLE_DIR / "legacy-run") if p.is_dir()]


def _show(console: Console, title: str, rel) -> None:
    print_table(console, rel.to_arrow_table(), title=title)


def run_demo(out: str | Path = "demo-lake", *, console: Console | None = None,
             workers: int | None = None) -> DemoResult:
    """Build the demo under ``out`` (replacing an earlier demo there) and print its results."""

    if console is None:
        console = make_console()
    out = Path(out)
    if out.exists():
        if not (out / "lake" / "_pfflake_log").is_dir() and any(out.iterdir()):
            raise FileExistsError(f"{out} exists and is not a pfflake demo; not touching it")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    result = DemoResult(out=out, lake=out / "lake")

    console.print(f"[bold]1. Simulating[/] two img16 modules (3 and 4) with {len(FLASH_FRAMES)} "
                  "coincident flashes")
    sim = simulate_run(
        out / "simulated",
        products=("img16",),
        modules=(3, 4),
        n_frames=3000,
        frame_rate_hz=1000,
        bright_events=[BrightEvent(frame=f, amplitude=3000.0) for f in FLASH_FRAMES],
        desync_frames=[1000],
        missing_quabo_frames={1500: [0]},
    )
    runs = [*sample_runs(), sim.path]
    console.print("[bold]2. Ingesting[/] " + ", ".join(p.name for p in runs))
    lake = Lake(result.lake)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        summary = lake.ingest(runs, workers=workers, progress=False)
    console.print("   " + summary.summary())

    console.print("[bold]3. Asking questions[/] (sql/examples and the views)")
    _show(console, "Frames per stream and clock quality (view run_quality)", lake.sql(
        "SELECT run, data_product, module, frames, round(duration_s, 3) AS duration_s, "
        "time_source, no_wr_frames, clock_desync_frames, quabo_missing_frames "
        "FROM run_quality ORDER BY ALL"))
    _show(console, "Brightest frames", lake.sql(
        "SELECT run, data_product, module, frame, time, pixel_max, pixel_sum FROM frames "
        "ORDER BY pixel_max DESC LIMIT 5"))
    coinc = lake.coincidences([3, 4], 1_000, where="pixel_max > 1000")
    result.coincidences = coinc.to_arrow_table().num_rows
    _show(console, "Coincidences: modules 3 and 4 within 1 us, pixel_max > 1000", coinc.select(
        "module_1, frame_1, module_2, frame_2, unix_t_ns_1, dt_ns, pixel_max_1, pixel_max_2"))

    console.print("[bold]4. Fetching images[/] of the brightest frames")
    rows = lake.sql(
        "SELECT run, data_product, module, frame, unix_t_ns, pixel_max FROM frames "
        "WHERE data_product = 'img16' ORDER BY pixel_max DESC LIMIT 6"
    ).to_arrow_table()
    stack = lake.images(rows)
    (out / "png").mkdir()
    for i, row in enumerate(rows.to_pylist()):
        name = f"brightest_{i}_module{row['module']}_frame{row['frame']}.png"
        result.pngs.append(write_frame_png(out / "png" / name, stack[i], title=frame_title(row)))

    console.print("[bold]5. Light curve[/] of modules 3 and 4 (10 ms buckets)")
    curve = light_curve(lake, 10_000_000, module=[3, 4], where="(time_quality & 2) = 0")
    curve = curve.to_arrow_table()
    import pyarrow.csv as pacsv

    result.light_curve_csv = out / "light_curve.csv"
    pacsv.write_csv(curve, result.light_curve_csv)
    result.light_curve_png = _plot_light_curve(curve, out / "light_curve.png")

    console.print("[bold]6. Quality report[/] of the whole lake (pfflake report)")

    rep = write_report(lake, out / "report", options=_report_options(workers))
    result.report = rep.index
    console.print(f"   {len(rep.figures)} figures in {rep.seconds:.1f} s")

    console.print(f"\n[bold green]Done.[/] Lake: {result.lake}")
    console.print(f"  PNGs of the brightest frames: {out / 'png'}")
    console.print(f"  light curve: {result.light_curve_csv} and {result.light_curve_png}")
    console.print(f"  quality report: {result.report}  (open it in a browser)")
    console.print(f'  try: uv run pfflake sql {result.lake} "SELECT * FROM run_quality"')
    return result


def _report_options(workers: int | None):
    return ReportOptions(workers=workers)


def _plot_light_curve(curve, path: Path) -> Path:
    """The light curve as a PNG: mean pixel_sum per frame in each bucket, per module, UTC axis."""
    return write_light_curve_png(
        path,
        curve.column("bucket_ns").to_numpy(),
        curve.column("mean").to_numpy(zero_copy_only=False),
        curve.column("module").to_numpy(),
        ylabel="mean pixel_sum per frame",
        title="simulated run: modules 3 and 4, 10 ms buckets (clock-desync frames left out)",
    )
