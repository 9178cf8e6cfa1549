"""Lake ingest (Parquet + Zarr) vs pypff's convert_run (Zarr only), side by side.

Run:  uv run --group bench python benchmarks/bench_lake.py [--gb 2.0] [--runs 3]
      uv run --group bench python benchmarks/bench_lake.py --checksums [--gb 1] [--runs 5]

``--checksums`` measures what the per-range source CRC-32 (``fsck --sources``)
costs an ingest: one-process ingests (units run in-process) alternately with
and without it (``pfflake.lake.units.source_checksums`` replaced by a no-op), the
median of the per-pair ratios, and the time of ``pfflake fsck --sources``.

On one simulated run (img16, two modules, --gb in total) prints, as medians
of --runs: seconds and MB/s of a plain file copy (the physical anchor), of
pfflake's lake ingest, of pfflake.zarr.convert_run and of pypff's
convert_run; the ratios pypff/pfflake; bytes on disk of each output; and the
peak RSS of the ingest (each process measured by VmHWM).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_run(base: Path, gb: float) -> Path:
    from pfflake.simulate import simulate_run

    runs = sorted(base.glob("obs_*.pffd"))
    if runs:
        return runs[0]
    n = int(gb * 1e9 / 2540 / 2)
    return simulate_run(base, products=("img16",), modules=(1, 2), n_frames=n,
                        frames_per_file=200_000, frame_rate_hz=10_000).path


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def timed(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


_INGEST = """
import sys, time, warnings
warnings.simplefilter("ignore")
from pfflake.lake import Lake
t = time.perf_counter()
r = Lake(sys.argv[1]).ingest([sys.argv[2]], workers=int(sys.argv[3]), progress=False)
dt = time.perf_counter() - t
hwm = int([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])
import resource
child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(dt, hwm * 1024, child * 1024, r.frames)
"""


_NO_CHECKSUMS = """
import pfflake.lake.units  # the module whose run_unit reads it (the package only re-exports)
pfflake.lake.units.source_checksums = lambda seq, start, stop: []
"""


def ingest_once(run: Path, lake: Path, workers: int, checksums: bool = True
                ) -> tuple[float, int, int]:
    shutil.rmtree(lake, ignore_errors=True)
    code = _INGEST if checksums else _NO_CHECKSUMS + _INGEST
    out = subprocess.run([sys.executable, "-c", code, str(lake), str(run), str(workers)],
                         capture_output=True, text=True, check=True)
    dt, hwm, child, _ = out.stdout.split()
    return float(dt), int(hwm), int(child)


def checksum_cost(run: Path, out: Path, runs: int) -> None:
    """Ingest with vs without source checksums (one process), then fsck --sources."""
    size = sum(p.stat().st_size for p in run.glob("*.pff"))
    with_, without, ratios = [], [], []
    for _ in range(runs):
        a = ingest_once(run, out / "lake", 1, checksums=False)[0]
        b = ingest_once(run, out / "lake", 1, checksums=True)[0]
        without.append(a)
        with_.append(b)
        ratios.append(b / a)
    t_a, t_b = statistics.median(without), statistics.median(with_)
    print(f"  ingest, 1 process, no source checksums   {t_a:8.2f} s {size / t_a / 1e6:8,.0f} MB/s")
    print(f"  ingest, 1 process, with source checksums {t_b:8.2f} s {size / t_b / 1e6:8,.0f} MB/s")
    print(f"  cost of the checksums: median per-pair ratio {statistics.median(ratios):.3f} "
          f"(+{(statistics.median(ratios) - 1) * 100:.1f}%), "
          f"{(t_b - t_a) / (size / 1e9):+.2f} s per GB")
    fsck = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pfflake", "fsck", str(out / "lake"), "--sources"],
                       capture_output=True, check=True)
        fsck.append(time.perf_counter() - t)
    t_f = statistics.median(fsck)
    print(f"  pfflake fsck --sources (warm page cache) {t_f:8.2f} s {size / t_f / 1e6:8,.0f} MB/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "pfflake-bench-lake")
    ap.add_argument("--gb", type=float, default=2.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--checksums", action="store_true",
                    help="measure the cost of source checksums and of fsck --sources only")
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    run = make_run(args.dir / "src", args.gb)
    size = sum(p.stat().st_size for p in run.glob("*.pff"))
    out = args.dir / "out"
    print(f"run {run.name}: {size / 1e9:.2f} GB of PFF; median of {args.runs} runs; "
          f"load {os.getloadavg()[0]:.2f}")
    if args.checksums:
        checksum_cost(run, out, args.runs)
        shutil.rmtree(out, ignore_errors=True)
        return

    def copy():
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(run, out)

    t_copy = timed(copy, args.runs)

    ingest = [ingest_once(run, out / "lake", args.workers) for _ in range(args.runs)]
    t_ingest = statistics.median(x[0] for x in ingest)
    rss = max(max(x[1], x[2]) for x in ingest)
    lake_bytes = du(out / "lake")

    from pfflake.zarr import convert_run as ours

    def ours_convert():
        shutil.rmtree(out / "z", ignore_errors=True)
        ours(run, out / "z")

    t_ours = timed(ours_convert, args.runs)
    ours_bytes = du(out / "z")

    from pypff.io2 import PanosetiRun as PypffRun
    from pypff.zarr import convert_run as theirs

    def theirs_convert():
        shutil.rmtree(out / "pz", ignore_errors=True)
        theirs(PypffRun(run), out / "pz")

    t_theirs = timed(theirs_convert, args.runs)
    theirs_bytes = du(out / "pz")

    def line(label, t, nbytes=None, ratio=None):
        extra = f"  ratio {ratio:5.1f}x" if ratio else ""
        disk = f"  {nbytes / 1e6:9,.1f} MB on disk ({size / nbytes:5.1f}:1)" if nbytes else ""
        print(f"  {label:44s} {t:8.2f} s {size / t / 1e6:8,.0f} MB/s{disk}{extra}")

    line("plain copy of the run (anchor)", t_copy)
    line("pypff convert_run (Zarr)", t_theirs, theirs_bytes)
    line(f"pfflake ingest (Parquet + Zarr, {args.workers} workers)", t_ingest, lake_bytes,
         t_theirs / t_ingest)
    line("pfflake.zarr.convert_run (Zarr)", t_ours, ours_bytes, t_theirs / t_ours)
    print(f"  peak RSS of the ingest (largest process): {rss / 1e6:.0f} MB (limit 500 MB)")
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
