"""pfflake.lake.maintain: remove, compact, vacuum, each against an independent recount.

Truth: a second lake built by one uninterrupted ingest of only what should remain (row for
row, every view), frame counts from ``tests/naive.py`` (json.loads of every header), and
the Parquet files read back directly.
"""

from __future__ import annotations

import json
import shutil
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import zarr

from pfflake import PFFWarning
from pfflake.errors import LakeError
from pfflake.lake import Lake
from pfflake.lake import maintain as M
from pfflake.lake.lake import safe_name
from pfflake.lake.log import LOG_DIR, load_snapshot, log_versions, read_commit
from pfflake.simulate import simulate_run
from tests.naive import naive_read
from tests.test_lake import grow_copy

VIEWS = {  # every view, in an order that makes rows comparable
    "frames": "SELECT * FROM frames ORDER BY run, data_product, module, frame",
    "runs_all": "SELECT * FROM runs_all ORDER BY ALL",
    "files_all": "SELECT * FROM files_all ORDER BY ALL",
    "hk": "SELECT * FROM hk ORDER BY ALL",
}


def _run(root: Path, hour: int, products=("img16", "ph256"), modules=(1, 2), n=240, seed=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        return simulate_run(root, products=products, modules=modules, n_frames=n,
                            frames_per_file=100, start=datetime(2024, 7, 1, hour, tzinfo=UTC),
                            seed=seed, bright_events=[30]).path


def _ingest(lake: Lake, runs) -> Lake:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        lake.ingest(runs, workers=1)
    return lake


def _views(lake: Lake, snap=None) -> dict:
    con = lake.connect(snap)
    try:
        return {k: con.sql(q).to_arrow_table() for k, q in VIEWS.items()}
    finally:
        con.close()


def _naive_frames(run_dir: Path) -> dict[tuple[str, int], int]:
    out: dict[tuple[str, int], int] = {}
    for p in run_dir.glob("start_*.pff"):
        dp = p.name.split(".dp_")[1].split(".")[0]
        module = int(p.name.split(".module_")[1].split(".")[0])
        out[(dp, module)] = out.get((dp, module), 0) + len(naive_read(p).headers)
    return out


def _counts(lake: Lake, run: str) -> dict[tuple[str, int], int]:
    rows = lake.sql(f"SELECT data_product, module, count(*) FROM frames WHERE run = '{run}' "
                    "GROUP BY ALL").fetchall()
    return {(dp, m): n for dp, m, n in rows}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return _run(root / "a", 5), _run(root / "b", 7, products=("img16",), modules=(1,), seed=1)


@pytest.fixture(scope="module")
def only_a(runs, tmp_path_factory):
    return _ingest(Lake(tmp_path_factory.mktemp("only_a") / "lake"), [runs[0]])


def test_remove_equals_a_lake_without_the_run(runs, only_a, tmp_path):
    a, b = runs
    lake = _ingest(Lake(tmp_path / "lake"), [a, b])  # one commit: runs/files files mix A and B
    before = _views(lake)
    assert _counts(lake, b.name) == _naive_frames(b)
    commit = lake.remove(b.name)
    assert commit.version == 2 and commit.removed_runs == [b.name]
    # shared runs/files files were rewritten without B, in the same commit
    assert {e.table for e in commit.add} == {"runs", "files"}
    after, want = _views(lake), _views(only_a)
    for name in VIEWS:
        assert after[name].equals(want[name]), name
    assert _counts(lake, a.name) == _naive_frames(a)
    snap, ref = lake.snapshot(), only_a.snapshot()
    assert set(snap.streams) == set(ref.streams)
    assert (snap.runs, snap.hk_records, snap.thresholds, snap.run_ids) == (
        ref.runs, ref.hk_records, ref.thresholds, ref.run_ids)
    # the old version still reads B, from files and stores still on disk
    old = _views(lake, lake.snapshot(1))
    for name in VIEWS:
        assert old[name].equals(before[name]), name
    report = lake.fsck()
    assert report.ok and report.leftovers == [] and report.clean
    assert report.replaced >= 4  # B's frames + hk + shared runs/files files, B's store
    for s in lake.snapshot(1).streams.values():
        assert (lake.root / s.store).is_dir()


def test_remove_of_separately_ingested_run_and_unknown_run(runs, only_a, tmp_path):
    a, b = runs
    lake = _ingest(_ingest(Lake(tmp_path / "lake"), [a]), [b])
    commit = lake.remove([b.name])
    assert commit.add == []  # B's files hold only B's rows: removed, nothing rewritten
    after, want = _views(lake), _views(only_a)
    for name in VIEWS:
        assert after[name].equals(want[name]), name
    with pytest.raises(LakeError, match="no run 'nope'"):
        lake.remove("nope")
    assert lake.version == 3


def test_remove_takes_calibration_rows_of_the_run(runs, tmp_path):
    a, b = runs
    lake = _ingest(Lake(tmp_path / "lake"), [a, b])
    lake.compute_pedestals(workers=1)
    want = lake.sql(f"SELECT count(*) FROM calibration WHERE run != '{b.name}'").fetchall()
    assert lake.sql(f"SELECT count(*) FROM calibration WHERE run = '{b.name}'").fetchall()[0][0]
    lake.remove(b.name)
    assert lake.sql(f"SELECT count(*) FROM calibration WHERE run = '{b.name}'"
                    ).fetchall()[0][0] == 0
    assert lake.sql("SELECT count(*) FROM calibration").fetchall() == want


@pytest.fixture(scope="module")
def grown(runs, tmp_path_factory):
    """Run A ingested while recording, in four commits: four small files per stream."""
    root = tmp_path_factory.mktemp("grown")
    live = root / runs[0].name
    lake = Lake(root / "lake")
    for fraction in (0.3, 0.55, 0.8, 1.0):
        grow_copy(runs[0], live, fraction)
        _ingest(lake, [live])
    return lake, live


def test_compact_keeps_rows_and_reduces_files(grown, only_a, tmp_path):
    src, _ = grown
    lake = Lake(tmp_path / "lake")
    shutil.copytree(src.root, lake.root)
    before, n_before = _views(lake), {t: len(v) for t, v in lake.snapshot().files.items()}
    v_before = lake.version
    sources_before = lake.fsck(sources=True)
    assert sources_before.ok and sources_before.source_ranges
    commit = lake.compact()
    assert commit is not None and commit.version == v_before + 1
    snap = lake.snapshot()
    n_after = {t: len(v) for t, v in snap.files.items()}
    assert n_after["frames"] == len(snap.streams) < n_before["frames"]
    assert n_after["hk"] == n_after["runs"] == n_after["files"] == 1
    after = _views(lake)
    for name in VIEWS:
        assert after[name].equals(before[name]), name
    # and equal to a one-shot ingest of the finished run (frames: the run dir differs)
    want = _views(only_a)
    assert after["frames"].drop_columns(["run"]).equals(want["frames"].drop_columns(["run"]))
    for e in snap.table_files("frames"):  # the documented order, and meaningful ranges
        t = pq.read_table(lake.root / e.path)
        ts = t.column("unix_t_ns").to_numpy()
        assert (np.diff(ts) >= 0).all()
        frames = t.column("frame").to_numpy()
        assert (e.first_frame, e.last_frame) == (frames.min(), frames.max())
        assert (e.min_unix_t_ns, e.max_unix_t_ns) == (ts.min(), ts.max())
        assert e.rows == t.num_rows
    report = lake.fsck(sources=True)
    assert report.ok and report.clean, report.errors + report.leftovers
    assert report.source_ranges == sources_before.source_ranges
    assert report.source_bytes == sources_before.source_bytes
    assert report.replaced == len(commit.remove)  # kept for older versions
    assert lake.compact() is None  # nothing left to merge
    old = _views(lake, lake.snapshot(v_before))
    for name in VIEWS:
        assert old[name].equals(before[name]), name


def test_compact_respects_target_and_min_files(grown, tmp_path):
    src, _ = grown
    lake = Lake(tmp_path / "lake")
    shutil.copytree(src.root, lake.root)
    sizes = sorted(e.bytes for es in lake.snapshot().files.values() for e in es)
    assert lake.compact(target_bytes=sizes[0]) is None  # every file is already big enough
    assert lake.compact(min_files=100) is None
    commit = lake.compact(target_bytes=2 * sizes[-1] + 1)
    assert commit is not None
    for e in commit.add:
        if e.table == "frames":
            assert e.bytes < 2 * (2 * sizes[-1] + 1)


def test_compact_retries_after_a_concurrent_commit(grown, runs, tmp_path, monkeypatch):
    """Another writer commits first: compact re-plans, and both commits are in the lake."""
    src, _ = grown
    lake = Lake(tmp_path / "lake")
    shutil.copytree(src.root, lake.root)
    v0 = lake.version
    real = M.publish_commit
    calls = []

    def racing(root, commit):
        calls.append(commit.version)
        if len(calls) == 1:  # the other writer: an ingest of run B, published first
            _ingest(Lake(root), [runs[1]])
        return real(root, commit)

    monkeypatch.setattr(M, "publish_commit", racing)
    commit = lake.compact()
    assert calls == [v0 + 1, v0 + 2] and commit.version == v0 + 2
    assert _counts(lake, runs[1].name) == _naive_frames(runs[1])
    assert lake.snapshot(v0 + 1).runs == lake.snapshot().runs
    assert lake.fsck().clean  # nothing left over


def test_compact_replans_when_a_concurrent_commit_removed_its_inputs(grown, runs, tmp_path,
                                                                    monkeypatch):
    """The other writer removed the run being compacted: compact's files are dropped, it
    re-plans against the new snapshot (nothing left to merge) and the removal stands."""
    src, _ = grown
    lake = Lake(tmp_path / "lake")
    shutil.copytree(src.root, lake.root)
    run = next(iter(lake.snapshot().runs))
    real = M.publish_commit
    calls = []

    def racing(root, commit):
        calls.append(commit.operation)
        if len(calls) == 1:
            Lake(root).remove(run)  # goes through M.publish_commit too
        return real(root, commit)

    monkeypatch.setattr(M, "publish_commit", racing)
    assert lake.compact() is None
    assert calls == ["compact", "remove"]
    assert lake.snapshot().runs == set()
    assert lake.sql("SELECT count(*) FROM frames").fetchall()[0][0] == 0
    assert lake.fsck().clean  # the merged files of the lost attempt were deleted


def _age_log(lake: Lake, days: float, upto: int) -> None:
    """Pretend commits <= upto were published ``days`` ago (edits committed_at)."""
    for v in log_versions(lake.root):
        if v > upto:
            continue
        p = lake.root / LOG_DIR / f"{v:020d}.json"
        doc = json.loads(p.read_text())
        doc["committed_at"] = (datetime.now(UTC) - timedelta(days=days)).isoformat()
        p.write_text(json.dumps(doc, indent=1, sort_keys=True))


def test_vacuum_deletes_only_what_no_kept_version_needs(runs, only_a, tmp_path):
    a, b = runs
    lake = _ingest(Lake(tmp_path / "lake"), [a, b])  # v1
    lake.remove(b.name)  # v2
    _age_log(lake, 10, upto=2)
    latest = _views(lake)
    assert lake.vacuum("30d").files == []  # v1 is younger than 30 days: kept
    report = lake.vacuum("7d", dry_run=True)
    assert report.kept_from == 2 and report.files and report.stores
    assert all((lake.root / p).exists() for p in report.files + report.stores)
    report = lake.vacuum("7d")
    assert report.oldest_readable == 2
    assert not any((lake.root / p).exists() for p in report.files + report.stores)
    assert {p.split("/")[0] for p in report.files} == {"frames", "hk", "runs", "files"}
    assert all(safe_name(b.name) in s for s in report.stores)
    after = _views(lake)
    for name in VIEWS:
        assert after[name].equals(latest[name]), name
        assert after[name].equals(_views(only_a)[name]), name
    with pytest.raises(LakeError, match=r"version 1's files were vacuumed on .*"
                       r"the oldest readable version is 2"):
        lake.snapshot(1)
    with pytest.raises(LakeError, match="vacuumed"):
        load_snapshot(lake.root, version=1)
    fsck = lake.fsck()
    assert fsck.clean and fsck.replaced == 0
    assert lake.vacuum("0s").files == []  # nothing left


def test_vacuum_keeps_the_version_live_at_the_cutoff(grown, tmp_path):
    """Commits 1-4 ten days old, compact (5) now: 'older than 7d' keeps v4, which still
    needs the small files compact replaced; '0s' deletes them."""
    src, _ = grown
    lake = Lake(tmp_path / "lake")
    shutil.copytree(src.root, lake.root)
    lake.compact()
    _age_log(lake, 10, upto=4)
    assert lake.vacuum("7d").files == []
    v4 = _views(lake, lake.snapshot(4))
    report = lake.vacuum("0s")
    assert report.files and report.oldest_readable == 5 and report.kept_from == 5
    with pytest.raises(LakeError, match="oldest readable version is 5"):
        lake.snapshot(4)
    for name, t in _views(lake).items():
        assert t.equals(v4[name]), name
    for s in lake.snapshot().streams.values():  # Zarr untouched by compact and vacuum
        g = zarr.open_group(lake.root / s.store, mode="r")
        assert g["images"].shape[0] >= s.frames
    assert lake.fsck(sources=True).clean


def test_vacuum_removes_dead_staging_but_not_live(grown, tmp_path):
    src, _ = grown
    lake = Lake(tmp_path / "lake")
    shutil.copytree(src.root, lake.root)
    dead = lake.root / "_staging" / "1-dead"
    dead.mkdir(parents=True)
    import socket

    (dead / "owner.json").write_text(json.dumps({"host": socket.gethostname(), "pid": 2**22 + 7}))
    import os

    live = lake.root / "_staging" / "2-live"
    live.mkdir()
    (live / "owner.json").write_text(json.dumps({"host": socket.gethostname(),
                                                 "pid": os.getpid()}))
    report = lake.vacuum("0s")
    assert report.staging == ["_staging/1-dead"]
    assert not dead.exists() and live.exists()


def test_parse_duration():
    assert M.parse_duration("7d") == timedelta(days=7)
    assert M.parse_duration("12h") == timedelta(hours=12)
    assert M.parse_duration("30m") == timedelta(minutes=30)
    assert M.parse_duration("0s") == timedelta(0)
    assert M.parse_duration("1d12h") == timedelta(hours=36)
    for bad in ("", "7", "d", "7x", "-1d", "7d junk"):
        with pytest.raises(ValueError):
            M.parse_duration(bad)


def test_cli_remove_compact_vacuum(runs, tmp_path):
    import subprocess
    import sys

    a, b = runs
    lake = _ingest(_ingest(Lake(tmp_path / "lake"), [a]), [b])

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "pfflake", *map(str, args)],
                              capture_output=True, text=True, timeout=300)

    r = cli("remove", lake.root, b.name)
    assert r.returncode == 0 and "lake at version 3" in r.stdout, r.stderr
    r = cli("remove", lake.root, "nope")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "no run 'nope'" in r.stderr
    r = cli("compact", lake.root)
    assert r.returncode == 0 and "version" in r.stdout, r.stderr
    r = cli("vacuum", lake.root, "--older-than", "soon")
    assert r.returncode == 2 and "--older-than" in r.stderr
    r = cli("vacuum", lake.root, "--older-than", "0s", "--dry-run")
    assert r.returncode == 0 and "would delete" in r.stdout
    r = cli("vacuum", lake.root, "--older-than", "0s")
    assert r.returncode == 0 and "deleted" in r.stdout, r.stderr
    r = cli("fsck", lake.root)
    assert r.returncode == 0, r.stdout


# -- ingest --replace -------------------------------------------------------------------------


def _naive_images(run_dir: Path) -> dict:
    files: dict[tuple[str, int], list[Path]] = {}
    for p in run_dir.glob("start_*.pff"):
        dp = p.name.split(".dp_")[1].split(".")[0]
        module = int(p.name.split(".module_")[1].split(".")[0])
        files.setdefault((dp, module), []).append(p)
    out = {}
    for k, ps in files.items():
        ps.sort(key=lambda p: int(p.name.split(".seqno_")[1].split(".")[0]))
        out[k] = np.concatenate([naive_read(p).images for p in ps])
    return out


def test_replace_reingests_a_changed_run_in_one_commit(runs, tmp_path):
    _, b = runs
    src = tmp_path / "src"
    a = _run(src, 5, n=240, seed=0)
    old_pixels = _naive_images(a)
    lake = _ingest(Lake(tmp_path / "lake"), [a, b])  # v1
    shutil.rmtree(a)
    assert _run(src, 5, n=180, seed=9) == a  # same name, other content
    with pytest.raises(LakeError, match=r"changed|frames"):
        _ingest(lake, [a])
    assert lake.version == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        result = lake.replace([a], workers=1)
    assert result.version == 2 and len(log_versions(lake.root)) == 2  # one commit
    ref = _ingest(Lake(tmp_path / "ref"), [a, b])
    got, want = _views(lake), _views(ref)
    assert got["frames"].equals(want["frames"])
    assert got["hk"].equals(want["hk"])
    for view in ("runs", "files"):  # latest rows per key, every column but the version
        q = f"SELECT * EXCLUDE (version) FROM {view}_all ORDER BY ALL"
        assert lake.sql(q).to_arrow_table().equals(ref.sql(q).to_arrow_table()), view
    assert lake.sql("SELECT * FROM runs ORDER BY ALL").to_arrow_table().equals(
        ref.sql("SELECT * FROM runs ORDER BY ALL").to_arrow_table())
    assert _counts(lake, a.name) == _naive_frames(a)
    new_pixels = _naive_images(a)
    snap = lake.snapshot()
    a_streams = {k: s for k, s in snap.streams.items() if k[0] == a.name}
    for s in a_streams.values():  # new stores with the new pixels
        assert s.store.endswith(".v2.zarr")
        g = zarr.open_group(lake.root / s.store, mode="r")
        np.testing.assert_array_equal(g["images"][: s.frames],
                                      new_pixels[(s.data_product, s.module)])
    old = lake.snapshot(1)
    for k, s in old.streams.items():  # version 1 still reads the old pixels
        if k[0] == a.name:
            g = zarr.open_group(lake.root / s.store, mode="r")
            np.testing.assert_array_equal(g["images"][: s.frames],
                                          old_pixels[(s.data_product, s.module)])
    assert lake.fsck().clean
    assert _ingest(lake, [a]).version == 2  # idempotent afterwards
    assert lake.vacuum("0s").stores  # the old stores go; the new ones stay
    assert lake.fsck().clean and _views(lake)["frames"].equals(want["frames"])


def test_plain_ingest_after_remove_writes_new_stores(runs, only_a, tmp_path):
    a, b = runs
    lake = _ingest(Lake(tmp_path / "lake"), [a, b])
    lake.remove(b.name)
    _ingest(lake, [b])
    s_old = lake.snapshot(1).streams
    s_new = lake.snapshot().streams
    for k in s_new:
        if k[0] == b.name:
            assert s_new[k].store != s_old[k].store
    assert _counts(lake, b.name) == _naive_frames(b)
    assert _views(lake, lake.snapshot(2))["frames"].equals(_views(only_a)["frames"])
    assert lake.fsck().clean


def test_cli_ingest_replace(runs, tmp_path):
    import subprocess
    import sys

    a, _ = runs
    lake = _ingest(Lake(tmp_path / "lake"), [a])
    r = subprocess.run([sys.executable, "-m", "pfflake", "ingest", str(a), "--lake",
                        str(lake.root), "--replace", "--workers", "1"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "lake at version 2" in r.stdout, r.stderr
    c = read_commit(lake.root, 2)
    assert c.operation == "replace" and c.removed_runs == [a.name]
    assert _counts(lake, a.name) == _naive_frames(a)
