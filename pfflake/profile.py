"""``pfflake show`` and ``pfflake profile``: pypff's CLI faces, on pfflake's reader.

:func:`profile_run` times the five reads pypff's ``profile`` command times
(sequential ``get_frame``, bulk ``read_images_range``, strided slice, random
``read_images``, metadata extraction) on every stream of a run and, when
pypff is installed, the same reads with pypff's ``io2`` classes side by side
(same frames, same random indices). Each time is one cold-ish pass over a
freshly opened run, as pypff measures it: good for a first look at a
machine, not a benchmark (see ``benchmarks/``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .header import kernel_description
from .run import PanosetiRun


@dataclass
class ProfileRow:
    """One timed read of one stream (``pypff_seconds`` is None without pypff)."""

    test: str
    product: str
    frames: int
    seconds: float
    mb: float
    pypff_seconds: float | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.mb / self.seconds if self.seconds > 0 else 0.0

    @property
    def speedup(self) -> float | None:
        if self.pypff_seconds is None or self.seconds <= 0:
            return None
        return self.pypff_seconds / self.seconds


def _reads(
    seq: Any, n_frames: int, step: int, indices: np.ndarray
) -> list[tuple[str, int, Callable]]:
    n = min(n_frames, len(seq))
    strided = np.arange(0, len(seq), step)[: max(n // step, 1)]
    keys = ["tv_sec", "tv_usec", "pkt_nsec", "pkt_num"]
    if "quabo_0.tv_sec" in seq.metadata_offsets:
        keys = [f"quabo_0.{k}" for k in keys]

    def sequential() -> None:
        for i in range(n):
            seq.get_frame(i)

    return [
        ("Sequential Read", n, sequential),
        ("Bulk Read (read_images_range)", n, lambda: seq.read_images_range(0, n)),
        (f"Strided Read (step={step})", len(strided), lambda: seq[0 : int(strided[-1]) + 1 : step]),
        ("Random Access", len(indices), lambda: seq.read_images(indices)),
        ("Metadata Extraction", len(seq), lambda: seq.get_metadata_arrays(keys)),
    ]


def _time(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _pypff_run(run_dir: Path) -> Any | None:
    try:
        from pypff.io2 import PanosetiRun as PypffRun
    except ImportError:
        return None
    return PypffRun(run_dir)


def profile_run(
    run_dir: str | os.PathLike[str],
    products: Sequence[str] | None = None,
    *,
    n_frames: int = 1000,
    step: int = 10,
    random_samples: int = 100,
    compare: bool = True,
    seed: int = 0,
) -> list[ProfileRow]:
    """Time pypff's five profile reads per stream; pypff side by side if ``compare`` and installed.

    ``products`` defaults to every stream of the run. Raises ``KeyError`` for
    an unknown product and ``FileNotFoundError`` for a missing directory.
    """

    run_dir = Path(run_dir)
    ours = PanosetiRun(run_dir)
    theirs = _pypff_run(run_dir) if compare else None
    rows: list[ProfileRow] = []
    rng = np.random.default_rng(seed)
    try:
        for name in products or ours.list_products():
            seq = ours.get_product(name)
            frame_mb = seq.frame_config.frame_size / 1024**2
            indices = rng.integers(0, len(seq), random_samples)
            other = None
            if theirs is not None and name in theirs.products:
                other = _reads(theirs.get_product(name), n_frames, step, indices)
            for k, (test, frames, fn) in enumerate(_reads(seq, n_frames, step, indices)):
                row = ProfileRow(test, name, frames, _time(fn), frames * frame_mb)
                if other is not None:
                    row.pypff_seconds = _time(other[k][2])
                rows.append(row)
    finally:
        ours.close()
    return rows


def print_profile(rows: list[ProfileRow], title: str) -> None:
    """pypff's table (Test, Product, Frames, Elapsed, FPS, MB/s) plus pypff's time and the ratio."""
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"Performance Profile: {title}",
        caption=f"pfflake header decode: {kernel_description()}",
    )
    for col, style in (
        ("Test", "cyan"),
        ("Product", "magenta"),
        ("Frames", None),
        ("Elapsed (s)", None),
        ("FPS", "green"),
        ("Throughput (MB/s)", "bold yellow"),
        ("pypff (s)", None),
        ("speed-up", "bold green"),
    ):
        table.add_column(
            col, style=style, justify="left" if col in ("Test", "Product") else "right"
        )
    for r in rows:
        table.add_row(
            r.test,
            r.product,
            f"{r.frames:,}",
            f"{r.seconds:.4f}",
            f"{r.fps:,.1f}",
            f"{r.mb_per_s:,.1f}",
            "-" if r.pypff_seconds is None else f"{r.pypff_seconds:.4f}",
            "-" if r.speedup is None else f"{r.speedup:.1f}x",
        )
    Console().print(table)


def show_run(run_dir: str | os.PathLike[str], details: bool = False) -> None:
    """pypff's ``show``: the run as a tree; ``details`` lists each file with its size."""

    with PanosetiRun(run_dir, strict=False) as run:
        run.show(details=details)
