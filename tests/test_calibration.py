"""Pedestals, windows, masks and gain maps against naive computations.

Real frames: the ph256 and img16 samples in tests/data (there is no real
ph1024 sample; ph1024 is covered with simulated frames).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from pfflake.calibration import (
    NS_PER_S,
    PedestalRecipe,
    gain_map,
    gain_with_fallbacks,
    pixel_masks,
    reuse_sources,
    robust_pedestal,
    time_windows,
    window_pedestals,
)
from pfflake.sequence import PFFSequence
from pfflake.showers import write_shower_run

DATA = Path(__file__).parent / "data"
REAL = {
    "ph256": sorted(DATA.glob("example-data/*dp_ph256*.pff")),
    "img16": sorted(DATA.glob("example-data/*dp_img16*.pff")),
    "ph256-legacy": sorted(DATA.glob("legacy-run/*dp_ph256*.pff")),
}


def naive_pedestal(frames: np.ndarray, clip: float = 5.0):
    _, h, w = frames.shape
    ped, var = np.empty((h, w)), np.empty((h, w))
    for r in range(h):
        for c in range(w):
            v = frames[:, r, c].astype(np.float64)
            keep = v[v <= v.mean() + clip * v.std()]
            ped[r, c], var[r, c] = keep.mean(), keep.std()
    return ped, var


def real_frames(key: str) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seq = PFFSequence(REAL[key])
        out = seq.read_images(np.arange(len(seq)))
        seq.close()
    return out


@pytest.mark.parametrize("key", sorted(REAL))
def test_pedestal_matches_naive_on_real_frames(key):
    frames = real_frames(key)
    assert len(frames) > 50
    want_ped, want_var = naive_pedestal(frames)
    ped, var, used = robust_pedestal(frames)
    np.testing.assert_allclose(ped, want_ped, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(var, want_var, rtol=1e-9, atol=1e-9)
    assert used.max() <= len(frames) and used.min() > 0
    # the same through batches (two passes over a stream that does not fit in memory)
    batched = robust_pedestal(lambda: (frames[i:i + 37] for i in range(0, len(frames), 37)))
    np.testing.assert_allclose(batched[0], want_ped, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(batched[1], want_var, rtol=1e-9, atol=1e-9)


def test_pedestal_clips_flashes():
    rng = np.random.default_rng(0)
    frames = rng.normal(100, 3, (2000, 4, 4))
    frames[::50] += 500  # flashes in 2% of the frames
    ped, var, used = robust_pedestal(frames)
    assert np.all(np.abs(ped - 100) < 0.5) and np.all(np.abs(var - 3) < 0.3)
    assert np.all(used == 2000 - 40)


def naive_windows(t, window, gap):
    """Walk the frames in time order; a new segment after a gap, a new window every
    ``window`` ns from the segment's first frame."""
    order = sorted(range(len(t)), key=lambda i: t[i])
    segments = []  # [first time, last time, {k: [frame indices]}]
    prev = None
    for i in order:
        if prev is None or t[i] - prev > gap:
            segments.append([t[i], t[i], {}])
        seg = segments[-1]
        seg[1] = t[i]
        seg[2].setdefault((t[i] - seg[0]) // window, []).append(i)
        prev = t[i]
    out = []
    for first, last, windows in segments:
        for k in sorted(windows):
            out.append((first + k * window, min(first + (k + 1) * window, last + 1), windows[k]))
    assign = {i: w for w, (_, _, members) in enumerate(out) for i in members}
    return out, assign


def test_time_windows_match_naive():
    rng = np.random.default_rng(4)
    s = NS_PER_S
    t = np.concatenate([
        1_700_000_000 * s + rng.integers(0, 1500 * s, 300),  # one segment, 3 windows
        1_700_002_000 * s + rng.integers(0, 100 * s, 50),  # after a 500 s gap
    ])
    rng.shuffle(t)
    win = time_windows(t, 600 * s, 300 * s)
    want, assign = naive_windows(t.tolist(), 600 * s, 300 * s)
    assert len(win) == len(want)
    for w, (lo, hi, members) in enumerate(want):
        assert (win.valid_from_ns[w], win.valid_to_ns[w]) == (lo, hi)
        assert win.n_frames[w] == len(members)
    assert [int(x) for x in win.frame_window] == [assign[i] for i in range(len(t))]
    assert win.valid_from_ns.dtype == np.int64
    with pytest.raises(TypeError, match="integer ns"):
        time_windows(t.astype(np.float64))


def test_short_windows_reuse_previous():
    assert reuse_sources(np.array([150, 20, 300, 5, 5]), 100).tolist() == [0, 0, 2, 2, 2]
    assert reuse_sources(np.array([20, 30, 300, 5]), 100).tolist() == [2, 2, 2, 2]
    assert reuse_sources(np.array([20, 30]), 100).tolist() == [0, 1]


def test_masks_on_planted_hot_and_dead_pixels(tmp_path):
    hot = ((3, 4), (20, 30), (31, 0))
    dead = ((10, 10), (0, 31))
    run, truths = write_shower_run(tmp_path, n_frames=1500, frame_rate_hz=1.0, hot=hot,
                                   dead=dead, pedestal=200.0, noise=5.0, hk=False)
    stream = run.stream("img16", 1)
    seq = PFFSequence(stream.files)
    frames = seq.read_images(np.arange(len(seq)))
    times = seq.timestamps()
    seq.close()
    rows = window_pedestals(lambda pos: frames[pos], times, PedestalRecipe())
    assert len(rows) == 3  # 1500 s at 1 Hz in 600 s windows
    truth = truths[stream.stream]
    for row in rows:
        assert sorted(zip(*np.nonzero(row["hot"]), strict=True)) == sorted(hot)
        assert sorted(zip(*np.nonzero(row["dead"]), strict=True)) == sorted(dead)
        assert row["qc_ok"]
        alive = ~row["dead"]
        assert np.abs(row["pedestal"] - truth.pedestal)[alive].max() < 1.5
        # shower tails below the clip widen some pixels a little
        assert np.median(np.abs(row["pedvar"][alive] - 5.0)) < 0.3
    in_first = (times >= rows[0]["valid_from_ns"]) & (times < rows[0]["valid_to_ns"])
    assert abs(int(in_first.sum()) - 600) <= 1
    ped, _ = naive_pedestal(frames[in_first])
    np.testing.assert_allclose(rows[0]["pedestal"], ped, rtol=1e-9)
    m = pixel_masks(np.where(np.arange(16).reshape(4, 4) < 8, 0.0, 10.0))
    assert m["dead_fraction"] == 0.5 and not m["qc_ok"]


def test_ph1024_simulated_pedestals(tmp_path):
    run, _ = write_shower_run(tmp_path, n_frames=300, products=("ph1024",), hk=False,
                              frame_rate_hz=5.0, hot=((1, 2),))
    stream = run.stream("ph1024", 1)
    seq = PFFSequence(stream.files)
    frames = seq.read_images(np.arange(len(seq)))
    seq.close()
    ped, var = naive_pedestal(frames)
    got = robust_pedestal(frames)
    np.testing.assert_allclose(got[0], ped, rtol=1e-9)
    np.testing.assert_allclose(got[1], var, rtol=1e-9)
    assert np.argwhere(pixel_masks(got[0])["hot"]).tolist() == [[1, 2]]


def test_gain_map_rule_and_fallbacks():
    rng = np.random.default_rng(5)
    true_gain = rng.uniform(0.8, 1.2, (32, 32))
    a = 4.0 * np.sqrt(true_gain)
    b = a.copy()
    a_star = a.copy()
    a_star[5, 5] *= 3  # a star in field a: use field b's variance there
    g = gain_map(a_star, b)
    np.testing.assert_allclose(g, true_gain / true_gain.mean(), rtol=1e-12)
    assert np.isclose(g.mean(), 1.0)
    dead = b.copy()
    dead[0, 0] = 0
    a0 = a.copy()
    a0[0, 0] = 0
    assert gain_map(a0, dead)[0, 0] == 1.0
    g2, src = gain_with_fallbacks([("night", None, b), ("other source", a, b)], (32, 32))
    assert src == "other source" and np.allclose(g2, true_gain / true_gain.mean())
    g3, src = gain_with_fallbacks([("night", np.zeros((32, 32)), b)], (32, 32))
    assert src == "flat" and np.all(g3 == 1.0)
