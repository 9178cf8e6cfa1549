"""Quick-look PNGs a scientist can read: frame thumbnails and light curves (matplotlib).

Frames are drawn with a robust stretch: the colour scale runs between two
percentiles of the frame's pixels (1 and 99.5 by default), so one hot pixel
does not turn the rest of the frame black; pixels outside are clipped to the
end colours and the colour bar says so (arrows). Each thumbnail has a colour
bar in the product's raw units and a title naming run, module, frame and UTC
time. Light curves have a UTC time axis.

Only :class:`matplotlib.figure.Figure` is used (no ``pyplot``): no global
backend state, no window, safe in worker processes and notebooks alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

#: Default robust stretch: percentiles of the frame's pixel values.
PERCENTILES = (1.0, 99.5)


def utc_text(unix_t_ns: int | None) -> str:
    """``2023-06-08 04:30:35.480007492 UTC`` (nanoseconds kept), or ``"time unknown"``."""
    if unix_t_ns is None:
        return "time unknown"
    sec, rem = divmod(int(unix_t_ns), 1_000_000_000)
    return datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%d %H:%M:%S") + f".{rem:09d} UTC"


def frame_title(row: Mapping[str, Any]) -> str:
    """Title of a frame thumbnail from a result row (run, data_product, module, frame, time)."""
    t = row.get("unix_t_ns")
    when = utc_text(t) if t is not None else (str(row["time"]) if row.get("time") else None)
    what = (f"{row.get('data_product', '?')}  module {row.get('module', '?')}  "
            f"frame {row.get('frame', '?')}")
    return f"{row.get('run', '?')}\n{what}\n{when or 'time unknown'}"


def stretch(image: np.ndarray, percentiles: tuple[float, float] = PERCENTILES
            ) -> tuple[float, float]:
    """``(vmin, vmax)``: the given percentiles of the pixel values (never vmin == vmax)."""
    values = np.asarray(image, dtype=np.float64)
    lo, hi = np.percentile(values, percentiles)
    if hi <= lo:  # a flat frame, or one with a few distinct values
        lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def write_frame_png(path: str | Path, image: np.ndarray, *, title: str | None = None,
                    percentiles: tuple[float, float] = PERCENTILES,
                    vmin: float | None = None, vmax: float | None = None,
                    units: str = "pixel value (ADC counts)", cmap: str = "viridis",
                    dpi: int = 100) -> Path:
    """Write one frame as a PNG: image (row 0 at the top), colour bar, title.

    ``vmin``/``vmax`` override the percentile stretch. Returns the path.
    """
    from matplotlib.figure import Figure

    img = np.asarray(image)
    lo, hi = stretch(img, percentiles)
    lo = lo if vmin is None else vmin
    hi = hi if vmax is None else vmax
    fig = Figure(figsize=(4.6, 4.0), layout="constrained")
    ax = fig.add_subplot()
    shown = ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest", origin="upper")
    ax.set_xlabel("pixel column")
    ax.set_ylabel("pixel row")
    extend = ("both" if img.min() < lo and img.max() > hi else
              "min" if img.min() < lo else "max" if img.max() > hi else "neither")
    bar = fig.colorbar(shown, ax=ax, extend=extend)
    p_lo, p_hi = percentiles
    scale = (f"{p_lo:g}-{p_hi:g} percentile" if vmin is None and vmax is None else "fixed")
    bar.set_label(f"{units}\n{scale} stretch; max {float(img.max()):g}", fontsize=8)
    if title:
        ax.set_title(title, fontsize=7)
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    return path


def write_light_curve_png(path: str | Path, bucket_ns: np.ndarray, values: np.ndarray,
                          modules: np.ndarray, *, ylabel: str, title: str | None = None,
                          dpi: int = 100) -> Path:
    """A light curve per module against UTC time (``bucket_ns``: int64 ns since the epoch)."""
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure

    t = np.asarray(bucket_ns, dtype=np.int64).astype("datetime64[ns]")
    values = np.asarray(values, dtype=np.float64)
    modules = np.asarray(modules)
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    ax = fig.add_subplot()
    for module in np.unique(modules):
        sel = modules == module
        order = np.argsort(t[sel], kind="stable")
        ax.plot(t[sel][order], values[sel][order], label=f"module {module}", lw=1)
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel(ylabel)
    if len(t):
        ax.set_title(title or f"light curve from {utc_text(int(np.asarray(bucket_ns).min()))}",
                     fontsize=9)
    if len(np.unique(modules)):
        ax.legend(fontsize=8)
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    return path


def write_png(path: str | Path, image: np.ndarray, **kw: Any) -> Path:
    """Alias of :func:`write_frame_png` (the name earlier versions used)."""
    kw.pop("scale", None)
    return write_frame_png(path, image, **kw)


__all__ = ["frame_title", "stretch", "utc_text", "write_frame_png", "write_light_curve_png",
           "write_png"]
