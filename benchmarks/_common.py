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
