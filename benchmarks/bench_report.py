"""How long ``pfflake report`` takes for a night: the demo lake, and a simulated night of N
frames (sky simulator: ph256 triggers of 4 telescopes over 8 hours, showers, clock offsets,
packet loss, a rate spike, a not-tracking stretch).

    uv run --group bench python benchmarks/bench_report.py --frames 10000000

Prints the seconds of each section for a first report (which commits the pedestals) and the
median of ``--runs`` later reports (pedestals present), with the machine's load.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f} / {five:.1f} (1 / 5 min), {os.cpu_count()} cores"


def _report(lake, out: Path, workers: int | None):
    from pfflake.report import ReportOptions, write_report

    t = time.perf_counter()
    r = write_report(lake, out, options=ReportOptions(workers=workers), strict=True)
    return time.perf_counter() - t, r


def _print(label: str, seconds: float, r) -> None:
    parts = ", ".join(f"{s.id} {s.seconds:.1f}" for s in r.sections)
    print(f"{label}: {seconds:.1f} s  ({parts})  [{_load()}]")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1_000_000, help="frames of the night")
    ap.add_argument("--hours", type=float, default=8.0)
    ap.add_argument("--runs", type=int, default=3, help="later reports timed (median)")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--skip-demo", action="store_true")
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: temp)")
    args = ap.parse_args()

    from pfflake.file import PFFWarning
    from pfflake.lake import Lake
    from pfflake.simulate_sky import simulate_sky

    work = Path(args.dir or tempfile.mkdtemp(prefix="bench_report_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if not args.skip_demo:
            from rich.console import Console

            from pfflake.demo import run_demo

            with open(os.devnull, "w") as null:
                t = time.perf_counter()
                demo = run_demo(work / "demo", console=Console(file=null),
                                workers=args.workers)
                total = time.perf_counter() - t
            print(f"pfflake demo (ingest + questions + report): {total:.1f} s  [{_load()}]")
            runs = []
            for i in range(args.runs):
                s, r = _report(Lake(demo.lake), work / f"demo_report_{i}", args.workers)
                runs.append(s)
            _print(f"demo lake report (median of {args.runs})", statistics.median(runs), r)

        modules = (254, 253, 252, 250)
        duration = int(args.hours * 3600)
        shower_rate, shower_p = 0.2, 0.7
        trigger = max(0.1, args.frames / len(modules) / duration - shower_rate * shower_p)
        t = time.perf_counter()
        truth = simulate_sky(work / "runs", modules=modules, duration_s=duration,
                             trigger_rate_hz=trigger, shower_rate_hz=shower_rate,
                             shower_p=shower_p, packet_loss_fraction=0.002,
                             spikes=[(253, duration / 3, 60, 30 * trigger)],
                             not_tracking=[(252, duration / 2, 600)],
                             wr_out_of_sync=(250,), frames_per_file=1_000_000)
        n = sum(len(f["true_ns"]) for f in truth.frames.values())
        print(f"simulated {n:,} frames of {len(modules)} modules over {args.hours:g} h "
              f"in {time.perf_counter() - t:.0f} s")
        lake = Lake(work / "lake")
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PFFWarning)
            lake.ingest([truth.path], workers=args.workers, progress=False)
        print(f"ingested in {time.perf_counter() - t:.0f} s")
        s, r = _report(lake, work / "night_report_first", args.workers)
        _print(f"night of {n:,} frames, first report (commits pedestals)", s, r)
        runs = []
        for i in range(args.runs):
            s, r = _report(lake, work / f"night_report_{i}", args.workers)
            runs.append(s)
        _print(f"night of {n:,} frames, later reports (median of {args.runs})",
               statistics.median(runs), r)
        print(f"report: {r.index}")
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
