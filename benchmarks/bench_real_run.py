"""pfflake vs pypff 1.0.4 on the full public example run (pypff's sdist: 35 MB, 25,061 frames).

Run:  uv run --group bench python benchmarks/bench_real_run.py [--runs 15]

Real files are small, so what is measured is mostly fixed cost: every task
opens the stream afresh (as a script calling ``PFFSequence([...])`` does),
then reads. For each stream of the run and each task it prints the median
time of both readers (alternating runs), the median per-run ratio
pypff / pfflake against the target, and a page-cache read of the same bytes.
The run comes from pypff's sdist, fetched into a cache (``_pypff_sdist.py``).
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

import numpy as np
from _common import page_cache_read, paired
from _pypff_sdist import example_run


def tasks():
    def meta(cls):
        def run(path):
            with cls([path]) as seq:
                seq.get_metadata_arrays([*list(seq.metadata_offsets), "unix_t_ns"])

        return run

    def stamps(cls):
        def run(path):
            with cls([path]) as seq:
                seq.timestamps()

        return run

    def batches(cls):
        def run(path):
            with cls([path]) as seq:
                total = 0
                for b in seq.iter_batches(4096):
                    total += int(b.sum(dtype=np.int64))

        return run

    def legacy(cls):
        def run(path):
            cls(str(path)).readpff(metadata=True)

        return run

    from pypff.io import datapff as pypff_datapff
    from pypff.io2 import PFFSequence as pypff_seq

    from pfflake.pypff.io import datapff
    from pfflake.pypff.io2 import PFFSequence

    return [
        ("get_metadata_arrays(all + unix_t_ns)", meta(pypff_seq), meta(PFFSequence), 30.0),
        ("timestamps()", stamps(pypff_seq), stamps(PFFSequence), 10.0),
        ("iter_batches(4096) pixel sum", batches(pypff_seq), batches(PFFSequence), 1.0),
        ("io.datapff.readpff(metadata=True)", legacy(pypff_datapff), legacy(datapff), 1.0),
    ]


def check_same_answers(path: Path) -> None:
    """Both readers agree on the bytes before they are timed."""
    from pypff.io import datapff as pypff_datapff
    from pypff.io2 import PFFSequence as pypff_seq

    from pfflake.pypff.io import datapff
    from pfflake.pypff.io2 import PFFSequence

    a, b = pypff_seq([path]), PFFSequence([path])
    keys = list(a.metadata_offsets)
    ma, mb = a.get_metadata_arrays(keys), b.get_metadata_arrays(keys)
    assert all(np.array_equal(ma[k], mb[k]) for k in keys), "metadata differs"
    ok = b.timestamp_quality() == 0
    assert np.array_equal(a.timestamps()[ok], b.timestamps()[ok]), "timestamps differ"
    a.close()
    b.close()
    (da, ma), (db, mb) = (c(str(path)).readpff(metadata=True) for c in (pypff_datapff, datapff))
    assert np.array_equal(da, db), "legacy data differs"
    assert str(ma.keys()) == str(mb.keys()), "legacy metadata layout differs"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    run_dir = example_run()
    files = sorted(p for p in run_dir.glob("*.pff") if p.name != "hk.pff")
    total = sum(p.stat().st_size for p in files)
    print(f"run {run_dir} ({total / 1e6:.1f} MB); load {os.getloadavg()[0]:.2f} (1-min)")
    print(f"{args.runs} alternating runs; medians; ratio = median of per-run pypff / pfflake")
    misses = 0
    for path in files:
        check_same_answers(path)
        size = path.stat().st_size
        anchor = statistics.median(page_cache_read(path) for _ in range(args.runs))
        from pfflake import PFFSequence

        with PFFSequence([path]) as seq:
            n = len(seq)
        print(
            f"\n{path.name}: {size / 1e6:.1f} MB, {n:,} frames; "
            f"page-cache read {anchor * 1e3:.2f} ms"
        )
        print(
            f"  {'task':38s} {'pypff ms':>9s} {'pfflake ms':>10s} {'ratio':>7s} {'target':>7s}"
            f" {'x page-cache':>12s}"
        )
        for label, theirs, ours, target in tasks():
            t_theirs, t_ours, ratio = paired(
                lambda t=theirs, p=path: t(p), lambda o=ours, p=path: o(p), args.runs
            )
            flag = "ok" if ratio >= target else "MISS"
            misses += flag == "MISS"
            print(
                f"  {label:38s} {t_theirs * 1e3:9.2f} {t_ours * 1e3:10.2f} {ratio:6.1f}x "
                f"{target:6.1f}x {t_ours / anchor:11.1f}x {flag}"
            )
    print(
        f"\nload after: {os.getloadavg()[0]:.2f}; "
        + ("all targets met" if not misses else f"{misses} MISS")
    )


if __name__ == "__main__":
    main()
