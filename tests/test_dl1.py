"""Calibration tables and the dl1 table in a real lake, against naive computations.

Truth: the PFF files read back frame by frame (``PFFSequence``), pedestals by
a per-pixel numpy loop over each window's frames, Hillas parameters by the
naive per-image loop of ``tests/test_images.py``.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import polars as pl
import pytest

import pfflake.lake.dl1 as dl1_mod
from pfflake.calibration import PedestalRecipe
from pfflake.caltables import CalibrationNotFoundError
from pfflake.camera import Camera
from pfflake.images import tailcuts_clean
from pfflake.lake import Lake
from pfflake.query import examples_dir
from pfflake.sequence import PFFSequence
from pfflake.showers import write_shower_run
from tests.conftest import EXAMPLE_RUN
from tests.test_calibration import naive_pedestal
from tests.test_images import KEYS, naive_hillas

HOT = ((3, 4), (20, 30))
DEAD = ((10, 10),)
N_FRAMES = 1280  # at 1 Hz: windows of 600, 600 and 80 frames (the last reuses the second)


@pytest.fixture(scope="module")
def shower_lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("dl1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run, truths = write_shower_run(root / "src", n_frames=N_FRAMES, frame_rate_hz=1.0,
                                       products=("img16", "ph1024"), modules=(1, 2),
                                       hot=HOT, dead=DEAD, shower_fraction=0.1, seed=3)
        lake = Lake(root / "lake")
        lake.ingest([run.path], workers=1)
    return lake, run, truths


def read_back(run, product, module):
    stream = run.stream(product, module)
    seq = PFFSequence(stream.files)
    out = seq.read_images(np.arange(len(seq))), seq.timestamps()
    seq.close()
    return out


@pytest.fixture(scope="module")
def calibrated(shower_lake):
    lake, _run, _truths = shower_lake
    result = lake.compute_pedestals(workers=2)
    assert result.version == lake.version and result.streams == 4
    return result


def test_pedestals_equal_naive_per_window(shower_lake, calibrated):
    lake, run, _ = shower_lake
    for product in ("img16", "ph1024"):
        for module in (1, 2):
            images, times = read_back(run, product, module)
            bounds = []
            for t in (times[0], times[0] + 600 * 10**9, times[-1]):
                cal = lake.calibration("pedestal", module, int(t), data_product=product)
                bounds.append((cal.valid_from_ns, cal.valid_to_ns, cal.source))
                var = lake.calibration("pedvar", module, int(t), data_product=product)
                window = (times >= cal.valid_from_ns) & (times < cal.valid_to_ns)
                if cal.source.startswith("reused:"):  # the last window has 100 frames
                    assert window.sum() < 100
                    src = int(cal.source.split(":")[1])
                    window = (times >= src) & (times < src + 600 * 10**9)
                ped, pv = naive_pedestal(images[window])
                np.testing.assert_allclose(cal.values, ped, rtol=1e-9, atol=1e-9)
                np.testing.assert_allclose(var.values, pv, rtol=1e-9, atol=1e-9)
                assert cal.recipe == json.loads(json.dumps(PedestalRecipe().params()))
                assert cal.source_version == 1 and cal.run == run.path.name
                hot = lake.calibration("hot", module, int(t), data_product=product)
                dead = lake.calibration("dead", module, int(t), data_product=product)
                assert sorted(zip(*np.nonzero(hot.values), strict=True)) == sorted(HOT)
                assert sorted(zip(*np.nonzero(dead.values), strict=True)) == sorted(DEAD)
            assert bounds[0][0] == times[0] and bounds[0][1] == bounds[1][0]
            assert bounds[2][1] == times[-1] + 1 and bounds[2][2].startswith("reused:")
    with pytest.raises(CalibrationNotFoundError, match="valid at"):
        lake.calibration("pedestal", 1, int(times[-1]) + 10**12, data_product="img16")
    with pytest.raises(ValueError, match="pass data_product"):
        lake.calibration("pedestal", 1, int(times[0]))


def test_calibrated_images_and_gain(shower_lake, calibrated):
    lake, run, _ = shower_lake
    images, times = read_back(run, "img16", 1)
    hits = lake.sql("SELECT run, data_product, module, frame FROM frames WHERE module = 1 "
                    "AND data_product = 'img16' AND frame % 97 = 5 ORDER BY frame")
    frames = hits.pl()["frame"].to_numpy()
    peds = np.stack([lake.calibration("pedestal", 1, int(times[f]), data_product="img16").values
                     for f in frames])
    got = lake.images(hits, calibrated=True)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, images[frames] - peds, rtol=1e-6, atol=1e-3)
    # gain from the first two windows' pedvar maps; a missing field falls back in order
    t0, t1 = int(times[0]), int(times[0]) + 600 * 10**9
    res = lake.compute_gain("img16", 1, fields=[("night", t0 - 10**15, t1), ("fields", t0, t1)],
                            valid_from_ns=t0, valid_to_ns=int(times[-1]) + 1)
    assert res.version == lake.version
    gain = lake.calibration("gain", 1, t0, data_product="img16")
    assert gain.source.startswith("fields:") and np.isclose(gain.values.mean(), 1.0)
    got = lake.images(hits, calibrated=True)
    np.testing.assert_allclose(got, (images[frames] - peds) / gain.values, rtol=1e-5, atol=1e-3)
    lake.compute_gain("img16", 2, fields=[("none", 0, 1)], valid_from_ns=t0, valid_to_ns=t1)
    assert lake.calibration("gain", 2, t0, data_product="img16").source == "flat"


def naive_dl1(lake, run, product, module, frames, times, recipe=dl1_mod.Dl1Recipe()):
    images, _ = read_back(run, product, module)
    cam = Camera.for_product(product)
    rows = []
    cache = []

    def cal(kind, t):
        for c in cache:
            if c.kind == kind and c.valid_from_ns <= t < c.valid_to_ns:
                return c
        cache.append(lake.calibration(kind, module, t, data_product=product))
        return cache[-1]

    for f in frames:
        t = int(times[f])
        ped = cal("pedestal", t).values
        var = cal("pedvar", t).values
        try:
            gain = cal("gain", t).values
        except CalibrationNotFoundError:
            gain = np.ones_like(ped)
        sig = images[f].astype(np.float64) - ped
        mask = tailcuts_clean(sig[None], recipe.picture_pedvar * var,
                              recipe.boundary_pedvar * var, remove_boundary_pairs=True,
                              camera=cam)[0]
        if mask.sum() < 3:
            rows.append(None)
            continue
        rows.append(naive_hillas(sig / gain, mask, cam.pix_x_deg, cam.pix_y_deg))
    return rows


def test_dl1_equals_naive_and_joins(shower_lake, calibrated, monkeypatch):
    lake, run, _truths = shower_lake
    monkeypatch.setattr(dl1_mod, "UNIT_FRAMES", 64)  # several units per stream
    res = lake.compute_dl1(where="frame % 8 = 0", workers=2)
    assert res.version == lake.version and res.units > 4 and res.skipped == 0
    dl1 = lake.scan("dl1").collect().sort("data_product", "module", "frame")
    assert dl1.height == res.rows > 0
    for (product, module), part in dl1.group_by(["data_product", "module"]):
        _images, times = read_back(run, product, module)
        frames = part["frame"].to_numpy()
        assert np.array_equal(part["unix_t_ns"].to_numpy(), times[frames])
        want = naive_dl1(lake, run, product, module, frames, times)
        for row, ref in zip(part.iter_rows(named=True), want, strict=True):
            if ref is None:
                continue
            for k in KEYS:
                # 1e-7 deg absolute: sqrt of a rounding-level eigenvalue (width of a line)
                assert abs(row[k] - ref[k]) <= 1e-6 * abs(ref[k]) + 1e-7, (product, k)
    joined = lake.sql("SELECT count(*) FROM dl1 JOIN frames USING (run, data_product, module, "
                      "frame)").fetchall()[0][0]
    assert joined == dl1.height
    example = (examples_dir() / "dl1_width_size.sql").read_text()
    got = lake.sql(example).pl()
    want = (dl1.join(lake.scan("frames").collect(), on=["run", "data_product", "module", "frame"])
            .filter((pl.col("size") > 1000) & (pl.col("width") < 0.5)))
    assert got.height == min(want.height, 50) and got.height > 0
    assert set(got["frame"].to_list()) <= set(want["frame"].to_list())
    # recomputing replaces the rows of the streams it covers
    again = lake.compute_dl1(where="frame % 8 = 0", workers=1)
    assert again.rows == res.rows
    assert lake.scan("dl1").collect().height == res.rows
    # the replaced files stay for older versions: not leftovers, and fsck exits clean
    report = lake.fsck()
    assert report.clean and not report.leftovers and report.replaced > 0
    assert lake.fsck(repair=True).replaced == report.replaced


def test_dask_equals_local(shower_lake, calibrated, tmp_path):
    distributed = pytest.importorskip("distributed")
    lake, run, _ = shower_lake
    where = "frame % 8 = 0 AND module = 1"
    local = lake.compute_dl1(where=where, workers=1)
    local_rows = (lake.scan("dl1").filter(pl.col("module") == 1).collect().drop("dl1_id")
                  .sort("data_product", "frame"))
    local_cal = lake.sql("SELECT * EXCLUDE (computed_at_ns, calibration_id) FROM calibration "
                         "WHERE kind IN ('pedestal', 'pedvar') ORDER BY ALL").pl()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        dask_res = lake.compute_dl1(where=where, client=client)
        dask_rows = (lake.scan("dl1").filter(pl.col("module") == 1).collect().drop("dl1_id")
                     .sort("data_product", "frame"))
        other = Lake(tmp_path / "lake2")
        other.ingest([run.path], workers=1)
        other.compute_pedestals(client=client)
    assert dask_res.rows == local.rows
    # identical rows; only the lake version read differs (the local run committed since)
    assert dask_rows.drop("source_version").equals(local_rows.drop("source_version"))
    assert (dask_rows["source_version"] > local_rows["source_version"]).all()
    dask_cal = other.sql("SELECT * EXCLUDE (computed_at_ns, calibration_id) FROM calibration "
                         "WHERE kind IN ('pedestal', 'pedvar') ORDER BY ALL").pl()
    assert dask_cal.drop("run").equals(local_cal.drop("run"))


def test_real_sample_calibration(tmp_path):
    lake = Lake(tmp_path / "lake")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lake.ingest([EXAMPLE_RUN], workers=1)
    res = lake.compute_pedestals(workers=1)
    assert res.streams >= 2  # img16; ph256 once per quabo seen
    for product, module in (("ph256", 254), ("img16", 1)):
        seq = PFFSequence(sorted(EXAMPLE_RUN.glob(f"*dp_{product}*module_{module}*.pff")))
        images, times = seq.read_images(np.arange(len(seq))), seq.timestamps()
        quabos = (seq.get_metadata_arrays(["quabo_num"])["quabo_num"] if product == "ph256"
                  else np.full(len(seq), -1))
        seq.close()
        for q in np.unique(quabos):
            mine = quabos == q
            quabo = None if q < 0 else int(q)
            t = int(times[mine][len(times[mine]) // 2])
            cal = lake.calibration("pedestal", module, t, data_product=product, quabo=quabo)
            assert cal.quabo == quabo
            window = mine & (times >= cal.valid_from_ns) & (times < cal.valid_to_ns)
            if cal.source != "window":  # a short window: fewer than 100 frames in the sample
                window = mine
            ped, _ = naive_pedestal(images[window])
            np.testing.assert_allclose(cal.values, ped, rtol=1e-9, atol=1e-9)
        if product == "ph256":
            ph_quabos = quabos
            with pytest.raises(ValueError, match="pass quabo"):
                lake.calibration("pedestal", module, int(times[0]), data_product=product)
            hits = lake.sql("SELECT run, data_product, module, frame FROM frames "
                            "WHERE data_product = 'ph256' ORDER BY frame LIMIT 40")
            got = lake.images(hits, calibrated=True)
            want = np.stack([
                images[f] - lake.calibration("pedestal", module, int(times[f]),
                                             data_product="ph256",
                                             quabo=int(quabos[f])).values
                for f in range(40)])
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-3)
    res = lake.compute_dl1(workers=1)
    assert res.rows > 0 and lake.sql("SELECT count(*) FROM dl1").fetchall()[0][0] == res.rows
    ph = lake.sql("SELECT DISTINCT quabo FROM dl1 WHERE data_product = 'ph256'").fetchall()
    assert {q for (q,) in ph} == {int(q) for q in np.unique(ph_quabos)}


def test_ph256_calibrations_per_quabo(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run, _ = write_shower_run(tmp_path / "src", n_frames=900, products=("ph256",),
                                  frame_rate_hz=1.0, hot=((2, 3),), hk=False,
                                  shower_fraction=0.3, seed=5)
        lake = Lake(tmp_path / "lake")
        lake.ingest([run.path], workers=1)
    assert lake.compute_pedestals(workers=1).streams == 4  # one unit per quabo
    stream = run.stream("ph256", 1)
    seq = PFFSequence(stream.files)
    images, times = seq.read_images(np.arange(len(seq))), seq.timestamps()
    quabos = seq.get_metadata_arrays(["quabo_num"])["quabo_num"]
    seq.close()
    for q in range(4):
        mine = quabos == q
        cal = lake.calibration("pedestal", 1, int(times[mine][0]), data_product="ph256", quabo=q)
        window = mine & (times >= cal.valid_from_ns) & (times < cal.valid_to_ns)
        np.testing.assert_allclose(cal.values, naive_pedestal(images[window])[0], rtol=1e-9)
        hot = lake.calibration("hot", 1, int(times[mine][0]), data_product="ph256", quabo=q)
        assert np.argwhere(hot.values).tolist() == [[2, 3]]
    lake.compute_dl1(workers=1)
    dl1 = lake.scan("dl1").collect().drop_nans("x").drop_nulls("x")
    full = Camera.for_product("img16")
    for q in range(4):
        part = dl1.filter(pl.col("quabo") == q)
        assert part.height > 0
        # centroids lie in the quadrant the quabo occupies in the module
        pix = full.quabo_of_pixel.ravel() == q
        x, y = full.pix_x_deg[pix], full.pix_y_deg[pix]
        s = full.pixel_size_deg / 2
        assert part["x"].min() >= x.min() - s and part["x"].max() <= x.max() + s
        assert part["y"].min() >= y.min() - s and part["y"].max() <= y.max() + s
