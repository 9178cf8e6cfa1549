"""Lake queries vs "the pypff way" (numpy over pypff-format Zarr stores), side by side.

Run:  uv run python benchmarks/bench_query.py [--frames 1000000] [--replicas 8] [--runs 5]
      uv run python benchmarks/bench_query.py --layout pypff       # another store layout

Data (made once under --dir, reused): a simulated run of two img16 modules
(1, 2) of --frames frames each at 10 kHz (2.54 kB a frame: 5 GB of PFF for 1M
frames) with 1000 bright events coincident in both modules and 500 more in
each module alone, ingested through PFF into a lake (Parquet + Zarr). To
reach >= 10M frame rows, --replicas more modules (3, 4, ...) are added by
hard-linking modules 1 and 2's committed Parquet files and Zarr stores under
new module partitions and committing them to the log: every frame row of the
lake is a real PFF-derived row with a real image behind it, but replicas are
copies (same times and pixels as module 1 or 2). ``--layout`` picks the
image layout of the lake's stores (``Lake(path, **layout)``): ``default``,
the lake's (64 KiB image chunks, 32 img16 frames, in 4096-frame shards: a
scattered frame costs one small chunk's decode); ``pypff``, pypff's 8 MB
chunks (4096 img16 frames); ``shard16``, 16-frame chunks in 4096-frame shards.

Questions, each timed as the median of --runs after one warm-up (a warm-up
over 10 s is the only run), on warm page cache: the lake through ``Lake.sql``,
``Lake.images`` and ``Lake.coincidences`` on one reused connection; pypff's
way as a pypff user would write it, numpy over the same stores
(``zarr.open_group``; stores hold header arrays, ``unix_t_ns`` and
``images``, no pixel statistics):

1. time range (10% of the run) + pixel threshold over all modules (< 1 s);
2. images of the 1000 brightest frames (scattered over 2M frames) (< 0.2 s);
3. coincidences of bright frames (pixel_max > 1000, within 1 us) between the
   two 1M-frame modules (< 2 s);

and the join methods for an all-frames coincidence search (1M pairs out):
banded equi-join (used), inequality join, ASOF, and numpy searchsorted.
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

import numpy as np

THRESHOLD = 1000
WINDOW_NS = 1000
FRAME_RATE_HZ = 10_000
#: Store layouts to compare: Lake(path, **layout) arguments ({} is the lake's default).
LAYOUTS = {
    "default": {},
    "pypff": {"time_chunk": None},
    "shard16": {"time_chunk": 16, "image_shard": 4096},
}


def make_run(src: Path, frames: int) -> Path:
    from pfflake.simulate import BrightEvent, simulate_run

    runs = sorted(src.glob("obs_*.pffd"))
    if runs and (runs[0] / "run_complete").exists():
        return runs[0]
    shutil.rmtree(src, ignore_errors=True)
    rng = np.random.default_rng(42)
    picks = rng.choice(frames, 2000, replace=False)
    events = [BrightEvent(int(f)) for f in picks[:1000]]
    events += [BrightEvent(int(f), modules=(1,)) for f in picks[1000:1500]]
    events += [BrightEvent(int(f), modules=(2,)) for f in picks[1500:]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return simulate_run(
            src,
            products=("img16",),
            modules=(1, 2),
            n_frames=frames,
            frames_per_file=200_000,
            frame_rate_hz=FRAME_RATE_HZ,
            bright_events=events,
        ).path


def build_lake(base: Path, frames: int, replicas: int, layout: str, workers: int):
    from pfflake.lake import Lake

    root = base / f"lake-{layout}-{frames}-{replicas}"
    lake = Lake(root, **LAYOUTS[layout])
    if (root / "_pfflake_log").is_dir() and lake.version == 2:
        return lake
    shutil.rmtree(root, ignore_errors=True)
    run = make_run(base / f"src-{frames}", frames)
    t = time.perf_counter()
    result = lake.ingest([run], workers=workers, progress=False)
    print(f"  ingest: {result.summary()} [{time.perf_counter() - t:.1f} s]")
    replicate(lake, replicas)
    return lake


def replicate(lake, replicas: int) -> None:
    """Add modules 3.. as hard links of modules 1 and 2 (Parquet files and Zarr stores)."""
    from pfflake.log import publish_commit

    snap = lake.snapshot()
    sources = {s.module: s for s in snap.streams.values()}
    adds, streams = [], []
    for k in range(replicas):
        module, source = 3 + k, sources[1 + k % 2]
        store = Path(source.store)
        new_store = store.with_name(
            store.name.replace(f"module_{source.module}", f"module_{module}")
        )
        shutil.copytree(lake.root / store, lake.root / new_store, copy_function=os.link)
        for e in snap.table_files("frames"):
            if e["partition"]["module"] != source.module:
                continue
            path = e["path"].replace(f"module={source.module}/", f"module={module}/")
            (lake.root / path).parent.mkdir(parents=True, exist_ok=True)
            os.link(lake.root / e["path"], lake.root / path)
            adds.append(
                {
                    **e,
                    "path": path,
                    "partition": {**e["partition"], "module": module},
                    "stream": f"dp_img16.bpp_2.module_{module}",
                }
            )
        streams.append(
            {
                "run": source.run,
                "stream": f"dp_img16.bpp_2.module_{module}",
                "data_product": "img16",
                "module": module,
                "frames": source.frames,
                "store": new_store.as_posix(),
                "files": [],
            }
        )
    publish_commit(
        lake.root,
        snap.version + 1,
        {
            "operation": "benchmark-replicas",
            "add": adds,
            "remove": [],
            "streams": streams,
            "runs": [],
            "hk_records": {},
        },
    )


def timed(fn, runs: int) -> tuple[float, object]:
    """Median of ``runs`` calls after a warm-up call; a warm-up over 10 s is the only run."""
    t = time.perf_counter()
    result = fn()
    first = time.perf_counter() - t
    if first > 10:
        return first, result
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


# -- the pypff way: numpy over the stores ---------------------------------------------


def open_stores(lake) -> dict[int, object]:
    import zarr

    return {
        s.module: zarr.open_group(lake.root / s.store, mode="r")
        for s in lake.snapshot().streams.values()
    }


def blockwise_pixel_max(group, lo: int, hi: int, block: int = 65_536) -> np.ndarray:
    images = group["images"]
    out = np.empty(hi - lo, dtype=np.int64)
    for a in range(lo, hi, block):
        b = min(a + block, hi)
        out[a - lo : b - lo] = images[a:b].reshape(b - a, -1).max(axis=1)
    return out


def pypff_time_range(stores, t0: int, t1: int) -> int:
    hits = 0
    for group in stores.values():
        t = group["unix_t_ns"][:]
        idx = np.flatnonzero((t >= t0) & (t <= t1))
        if len(idx) == 0:
            continue
        lo, hi = int(idx[0]), int(idx[-1]) + 1
        pixel_max = blockwise_pixel_max(group, lo, hi)
        hits += int((pixel_max[idx - lo] > THRESHOLD).sum())
    return hits


def pypff_images(stores, modules: np.ndarray, times: np.ndarray) -> np.ndarray:
    out = np.empty((len(times), 32, 32), dtype=np.uint16)
    for module in np.unique(modules):
        group = stores[int(module)]
        t = group["unix_t_ns"][:]
        order = np.argsort(t, kind="stable")
        rows = np.flatnonzero(modules == module)
        frames = order[np.searchsorted(t[order], times[rows])]
        unique, inverse = np.unique(frames, return_inverse=True)
        out[rows] = group["images"].oindex[unique][inverse]
    return out


def window_pairs(a: np.ndarray, b: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (i, j) with |b[j] - a[i]| <= window (numpy: sort + two searchsorted)."""
    order = np.argsort(b, kind="stable")
    sb = b[order]
    lo = np.searchsorted(sb, a - window, side="left")
    hi = np.searchsorted(sb, a + window, side="right")
    counts = hi - lo
    i = np.repeat(np.arange(len(a)), counts)
    j = order[
        np.arange(counts.sum())
        - np.repeat(np.cumsum(counts) - counts, counts)
        + np.repeat(lo, counts)
    ]
    return i, j


def pypff_coincidences(stores, threshold: int | None) -> int:
    sides = []
    for module in (1, 2):
        group = stores[module]
        t = group["unix_t_ns"][:]
        if threshold is not None:
            t = t[blockwise_pixel_max(group, 0, len(t)) > threshold]
        sides.append(t)
    i, _ = window_pairs(sides[0], sides[1], WINDOW_NS)
    return len(i)


# -- main ------------------------------------------------------------------------------------


def line(label: str, lake_s: float, pypff_s: float | None = None, target: float | None = None):
    ratio = (
        f"  pypff way {pypff_s * 1e3:9.1f} ms  ratio {pypff_s / lake_s:6.1f}x" if pypff_s else ""
    )
    mark = "" if target is None else f"  < {target:.1f} s: {'yes' if lake_s < target else 'NO'}"
    print(f"  {label:52s} lake {lake_s * 1e3:8.1f} ms{ratio}{mark}")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "pfflake-bench-query")
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--replicas", type=int, default=8)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--layout", choices=tuple(LAYOUTS), default="default")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    lake = build_lake(args.dir, args.frames, args.replicas, args.layout, args.workers)
    rows = lake.sql("SELECT count(*), count(DISTINCT module) FROM frames").fetchall()[0]
    first, last = lake.sql(
        "SELECT min(unix_t_ns), max(unix_t_ns) FROM frames WHERE time_quality = 0"
    ).fetchall()[0]
    images = lake.snapshot().streams
    import zarr

    arr = zarr.open_array(lake.root / next(iter(images.values())).store / "images", mode="r")
    real = [s for s in images.values() if s.module in (1, 2)]
    image_bytes = sum(
        p.stat().st_size
        for s in real
        for p in (lake.root / s.store / "images").rglob("*")
        if p.is_file()
    )
    print(
        f"lake {lake.root}: {rows[0]:,} frame rows in {rows[1]} modules; images "
        f"chunks {arr.chunks[0]} frames, shards {arr.shards and arr.shards[0]}, "
        f"{image_bytes / 1e9:.2f} GB for modules 1-2; {os.cpu_count()} cores; "
        f"median of {args.runs}"
    )
    stores = open_stores(lake)

    # 1. time range + threshold
    t0 = first + (last - first) * 45 // 100
    t1 = first + (last - first) * 55 // 100
    sql = (
        f"SELECT run, data_product, module, frame, unix_t_ns, pixel_max FROM frames "
        f"WHERE unix_t_ns BETWEEN {t0} AND {t1} AND pixel_max > {THRESHOLD}"
    )
    lake_s, table = timed(lambda: lake.sql(sql).to_arrow_table(), args.runs)
    import polars as pl

    scan_s, scanned = timed(
        lambda: (
            lake.scan()
            .filter(pl.col("unix_t_ns").is_between(t0, t1) & (pl.col("pixel_max") > THRESHOLD))
            .select("module", "frame")
            .collect()
        ),
        args.runs,
    )
    pypff_s, hits = timed(lambda: pypff_time_range(stores, t0, t1), args.runs)
    assert hits == table.num_rows == scanned.height, (hits, table.num_rows, scanned.height)
    print(f"1. time range (10% of the run) + pixel_max > {THRESHOLD}: {hits} hits")
    line("DuckDB SQL", lake_s, pypff_s, 1.0)
    line("Polars scan", scan_s, pypff_s, 1.0)

    # 2. images of the 1000 brightest frames
    hits = lake.sql(
        "SELECT run, data_product, module, frame, unix_t_ns FROM frames "
        "WHERE module IN (1, 2) ORDER BY pixel_max DESC, module, frame LIMIT 1000"
    ).to_arrow_table()
    frames = hits.column("frame").to_numpy()
    modules = hits.column("module").to_numpy()
    span = f"frames {frames.min():,}..{frames.max():,} of modules 1-2"
    lake_s, got = timed(lambda: lake.images(hits), args.runs)
    pypff_s, theirs = timed(
        lambda: pypff_images(stores, modules, hits.column("unix_t_ns").to_numpy()), args.runs
    )
    np.testing.assert_array_equal(got, theirs)
    by_time = hits.select(["module", "unix_t_ns", "data_product"])
    time_s, _ = timed(lambda: lake.images(by_time), args.runs)
    chunks = len({(m, f // arr.chunks[0]) for m, f in zip(modules, frames, strict=True)})
    print(f"2. images of the 1000 brightest frames ({span}; {chunks} chunks touched)")
    line("by (run, data_product, module, frame)", lake_s, pypff_s, 0.2)
    line("by (module, unix_t_ns)", time_s, pypff_s, 0.2)

    # 3. coincidences of bright frames between two 1M-frame modules
    where = f"pixel_max > {THRESHOLD}"
    lake_s, pairs = timed(
        lambda: lake.coincidences([1, 2], WINDOW_NS, where=where).to_arrow_table(), args.runs
    )
    pypff_s, count = timed(lambda: pypff_coincidences(stores, THRESHOLD), args.runs)
    assert count == pairs.num_rows, (count, pairs.num_rows)
    print(
        f"3. coincidences of bright frames, modules 1 and 2, within {WINDOW_NS} ns: {count} pairs"
    )
    line(f"banded join, where {where}", lake_s, pypff_s, 2.0)

    # join methods, every frame (no predicate)
    from pfflake.query import coincidence_sql

    print(f"   join methods, every frame of modules 1 and 2 within {WINDOW_NS} ns:")
    numpy_s, count = timed(lambda: pypff_coincidences(stores, None), args.runs)
    for method in ("band", "range", "asof"):
        query = coincidence_sql([1, 2], WINDOW_NS, method=method)
        method_s, table = timed(lambda q=query: lake.sql(q).to_arrow_table(), args.runs)
        count_s, _ = timed(
            lambda q=query: lake.sql(f"SELECT count(*) FROM ({q})").fetchall(), args.runs
        )
        label = f"{method} to Arrow ({table.num_rows:,} pairs; count only {count_s * 1e3:.0f} ms)"
        line(label, method_s, numpy_s if method == "band" else None, 2.0)
    print(
        f"   numpy searchsorted on unix_t_ns from the stores: {numpy_s * 1e3:.1f} ms "
        f"({count:,} pairs)"
    )


if __name__ == "__main__":
    main()
