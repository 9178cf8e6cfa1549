"""Snapshot-bound reads (``Lake.at``, :class:`LakeView`) and time travel, against a naive recount.

Truth is the PFF files themselves, parsed frame by frame with ``json.loads``
(``tests/naive.py``): the lake at version 1 must hold exactly run 1's frames,
at version 2 runs 1 and 2, whatever was committed after.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pytest

from pfflake import PFFWarning
from pfflake.errors import FrameNotFoundError, LakeError
from pfflake.lake import Lake
from pfflake.lake import views as V
from pfflake.lake.analysis import light_curve
from pfflake.lake.images import images, images_at
from pfflake.simulate import DEFAULT_START, simulate_run
from tests.naive import naive_flat, naive_read, naive_unix_t_ns, product_from_name

COUNT = "SELECT run, count(*) FROM frames GROUP BY run ORDER BY run"


def naive_counts(run_dir: Path) -> dict[tuple[str, int], np.ndarray]:
    """(data_product, module) -> unix_t_ns of every whole frame, from the PFF bytes."""
    out: dict[tuple[str, int], list[int]] = {}
    for path in sorted(run_dir.glob("*.pff")):
        if ".dp_" not in path.name:
            continue
        product = product_from_name(path)
        module = int(path.name.split(".module_")[1].split(".")[0])
        parsed = naive_read(path)
        times = [naive_unix_t_ns(naive_flat(h), product)[0] for h in parsed.headers]
        out.setdefault((product, module), []).extend(times)
    return {k: np.array(v, dtype=np.int64) for k, v in out.items()}


def make_runs(root: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        one = simulate_run(root / "src", products=["img16"], modules=(1, 2), n_frames=300,
                           frame_rate_hz=100, seed=3)
        two = simulate_run(root / "src", start=DEFAULT_START + timedelta(hours=2),
                           products=["img16"], modules=(1,), n_frames=200, frame_rate_hz=100,
                           seed=4)
    return one, two


@pytest.fixture(scope="module")
def travel(tmp_path_factory):
    """A lake with run 1 at version 1 and runs 1 + 2 at version 2, and a time between."""
    root = tmp_path_factory.mktemp("travel")
    one, two = make_runs(root)
    lake = Lake(root / "lake")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        assert lake.ingest([one.path], workers=1, progress=False).version == 1
        time.sleep(0.05)
        between = datetime.now(UTC)
        time.sleep(0.05)
        assert lake.ingest([two.path], workers=1, progress=False).version == 2
    truth = {one.path.name: naive_counts(one.path), two.path.name: naive_counts(two.path)}
    yield lake, one, two, between, truth
    lake.close()


def frame_total(truth_run) -> int:
    return sum(len(t) for t in truth_run.values())


def test_at_version_sees_exactly_its_runs(travel):
    lake, one, two, _, truth = travel
    r1, r2 = one.path.name, two.path.name
    assert lake.at(1).sql(COUNT).fetchall() == [(r1, frame_total(truth[r1]))]
    assert lake.at(2).sql(COUNT).fetchall() == sorted(
        [(r1, frame_total(truth[r1])), (r2, frame_total(truth[r2]))])
    assert lake.at().version == 2 and lake.at() is lake.at(2)
    assert lake.at(0).sql("SELECT count(*) FROM frames").fetchall()[0] == (0,)
    # the Polars scan and the per-stream times of version 1 equal the files' own
    got = lake.at(1).scan().select("data_product", "module", "unix_t_ns").collect()
    for (product, module), times in truth[r1].items():
        mine = got.filter((got["data_product"] == product) & (got["module"] == module))
        assert np.array_equal(np.sort(mine["unix_t_ns"].to_numpy()), np.sort(times))
    assert sorted(lake.at(1).snapshot.runs) == [r1]


def test_at_time_picks_the_last_commit_at_or_before(travel):
    lake, _, _, between, _ = travel
    assert lake.at(time=between).version == 1
    assert lake.at(time=between.isoformat()).version == 1
    assert lake.at(time=between.replace(tzinfo=None).isoformat()).version == 1  # naive: UTC
    ns = int(between.timestamp()) * 1_000_000_000 + between.microsecond * 1000
    assert lake.at(time=ns).version == 1
    assert lake.at(time=datetime.now(UTC)).version == 2
    with pytest.raises(LakeError, match="no commit at or before"):
        lake.at(time="2001-01-01T00:00:00Z")
    with pytest.raises(ValueError, match="not both"):
        lake.at(1, time=between)


def test_unknown_version_names_the_lake_and_the_range(travel):
    lake = travel[0]
    for bad in (3, 17, -1):
        with pytest.raises(LakeError) as err:
            lake.at(bad)
        assert str(lake.root) in str(err.value)
        assert f"no version {bad}" in str(err.value) and "0..2" in str(err.value)


def test_images_of_an_old_version_are_its_frames(travel):
    lake, one, two, _, _ = travel
    v1 = lake.at(1)
    rows = v1.sql("SELECT run, data_product, module, frame FROM frames "
                  "WHERE module = 2 ORDER BY frame LIMIT 5").pl()
    got = images(v1, rows)
    files = sorted(one.path.glob("*.dp_img16.*module_2.*.pff"))
    naive = np.concatenate([naive_read(p).images for p in files])
    assert np.array_equal(got, naive[:5])
    # run 2 is not in version 1: its frames are not committed there
    with pytest.raises(FrameNotFoundError):
        images(v1, lake.at(2).sql(f"SELECT run, data_product, module, frame FROM frames "
                                  f"WHERE run = '{two.path.name}' LIMIT 1").pl())
    t2 = int(lake.at(2).sql(f"SELECT min(unix_t_ns) FROM frames WHERE run = "
                            f"'{two.path.name}'").fetchall()[0][0])
    with pytest.raises(FrameNotFoundError):
        images_at(v1, 1, t2, 1000)  # nearest frame in version 1 is two hours away
    _, found = images_at(lake.at(2), 1, t2, 1000)
    assert found.column("run").to_pylist() == [two.path.name]


def test_analysis_of_an_old_version(travel):
    lake, one, _, _, truth = travel
    curve = light_curve(lake.at(1), 10**9).fetchall()
    assert sum(r[4] for r in curve) == frame_total(truth[one.path.name])


def test_images_at_and_images_read_the_log_once(travel, monkeypatch):
    lake, one, _, _, _ = travel
    calls = []
    real = V.load_snapshot

    def counting(root, as_of=None):
        calls.append(as_of)
        return real(root, as_of)

    monkeypatch.setattr(V, "load_snapshot", counting)
    fresh = Lake(lake.root)
    first = fresh.at(1).sql("SELECT unix_t_ns FROM frames WHERE module = 1 LIMIT 1")
    t = int(first.fetchall()[0][0])
    calls.clear()
    fresh2 = Lake(lake.root)
    fresh2.images_at(1, [t, t + 10_000_000], 5_000_000, run=one.path.name)
    assert len(calls) == 1
    calls.clear()
    fresh3 = Lake(lake.root)
    fresh3.images(fresh3.sql("SELECT run, data_product, module, frame FROM frames LIMIT 3"))
    assert len(calls) == 1  # sql and images share the latest view
    for lk in (fresh, fresh2, fresh3):
        lk.close()


def test_held_relations_survive_a_new_version(tmp_path):
    one, two = make_runs(tmp_path)
    lake = Lake(tmp_path / "lake")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        lake.ingest([one.path], workers=1, progress=False)
        n1 = lake.sql("SELECT count(*) FROM frames").fetchall()[0][0]
        rel = lake.sql("SELECT count(*) FROM frames")
        con = lake.connection()
        v1 = lake.at()
        lake.ingest([two.path], workers=1, progress=False)  # version 2
    n2 = lake.sql("SELECT count(*) FROM frames").fetchall()[0][0]
    assert n2 > n1 == frame_total(naive_counts(one.path))
    assert n2 == n1 + frame_total(naive_counts(two.path))
    assert rel.fetchall()[0] == (n1,)  # the relation of version 1 still answers version 1
    assert con.sql("SELECT count(*) FROM frames").fetchall()[0] == (n1,)
    assert v1.sql("SELECT count(*) FROM frames").fetchall()[0] == (n1,)
    assert lake.connection() is not con
    # dropping every reference to the view leaves the relation valid (DuckDB keeps the
    # connection alive for it)
    rel2 = lake.at(1).sql("SELECT count(*) FROM frames")
    del v1, con
    gc.collect()
    assert rel2.fetchall()[0] == (n1,) and rel.fetchall()[0] == (n1,)
    # a view is a context manager; closing it closes its relations
    with lake.at(1) as v:
        inner = v.sql("SELECT count(*) FROM frames")
        assert inner.fetchall()[0] == (n1,)
    with pytest.raises(duckdb.ConnectionException):
        inner.fetchall()[0]
    with pytest.raises(LakeError, match="closed"):
        v.sql("SELECT 1")
    assert lake.at(1).sql("SELECT count(*) FROM frames").fetchall()[0] == (n1,)  # a new view
    latest = lake.sql("SELECT count(*) FROM frames")
    lake.close()  # closes what it made
    with pytest.raises(duckdb.ConnectionException):
        latest.fetchall()[0]
    assert lake.sql("SELECT count(*) FROM frames").fetchall()[0] == (n2,)  # reopens on use
    lake.close()


def test_stream_lookups(travel):
    lake, one, _, _, _ = travel
    snap = lake.at(1).snapshot
    state = snap.find_stream(one.path.name, data_product="img16", module=2)
    assert state.module == 2 and state.frames == 300
    assert snap.stream_index()[(one.path.name, "img16", 2)] is state
    with pytest.raises(FrameNotFoundError, match="2 streams"):
        snap.find_stream(one.path.name, data_product="img16")
    with pytest.raises(FrameNotFoundError, match="no stream"):
        snap.find_stream("no-such-run")


def test_files_between_keeps_every_file_with_rows_in_the_window(travel):
    lake = travel[0]
    view = lake.at(2)
    everything = view.scan().select("unix_t_ns").collect()["unix_t_ns"].to_numpy()
    lo, hi = int(np.quantile(everything, 0.3)), int(np.quantile(everything, 0.35))
    kept = view.snapshot.files_between("frames", lo, hi)
    assert 0 < len(kept) < len(view.snapshot.table_files("frames"))
    pruned = V.scan_files("frames", [view.root / e.path for e in kept])
    got = pruned.select("unix_t_ns").collect()["unix_t_ns"].to_numpy()
    want = everything[(everything >= lo) & (everything <= hi)]
    assert np.array_equal(np.sort(got[(got >= lo) & (got <= hi)]), np.sort(want))


def _rows(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]  # JSON lines


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pfflake", *args], capture_output=True,
                          text=True, timeout=120)


def test_cli_sql_as_of(travel):
    lake, one, _, between, truth = travel
    q = "SELECT count(*) AS n FROM frames"
    for as_of in ("1", between.isoformat()):
        done = _cli("sql", str(lake.root), q, "--as-of", as_of, "--format", "json")
        assert done.returncode == 0, done.stderr
        assert _rows(done.stdout) == [{"n": frame_total(truth[one.path.name])}]
    latest = _cli("sql", str(lake.root), q, "--format", "json")
    assert _rows(latest.stdout) == [{"n": sum(frame_total(t) for t in truth.values())}]
    bad = _cli("sql", str(lake.root), q, "--as-of", "9")
    assert bad.returncode == 1
    assert bad.stderr.count("\n") == 1 and "no version 9" in bad.stderr
    assert "0..2" in bad.stderr


def test_cli_images_as_of(travel, tmp_path):
    lake, _, two, _, _ = travel
    q = (f"SELECT run, data_product, module, frame FROM frames WHERE run = '{two.path.name}' "
         "ORDER BY frame LIMIT 2")
    out = tmp_path / "x.npy"
    assert _cli("images", str(lake.root), "--sql", q, "--out", str(out), "--as-of", "2",
                "--data-product", "img16").returncode == 0
    assert np.load(out).shape == (2, 32, 32)
    old = _cli("images", str(lake.root), "--sql", q, "--out", str(out), "--as-of", "1",
               "--data-product", "img16")
    assert old.returncode == 0 and np.load(out).shape == (0, 32, 32)  # run 2 not there yet
