"""Shared helpers of the lake reliability tests: a small simulated run, the naive
truth about it, and comparisons of whole lakes.

Independent truth: frame counts and pixels come from ``tests/naive.py`` (which
imports nothing from pfflake) reading the source files, never from the lake.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from pfflake import PFFWarning
from pfflake.lake import Lake
from pfflake.simulate import SimulatedRun, simulate_run
from tests.naive import naive_read

PRODUCTS = ("img16", "ph256")
MODULES = (1, 2)
N_FRAMES = 360
#: Small Zarr chunks: many chunk files, so many distinct "zarr_file" kill points.
ZARR_LAYOUT = {"time_chunk": 32, "ts_chunk": 64}


def small_run(root: Path, **kw) -> SimulatedRun:
    """2 products x 2 modules x 360 frames in 3 files per stream, last file cut short."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        return simulate_run(
            root,
            products=kw.pop("products", PRODUCTS),
            modules=kw.pop("modules", MODULES),
            n_frames=kw.pop("n_frames", N_FRAMES),
            frames_per_file=kw.pop("frames_per_file", 150),
            desync_frames=[3],
            missing_quabo_frames={0: [0], 10: [0, 1]},
            truncate_tail_bytes=kw.pop("truncate_tail_bytes", 100),
            bright_events=[50],
            **kw,
        )


@dataclass
class Truth:
    """Per stream (data product, module): frame count and pixels, by the naive parser."""

    frames: dict[tuple[str, int], int]
    images: dict[tuple[str, int], np.ndarray]

    @property
    def total(self) -> int:
        return sum(self.frames.values())


def naive_truth(run_dir: Path) -> Truth:
    frames, images = {}, {}
    streams: dict[tuple[str, int], list[Path]] = {}
    for p in sorted(run_dir.glob("start_*.pff")):
        dp = p.name.split(".dp_")[1].split(".")[0]
        module = int(p.name.split(".module_")[1].split(".")[0])
        streams.setdefault((dp, module), []).append(p)
    for key, files in streams.items():
        files.sort(key=lambda p: int(p.name.split(".seqno_")[1].split(".")[0]))
        parts = [naive_read(p).images for p in files]
        parts = [x for x in parts if x is not None and len(x)]
        imgs = np.concatenate(parts) if parts else np.empty((0,))
        frames[key], images[key] = len(imgs), imgs
    return Truth(frames, images)


def ingest_cmd(lake: Path, runs: list[Path], workers: int = 1) -> list[str]:
    code = textwrap.dedent(f"""
        import warnings
        from pfflake.lake import Lake
        warnings.simplefilter("ignore")
        Lake({str(lake)!r}, **{ZARR_LAYOUT!r}).ingest({[str(r) for r in runs]!r}, workers={workers})
    """)
    return [sys.executable, "-c", code]


def run_ingest(lake: Path, runs: list[Path], env: dict[str, str] | None = None, timeout=300):
    return subprocess.run(
        ingest_cmd(lake, runs),
        env={**os.environ, **(env or {})},
        capture_output=True,
        timeout=timeout,
    )


def ingest(lake: Path, runs: list[Path]) -> Lake:
    lk = Lake(lake, **ZARR_LAYOUT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        lk.ingest(runs, workers=1)
    return lk


def stream_counts(lake: Lake) -> dict[tuple[str, int], int]:
    rows = lake.sql("SELECT data_product, module, count(*) FROM frames GROUP BY ALL").fetchall()
    return {(dp, m): n for dp, m, n in rows}


def check_reads_as(lake: Lake, truth: Truth | None, version: int) -> None:
    """The lake is exactly at ``version`` and its frames are exactly ``truth``'s."""
    assert lake.version == version
    got = stream_counts(lake)
    want = {} if truth is None else {k: v for k, v in truth.frames.items() if v}
    assert got == want
    n, distinct = lake.sql(
        "SELECT count(*), count(DISTINCT (run, data_product, module, frame)) FROM frames"
    ).fetchall()[0]
    assert n == distinct == sum(want.values())
    snap = lake.snapshot()
    for s in snap.streams.values():
        key = (s.data_product, s.module)
        assert s.frames == want.get(key, 0)
        if s.frames:
            g = zarr.open_group(lake.root / s.store, mode="r")
            np.testing.assert_array_equal(g["images"][: s.frames], truth.images[key])
    report = lake.fsck()
    assert report.ok, report.errors


def lake_state(lake: Lake):
    """Frames table (sorted, every column) and every Zarr array up to the committed count."""
    table = lake.sql(
        "SELECT * EXCLUDE (time) FROM frames ORDER BY run, data_product, module, frame"
    ).to_arrow_table()
    hk = lake.sql("SELECT * FROM hk ORDER BY ALL").to_arrow_table()
    arrays = {}
    for s in lake.snapshot().streams.values():
        g = zarr.open_group(lake.root / s.store, mode="r")
        for name, arr in g.arrays():
            arrays[(s.run, s.stream, name)] = arr[: s.frames]
    return table, hk, arrays


def assert_same_lake(a: Lake, b: Lake) -> None:
    ta, ha, za = lake_state(a)
    tb, hb, zb = lake_state(b)
    assert ta.num_rows == tb.num_rows
    assert ta.equals(tb), "frames tables differ"
    assert ha.equals(hb), "hk tables differ"
    assert za.keys() == zb.keys()
    for k in za:
        np.testing.assert_array_equal(za[k], zb[k], err_msg=str(k))
