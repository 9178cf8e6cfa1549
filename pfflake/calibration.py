"""Pedestals, pedestal widths, hot/dead pixel masks and relative gain maps (numpy layer).

The recipe is the high-energy pipeline's (facts in the module docs of
``ANALYSIS-FACTS``), written as whole-array numpy:

* **Windows.** A stream's frames are split into segments at time gaps
  ``> gap_ns`` (default 300 s); each segment into windows of ``window_ns``
  (default 600 s) from its first frame. Window ``k`` of a segment is valid over
  ``[start + k * window_ns, start + (k + 1) * window_ns)``, the last one up to
  the segment's last frame + 1 ns, so windows tile each segment exactly and a
  time in a gap has no calibration. All times are int64 ns.
* **Robust pedestal.** Per pixel: mean and standard deviation of all frames,
  then frames above ``mean + clip_sigma * std`` (default 5; Cherenkov flashes,
  stars, triggers) are dropped and the pedestal is the mean of the rest.
  **pedvar** is the standard deviation (``ddof=0``) of the same kept values (a
  width in ADC despite its name; the gain rule squares it). The pipeline fits a
  Gaussian to a histogram instead; the clipped standard deviation is what
  their ``make_pedestals`` computes and needs no fit that can fail.
* **Short windows.** A window with fewer than ``min_frames`` (default 100)
  frames takes the values of the previous window of the stream that has
  enough (the next one if none before; its own if none at all, marked).
* **Masks.** hot: ``pedestal > hot_factor * camera mean`` (default 3, camera
  mean over every pixel of the window); dead: ``pedestal == 0``. QC limits:
  hot fraction <= 0.10, dead fraction <= 0.30.
* **Gain.** :func:`gain_map`: the pipeline's rule on two star fields (before
  and after the meridian flip); :func:`gain_with_fallbacks` tries candidate
  pairs in order and ends at a flat map of 1.0, saying which it used.

Inputs are ``(N, H, W)`` arrays or, for streams too big for memory, a
callable returning an iterator of such batches (called twice: two passes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

NS_PER_S = 1_000_000_000
HOT_FRACTION_MAX = 0.10
DEAD_FRACTION_MAX = 0.30


@dataclass(frozen=True)
class PedestalRecipe:
    """Parameters of the pedestal recipe (stored with every calibration row)."""

    window_ns: int = 600 * NS_PER_S
    gap_ns: int = 300 * NS_PER_S
    min_frames: int = 100
    clip_sigma: float = 5.0
    hot_factor: float = 3.0
    name: str = "heap-pedestal-v1"

    def params(self) -> dict:
        return asdict(self)


@dataclass
class Windows:
    """Time windows of one stream: per-frame window index and per-window bounds.

    ``frame_window[i]``: window of frame ``i`` of the input (input order);
    ``valid_from_ns``/``valid_to_ns``/``n_frames``: per window, in time order;
    ``segment``: the segment (between gaps) each window belongs to.
    """

    frame_window: np.ndarray
    valid_from_ns: np.ndarray
    valid_to_ns: np.ndarray
    n_frames: np.ndarray
    segment: np.ndarray

    def __len__(self) -> int:
        return len(self.valid_from_ns)


def time_windows(unix_t_ns: np.ndarray, window_ns: int = 600 * NS_PER_S,
                 gap_ns: int = 300 * NS_PER_S) -> Windows:
    """Split frames (int64 ns, any order) into windows inside gap-separated segments."""
    t = np.asarray(unix_t_ns)
    if t.dtype.kind not in "iu":
        raise TypeError(f"unix_t_ns must be integer ns, got {t.dtype} (no float times)")
    t = t.astype(np.int64)
    window_ns, gap_ns = int(window_ns), int(gap_ns)
    if window_ns <= 0 or gap_ns < 0:
        raise ValueError(f"window_ns must be > 0 and gap_ns >= 0, got {window_ns}, {gap_ns}")
    n = len(t)
    empty = np.empty(0, np.int64)
    if n == 0:
        return Windows(empty, empty, empty, empty, empty)
    order = np.argsort(t, kind="stable")
    ts = t[order]
    new_seg = np.concatenate([[True], np.diff(ts) > gap_ns])
    seg = np.cumsum(new_seg) - 1
    seg_first = ts[new_seg]
    seg_last = np.maximum.reduceat(ts, np.flatnonzero(new_seg))
    k = (ts - seg_first[seg]) // window_ns
    key_new = np.concatenate([[True], (seg[1:] != seg[:-1]) | (k[1:] != k[:-1])])
    win_sorted = np.cumsum(key_new) - 1
    starts = np.flatnonzero(key_new)
    w_seg, w_k = seg[starts], k[starts]
    valid_from = seg_first[w_seg] + w_k * window_ns
    valid_to = np.minimum(valid_from + window_ns, seg_last[w_seg] + 1)
    counts = np.diff(np.append(starts, n))
    frame_window = np.empty(n, np.int64)
    frame_window[order] = win_sorted
    return Windows(frame_window, valid_from.astype(np.int64), valid_to.astype(np.int64),
                   counts.astype(np.int64), w_seg.astype(np.int64))


def reuse_sources(n_frames: np.ndarray, min_frames: int) -> np.ndarray:
    """For each window, the window whose values it uses: itself when it has ``min_frames``
    frames, else the previous sufficient one, else the next, else itself."""
    n_frames = np.asarray(n_frames)
    ok = n_frames >= min_frames
    idx = np.arange(len(n_frames))
    prev = np.where(ok, idx, -1)
    prev = np.maximum.accumulate(prev) if len(prev) else prev
    nxt = np.where(ok, idx, len(idx))
    nxt = np.minimum.accumulate(nxt[::-1])[::-1] if len(nxt) else nxt
    return np.where(prev >= 0, prev, np.where(nxt < len(idx), nxt, idx))


Batches = np.ndarray | Callable[[], Iterable[np.ndarray]]


def _batches(images: Batches) -> Iterable[np.ndarray]:
    if callable(images):
        return images()
    return [np.asarray(images)]


def robust_pedestal(images: Batches, clip_sigma: float = 5.0
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(pedestal, pedvar, n_used)`` per pixel of ``(N, H, W)`` frames (or batches of them).

    Pass 1: mean and std (``ddof=0``) per pixel; pass 2: the mean and std of the
    values ``<= mean + clip_sigma * std``. Sums are float64 around a per-pixel
    shift (the first batch's first frame), so large baselines lose no precision.
    ``n_used``: values kept per pixel. Empty input raises ``ValueError``.
    """
    shift = None
    n = 0
    s1 = s2 = None
    for b in _batches(images):
        b = np.asarray(b)
        if b.ndim != 3 or len(b) == 0:
            continue
        if shift is None:
            shift = b[0].astype(np.float64)
            s1 = np.zeros_like(shift)
            s2 = np.zeros_like(shift)
        d = b.astype(np.float64) - shift
        s1 += d.sum(axis=0)
        s2 += (d * d).sum(axis=0)
        n += len(b)
    if shift is None or n == 0:
        raise ValueError("no frames to compute a pedestal from")
    mean_d = s1 / n
    std = np.sqrt(np.maximum(s2 / n - mean_d * mean_d, 0.0))
    limit = shift + mean_d + clip_sigma * std
    k = np.zeros(shift.shape, np.int64)
    c1 = np.zeros_like(shift)
    c2 = np.zeros_like(shift)
    for b in _batches(images):
        b = np.asarray(b)
        if b.ndim != 3 or len(b) == 0:
            continue
        keep = b <= limit
        d = np.where(keep, b.astype(np.float64) - shift, 0.0)
        k += keep.sum(axis=0)
        c1 += d.sum(axis=0)
        c2 += (d * d).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = c1 / k
        var = np.maximum(c2 / k - m * m, 0.0)
    return shift + m, np.sqrt(var), k


def pixel_masks(pedestal: np.ndarray, hot_factor: float = 3.0) -> dict[str, np.ndarray]:
    """``{"hot", "dead"}`` bool masks and their QC: hot is ``pedestal > hot_factor *
    mean(pedestal)`` over every pixel; dead is ``pedestal == 0``."""
    ped = np.asarray(pedestal, dtype=np.float64)
    hot = ped > hot_factor * ped.mean()
    dead = ped == 0
    return {
        "hot": hot,
        "dead": dead,
        "hot_fraction": float(hot.mean()),
        "dead_fraction": float(dead.mean()),
        "qc_ok": bool(hot.mean() <= HOT_FRACTION_MAX and dead.mean() <= DEAD_FRACTION_MAX),
    }


def gain_map(pedvar_a: np.ndarray, pedvar_b: np.ndarray, sigma: float = 3.0) -> np.ndarray:
    """Relative gain from the pedestal widths of two star fields (before / after the flip).

    The pipeline's rule: ``ratio = pedvar_b / pedvar_a`` (1 where either is 0);
    where the ratio is beyond ``mean +- sigma * std`` (a star in one field) the
    lower field's variance (``pedvar**2``) is used, elsewhere the mean of both
    variances; normalised to mean 1. Pixels with zero variance in both fields
    get 1.0 (no information; a dead pixel), excluded from the normalisation.
    """
    a = np.asarray(pedvar_a, dtype=np.float64)
    b = np.asarray(pedvar_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"pedvar maps differ in shape: {a.shape} vs {b.shape}")
    both = (a > 0) & (b > 0)
    ratio = np.ones_like(a)
    np.divide(b, a, out=ratio, where=both)
    upper = ratio.mean() + sigma * ratio.std()
    lower = ratio.mean() - sigma * ratio.std()
    va, vb = a * a, b * b
    g = (va + vb) / 2.0
    g = np.where(ratio > upper, va, g)  # star in field b
    g = np.where(ratio < lower, vb, g)  # star in field a
    informative = g > 0
    if not informative.any():
        return np.ones_like(g)
    out = np.ones_like(g)
    out[informative] = g[informative] / g[informative].mean()
    return out


def usable_pedvar(pedvar: np.ndarray | None, shape: tuple[int, ...] | None = None) -> bool:
    """A pedvar map good enough for a gain map: finite, right shape, >= half the pixels > 0."""
    if pedvar is None:
        return False
    p = np.asarray(pedvar, dtype=np.float64)
    if shape is not None and p.shape != tuple(shape):
        return False
    return bool(np.isfinite(p).all() and (p > 0).mean() >= 0.5)


def gain_with_fallbacks(
    candidates: Sequence[tuple[str, np.ndarray | None, np.ndarray | None]],
    shape: tuple[int, int],
    sigma: float = 3.0,
) -> tuple[np.ndarray, str]:
    """``(gain, source)`` from the first usable ``(label, pedvar_a, pedvar_b)`` candidate.

    The pipeline's order is: the night's two star fields, another source the
    same night, a prior night; the caller lists them in that order. When none
    is usable (missing, wrong shape, non-finite, mostly zero), the gain is a
    flat 1.0 and ``source`` is ``"flat"``.
    """
    for label, a, b in candidates:
        if usable_pedvar(a, shape) and usable_pedvar(b, shape):
            return gain_map(a, b, sigma), label
    return np.ones(shape, dtype=np.float64), "flat"


def window_pedestals(
    images_of: Callable[[np.ndarray], Batches],
    unix_t_ns: np.ndarray,
    recipe: PedestalRecipe = PedestalRecipe(),
) -> list[dict]:
    """Pedestal, pedvar and masks per window of one stream.

    ``images_of(frame_positions)`` returns the frames at those positions of
    the input (an array or a batch factory). Returns one dict per window, in
    time order: ``valid_from_ns``, ``valid_to_ns``, ``n_frames`` (frames in
    the window), ``source_window`` (index of the window whose values it uses),
    ``pedestal``, ``pedvar``, ``hot``, ``dead``, ``n_used``, ``qc_ok``.
    """
    win = time_windows(unix_t_ns, recipe.window_ns, recipe.gap_ns)
    src = reuse_sources(win.n_frames, recipe.min_frames)
    computed: dict[int, tuple] = {}
    out = []
    for w in range(len(win)):
        s = int(src[w])
        if s not in computed:
            pos = np.flatnonzero(win.frame_window == s)
            ped, var, used = robust_pedestal(images_of(pos), recipe.clip_sigma)
            computed[s] = (ped, var, used, pixel_masks(ped, recipe.hot_factor))
        ped, var, used, masks = computed[s]
        out.append({
            "valid_from_ns": int(win.valid_from_ns[w]),
            "valid_to_ns": int(win.valid_to_ns[w]),
            "n_frames": int(win.n_frames[w]),
            "source_window": s,
            "source_valid_from_ns": int(win.valid_from_ns[s]),
            "pedestal": ped,
            "pedvar": var,
            "n_used": used,
            "hot": masks["hot"],
            "dead": masks["dead"],
            "qc_ok": masks["qc_ok"],
        })
    return out


__all__ = [
    "DEAD_FRACTION_MAX",
    "HOT_FRACTION_MAX",
    "PedestalRecipe",
    "Windows",
    "gain_map",
    "gain_with_fallbacks",
    "pixel_masks",
    "reuse_sources",
    "robust_pedestal",
    "time_windows",
    "usable_pedvar",
    "window_pedestals",
]
