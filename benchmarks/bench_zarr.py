"""pfflake vs pypff ``convert_run`` (PFF run -> Zarr v3 stores), side by side.

    uv run python benchmarks/bench_zarr.py                 # real samples + a simulated run
    uv run python benchmarks/bench_zarr.py --frames 400000 --repeat 5

Both converters open the run themselves and write every stream plus the
sidecar into a fresh directory; each timing is the median of ``--repeat``
runs after one warm-up, alternating the two converters. MB/s counts PFF
bytes read. "disk" is allocated bytes (st_blocks) of the output, "data" the
sum of file sizes.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pfflake import zarr as pzarr

REPO = Path(__file__).resolve().parents[1]
SAMPLES = [REPO / "tests/data/example-data", REPO / "tests/data/legacy-run"]


def pypff_convert(run_dir: Path, out: Path, **kw) -> None:
    from pypff.io2 import PanosetiRun
    from pypff.zarr import convert_run

    convert_run(PanosetiRun(run_dir), out, **kw)


def pfflake_convert(run_dir: Path, out: Path, **kw) -> None:
    pzarr.convert_run(run_dir, out, **kw)


def sizes(path: Path) -> tuple[int, int]:
    files = [f for f in path.rglob("*") if f.is_file()]
    return sum(f.stat().st_blocks * 512 for f in files), sum(f.stat().st_size for f in files)


def timed(fn: Callable[..., None], run_dir: Path, out: Path, **kw) -> float:
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    fn(run_dir, out, **kw)
    return time.perf_counter() - t


def bench(run_dir: Path, work: Path, repeat: int, **kw) -> None:
    pff_bytes = sum(p.stat().st_size for p in run_dir.glob("*.pff") if p.name != "hk.pff")
    outs = {"pypff": work / "pypff", "pfflake": work / "pfflake"}
    fns = {"pypff": pypff_convert, "pfflake": pfflake_convert}
    times: dict[str, list[float]] = {k: [] for k in fns}
    for name in fns:  # warm-up: imports, page cache
        timed(fns[name], run_dir, outs[name], **kw)
    for i in range(repeat):
        for name in list(fns)[:: 1 if i % 2 == 0 else -1]:
            times[name].append(timed(fns[name], run_dir, outs[name], **kw))
    med = {k: statistics.median(v) for k, v in times.items()}
    mb = pff_bytes / 1e6
    print(f"\n{run_dir.name}: {mb:.1f} MB of PFF, {kw or 'defaults'}, median of {repeat}")
    for name in fns:
        disk, data = sizes(outs[name])
        spread = f"{min(times[name]):.3f}-{max(times[name]):.3f}"
        print(
            f"  {name:8s} {med[name]:8.3f} s  ({spread})  {mb / med[name]:8.1f} MB/s  "
            f"disk {disk / 1e6:8.2f} MB  data {data / 1e6:8.2f} MB"
        )
    print(f"  ratio pypff/pfflake: {med['pypff'] / med['pfflake']:.2f}x")
    leaked = [f for f in outs["pfflake"].rglob("*") if f.is_file() and _has_secret(f)]
    print(f"  known secrets in pfflake output: {leaked or 'none'}")


def _has_secret(path: Path) -> bool:
    from pfflake.simulate import SIM_SECRETS

    data = path.read_bytes()
    return any(s.encode() in data for s in (*SIM_SECRETS, "epowerpanoseti"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100_000, help="simulated frames per stream")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-sim", action="store_true", help="real samples only")
    ap.add_argument("--shard-factor", type=int, default=0)
    args = ap.parse_args()
    kw = {"shard_factor": args.shard_factor} if args.shard_factor else {}
    with tempfile.TemporaryDirectory(prefix="bench_zarr_") as tmp:
        tmp_path = Path(tmp)
        runs = list(SAMPLES)
        if not args.no_sim:
            from pfflake.simulate import simulate_run

            t = time.perf_counter()
            sim = simulate_run(tmp_path / "sim", products=("img16", "ph256"), n_frames=args.frames)
            print(f"simulated {args.frames} frames x 2 streams in {time.perf_counter() - t:.1f} s")
            runs.append(sim.path)
        for i, run_dir in enumerate(runs):
            bench(run_dir, tmp_path / f"out{i}", args.repeat, **kw)


if __name__ == "__main__":
    main()
