"""pfflake vs pypff 1.0.4, side by side on the same simulated files (issue: reader core).

Run:  uv run --group bench python benchmarks/bench_reader.py [--gb 1.0] [--runs 3]

Prints, for each task, the median of ``--runs`` timings for both readers, the
ratio pypff_time / pfflake_time, and MB/s next to a plain page-cache read of
the same bytes (the physical anchor). Files are generated once with pfflake's
own writer under --dir and reused. Then measures peak RSS of streaming a
--rss-gb file through ``iter_batches`` in a fresh subprocess.
"""

from __future__ import annotations

import argparse
import os
import statistics
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from _common import page_cache_read, paired, peak_rss_of

from pfflake.paths import format_pff_name
from pfflake.products import get_product
from pfflake.writer import PFFWriter

NS = 1_000_000_000


def make_stream(path: Path, product: str, size_bytes: int, seed: int = 0) -> Path:
    """A realistic stream: 10 kHz frames, WR timing, host latency, noise pixels."""
    if path.exists() and path.stat().st_size >= size_bytes * 0.99:
        return path
    prod = get_product(product)
    probe = path.with_suffix(".probe")
    with PFFWriter(probe, product) as w:
        w.write_frames(_headers(prod, np.arange(1)), _images(prod, 1, np.random.default_rng(0)))
    frame = probe.stat().st_size
    probe.unlink()
    n = size_bytes // frame
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".part")
    with PFFWriter(tmp, product) as w:
        for lo in range(0, n, 65536):
            idx = np.arange(lo, min(n, lo + 65536))
            w.write_frames(_headers(prod, idx, rng), _images(prod, len(idx), rng))
    tmp.rename(path)
    return path


def _headers(prod, idx, rng=None):
    rng = rng or np.random.default_rng(0)
    t = 1_750_000_000 * NS + idx.astype(np.int64) * 100_000  # 10 kHz
    sec, nsec = t // NS, t % NS
    arrive = t + rng.integers(0, 3_000_000, len(idx))
    cols = {
        "pkt_num": idx % 4_000_000_000,
        "pkt_tai": (sec + 37) % 1024,
        "pkt_nsec": nsec,
        "tv_sec": arrive // NS,
        "tv_usec": (arrive % NS) // 1000,
    }
    if prod.header_kind == "quabo":
        return {"quabo_num": idx % 4, **cols}
    return {f"quabo_{q}.{k}": v for q in range(4) for k, v in cols.items()}


def _images(prod, n, rng):
    shape = (n, *prod.image_shape)
    if prod.dtype.kind == "u":
        return rng.poisson(30, shape).astype(prod.dtype)
    return (rng.normal(0, 20, shape) + 700).astype(prod.dtype)


def tasks(path: Path, n_random: int = 1000):
    from pypff.io2 import PFFSequence as PypffSequence

    from pfflake import PFFSequence

    def meta(cls):
        def run():
            with cls([path]) as seq:
                keys = [*list(seq.metadata_offsets), "unix_t_ns"]
                seq.get_metadata_arrays(keys)

        return run

    def stamps(cls):
        def run():
            with cls([path]) as seq:
                seq.timestamps()

        return run

    def batches(cls):
        def run():
            with cls([path]) as seq:
                total = 0
                for b in seq.iter_batches(4096):
                    total += int(b.sum(dtype=np.int64))

        return run

    def random_images(cls):
        idx = np.random.default_rng(7).integers(0, 10**9, n_random)

        def run():
            with cls([path]) as seq:
                seq.read_images(idx % len(seq))

        return run

    return (
        [
            ("get_metadata_arrays(all + unix_t_ns)", meta, 30.0),
            ("timestamps()", stamps, 10.0),
            ("iter_batches(4096) pixel sum", batches, 1.0),
            (f"read_images({n_random} random)", random_images, 1.0),
        ],
        PypffSequence,
        PFFSequence,
    )


def check_same_answers(path: Path) -> None:
    """Both readers agree before we time them (on fields; times where pypff is right)."""
    from pypff.io2 import PFFSequence as PypffSequence

    from pfflake import PFFSequence

    a, b = PypffSequence([path]), PFFSequence([path])
    keys = list(a.metadata_offsets)
    ma, mb = a.get_metadata_arrays(keys), b.get_metadata_arrays(keys)
    assert all(np.array_equal(ma[k], mb[k]) for k in keys), "metadata differs"
    ok = b.timestamp_quality() == 0
    assert np.array_equal(a.timestamps()[ok], b.timestamps()[ok]), "timestamps differ"
    a.close()
    b.close()


def rss_probe(path: Path, module: str = "pfflake") -> int:
    """Peak RSS (bytes) of a fresh process streaming ``path`` with ``module``'s reader.

    Reads VmHWM from /proc: ``ru_maxrss`` is inherited across fork/exec on
    Linux and would report the benchmark parent's peak instead.
    """
    reader = "pypff.io2" if module == "pypff" else "pfflake"
    code = (
        "import numpy as np\n"
        f"from {reader} import PFFSequence\n"
        f"seq = PFFSequence([{str(path)!r}])\n"
        "s = 0\n"
        "for b in seq.iter_batches(4096): s += int(b.sum(dtype=np.int64))\n"
    )
    return peak_rss_of(code)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--dir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "pfflake-bench"
    )
    ap.add_argument("--gb", type=float, default=1.0, help="img16 stream size")
    ap.add_argument("--ph256-gb", type=float, default=0.25)
    ap.add_argument("--rss-gb", type=float, default=2.0)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    start = datetime(2025, 6, 1, 4, 0, 0, tzinfo=UTC)
    files = {
        "img16": make_stream(
            args.dir / format_pff_name(start, "img16", 1, 0), "img16", int(args.gb * 1e9)
        ),
        "ph256": make_stream(
            args.dir / format_pff_name(start, "ph256", 254, 0), "ph256", int(args.ph256_gb * 1e9)
        ),
    }
    print(
        f"{args.runs} alternating runs; times are medians, ratio = median of the "
        "per-run pypff_time / pfflake_time"
    )
    for name, path in files.items():
        size = path.stat().st_size
        check_same_answers(path)
        anchor = statistics.median(page_cache_read(path) for _ in range(args.runs))
        print(
            f"\n{name}: {path.name} ({size / 1e9:.2f} GB); page-cache read "
            f"{anchor * 1e3:.0f} ms = {size / anchor / 1e6:,.0f} MB/s"
        )
        print(
            f"  {'task':38s} {'pypff s':>9s} {'pfflake s':>10s} {'ratio':>7s} {'target':>7s} "
            f"{'pfflake MB/s':>13s}"
        )
        task_list, theirs, ours = tasks(path)
        for label, make, target in task_list:
            t_theirs, t_ours, ratio = paired(make(theirs), make(ours), args.runs)
            flag = "ok" if ratio >= target else "MISS"
            print(
                f"  {label:38s} {t_theirs:9.3f} {t_ours:10.4f} {ratio:6.1f}x {target:5.0f}x "
                f"{size / t_ours / 1e6:13,.0f} {flag}"
            )
    big = make_stream(
        args.dir / format_pff_name(start, "img16", 2, 0), "img16", int(args.rss_gb * 1e9), seed=1
    )
    rss, theirs_rss = rss_probe(big), rss_probe(big, "pypff")
    print(
        f"\npeak RSS streaming {big.stat().st_size / 1e9:.2f} GB through iter_batches(4096): "
        f"{rss / 1e6:.0f} MB (limit 300 MB) {'ok' if rss < 300e6 else 'MISS'}; "
        f"pypff {theirs_rss / 1e6:.0f} MB (its mapped pages are never released)"
    )


if __name__ == "__main__":
    main()
