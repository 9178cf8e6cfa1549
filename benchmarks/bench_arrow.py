"""PFF -> Arrow throughput (``pfflake.arrow.to_arrow``) next to a plain page-cache read.

Run:  uv run python benchmarks/bench_arrow.py [--gb 1.0] [--runs 3] [--batch-size 65536]

Makes (once, under --dir) a simulated img16 stream with
``pfflake.simulate.make_big_stream``, then prints for each variant the median
of ``--runs`` full passes (drain the RecordBatchReader) in ms and in MB/s of
PFF bytes, and the ratio to a plain ``readinto`` of the same file from the
page cache (the physical anchor). The last lines give the peak RSS of a fresh
process streaming the file, to show memory follows the batch, not the file.
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

from _common import page_cache_read, peak_rss_of, timeit

from pfflake import PFFSequence
from pfflake.arrow import frame_batches, to_arrow
from pfflake.simulate import make_big_stream


def drain(path: Path, batch_size: int, **kw) -> int:
    """Rows read by one full pass (a fresh sequence, as a user would open it)."""
    with PFFSequence([path]) as seq:
        reader = to_arrow(seq, batch_size=batch_size, **kw)
        return sum(b.num_rows for b in reader)


def drain_ingest(path: Path, batch_size: int) -> int:
    """The lake-ingest shape: metadata + stats batches plus the pixel copy for Zarr."""
    with PFFSequence([path]) as seq:
        batches = frame_batches(seq, batch_size=batch_size, threshold=100.0, with_pixels=True)
        return sum(fb.batch.num_rows for fb in batches)


def rss_probe(path: Path, batch_size: int, images: bool) -> int:
    """Peak RSS (bytes, VmHWM) of a fresh process draining ``to_arrow(images=images)``."""
    code = (
        "from pfflake import PFFSequence\n"
        "from pfflake.arrow import to_arrow\n"
        f"seq = PFFSequence([{str(path)!r}])\n"
        f"reader = to_arrow(seq, batch_size={batch_size}, images={images})\n"
        "n = sum(b.num_rows for b in reader)\n"
    )
    return peak_rss_of(code)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--dir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "pfflake-bench-arrow"
    )
    ap.add_argument("--gb", type=float, default=1.0, help="img16 stream size (1e9 bytes)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=65536)
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    existing = sorted(args.dir.glob("*dp_img16*.pff"))
    if existing and abs(existing[0].stat().st_size - args.gb * 1e9) < 0.01e9:
        path = existing[0]
    else:
        for p in existing:
            p.unlink()
        path = make_big_stream(args.dir, "img16", args.gb).files[0]
    size = path.stat().st_size
    bs = args.batch_size

    page_cache_read(path)  # warm the page cache
    anchor = statistics.median(page_cache_read(path) for _ in range(args.runs))
    print(f"{path.name}: {size / 1e9:.2f} GB, batch_size={bs}, median of {args.runs} runs")
    print(f"  {'variant':44s} {'ms':>8s} {'MB/s':>8s} {'x read':>7s}")
    print(
        f"  {'page-cache read (readinto 8 MB)':44s} {anchor * 1e3:8.0f} {size / anchor / 1e6:8,.0f}"
    )
    variants = [
        ("to_arrow(images=False, stats=False)", lambda: drain(path, bs, images=False, stats=False)),
        ("to_arrow(images=False, stats=True)", lambda: drain(path, bs, images=False, stats=True)),
        ("to_arrow(images=True, stats=True)", lambda: drain(path, bs, images=True, stats=True)),
        ("frame_batches(stats, threshold, with_pixels)", lambda: drain_ingest(path, bs)),
    ]
    for label, fn in variants:
        t = timeit(fn, args.runs)
        print(f"  {label:44s} {t * 1e3:8.0f} {size / t / 1e6:8,.0f} {t / anchor:7.1f}")
    print()
    for images in (False, True):
        rss = rss_probe(path, bs, images)
        print(f"peak RSS draining to_arrow(images={images}) in a fresh process: {rss / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
