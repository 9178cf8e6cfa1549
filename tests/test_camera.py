"""Camera geometry: positions, neighbours, quabo layout, ph1024 fix, MAROC maps."""

from __future__ import annotations

import numpy as np
import pytest

from pfflake.camera import (
    PLATE_SCALES,
    QUABO_ROTATION_DEG,
    Camera,
    fix_ph1024_quadrants,
    module_from_quabos,
    plate_scale,
)


def test_positions_row_major_and_centred():
    cam = Camera.for_product("img16")
    assert cam.plate_scale_deg == pytest.approx(9.9 / 32) and "9.9" in cam.plate_scale_source
    x, y = cam.pix_x_deg.reshape(32, 32), cam.pix_y_deg.reshape(32, 32)
    assert np.allclose(np.diff(x, axis=1), s := cam.pixel_size_deg)
    assert np.allclose(np.diff(y, axis=0), s)
    assert np.allclose(np.diff(x, axis=0), 0) and np.allclose(np.diff(y, axis=1), 0)
    assert np.isclose(x.mean(), 0) and np.isclose(y.mean(), 0)
    assert x[0, 0] == pytest.approx(-15.5 * 9.9 / 32)
    with pytest.raises(ValueError):
        cam.pix_x_deg[0] = 1.0  # read-only, shared
    small = Camera.for_product("ph256", plate_scale_deg="ctapipe_instrument")
    assert small.shape == (16, 16) and small.plate_scale_deg == 10 / 32
    assert plate_scale("ctapipe_sky")[0] == pytest.approx(0.3737, abs=1e-4)
    assert set(PLATE_SCALES) == {"heap", "ctapipe_instrument", "ctapipe_sky"}
    with pytest.raises(ValueError, match="unknown plate scale"):
        plate_scale("nope")


def test_neighbors_are_the_8_connected_grid():
    cam = Camera.for_product("img16")
    for p in range(1024):
        r, c = divmod(p, 32)
        want = sorted((r + dr) * 32 + c + dc for dr in (-1, 0, 1) for dc in (-1, 0, 1)
                      if (dr or dc) and 0 <= r + dr < 32 and 0 <= c + dc < 32)
        assert cam.neighbors[p].tolist() == want
    assert np.array_equal(cam.neighbor_matrix, cam.neighbor_matrix.T)


def test_quabo_layout_matches_rotations():
    rng = np.random.default_rng(0)
    q = rng.integers(0, 1000, (2, 4, 16, 16))
    m = module_from_quabos(q)
    # independent: numpy's rot90 (k=-1 is 90 deg clockwise) into each quadrant
    quadrant = {0: (slice(0, 16), slice(0, 16)), 1: (slice(0, 16), slice(16, 32)),
                2: (slice(16, 32), slice(16, 32)), 3: (slice(16, 32), slice(0, 16))}
    for k in range(4):
        turns = QUABO_ROTATION_DEG[k] // 90
        assert np.array_equal(m[(slice(None), *quadrant[k])],
                              np.rot90(q[:, k], k=-turns, axes=(1, 2))), k
    assert {k: QUABO_ROTATION_DEG[k] for k in (3, 0, 1, 2)} == {3: 0, 0: 90, 1: 180, 2: 270}
    cam = Camera.for_product("img16")
    assert cam.quabo_of_pixel[0, 0] == 0 and cam.quabo_of_pixel[0, 31] == 1
    assert cam.quabo_of_pixel[31, 31] == 2 and cam.quabo_of_pixel[31, 0] == 3
    ph = Camera.for_product("ph256", quabo=1)  # a quabo's pixels where they sit in the module
    full = Camera.for_product("img16")
    i, j = 0, 0  # packet pixel (0, 0) of quabo 1 lands at module (15, 31)
    assert ph.pix_x_deg[i * 16 + j] == full.pix_x_deg[15 * 32 + 31]
    assert ph.pix_y_deg[i * 16 + j] == full.pix_y_deg[15 * 32 + 31]


def test_ph1024_quadrant_fix():
    a = np.arange(32 * 32).reshape(1, 32, 32)
    fixed = fix_ph1024_quadrants(a)
    assert np.array_equal(fixed[0, :16, 16:], a[0, 16:, :16])
    assert np.array_equal(fix_ph1024_quadrants(fixed), a)
    raw = Camera.for_product("ph1024")
    assert raw.fix_quadrants and not Camera.for_product("ph1024", fix_quadrants=False).fix_quadrants
    true = Camera.for_product("img16")
    # raw pixel (0, 16) (top-right block as stored) is really at (16, 0)
    assert raw.pix_x_deg[16] == true.pix_x_deg[16 * 32] and raw.pix_y_deg[16] == true.pix_y_deg[512]
    assert np.array_equal(raw.to_physical(a), fixed)
    assert np.array_equal(raw.from_physical(raw.to_physical(a)), a)
    assert raw.quabo_of_pixel[0, 16] == 3  # stored top-right holds quabo 3's pixels
    with pytest.raises(ValueError, match="ph1024 only"):
        Camera.for_product("img16", fix_quadrants=True)


def _fake_table(seed):
    """A (4, 64, 4) quabo, channel, chip -> index table: a permutation of 0..255 per quabo."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(256).reshape(64, 4) for _ in range(4)])


@pytest.mark.parametrize("product", ["img16", "ph1024"])
def test_maroc_maps_injected(product):
    tables = {"bga": _fake_table(1), "qfp": _fake_table(2)}
    cam = Camera.for_product(product, maroc_tables=tables)
    for board in ("bga", "qfp"):
        fwd = cam.maroc_to_pixel(board)
        assert sorted(fwd.ravel().tolist()) == list(range(1024))  # a bijection onto pixels
        inv = cam.pixel_to_maroc(board)
        q, ch, chip = inv[fwd[2, 10, 3]]
        assert (q, ch, chip) == (2, 10, 3)
        # each pixel's quabo is the quabo that reads it
        assert np.all(cam.quabo_of_pixel.ravel()[fwd[1]] == 1)
    with pytest.raises(ValueError, match="no MAROC table"):
        Camera.for_product(product, maroc_tables={}).maroc_to_pixel("bga")


def test_maroc_maps_from_pixelmap_module():
    pixelmap = pytest.importorskip("pfflake.pixelmap")  # the pypff-compatibility work
    cam = Camera.for_product("img16")
    for board in ("bga", "qfp"):
        fwd = cam.maroc_to_pixel(board)
        assert sorted(fwd.ravel().tolist()) == list(range(1024))
        index = int(pixelmap.data_index(3, board, [5, 2]))
        r, c = divmod(index, 16)
        assert fwd[3, 5, 2] == (16 + r) * 32 + c  # quabo 3: unrotated, lower left
