"""Ingest into the lake: round trip against the source, idempotency, growth, crashes, fsck."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import zarr

from pfflake import PFFWarning
from pfflake.lake import Lake
from pfflake.simulate import simulate_run
from tests.conftest import EXAMPLE_RUN, LEGACY_RUN
from tests.naive import naive_flat, naive_read, naive_unix_t_ns

PRODUCTS = ["img16", "img8", "ph1024", "ph256"]


def make_run(root: Path, n_frames: int = 700, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        return simulate_run(
            root,
            products=kw.pop("products", PRODUCTS),
            modules=kw.pop("modules", (1, 2)),
            n_frames=n_frames,
            frames_per_file=kw.pop("frames_per_file", 300),
            desync_frames=[3, 400],
            missing_quabo_frames={0: [0], 10: [0, 1], 650: [3]},
            truncate_tail_bytes=kw.pop("truncate_tail_bytes", 100),
            bright_events=[50, 500],
            **kw,
        )


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("src"))


@pytest.fixture(scope="module")
def lake(sim, tmp_path_factory):
    lake = Lake(tmp_path_factory.mktemp("lake") / "lake")
    result = lake.ingest([sim.path], workers=1)
    assert result.version == 1
    return lake


def frames_table(lake: Lake):
    return lake.sql(
        "SELECT * EXCLUDE (time) FROM frames ORDER BY run, data_product, module, frame"
    ).to_arrow_table()


def naive_stream(stream):
    headers, images = [], []
    for p in stream.files:
        f = naive_read(p)
        headers += f.headers
        images.append(f.images)
    return headers, np.concatenate(images)


def test_round_trip_every_column_and_image(sim, lake):
    snap = lake.snapshot()
    for key, stream in sim.streams.items():
        headers, images = naive_stream(stream)
        flats = [naive_flat(h) for h in headers]
        product, module = stream.data_product, stream.module
        rows = lake.sql(
            f"SELECT * FROM frames WHERE data_product = '{product}' AND module = {module} "
            "ORDER BY frame"
        ).to_arrow_table()
        assert rows.num_rows == len(flats), key
        assert rows.column("frame").to_pylist() == list(range(len(flats)))
        times = [naive_unix_t_ns(f, product) for f in flats]
        assert rows.column("unix_t_ns").to_pylist() == [t for t, _ in times]
        assert rows.column("time_quality").to_pylist() == [q for _, q in times]
        for field in flats[0]:
            col = field.replace(".", "_")
            assert rows.column(col).to_pylist() == [f[field] for f in flats], (key, col)
        sums = images.reshape(len(images), -1).astype(np.int64).sum(axis=1)
        assert rows.column("pixel_sum").to_pylist() == sums.tolist()
        assert rows.column("pixel_max").to_pylist() == images.reshape(len(images), -1).max(
            axis=1).tolist()
        state = next(s for s in snap.streams.values()
                     if s.data_product == product and s.module == module)
        assert state.frames == len(flats)
        store = zarr.open_group(lake.root / state.store, mode="r")
        np.testing.assert_array_equal(store["images"][: state.frames], images)
        np.testing.assert_array_equal(store["unix_t_ns"][: state.frames],
                                      rows.column("unix_t_ns").to_numpy())


def test_every_frame_once_and_tables(sim, lake):
    n = lake.sql("SELECT count(*), count(DISTINCT (run, data_product, module, frame)) FROM frames"
                 ).fetchall()[0]
    assert n[0] == n[1] == 700 * len(sim.streams)
    assert lake.sql("SELECT count(*) FROM runs").fetchall()[0][0] == 1
    files = lake.sql("SELECT count(*), sum(frames) FROM files").fetchall()[0]
    assert files == (3 * len(sim.streams), 700 * len(sim.streams))
    assert lake.sql("SELECT count(*) FROM hk").fetchall()[0][0] > 0
    configs = lake.sql("SELECT configs FROM runs").fetchall()[0][0]
    for secret in sim.secrets:
        assert secret not in configs


def test_reingest_adds_nothing(sim, lake):
    before = lake.version
    result = lake.ingest([sim.path], workers=1)
    assert result.version is None and lake.version == before


def test_no_secret_anywhere_in_the_lake(sim, lake):
    for path in lake.root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in sim.secrets:
                assert secret.encode() not in data, path


def test_pypff_reads_lake_stores(sim, lake):
    pypff_zarr = pytest.importorskip("pypff.zarr")
    snap = lake.snapshot()
    for state in snap.streams.values():
        store_dir = (lake.root / state.store).parent
        zrun = pypff_zarr.PanosetiZarrRun(store_dir)
        store = zrun.get_product(state.stream)
        ts = store.timestamps()
        rows = lake.sql(
            f"SELECT unix_t_ns FROM frames WHERE data_product = '{state.data_product}' "
            f"AND module = {state.module} ORDER BY frame"
        ).fetchnumpy()["unix_t_ns"]
        np.testing.assert_array_equal(np.asarray(ts)[: state.frames], rows)


def test_lake_stores_use_small_sharded_image_chunks(lake):
    """A scattered hit costs one ~64 KiB chunk's decode; shards bound the file count."""
    import zarr

    from pfflake.lake import IMAGE_CHUNK_BYTES, IMAGE_SHARD_FRAMES

    for state in lake.snapshot().streams.values():
        g = zarr.open_group(str(lake.root / state.store), mode="r")
        images = g["images"]
        frame_bytes = images.dtype.itemsize * int(np.prod(images.shape[1:]))
        assert images.shards[0] == IMAGE_SHARD_FRAMES
        assert images.chunks[0] >= 16 and images.chunks[0] * frame_bytes <= IMAGE_CHUNK_BYTES
        assert images.chunks[0] * frame_bytes * 2 > IMAGE_CHUNK_BYTES or images.chunks[0] == 16
        assert g["unix_t_ns"].shards is None and g["unix_t_ns"].chunks[0] == 65536
        assert images.metadata.to_dict()["codecs"][0]["configuration"]["codecs"][1] == {
            "name": "blosc",
            "configuration": {
                "typesize": images.dtype.itemsize, "cname": "lz4", "clevel": 3,
                "shuffle": "bitshuffle", "blocksize": 0,
            },
        }


def test_real_samples_ingest(tmp_path):
    lake = Lake(tmp_path / "lake")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        lake.ingest([EXAMPLE_RUN, LEGACY_RUN], workers=1)
    got = lake.sql("SELECT data_product, module, count(*) FROM frames GROUP BY ALL ORDER BY ALL"
                   ).fetchall()
    assert got == [("img16", 1, 400), ("ph256", 254, 1500 + 207)]
    for path in lake.root.rglob("*"):
        if path.is_file():
            assert b"epowerpanoseti" not in path.read_bytes(), path
    desync = lake.sql("SELECT count(*) FROM frames WHERE run = 'legacy-run' "
                      "AND time_quality & 2 = 2").fetchall()[0][0]
    assert desync == 207


def grow_copy(src: Path, dst: Path, fraction: float) -> None:
    """Copy a run as it looked while recording: each stream's bytes cut at ``fraction``."""
    dst.mkdir(parents=True, exist_ok=True)
    for p in src.iterdir():
        if p.suffix != ".pff" or p.name == "hk.pff":
            if p.is_file():
                shutil.copyfile(p, dst / p.name)
            continue
    streams: dict[str, list[Path]] = {}
    for p in sorted(src.glob("start_*.pff")):
        streams.setdefault(p.name.split(".seqno_")[0], []).append(p)
    for files in streams.values():
        files.sort(key=lambda p: int(p.name.split(".seqno_")[1].split(".")[0]))
        total = sum(p.stat().st_size for p in files)
        budget = int(total * fraction)
        for p in files:
            data = p.read_bytes()[: max(0, budget)]
            budget -= p.stat().st_size
            if data:
                (dst / p.name).write_bytes(data)


def lake_state(lake: Lake):
    table = frames_table(lake).drop_columns(["run"])
    snap = lake.snapshot()
    images = {}
    for s in snap.streams.values():
        g = zarr.open_group(lake.root / s.store, mode="r")
        images[s.stream] = g["images"][: s.frames]
    return table, images


def test_growing_run_in_three_steps_equals_one_shot(tmp_path):
    src = make_run(tmp_path / "src", n_frames=500, products=["img16", "ph256"], modules=(1,),
                   truncate_tail_bytes=0).path
    live = tmp_path / src.name
    grown = Lake(tmp_path / "grown")
    for fraction in (0.33, 0.71, 1.0):
        grow_copy(src, live, fraction)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PFFWarning)
            grown.ingest([live], workers=1)
    once = Lake(tmp_path / "once")
    once.ingest([src], workers=1)
    a, ai = lake_state(grown)
    b, bi = lake_state(once)
    assert a.equals(b)
    assert ai.keys() == bi.keys()
    for k in ai:
        np.testing.assert_array_equal(ai[k], bi[k])
    assert grown.fsck().ok


def test_fsck_finds_stray_and_missing_files(sim, tmp_path):
    target = tmp_path / "lake"
    shutil.copytree(sim.path, tmp_path / "run")
    lake = Lake(target)
    lake.ingest([tmp_path / "run"], workers=1)
    stray = target / "frames" / "data_product=img16" / "module=1" / "stray.parquet"
    stray.write_bytes(b"junk")
    report = lake.fsck()
    assert report.ok and any("stray.parquet" in x for x in report.leftovers)
    assert lake.sql("SELECT count(*) FROM frames").fetchall()[0][0] == 700 * len(sim.streams)
    lake.fsck(repair=True)
    assert not stray.exists()
    victim = next((target / "frames").rglob("*.parquet"))
    victim.unlink()
    report = lake.fsck()
    assert not report.ok and any("missing committed file" in e for e in report.errors)
    log = sorted((target / "_pfflake_log").glob("*.json"))
    assert json.loads(log[-1].read_text())["version"] == 1


def test_fsck_removes_temporary_zarr_files_of_an_interrupted_write(sim, tmp_path):
    """A killed ingest leaves ``.zarr.json.<uuid>`` and ``.<chunk>.<hex>.partial`` in a
    store (zarr then warns when it lists the group): leftovers, removed by repair."""
    import uuid

    import zarr

    target = tmp_path / "lake"
    lake = Lake(target)
    lake.ingest([sim.path], workers=1)
    store = target / next(s.store for s in lake.snapshot().streams.values())
    arr = next(p.parent for p in sorted(store.rglob("zarr.json")) if p.parent != store)
    junk = [store / f".zarr.json.{uuid.uuid4().hex}",
            arr / f".c.0.{uuid.uuid4().hex}.partial"]
    for p in junk:
        p.write_bytes(b"{")
    keep = arr / ".not-ours"  # not a name our writers use: left alone
    keep.write_bytes(b"x")
    report = lake.fsck()
    found = [x for x in report.leftovers if "temporary Zarr file" in x]
    assert report.ok and not report.clean and len(found) == 2, report.leftovers
    assert all(p.exists() for p in junk)  # reporting removes nothing
    lake.fsck(repair=True)
    assert not any(p.exists() for p in junk) and keep.exists()
    assert lake.fsck().clean
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # zarr no longer sees unknown objects
        assert list(zarr.open_group(store, mode="r").array_keys())


# -- the real samples as a scientist meets them (issue 11) --------------------------------


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    lake = Lake(tmp_path_factory.mktemp("real") / "lake")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        lake.ingest([EXAMPLE_RUN, LEGACY_RUN], workers=1, threshold=1000)
    return lake


def test_triggered_products_report_no_dropped_frames(real):
    """example-data's ph256 stream is triggered: its random intervals are not gaps."""
    ph = next(EXAMPLE_RUN.glob("*dp_ph256*.pff"))
    truth = naive_read(ph)
    dt = np.diff([naive_unix_t_ns(naive_flat(h), "ph256")[0] for h in truth.headers])
    assert (dt > 1.5 * np.median(dt)).sum() > 100  # a fixed-rate reading sees hundreds of gaps
    rate = real.sql("SELECT * FROM module_rate WHERE data_product = 'ph256' "
                    "AND run = 'example-data'").pl().row(0, named=True)
    assert rate["triggered"] and rate["gaps"] is None and rate["dropped_frames_est"] is None
    assert rate["frame_rate_hz"] == pytest.approx(len(dt) * 1e9 / dt.sum())
    examples = Path(__file__).parent.parent / "sql" / "examples"
    dropped = real.sql((examples / "dropped_frames.sql").read_text()).fetchall()
    assert dropped == []
    assert real.sql("SELECT count(*) FROM frame_gaps WHERE data_product = 'ph256'"
                    ).fetchall() == [(0,)]


def test_run_quality_uses_host_clock_when_every_frame_is_desynced(real):
    rows = {r["run"]: r for r in real.sql("SELECT * FROM run_quality WHERE data_product = "
                                          "'ph256'").pl().iter_rows(named=True)}
    legacy = rows["legacy-run"]
    assert legacy["clock_desync_frames"] == legacy["frames"] == 207
    truth = naive_read(next(LEGACY_RUN.glob("start_*.pff"))).headers
    ts = [naive_unix_t_ns(naive_flat(h), "ph256")[0] for h in truth]
    assert legacy["time_source"] == "host"
    assert legacy["duration_s"] == pytest.approx((max(ts) - min(ts)) / 1e9)
    assert legacy["frame_rate_hz"] == pytest.approx(206 * 1e9 / (max(ts) - min(ts)))
    assert rows["example-data"]["time_source"] == "wr"


def test_frames_with_hk_warns_when_hk_and_frames_do_not_overlap(real):
    from pfflake.query import HKCoverageWarning

    with pytest.warns(HKCoverageWarning) as caught:
        got = real.frames_with_hk(["DET_TEMP"]).aggregate("count(*), count(DET_TEMP)").fetchall()
    text = [str(w.message) for w in caught]
    assert any("run legacy-run module 254: DET_TEMP readings only from 2025-08-12" in t
               for t in text), text
    assert any("run example-data module 1: no DET_TEMP readings" in t for t in text), text
    assert got[0][0] == 2107


def test_threshold_is_recorded_and_kept(real, tmp_path):
    from pfflake.lake import LakeError

    got = dict(real.sql("SELECT run, pixels_above_threshold FROM runs").fetchall())
    assert got == {"example-data": 1000.0, "legacy-run": 1000.0}
    truth = naive_read(next(EXAMPLE_RUN.glob("*img16*.pff"))).images
    above = real.sql("SELECT pixels_above FROM frames WHERE module = 1 ORDER BY frame"
                     ).fetchnumpy()["pixels_above"]
    assert above.tolist() == (truth.reshape(400, -1) > 1000).sum(axis=1).tolist()
    assert real.snapshot().thresholds == {"example-data": 1000.0, "legacy-run": 1000.0}
    with pytest.raises(LakeError, match=r"ingested with threshold 1000\.0"):
        real.ingest([EXAMPLE_RUN], workers=1, threshold=5)


def test_runs_are_identified_by_observatory_and_start(real, tmp_path):
    from pfflake.lake import LakeError

    got = real.sql("SELECT run, observatory, strftime(start, '%Y-%m-%dT%H:%M:%S') "
                   "FROM runs ORDER BY run").fetchall()
    assert got == [("example-data", "UCB_lab", "2023-06-08T04:30:29"),
                   ("legacy-run", "Palomar", "2025-08-02T04:31:52")]
    other_night = tmp_path / "nights" / "example-data"  # same directory name, another run
    shutil.copytree(LEGACY_RUN, other_night)
    with pytest.raises(LakeError, match="already holds a different run named 'example-data'"):
        real.ingest([other_night], workers=1)
    moved = tmp_path / "moved" / "example-data"  # the same run, moved: still the same run
    shutil.copytree(EXAMPLE_RUN, moved)
    assert real.ingest([moved], workers=1).version is None
    anonymous = tmp_path / "anonymous"
    anonymous.mkdir()
    shutil.copyfile(IMG16_NAMELESS := next(EXAMPLE_RUN.glob("*img16*.pff")),
                    anonymous / IMG16_NAMELESS.name)
    with pytest.raises(LakeError, match="cannot tell which run this is"):
        Lake(tmp_path / "l2").ingest([anonymous], workers=1)


def test_lake_path_rules(tmp_path):
    from pfflake.lake import LakeError

    with pytest.raises(LakeError, match="no such directory"):
        Lake(tmp_path / "typo").sql("SELECT 1")
    with pytest.raises(LakeError, match="no pfflake lake here"):
        Lake(tmp_path).snapshot()
    with pytest.raises(LakeError, match="is a run directory"):
        Lake(EXAMPLE_RUN, create=True)
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(LakeError, match="not empty and not a pfflake lake"):
        Lake(tmp_path).ingest([LEGACY_RUN], workers=1)
    empty = Lake(tmp_path / "new", create=True)
    assert empty.version == 0 and empty.sql("SELECT count(*) FROM frames").fetchall() == [(0,)]
    Lake(tmp_path / "never")  # constructing alone creates nothing
    assert not (tmp_path / "never").exists()
