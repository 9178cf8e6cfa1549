"""Cleaning and Hillas parameters against independent per-image implementations.

The naive versions below are written straight from the definitions (one
image, one pixel at a time, eigen-decomposition by numpy); ctapipe's
``tailcuts_clean`` / ``hillas_parameters`` are used too when the test-only
group is installed (``uv run --group ctapipe-check pytest tests/test_images.py``).
"""

from __future__ import annotations

import numpy as np
import pytest

from pfflake.camera import Camera, fix_ph1024_quadrants
from pfflake.images import hillas_parameters, neighbor_count, rotate180, tailcuts_clean
from pfflake.showers import shower_images

KEYS = ("size", "x", "y", "r", "phi", "length", "width", "psi", "skewness", "kurtosis")


def naive_neighbors(h, w, r, c):
    return [(r + dr, c + dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)
            if (dr or dc) and 0 <= r + dr < h and 0 <= c + dc < w]


def naive_clean(img, pic, bnd, min_nb=0, keep_isolated=False, pairs=False):
    h, w = img.shape
    pic = np.broadcast_to(pic, img.shape)
    bnd = np.broadcast_to(bnd, img.shape)
    above_pic = img >= pic
    above_bnd = img >= bnd
    in_pic = above_pic.copy()
    if not keep_isolated and min_nb > 0:
        for r in range(h):
            for c in range(w):
                n = sum(above_pic[p] for p in naive_neighbors(h, w, r, c))
                in_pic[r, c] = above_pic[r, c] and n >= min_nb
    keep = np.zeros_like(above_pic)
    for r in range(h):
        for c in range(w):
            nbs = naive_neighbors(h, w, r, c)
            touches_pic = any(in_pic[p] for p in nbs)
            touches_bnd = any(above_bnd[p] for p in nbs)
            keep[r, c] = (above_bnd[r, c] and touches_pic) or (
                in_pic[r, c] and (keep_isolated or touches_bnd))
    if pairs:  # flood fill the islands, drop 2-pixel ones with a boundary-only pixel
        seen = np.zeros_like(keep)
        for r in range(h):
            for c in range(w):
                if keep[r, c] and not seen[r, c]:
                    island, todo = [], [(r, c)]
                    seen[r, c] = True
                    while todo:
                        p = todo.pop()
                        island.append(p)
                        for q in naive_neighbors(h, w, *p):
                            if keep[q] and not seen[q]:
                                seen[q] = True
                                todo.append(q)
                    if len(island) == 2 and any(not in_pic[p] for p in island):
                        for p in island:
                            keep[p] = False
    return keep


def naive_hillas(img, mask, x, y):
    w = img.ravel()[mask.ravel()].astype(np.float64)
    px, py = x[mask.ravel()], y[mask.ravel()]
    size = w.sum()
    cx, cy = (w * px).sum() / size, (w * py).sum() / size
    dx, dy = px - cx, py - cy
    cov = np.array([[(w * dx * dx).sum(), (w * dx * dy).sum()],
                    [(w * dx * dy).sum(), (w * dy * dy).sum()]]) / size
    vals, vecs = np.linalg.eigh(cov)
    width, length = np.sqrt(np.clip(vals, 0, None))
    vx, vy = vecs[0, 1], vecs[1, 1]
    psi = np.arctan(vy / vx) if vx != 0 else np.pi / 2
    longi = dx * np.cos(psi) + dy * np.sin(psi)
    return {"size": size, "x": cx, "y": cy, "r": np.hypot(cx, cy), "phi": np.arctan2(cy, cx),
            "length": length, "width": width, "psi": psi,
            "skewness": (w * longi**3).sum() / size / length**3,
            "kurtosis": (w * longi**4).sum() / size / length**4}


def assert_close(ours, ref, what, rtol=1e-6, atol=1e-9):
    # atol only matters for values that are ~0 (a symmetric image's skewness)
    for k in KEYS:
        assert abs(ours[k] - ref[k]) <= rtol * abs(ref[k]) + atol, (what, k, ours[k], ref[k])


@pytest.fixture(scope="module")
def showers():
    images, truth = shower_images(300, rng=np.random.default_rng(7), shower_fraction=0.9)
    return images.astype(np.float64), truth


def test_neighbor_count_matches_definition():
    rng = np.random.default_rng(1)
    m = rng.random((5, 7, 9)) < 0.4
    got = neighbor_count(m)
    for f in range(5):
        for r in range(7):
            for c in range(9):
                assert got[f, r, c] == sum(m[f][p] for p in naive_neighbors(7, 9, r, c))


@pytest.mark.parametrize("opts", [
    {}, {"min_nb": 2}, {"keep_isolated": True}, {"pairs": True},
])
def test_tailcuts_clean_matches_naive(showers, opts):
    images = showers[0][:60]
    rng = np.random.default_rng(3)
    pedvar = rng.uniform(0.8, 1.2, (32, 32))
    for pic, bnd in ((4.0, 2.0), (4 * pedvar, 2 * pedvar)):
        got = tailcuts_clean(images, pic, bnd, min_picture_neighbors=opts.get("min_nb", 0),
                             keep_isolated=opts.get("keep_isolated", False),
                             remove_boundary_pairs=opts.get("pairs", False), chunk_frames=7)
        assert got.shape == images.shape and got.dtype == bool
        for k, img in enumerate(images):
            want = naive_clean(img, pic, bnd, opts.get("min_nb", 0),
                               opts.get("keep_isolated", False), opts.get("pairs", False))
            assert np.array_equal(got[k], want), (opts, k)


def test_clean_removes_isolated_and_boundary_pairs():
    img = np.zeros((1, 8, 8))
    img[0, 1, 1] = 10  # isolated picture pixel
    img[0, 5, 5], img[0, 5, 6] = 10, 3  # picture + boundary pair
    img[0, 2, 5], img[0, 2, 6] = 10, 10  # picture pair
    m = tailcuts_clean(img, 5, 2)[0]
    assert not m[1, 1] and m[5, 5] and m[5, 6] and m[2, 5] and m[2, 6]
    m = tailcuts_clean(img, 5, 2, remove_boundary_pairs=True)[0]
    assert not m[5, 5] and not m[5, 6] and m[2, 5] and m[2, 6]
    with pytest.raises(ValueError, match="picture threshold"):
        tailcuts_clean(img, np.ones((4, 4)), 2)


def test_hillas_matches_naive_loop(showers):
    images, _ = showers
    cam = Camera.for_product("img16")
    mask = tailcuts_clean(images, 4, 2)
    table = hillas_parameters(images, mask, cam, chunk_frames=64).to_pydict()
    checked = 0
    for k in range(len(images)):
        if mask[k].sum() < 3:
            assert mask[k].sum() > 0 or np.isnan(table["x"][k])
            continue
        ref = naive_hillas(images[k], mask[k], cam.pix_x_deg, cam.pix_y_deg)
        assert_close({c: table[c][k] for c in KEYS}, ref, k)
        assert table["n_pixels"][k] == mask[k].sum()
        assert np.isclose(table["psi_deg"][k], np.degrees(ref["psi"]))
        checked += 1
    assert checked > 200


def test_hillas_recovers_simulated_axis():
    images, truth = shower_images(50, rng=np.random.default_rng(2), noise=0.0,
                                  amplitude=(100, 100), length=(3, 3), width=(1, 1))
    cam = Camera.for_product("img16", plate_scale_deg=1.0)
    t = hillas_parameters(images, images > 1e-3, cam).to_pydict()
    # true angle from +col towards +row; x = col, y = row on a 1 deg grid
    psi_true = (truth.angle + np.pi / 2) % np.pi - np.pi / 2
    inside = (np.minimum(truth.row, truth.col) > 9) & (np.maximum(truth.row, truth.col) < 22)
    assert inside.sum() > 5  # showers not cut by the camera edge
    diff = (np.asarray(t["psi"]) - psi_true + np.pi / 2) % np.pi - np.pi / 2
    assert np.abs(diff[inside]).max() < 0.01
    assert np.allclose(np.asarray(t["x"])[inside], truth.col[inside] - 15.5, atol=0.01)
    assert np.allclose(np.asarray(t["y"])[inside], truth.row[inside] - 15.5, atol=0.01)
    assert np.allclose(np.asarray(t["length"])[inside], 3, atol=0.05)
    assert np.allclose(np.asarray(t["width"])[inside], 1, atol=0.05)


def test_hillas_edge_cases():
    images = np.zeros((3, 16, 16))
    images[1, 4, 4] = 5.0  # one pixel: length 0
    images[2, 4, 4:8] = 1.0  # a line: width 0
    t = hillas_parameters(images, images > 0).to_pydict()
    assert t["size"][0] == 0 and np.isnan(t["x"][0]) and t["n_pixels"][0] == 0
    assert t["length"][1] == 0 and np.isnan(t["psi"][1]) and np.isnan(t["skewness"][1])
    assert t["width"][2] == 0 and t["length"][2] > 0 and t["psi"][2] == 0
    with pytest.raises(ValueError, match="mask shape"):
        hillas_parameters(images, images[:2] > 0)


def test_ph1024_cleaning_uses_true_adjacency():
    cam = Camera.for_product("ph1024")
    true = np.zeros((1, 32, 32))
    true[0, 15, 14:18] = 10  # straddles the left/right halves of the top half
    raw = fix_ph1024_quadrants(true)  # as the DAQ writes it
    m = tailcuts_clean(raw, 5, 2, camera=cam)
    assert np.array_equal(fix_ph1024_quadrants(m), true > 0)
    t_raw = hillas_parameters(raw, m, cam).to_pydict()
    t_true = hillas_parameters(true, true > 0, Camera.for_product("img16")).to_pydict()
    for k in KEYS:
        assert np.isclose(t_raw[k][0], t_true[k][0], equal_nan=True), k


def test_rotate180_is_a_view():
    a = np.arange(2 * 4 * 4).reshape(2, 4, 4)
    r = rotate180(a)
    assert np.shares_memory(a, r) and r[0, 0, 0] == a[0, 3, 3]


def test_against_ctapipe(showers):
    ctapipe = pytest.importorskip("ctapipe")  # test-only group: uv run --group ctapipe-check
    import astropy.units as u
    from ctapipe.image import hillas_parameters as ct_hillas
    from ctapipe.image import tailcuts_clean as ct_clean
    from ctapipe.instrument import CameraGeometry, PixelShape

    assert ctapipe.__version__
    images, _ = showers
    cam = Camera.for_product("img16")
    geom = CameraGeometry("panoseti", np.arange(cam.n_pixels), cam.pix_x_deg * u.deg,
                          cam.pix_y_deg * u.deg, np.full(cam.n_pixels, cam.pixel_area_deg2)
                          * u.deg**2, PixelShape.SQUARE,
                          neighbors=[list(n) for n in cam.neighbors])
    mask = tailcuts_clean(images, 4, 2)
    table = hillas_parameters(images, mask, cam).to_pydict()
    checked = 0
    for k in range(len(images)):
        ref_mask = ct_clean(geom, images[k].ravel(), 4, 2)
        assert np.array_equal(ref_mask, mask[k].ravel()), k
        if ref_mask.sum() < 3:
            continue
        h = ct_hillas(geom[ref_mask], images[k].ravel()[ref_mask])
        ref = {"size": h.intensity, "x": h.fov_lon.to_value(u.deg),
               "y": h.fov_lat.to_value(u.deg), "r": h.r.to_value(u.deg),
               "phi": h.phi.to_value(u.rad), "length": h.length.to_value(u.deg),
               "width": h.width.to_value(u.deg), "psi": h.psi.to_value(u.rad),
               "skewness": h.skewness, "kurtosis": h.kurtosis}
        assert_close({c: table[c][k] for c in KEYS}, ref, k)
        checked += 1
    assert checked > 200
