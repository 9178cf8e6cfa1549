"""Cleaning + Hillas parameters: pfflake's vectorised functions vs per-image loops.

Run:  uv run --group ctapipe-check python benchmarks/bench_images.py [--frames 1000000] [--runs 3]
      (without the ctapipe-check group, the ctapipe column is skipped)

Data: --bank distinct 32x32 float32 frames (default 100,000: 400 MB) of
Gaussian noise (sigma 1) with an elliptical shower on 90% of them
(``pfflake.showers.shower_images``), processed --frames / --bank times so
--frames frames (default 10^6) go through ``tailcuts_clean(images, 4, 2)``
then ``hillas_parameters`` in one timed run; median of --runs.

Per-image loops, timed on the first --loop-frames frames (default 2,000) and
reported as frames per second (the same per-frame work, extrapolated):

* naive: numpy per image (cleaning with np.pad shifts, moments, np.linalg.eigh),
  as a hand-written pipeline would do it;
* ctapipe: ``ctapipe.image.tailcuts_clean`` + ``hillas_parameters`` per image
  on a ``CameraGeometry`` with the same pixel positions and neighbours.

Prints frames/s and the ratio ours / loop, with ``uptime`` load (machine shared).

``--lake N`` also times the lake path end to end on a simulated run of N img16
frames at 100 Hz (showers on 5%, pedestal 200 ADC, noise 5) ingested under
--dir: ``Lake.compute_pedestals`` and ``Lake.compute_dl1`` (all frames) with
``--workers`` processes, frames/s each (Zarr reads, calibration lookup,
cleaning, Hillas, Parquet, commit).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

from pfflake.camera import Camera
from pfflake.images import hillas_parameters, tailcuts_clean
from pfflake.showers import shower_images


def naive_frame(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple:
    pic, bnd = img >= 4, img >= 2
    p_pic, p_bnd = np.pad(pic, 1), np.pad(bnd, 1)
    h, w = img.shape
    nb_pic = np.zeros((h, w), bool)
    nb_bnd = np.zeros((h, w), bool)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            if dr or dc:
                nb_pic |= p_pic[1 + dr:h + 1 + dr, 1 + dc:w + 1 + dc]
                nb_bnd |= p_bnd[1 + dr:h + 1 + dr, 1 + dc:w + 1 + dc]
    mask = ((bnd & nb_pic) | (pic & nb_bnd)).ravel()
    wgt = img.ravel()[mask].astype(np.float64)
    if wgt.size == 0 or wgt.sum() <= 0:
        return (0.0,)
    size = wgt.sum()
    cx, cy = (wgt * x[mask]).sum() / size, (wgt * y[mask]).sum() / size
    dx, dy = x[mask] - cx, y[mask] - cy
    cov = np.cov(dx, dy, aweights=wgt, ddof=0)
    vals, vecs = np.linalg.eigh(cov)
    width, length = np.sqrt(np.clip(vals, 0, None))
    psi = np.arctan2(vecs[1, 1], vecs[0, 1])
    longi = dx * np.cos(psi) + dy * np.sin(psi)
    return size, cx, cy, length, width, psi, (wgt * longi**3).sum() / size / length**3


def ctapipe_loop():
    try:
        import astropy.units as u
        from ctapipe.image import hillas_parameters as ct_hillas
        from ctapipe.image import tailcuts_clean as ct_clean
        from ctapipe.instrument import CameraGeometry, PixelShape
    except ImportError:
        return None
    cam = Camera.for_product("img16")
    geom = CameraGeometry("panoseti", np.arange(cam.n_pixels), cam.pix_x_deg * u.deg,
                          cam.pix_y_deg * u.deg,
                          np.full(cam.n_pixels, cam.pixel_area_deg2) * u.deg**2,
                          PixelShape.SQUARE, neighbors=[list(n) for n in cam.neighbors])

    def run(images):
        for img in images:
            flat = img.ravel().astype(np.float64)
            m = ct_clean(geom, flat, 4, 2)
            if m.sum() >= 1 and flat[m].sum() > 0:
                ct_hillas(geom[m], flat[m])

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--bank", type=int, default=100_000)
    ap.add_argument("--loop-frames", type=int, default=2_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--lake", type=int, default=0, help="frames for the lake benchmark (0: skip)")
    ap.add_argument("--dir", default="/tmp/pfflake-bench-images")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    print(f"uptime load before: {os.getloadavg()}")
    bank, _ = shower_images(args.bank, rng=np.random.default_rng(0), shower_fraction=0.9)
    cam = Camera.for_product("img16")
    passes = -(-args.frames // args.bank)
    total = passes * args.bank

    def ours():
        kept = 0
        for _ in range(passes):
            mask = tailcuts_clean(bank, 4.0, 2.0)
            table = hillas_parameters(bank, mask, cam)
            kept += table.num_rows
        assert kept == total

    sub = bank[: args.loop_frames]
    x, y = cam.pix_x_deg, cam.pix_y_deg

    def naive():
        for img in sub:
            naive_frame(img, x, y)

    loops = {"naive numpy per image": naive}
    ct = ctapipe_loop()
    if ct is not None:
        loops["ctapipe per image"] = lambda: ct(sub)
    ours()  # warm-up (page faults of the bank, imports)
    t_ours = []
    for _ in range(args.runs):
        t = time.perf_counter()
        ours()
        t_ours.append(time.perf_counter() - t)
    fps_ours = total / statistics.median(t_ours)
    print(f"pfflake tailcuts_clean + hillas_parameters: {total:,} frames in "
          f"{statistics.median(t_ours):.2f} s (median of {args.runs}) = {fps_ours:,.0f} frames/s")
    for name, fn in loops.items():
        ts = []
        for _ in range(args.runs):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        fps = len(sub) / statistics.median(ts)
        print(f"{name}: {fps:,.0f} frames/s on {len(sub):,} frames -> pfflake is "
              f"{fps_ours / fps:,.1f}x faster")
    if ct is None:
        print("ctapipe not installed: uv run --group ctapipe-check python "
              "benchmarks/bench_images.py")
    if args.lake:
        bench_lake(args.lake, Path(args.dir), args.workers)
    print(f"uptime load after: {os.getloadavg()}")


def bench_lake(n_frames: int, root: Path, workers: int) -> None:
    import shutil
    import warnings

    from pfflake.lake import Lake
    from pfflake.showers import write_shower_run

    shutil.rmtree(root, ignore_errors=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run, _ = write_shower_run(root / "src", n_frames=n_frames, frame_rate_hz=100.0,
                                  hk=False, frames_per_file=200_000)
        lake = Lake(root / "lake")
        lake.ingest([run.path], workers=workers)
    t = time.perf_counter()
    ped = lake.compute_pedestals(workers=workers)
    t_ped = time.perf_counter() - t
    t = time.perf_counter()
    dl1 = lake.compute_dl1(workers=workers)
    t_dl1 = time.perf_counter() - t
    print(f"lake, {n_frames:,} img16 frames, {workers} workers: compute_pedestals "
          f"{t_ped:.2f} s ({n_frames / t_ped:,.0f} frames/s, {ped.rows} rows); compute_dl1 "
          f"{t_dl1:.2f} s ({n_frames / t_dl1:,.0f} frames/s, {dl1.rows:,} rows, {dl1.units} units)")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
