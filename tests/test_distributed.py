"""pfflake.distributed: ingest on a Dask cluster equals a local ingest; worker death; Dask reads.

One LocalCluster (2 worker processes under nannies) serves the whole module. Work units
are made small (256 frames) so that a 700-frame run of 2 products x 2 modules is 12
tasks, 3 per stream, as a big run's would be.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from datetime import UTC, datetime

import numpy as np
import pytest
import zarr

dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

from pfflake import PFFWarning  # noqa: E402
from pfflake.distributed import FAULT_ENV  # noqa: E402
from pfflake.lake import Lake, LakeError, resize_store  # noqa: E402
from pfflake.query import FrameNotFoundError, QueryError  # noqa: E402
from pfflake.simulate import simulate_run  # noqa: E402
from tests.conftest import EXAMPLE_RUN  # noqa: E402
from tests.test_lake import make_run, naive_stream  # noqa: E402

LAYOUT = {"time_chunk": 64, "ts_chunk": 128}  # write unit 128 frames
UNIT = 256  # frames per work unit in this module (passed as unit_frames; the default is 65,536)
N_FRAMES = 700


@pytest.fixture(scope="module")
def client():
    with dask.config.set({"distributed.scheduler.allowed-failures": 3}):
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def set_worker_env(client, value: str | None) -> None:
    """Set (or clear) the fault hook in the workers running now (a restarted one has none)."""

    def setenv(value=value):
        if value is None:
            os.environ.pop(FAULT_ENV, None)
        else:
            os.environ[FAULT_ENV] = value

    # Clearing must not fail on a worker that is being restarted (it starts without the hook).
    client.run(setenv, on_error="raise" if value is not None else "ignore")


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    # Two products with different header fields (the frames table is their union), two modules.
    return make_run(tmp_path_factory.mktemp("src"), n_frames=N_FRAMES,
                    products=["img16", "ph256"])


@pytest.fixture(scope="module")
def local_lake(sim, tmp_path_factory):
    lake = Lake(tmp_path_factory.mktemp("local") / "lake", **LAYOUT)
    assert lake.ingest([sim.path], workers=1, unit_frames=UNIT).version == 1
    return lake


@pytest.fixture(scope="module")
def dist_lake(sim, client, tmp_path_factory):
    lake = Lake(tmp_path_factory.mktemp("dist") / "lake", **LAYOUT)
    result = lake.ingest([sim.path], client=client, unit_frames=UNIT)
    assert result.version == 1 and result.frames == N_FRAMES * len(sim.streams)
    return lake


def table(lake: Lake, query: str):
    return lake.sql(query).to_arrow_table()


def assert_same_lake(a: Lake, b: Lake) -> None:
    """Row for row (every table) and image for image (every array of every store)."""
    queries = {
        "frames": "SELECT * FROM frames ORDER BY run, data_product, module, frame",
        "runs": "SELECT * FROM runs ORDER BY run",
        "files": "SELECT * FROM files ORDER BY run, file",
        "hk": "SELECT * FROM hk ORDER BY run, unix_t_ns, device, field",
    }
    for name, q in queries.items():
        ta, tb = table(a, q), table(b, q)
        assert ta.num_rows > 0, name
        assert ta.equals(tb), name
    sa, sb = a.snapshot(), b.snapshot()
    assert sa.version == sb.version
    assert sa.streams == sb.streams
    assert len(sa.table_files("frames")) == len(sb.table_files("frames"))
    for state in sa.streams.values():
        ga = zarr.open_group(a.root / state.store, mode="r")
        gb = zarr.open_group(b.root / state.store, mode="r")
        assert dict(ga.attrs) == dict(gb.attrs)
        names = sorted(k for k, _ in ga.arrays())
        assert names == sorted(k for k, _ in gb.arrays()) and "images" in names
        for name in names:
            np.testing.assert_array_equal(
                ga[name][: state.frames], gb[name][: state.frames], err_msg=f"{state.stream} {name}"
            )


def assert_every_frame_once(lake: Lake, sim) -> None:
    n, distinct, streams, lo, hi = lake.sql(
        "SELECT count(*), count(DISTINCT (run, data_product, module, frame)), "
        "count(DISTINCT (data_product, module)), min(frame), max(frame) FROM frames"
    ).fetchall()[0]
    assert n == distinct == N_FRAMES * len(sim.streams)
    assert (streams, lo, hi) == (len(sim.streams), 0, N_FRAMES - 1)


# -- ingest -----------------------------------------------------------------------------


def test_distributed_ingest_equals_local(sim, local_lake, dist_lake):
    assert len(dist_lake.snapshot().table_files("frames")) == 3 * len(sim.streams)  # 3 units
    assert_every_frame_once(dist_lake, sim)
    assert_same_lake(dist_lake, local_lake)
    assert dist_lake.fsck().ok and not dist_lake.fsck().leftovers


def test_distributed_reingest_adds_nothing(sim, client, dist_lake):
    result = dist_lake.ingest([sim.path], client=client, unit_frames=UNIT)
    assert result.version is None and dist_lake.version == 1


def test_worker_killed_mid_ingest_still_exactly_once(sim, client, local_lake, tmp_path):
    marker = tmp_path / "killed-one-worker"
    lake = Lake(tmp_path / "lake", **LAYOUT)
    set_worker_env(client, f"kill-once:{marker}")
    try:
        result = lake.ingest([sim.path], client=client, unit_frames=UNIT)
    finally:
        set_worker_env(client, None)
    assert marker.exists(), "no worker was killed"
    assert result.version == 1 and result.frames == N_FRAMES * len(sim.streams)
    assert_every_frame_once(lake, sim)
    assert_same_lake(lake, local_lake)
    report = lake.fsck()
    assert report.ok and not report.leftovers, report.summary()
    client.wait_for_workers(2, timeout=60)  # the nanny restarted the killed worker


def test_failed_units_commit_nothing_and_next_ingest_completes(sim, client, tmp_path):
    lake = Lake(tmp_path / "lake", **LAYOUT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        small = simulate_run(tmp_path / "src", products=("img16",), modules=(1,),
                             n_frames=300, start=datetime(2024, 7, 2, 5, tzinfo=UTC))
    assert lake.ingest([small.path], workers=1, unit_frames=UNIT).version == 1
    before = table(lake, "SELECT * FROM frames ORDER BY module, frame")
    set_worker_env(client, "raise")
    try:
        with pytest.raises(LakeError, match="nothing was committed") as info:
            lake.ingest([sim.path], client=client, unit_frames=UNIT)
    finally:
        set_worker_env(client, None)
    assert "fails" in str(info.value.__cause__)
    assert lake.version == 1 and set(lake.snapshot().runs) == {small.path.name}
    assert table(lake, "SELECT * FROM frames ORDER BY module, frame").equals(before)
    assert not any((lake.root / "_staging").iterdir())
    assert lake.fsck().ok
    # The next ingest redoes everything: the lake ends complete.
    assert lake.ingest([sim.path], client=client, unit_frames=UNIT).version == 2
    n = lake.sql("SELECT count(*) FROM frames").fetchall()[0][0]
    assert n == 300 + N_FRAMES * len(sim.streams)
    assert lake.fsck().ok


def test_cli_ingest_with_scheduler_and_relative_paths(sim, client, local_lake, tmp_path):
    """``--scheduler``; relative lake and run paths are made absolute for the workers, whose
    working directory is not the coordinator's."""
    (tmp_path / "runs").mkdir()
    os.symlink(sim.path, tmp_path / "runs" / sim.path.name)
    code = textwrap.dedent(f"""
        import functools
        from pfflake.lake import ingest, lake
        ingest.UNIT_FRAMES = {UNIT}  # this module's small units and layout, as in local_lake
        lake.Lake.__init__ = functools.partialmethod(lake.Lake.__init__, **{LAYOUT!r})
        from pfflake.cli import main
        main()
    """)
    out = subprocess.run(
        [sys.executable, "-c", code, "ingest", f"runs/{sim.path.name}", "--lake", "lake",
         "--scheduler", client.scheduler.address],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert f"{N_FRAMES * len(sim.streams):,} frames" in out.stdout
    assert_same_lake(Lake(tmp_path / "lake"), local_lake)


# -- reading ----------------------------------------------------------------------------


def test_to_dask_sums_equal_duckdb_and_truth(sim, dist_lake):
    ddf = dist_lake.to_dask("frames")
    assert ddf.npartitions == len(dist_lake.snapshot().table_files("frames"))
    assert list(ddf.columns) == table(dist_lake, "SELECT * FROM frames LIMIT 0").column_names
    got = (
        ddf.groupby(["data_product", "module"])
        .agg({"frame": "count", "pixel_sum": "sum", "unix_t_ns": "max"})
        .compute()
        .sort_index()
    )
    duck = dist_lake.sql(
        "SELECT data_product, module, count(frame), sum(pixel_sum), max(unix_t_ns) "
        "FROM frames GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    assert [(dp, int(m), int(r.frame), int(r.pixel_sum), int(r.unix_t_ns))
            for (dp, m), r in got.iterrows()] == duck
    for stream in sim.streams.values():  # independent truth: the files read naively
        _, images = naive_stream(stream)
        row = got.loc[(stream.data_product, stream.module)]
        assert int(row.frame) == len(images) == N_FRAMES
        assert int(row.pixel_sum) == int(images.astype(np.int64).sum())
    # Columns a product lacks are null for it (the views' union_by_name), never a float cast.
    ph = ddf[ddf.data_product == "ph256"][["pkt_num", "quabo_0_pkt_num"]].compute()
    assert ph.pkt_num.notna().all() and ph.quabo_0_pkt_num.isna().all()
    assert str(ph.pkt_num.dtype) == "UInt32"
    assert ddf.dtypes["module"] == "Int32"


def test_to_dask_other_tables_and_columns(dist_lake):
    for name in ("runs", "files", "hk", "runs_all", "files_all"):
        got = dist_lake.to_dask(name).compute()
        duck = table(dist_lake, f"SELECT * FROM {name}")
        assert list(got.columns) == duck.column_names, name
        assert len(got) == duck.num_rows > 0, name
    part = dist_lake.to_dask("frames", columns=["module", "pixel_sum"])
    assert list(part.columns) == ["module", "pixel_sum"]
    assert int(part.pixel_sum.sum().compute()) == dist_lake.sql(
        "SELECT sum(pixel_sum) FROM frames").fetchall()[0][0]
    with pytest.raises(QueryError, match="expected one of"):
        dist_lake.to_dask("run_quality")
    with pytest.raises(QueryError, match="no column"):
        dist_lake.to_dask("frames", columns=["nope"])


def test_to_dask_reads_its_snapshot_and_images_clip_to_committed(sim, tmp_path):
    lake = Lake(tmp_path / "lake", create=True, **LAYOUT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        a = simulate_run(tmp_path / "a", n_frames=300, start=datetime(2024, 7, 3, tzinfo=UTC))
        b = simulate_run(tmp_path / "b", n_frames=200, start=datetime(2024, 7, 4, tzinfo=UTC))
    assert lake.to_dask().compute().empty
    lake.ingest([a.path], workers=1, unit_frames=UNIT)
    ddf = lake.to_dask()
    imgs = lake.images_dask(a.path.name, data_product="img16")
    lake.ingest([b.path], workers=1, unit_frames=UNIT)
    assert len(ddf) == 300 and len(lake.to_dask()) == 500  # pinned at version 1
    assert len(lake.to_dask(snap=lake.snapshot(1))) == 300
    # A store longer than its committed count (an ingest in progress) reads as committed.
    state = next(iter(lake.snapshot(1).streams.values()))
    resize_store(lake.root / state.store, 300 + 128)
    grown = lake.images_dask(a.path.name, state.stream)
    assert grown.shape[0] == imgs.shape[0] == 300
    assert all(c == LAYOUT["time_chunk"] for c in grown.chunks[0][:-1])
    np.testing.assert_array_equal(grown.compute(), imgs.compute())


def test_images_dask_equals_zarr_and_lake_images(sim, dist_lake):
    run = sim.path.name
    arr = dist_lake.images_dask(run, data_product="img16", module=2)
    rows = table(dist_lake, "SELECT run, data_product, module, frame, unix_t_ns FROM frames "
                 "WHERE data_product = 'img16' AND module = 2 ORDER BY frame")
    assert arr.shape == (N_FRAMES, 32, 32)
    np.testing.assert_array_equal(arr.compute(), dist_lake.images(rows))
    _, images = naive_stream(sim.stream("img16", 2))
    np.testing.assert_array_equal(arr[::7].compute(), images[::7])
    ts = dist_lake.images_dask(run, "dp_img16.bpp_2.module_2", array="unix_t_ns")
    np.testing.assert_array_equal(ts.compute(), rows.column("unix_t_ns").to_numpy())
    with pytest.raises(FrameNotFoundError, match="2 streams"):
        dist_lake.images_dask(run, data_product="img16")
    with pytest.raises(FrameNotFoundError, match="no stream"):
        dist_lake.images_dask("no-such-run", module=1)


# -- the local path needs no dask ------------------------------------------------------


def test_local_path_never_imports_dask(tmp_path):
    block = """import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("dask", "distributed"):
            raise ImportError(f"{name} is blocked for this test")
sys.meta_path.insert(0, _Block())
"""
    code = textwrap.dedent(f"""
        import warnings; warnings.simplefilter("ignore")
        from pfflake.lake import Lake
        import pfflake.cli, pfflake.query
        lake = Lake({str(tmp_path / "lake")!r})
        lake.ingest([{str(EXAMPLE_RUN)!r}], workers=2)
        rows = lake.sql("SELECT run, data_product, module, frame FROM frames "
                        "WHERE data_product = 'img16' LIMIT 3").to_arrow_table()
        assert lake.images(rows).shape[0] == 3
        try:
            lake.to_dask()
        except ImportError as e:
            print("IMPORT-ERROR", e)
        assert not any(m.split(".")[0] in ("dask", "distributed") for m in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", block + code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "IMPORT-ERROR" in out.stdout and "pip install 'pfflake[distributed]'" in out.stdout


def test_images_dask_chunks_are_shards(tmp_path):
    """A sharded store: one Dask chunk per shard (whole stored objects per task)."""
    lake = Lake(tmp_path / "lake", time_chunk=64, ts_chunk=128, shard_factor=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        run = simulate_run(tmp_path / "src", n_frames=300)
    lake.ingest([run.path], workers=1, unit_frames=UNIT)
    arr = lake.images_dask(run.path.name, module=1)
    assert arr.chunks[0] == (128, 128, 44)
    state = next(iter(lake.snapshot().streams.values()))
    stored = zarr.open_group(lake.root / state.store, mode="r")["images"]
    np.testing.assert_array_equal(arr.compute(), stored[:300])
