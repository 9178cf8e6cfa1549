"""Simulated Cherenkov shower images with known truth, for tests, benchmarks and demos.

A shower is an elliptical 2-D Gaussian (centre, major-axis angle, length and
width in pixels, amplitude) on top of a per-pixel pedestal with Gaussian
noise; hot pixels (a raised pedestal) and dead pixels (always 0) can be
planted. :func:`shower_images` makes arrays; :func:`write_shower_run` writes
a real run directory (the project's simulator for headers, configs and
hk.pff, then these images in the DAQ's fixed-width frames), so the lake
ingests it like any recording.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .products import get_product
from .simulate import simulate_run
from .writer import fixed_layout


@dataclass
class ShowerTruth:
    """Per-frame truth: ``has_shower`` and the shower's centre (row, col), angle (radians,
    from +col towards +row), length/width (pixels) and amplitude (ADC)."""

    has_shower: np.ndarray
    row: np.ndarray
    col: np.ndarray
    angle: np.ndarray
    length: np.ndarray
    width: np.ndarray
    amplitude: np.ndarray
    pedestal: np.ndarray = field(default_factory=lambda: np.empty(0))
    noise: np.ndarray = field(default_factory=lambda: np.empty(0))
    hot: list[tuple[int, int]] = field(default_factory=list)
    dead: list[tuple[int, int]] = field(default_factory=list)


def shower_images(
    n: int,
    shape: tuple[int, int] = (32, 32),
    *,
    rng: np.random.Generator | None = None,
    shower_fraction: float = 1.0,
    pedestal: float | np.ndarray = 0.0,
    noise: float | np.ndarray = 1.0,
    amplitude: tuple[float, float] = (10.0, 60.0),
    length: tuple[float, float] = (1.5, 4.0),
    width: tuple[float, float] = (0.5, 1.2),
    dtype: np.dtype | type = np.float32,
    chunk: int = 16_384,
) -> tuple[np.ndarray, ShowerTruth]:
    """``n`` images ``(n, H, W)`` of ``pedestal + N(0, noise) + shower`` and their truth.

    Vectorised in chunks of ``chunk`` frames. Integer ``dtype`` rounds and clips.
    """
    rng = rng or np.random.default_rng(0)
    h, w = shape
    has = rng.random(n) < shower_fraction
    row = rng.uniform(0.2 * h, 0.8 * h, n)
    col = rng.uniform(0.2 * w, 0.8 * w, n)
    ang = rng.uniform(0, np.pi, n)
    ln = rng.uniform(*length, n)
    wd = rng.uniform(*width, n)
    amp = np.where(has, rng.uniform(*amplitude, n), 0.0)
    out = np.empty((n, h, w), dtype=dtype)
    rr, cc = np.mgrid[0:h, 0:w]
    ped = np.broadcast_to(np.asarray(pedestal, dtype=np.float64), shape)
    sig = np.broadcast_to(np.asarray(noise, dtype=np.float64), shape)
    for lo in range(0, n, chunk):
        hi = min(lo + chunk, n)
        dr = rr[None] - row[lo:hi, None, None]
        dc = cc[None] - col[lo:hi, None, None]
        c, s = np.cos(ang[lo:hi])[:, None, None], np.sin(ang[lo:hi])[:, None, None]
        a = dc * c + dr * s
        b = -dc * s + dr * c
        img = amp[lo:hi, None, None] * np.exp(
            -(a * a) / (2 * ln[lo:hi, None, None] ** 2) - (b * b) / (2 * wd[lo:hi, None, None] ** 2)
        )
        img += ped + sig * rng.standard_normal((hi - lo, h, w))
        if np.issubdtype(np.dtype(dtype), np.integer):
            info = np.iinfo(dtype)
            img = np.clip(np.rint(img), info.min, info.max)
        out[lo:hi] = img
    truth = ShowerTruth(has, row, col, ang, ln, wd, amp, np.array(ped), np.array(sig))
    return out, truth


def write_shower_run(
    out_dir: str | Path,
    *,
    n_frames: int = 2000,
    products: tuple[str, ...] = ("img16",),
    modules: tuple[int, ...] = (1,),
    frame_rate_hz: float = 10.0,
    pedestal: float = 200.0,
    noise: float = 5.0,
    shower_fraction: float = 0.05,
    hot: tuple[tuple[int, int], ...] = (),
    dead: tuple[tuple[int, int], ...] = (),
    hot_level: float = 5.0,
    seed: int = 0,
    **simulate_kw,
):
    """A run directory with showers on ``shower_fraction`` of the frames (all streams).

    Pixel pedestals vary by +-10% around ``pedestal`` (known truth); ``hot``
    pixels get ``hot_level`` times it, ``dead`` pixels are 0 in every frame.
    Returns ``(SimulatedRun, {stream key: ShowerTruth})``. The images replace
    the simulator's in place (fixed-width frames: header bytes untouched).
    """

    run = simulate_run(out_dir, products=products, modules=modules, n_frames=n_frames,
                       frame_rate_hz=frame_rate_hz, seed=seed, **simulate_kw)
    rng = np.random.default_rng([seed, 17])
    truths = {}
    for key, stream in run.streams.items():
        product = get_product(stream.data_product)
        h, w = product.image_shape
        ped = pedestal * rng.uniform(0.9, 1.1, (h, w))
        for r, c in hot:
            ped[r, c] = hot_level * pedestal
        images, truth = shower_images(
            stream.n_frames, (h, w), rng=rng, shower_fraction=shower_fraction,
            pedestal=ped, noise=noise, amplitude=(20 * noise, 120 * noise),
            dtype=product.dtype,
        )
        for r, c in dead:
            images[:, r, c] = 0
        truth.hot, truth.dead = list(hot), list(dead)
        layout = fixed_layout(product.name)
        first = 0
        for path in stream.files:
            frames = path.stat().st_size // layout.frame_bytes
            mm = np.memmap(path, dtype=np.uint8, mode="r+", shape=(frames, layout.frame_bytes))
            mm[:, layout.header_bytes:] = (
                images[first:first + frames].reshape(frames, -1).view(np.uint8)
            )
            mm.flush()
            del mm
            first += frames
        truths[key] = truth
    return run, truths


__all__ = ["ShowerTruth", "shower_images", "write_shower_run"]
