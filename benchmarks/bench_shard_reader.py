"""pfflake's hand-rolled shard reader vs zarr-python's partial shard decode (issue 13).

Run:  uv run python benchmarks/bench_shard_reader.py [--frames 1000000] [--runs 7]
      uv run python benchmarks/bench_shard_reader.py --no-cold          # warm cache only
      uv run python benchmarks/bench_shard_reader.py --drop-caches      # cold = drop_caches (root)

Question: before keeping pfflake's own reader of sharded Zarr v3 (``pfflake.store.read``)
arrays (``read_frames`` -> ``_read_object`` -> ``fetch_object``: ``os.pread`` of a
shard's index, its crc32c check, ``pread`` of each wanted inner chunk, numcodecs
decode, over ``pfflake.store.layout.ArrayLayout``), is it clearly faster than what
current zarr-python does by itself for the same selection? zarr-python 3 reads a
selection of a sharded array with partial shard decode: per touched shard it
fetches the index and only the inner chunks the selection needs (byte-range
reads), decoding chunks concurrently on its event loop / thread pool.

Data (made once under --dir, reused): a simulated run of one img16 module of
--frames frames at 10 kHz (2.54 kB a frame: 2.5 GB of PFF for 10^6 frames),
ingested into a lake with the lake's default layout (``lake_zarr_layout``:
images in 32-frame = 64 KiB chunks inside 4096-frame shards, Blosc LZ4 after
bit-shuffle). Hit sets, 1000 frames each (seed 1):

- ``scattered``: 1000 distinct frames uniform over the run (about one chunk a
  hit, every shard touched);
- ``clustered``: 10 bursts of 100 distinct frames, each burst within 1000
  consecutive frames (0.1 s at 10 kHz): a few chunks per burst;
- ``contiguous``: frames k..k+999 (a plain slice for zarr-python).

Readers, each returning a new ``(1000, 32, 32)`` uint16 array in hit order
(hits unsorted; the array is opened once, outside the timing):

- ``pfflake``: ``pfflake.store.read.read_frames`` (the reader ``Lake.images`` uses,
  without the log replay and the key lookup);
- ``zarr oindex``: ``arr.oindex[np.unique(hits)][inverse]`` (what a zarr user
  writes; same as ``get_orthogonal_selection``), zarr's default config
  (``async.concurrency`` 10);
- ``zarr oindex c=1`` / ``c=64``: the same under ``zarr.config.set({"async.concurrency": N})``;
  ``threads=2``: under ``{"threading.max_workers": 2}`` (one thread a core here;
  ``codec_pipeline.batch_size`` 64 or 1024 was slower than the default 1);
- ``zarr array[i] loop``: one ``arr[i]`` per hit (the naive way: the shard
  index is read again for every hit);
- ``zarr slice``: ``arr[k:k + 1000]`` (contiguous only).

Warm: the median of --runs after one warm-up. Cold: the median of --runs, each
after evicting the array's files from the page cache (``posix_fadvise
DONTNEED`` per file after ``sync``: affects only this store, not the other
users of a shared machine; ``--drop-caches`` writes ``/proc/sys/vm/drop_caches``
instead, root only). Ratios are zarr-python time / pfflake time (> 1: pfflake
faster), as the median of the per-round ratios (readers alternate within a
round). Every reader's pixels are checked equal to pfflake's and, for a sample
of hits, to the frames read back from the PFF files (independent truth).
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

FRAME_RATE_HZ = 10_000
N_HITS = 1000


def build_lake(base: Path, frames: int, workers: int):
    """The benchmark lake (made once, reused): one img16 module, the default layout."""
    from pfflake.lake import Lake
    from pfflake.simulate import BrightEvent, simulate_run

    root = base / f"lake-{frames}"
    lake = Lake(root)
    if (root / "_pfflake_log").is_dir() and lake.version >= 1:
        return lake
    shutil.rmtree(root, ignore_errors=True)
    src = base / f"src-{frames}"
    shutil.rmtree(src, ignore_errors=True)
    rng = np.random.default_rng(42)
    events = [BrightEvent(int(f)) for f in rng.choice(frames, 1000, replace=False)]
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = simulate_run(
            src,
            products=("img16",),
            modules=(1,),
            n_frames=frames,
            frames_per_file=200_000,
            frame_rate_hz=FRAME_RATE_HZ,
            bright_events=events,
        ).path
    print(f"  simulated {frames:,} frames [{time.perf_counter() - t:.1f} s]")
    t = time.perf_counter()
    result = lake.ingest([run], workers=workers, progress=False)
    print(f"  ingest: {result.summary()} [{time.perf_counter() - t:.1f} s]")
    return lake


def hit_sets(n_frames: int) -> dict[str, np.ndarray]:
    """The three 1000-hit selections, in a shuffled (not sorted) order."""
    rng = np.random.default_rng(1)
    scattered = rng.choice(n_frames, N_HITS, replace=False)
    starts = np.sort(rng.choice(n_frames // 1000 - 1, 10, replace=False)) * 1000
    clustered = np.concatenate([s + rng.choice(1000, N_HITS // 10, replace=False) for s in starts])
    rng.shuffle(clustered)
    k = int(rng.integers(0, n_frames - N_HITS))
    contiguous = np.arange(k, k + N_HITS)
    return {
        "scattered": scattered.astype(np.int64),
        "clustered": clustered.astype(np.int64),
        "contiguous": contiguous.astype(np.int64),
    }


# -- readers -------------------------------------------------------------------------------


def pfflake_reader(store: Path, shape: tuple[int, ...], dtype) -> Callable:
    from pfflake.store.read import read_frames

    def read(hits: np.ndarray) -> np.ndarray:
        out = np.empty((len(hits), *shape), dtype=dtype)
        read_frames([(store, hits, np.arange(len(hits)))], "images", out)
        return out

    return read


def zarr_oindex(array, config: dict | None = None) -> Callable:
    """``oindex`` over the unique hits, under ``zarr.config.set(config)``."""
    import zarr

    def read(hits: np.ndarray) -> np.ndarray:
        unique, inverse = np.unique(hits, return_inverse=True)
        with zarr.config.set(config or {}):
            return array.oindex[unique][inverse]

    return read


def zarr_loop(array) -> Callable:
    return lambda hits: np.stack([array[int(i)] for i in hits])


def zarr_slice(array) -> Callable:
    return lambda hits: array[int(hits[0]) : int(hits[0]) + len(hits)]


# -- page cache ------------------------------------------------------------------------------


def evict(paths: list[Path], drop_caches: bool) -> None:
    """Make the next read of ``paths`` come from disk."""
    os.sync()
    if drop_caches:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def resident_bytes(paths: list[Path]) -> int | None:
    """Bytes of ``paths`` in the page cache (``fincore``; ``None`` when not installed)."""
    if not shutil.which("fincore"):
        return None
    out = subprocess.run(
        ["fincore", "-b", "-n", "-o", "RES", *map(str, paths)],
        capture_output=True,
        text=True,
        check=True,
    )
    return sum(int(x) for x in out.stdout.split())


def rounds(
    readers: dict[str, Callable], hits: np.ndarray, runs: int, cold: Callable | None
) -> dict[str, list[float]]:
    """Seconds per reader per round; readers alternate within a round (same conditions)."""
    times: dict[str, list[float]] = {name: [] for name in readers}
    if cold is None:  # warm-up: page cache, zarr's event loop and metadata, Blosc threads
        for read in readers.values():
            read(hits)
    for _ in range(runs):
        for name, read in readers.items():
            if cold is not None:
                cold()
            gc.collect()
            t = time.perf_counter()
            read(hits)
            times[name].append(time.perf_counter() - t)
    return times


def report(times: dict[str, list[float]], base: str = "pfflake") -> None:
    for name, ts in times.items():
        ratios = [t / b for t, b in zip(ts, times[base], strict=True)]
        ratio = "" if name == base else f"  ratio {statistics.median(ratios):5.2f}x"
        spread = f"(min {min(ts) * 1e3:7.1f}, max {max(ts) * 1e3:7.1f})"
        print(f"    {name:22s} {statistics.median(ts) * 1e3:8.1f} ms {spread}{ratio}")


def truth_check(lake, hits: np.ndarray, got: np.ndarray, sample: int = 50) -> None:
    """A sample of hits against the frames read straight from the PFF files."""
    from pfflake.sequence import PFFSequence

    snap = lake.snapshot()
    (state,) = snap.streams.values()
    run_dir = Path(lake.sql("SELECT source_path FROM runs").fetchall()[0][0])
    stream_files = sorted(run_dir.glob(f"*{state.stream}.seqno_*.pff"))
    assert stream_files, (run_dir, state.stream)
    pick = np.sort(np.random.default_rng(7).choice(len(hits), sample, replace=False))
    seq = PFFSequence(stream_files)
    for i in pick:
        np.testing.assert_array_equal(seq.read_images([int(hits[i])])[0], got[i])


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "pfflake-bench-shard")
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--cold-runs", type=int, default=5)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--no-cold", action="store_true")
    ap.add_argument("--drop-caches", action="store_true", help="cold cache via drop_caches (root)")
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)

    import zarr

    lake = build_lake(args.dir, args.frames, args.workers)
    (state,) = lake.snapshot().streams.values()
    store = lake.root / state.store
    array = zarr.open_array(store / "images", mode="r")
    files = sorted(p for p in (store / "images").rglob("*") if p.is_file())
    size = sum(p.stat().st_size for p in files)
    print(
        f"lake {lake.root}: {array.shape[0]:,} img16 frames; images {array.dtype} chunks "
        f"{array.chunks}, shards {array.shards}, codecs "
        f"{[type(c).__name__ for c in array.compressors]}; {len(files)} files, "
        f"{size / 1e9:.2f} GB; zarr {zarr.__version__}; {os.cpu_count()} cores"
    )
    print(f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1, 5 min)")

    ours = pfflake_reader(store, array.shape[1:], array.dtype)
    cold_fn = None if args.no_cold else (lambda: evict(files, args.drop_caches))
    for label, hits in hit_sets(array.shape[0]).items():
        chunks = len(np.unique(hits // array.chunks[0]))
        shards = len(np.unique(hits // array.shards[0]))
        print(f"\n{label}: {N_HITS} hits, {chunks} chunks in {shards} shards")
        readers = {
            "pfflake": ours,
            "zarr oindex": zarr_oindex(array),
            "zarr oindex c=1": zarr_oindex(array, {"async.concurrency": 1}),
            "zarr oindex c=64": zarr_oindex(array, {"async.concurrency": 64}),
            "zarr oindex threads=2": zarr_oindex(array, {"threading.max_workers": 2}),
            "zarr array[i] loop": zarr_loop(array),
        }
        if label == "contiguous":
            readers["zarr slice"] = zarr_slice(array)
        expected = ours(hits)
        for name, read in readers.items():
            np.testing.assert_array_equal(read(hits), expected, err_msg=name)
        truth_check(lake, hits, expected)
        print("  pixels identical across readers; 50 hits equal to the PFF files")
        print(f"  warm cache, median of {args.runs}:")
        report(rounds(readers, hits, args.runs, None))
        if cold_fn is not None:
            cold_fn()
            left = resident_bytes(files)
            how = "drop_caches" if args.drop_caches else "fadvise DONTNEED per file"
            note = "" if left is None else f"; {left / 1e6:.1f} MB resident after eviction"
            print(f"  cold cache ({how}{note}), median of {args.cold_runs}:")
            report(rounds(readers, hits, args.cold_runs, cold_fn))
    print(f"\nload after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1, 5 min)")


if __name__ == "__main__":
    main()
