"""Lake ingest on a Dask LocalCluster (2 worker processes) vs a single process.

Run:  uv run --group bench python benchmarks/bench_distributed.py [--gb 2.0] [--runs 3]

On one simulated run (img16, two modules, --gb of PFF in total) prints, as
medians of --runs, the seconds and MB/s (PFF bytes read / wall time of the
``Lake.ingest`` call) of: a single-process ingest (``workers=1``), the local
process pool (``workers=--workers``, for reference) and the same ingest with
``client=`` a ``distributed.LocalCluster(processes=True, n_workers=--workers,
threads_per_worker=1)``; then the speed-up of the cluster over one process.

Each timing covers the ingest call only: interpreter start-up, the cluster's
start-up and the workers' first imports (one warm-up ingest of a small run)
are reported separately and excluded. The variants run interleaved (one of
each per round), so load from other processes skews them alike; the load
average is printed, and so are the CPU seconds of each variant (the
ingest's own work, which load from other processes does not change). Every
run ingests into a new, empty lake; the run's PFF files stay in the page
cache, as they would after a copy to a cluster's scratch file system.
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
import warnings
from pathlib import Path


def make_run(base: Path, gb: float) -> Path:
    from pfflake.simulate import simulate_run

    runs = sorted(base.glob("obs_*.pffd"))
    if runs:
        return runs[0]
    n = int(gb * 1e9 / 2540 / 2)  # img16 frames are 2,540 B; two modules
    return simulate_run(base, products=("img16",), modules=(1, 2), n_frames=n,
                        frames_per_file=200_000, frame_rate_hz=10_000).path


_LOCAL = """
import sys, time, warnings
warnings.simplefilter("ignore")
import logging; logging.disable(logging.WARNING)
import resource
from pfflake.lake import Lake
def cpu():
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + c.ru_utime + c.ru_stime
c0, t = cpu(), time.perf_counter()
r = Lake(sys.argv[1]).ingest([sys.argv[2]], workers=int(sys.argv[3]), progress=False)
print(time.perf_counter() - t, r.frames, cpu() - c0)
"""


def local_ingest(run: Path, lake: Path, workers: int) -> tuple[float, int, float]:
    """Seconds of one ``Lake.ingest`` in a fresh process (the call only), its frames, and
    the CPU seconds of the call (its pool's processes included)."""
    shutil.rmtree(lake, ignore_errors=True)
    out = subprocess.run([sys.executable, "-c", _LOCAL, str(lake), str(run), str(workers)],
                         capture_output=True, text=True, check=True)
    dt, frames, cpu = out.stdout.split()
    return float(dt), int(frames), float(cpu)


def _worker_cpu() -> float:
    import resource

    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def dask_ingest(client, run: Path, lake: Path) -> tuple[float, int, float]:
    """Seconds of one ``Lake.ingest(client=)``, its frames, and the CPU seconds of the
    coordinator and the workers (the scheduler and nannies not counted)."""
    from pfflake.lake import Lake

    shutil.rmtree(lake, ignore_errors=True)
    workers0 = sum(client.run(_worker_cpu).values())
    coordinator0 = time.process_time()
    t = time.perf_counter()
    r = Lake(lake).ingest([run], client=client, progress=False)
    dt = time.perf_counter() - t
    cpu = time.process_time() - coordinator0 + sum(client.run(_worker_cpu).values()) - workers0
    return dt, r.frames, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path,
                    default=Path(tempfile.gettempdir()) / "pfflake-bench-distributed")
    ap.add_argument("--gb", type=float, default=2.0, help="size of the simulated run (GB)")
    ap.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    ap.add_argument("--workers", type=int, default=2, help="Dask workers (and pool size)")
    ap.add_argument("--no-pool", action="store_true", help="skip the local process pool")
    args = ap.parse_args()

    import logging

    logging.disable(logging.WARNING)  # the simulated run's cut tail is logged per read
    warnings.simplefilter("ignore")
    from distributed import Client, LocalCluster

    src = args.dir / f"src-{args.gb:g}gb"
    src.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    run = make_run(src, args.gb)
    made = time.perf_counter() - t
    size = sum(p.stat().st_size for p in run.glob("*.pff"))
    out = args.dir / "out"
    print(f"run {run.name}: {size / 1e9:.2f} GB of PFF (made in {made:.1f} s); "
          f"median of {args.runs} runs; {args.workers} Dask workers x 1 thread")

    load0 = os.getloadavg()[0]
    t = time.perf_counter()
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    client = Client(cluster)
    started = time.perf_counter() - t
    try:
        t = time.perf_counter()
        warm = make_run(args.dir / "warmup", 0.01)
        dask_ingest(client, warm, out / "warm-lake")
        warmed = time.perf_counter() - t
        # Interleaved, so that load from other processes hits every variant alike.
        single, pool, dist = [], [], []
        for _ in range(args.runs):
            single.append(local_ingest(run, out / "lake", 1))
            if not args.no_pool:
                pool.append(local_ingest(run, out / "lake", args.workers))
            dist.append(dask_ingest(client, run, out / "lake"))
    finally:
        client.close()
        cluster.close()

    frames = {x[1] for x in single + pool + dist}
    assert len(frames) == 1, f"ingests disagree on the frame count: {frames}"

    def line(label: str, results: list[tuple[float, int, float]]) -> float:
        times = [x[0] for x in results]
        med = statistics.median(times)
        spread = f"{min(times):.2f}-{max(times):.2f}"
        cpu = statistics.median(x[2] for x in results)
        print(f"  {label:42s} {med:7.2f} s  {size / med / 1e6:5.0f} MB/s  (runs {spread} s)"
              f"  CPU {cpu:6.1f} s")
        return med

    print(f"  Dask cluster start-up {started:.1f} s, warm-up ingest {warmed:.1f} s (excluded)")
    print(f"  load average (1 min) before / after: {load0:.1f} / {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores (other processes skew the figures)")
    t1 = line("single process (workers=1)", single)
    if pool:
        tp = line(f"local process pool (workers={args.workers})", pool)
    td = line(f"Dask LocalCluster ({args.workers} workers)", dist)
    print(f"  speed-up of the Dask cluster over one process: {t1 / td:.2f}x"
          + (f" (local pool: {t1 / tp:.2f}x)" if pool else ""))
    rounds = statistics.median(s[0] / d[0] for s, d in zip(single, dist, strict=True))
    best = min(x[0] for x in single) / min(x[0] for x in dist)
    print(f"  speed-up, median of per-round ratios: {rounds:.2f}x; best run vs best run: "
          f"{best:.2f}x (both less sensitive to load that drifts between rounds)")
    cpu1 = statistics.median(x[2] for x in single)
    cpud = statistics.median(x[2] for x in dist)
    print(f"  CPU seconds of the Dask ingest / one process: {cpud:.1f} / {cpu1:.1f} = "
          f"{cpud / cpu1:.2f} (the cluster path's overhead; under load the wall-clock "
          "speed-up falls short of 2x, the CPU cost does not change)")
    print(f"  frames per ingest: {frames.pop():,}")
    shutil.rmtree(out, ignore_errors=True)  # the simulated runs stay in --dir for the next time


if __name__ == "__main__":
    main()
