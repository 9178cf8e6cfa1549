"""Timing helpers shared by the benchmark scripts (median of runs, page-cache anchor)."""

from __future__ import annotations

import gc
import statistics
import time
from pathlib import Path


def page_cache_read(path: Path) -> float:
    """Seconds to read ``path`` through the page cache: the physical anchor."""
    buf = bytearray(8 * 1024 * 1024)
    t = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass
    return time.perf_counter() - t


def timeit(fn, runs: int) -> float:
    """Median seconds of ``runs`` calls of ``fn`` (garbage collected before each)."""
    times = []
    for _ in range(runs):
        gc.collect()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def paired(theirs, ours, runs: int) -> tuple[float, float, float]:
    """Time ``theirs`` and ``ours`` alternately ``runs`` times.

    Returns (median theirs s, median ours s, median of the per-pair ratios
    theirs/ours). On a shared machine whose speed drifts, each pair runs under
    the same conditions, so the median ratio is steadier than a ratio of medians.
    """
    a, b = [], []
    for _ in range(runs):
        for fn, out in ((theirs, a), (ours, b)):
            gc.collect()
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    ratios = [x / y for x, y in zip(a, b, strict=True)]
    return statistics.median(a), statistics.median(b), statistics.median(ratios)


def peak_rss_of(code: str) -> int:
    """Peak RSS (bytes) of a fresh Python process running ``code``.

    Reads VmHWM from /proc: ``ru_maxrss`` is inherited across fork/exec on
    Linux and would report the parent's peak instead.
    """
    import subprocess
    import sys

    probe = (
        "\nprint([l for l in open('/proc/self/status')"
        " if l.startswith('VmHWM')][0].split()[1])\n"
    )
    out = subprocess.run([sys.executable, "-c", code + probe], capture_output=True, text=True,
                         check=True)
    return int(out.stdout.split()[-1]) * 1024
