"""pfflake.lake.units: helpers of one ingest work unit (the unit itself runs in every
ingest test; here the parts a follow's lag depends on)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from pfflake.lake.units import Phases, column_numpy
from tests.conftest import EXAMPLE_RUN


@pytest.mark.parametrize("dtype", ["int8", "uint16", "int32", "uint64", "int64", "float32",
                                   "float64"])
def test_column_numpy_is_the_arrow_column_also_sliced(dtype):
    values = (np.arange(1000) * 7 - 300).astype(dtype)
    col = pa.array(values)
    for sliced, truth in ((col, values), (col.slice(123, 400), values[123:523])):
        got = column_numpy(sliced)
        assert got.dtype == truth.dtype
        np.testing.assert_array_equal(got, truth)
        np.testing.assert_array_equal(got, sliced.to_numpy())


def test_column_numpy_falls_back_for_nulls_and_other_types():
    with pytest.raises(pa.ArrowInvalid):  # as to_numpy(): a null has no numpy value
        column_numpy(pa.array([1, None, 3], pa.int64()))
    ts = pa.array(np.array([1, 2], dtype="datetime64[ns]"))
    assert column_numpy(ts).dtype == np.dtype("datetime64[ns]")


def test_phases_add_up():
    ph = Phases()
    with ph.timed("a"):
        pass
    ph.add("a", 1.0)
    ph.merge({"a": 0.5, "fsyncs": 2})
    assert 1.5 <= ph["a"] < 1.6 and ph["fsyncs"] == 2


def test_an_ingest_reports_its_phases_and_its_unit_loads_no_pandas(tmp_path):
    """Each ingest says where its time went; the work unit (what a worker process runs)
    converts Arrow columns without pyarrow's pandas probe, which imports pandas (seconds
    in a fresh worker process)."""
    code = textwrap.dedent(f"""
        import sys, warnings
        warnings.simplefilter("ignore")
        from pfflake.lake import Lake
        from pfflake.lake.ingest import IngestOptions, ingest
        import pfflake.lake.units as units
        real = units.run_unit
        seen = []
        def unit(task):
            r = real(task)
            seen.append("pandas" in sys.modules)
            return r
        units.run_unit = unit
        import pfflake.lake.ingest as ing
        ing.run_unit = unit
        r = ingest(Lake({str(tmp_path / 'lake')!r}), [{str(EXAMPLE_RUN)!r}],
                   IngestOptions(workers=1, progress=False))
        print(sorted(k for k, v in r.phases.items() if v > 0), seen, r.published_at > 0)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    for name in ("plan", "read", "zarr", "parquet", "fsync", "fsyncs", "publish_commit"):
        assert f"'{name}'" in out.stdout, out.stdout
    assert "[False, False] True" in out.stdout, out.stdout


class SyncSpy:
    """Records fsyncs (by the path of the descriptor) and renames/links, in order, while
    the real calls run (nothing is faked: the ingest really writes and syncs)."""

    def __init__(self, monkeypatch) -> None:
        self.events: list[tuple[str, str, str]] = []
        real_fsync, real_replace, real_link = os.fsync, os.replace, os.link

        def fsync(fd):
            self.events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"), ""))
            return real_fsync(fd)

        def replace(src, dst, **kw):
            real_replace(src, dst, **kw)
            self.events.append(("rename", str(Path(src).absolute()), str(Path(dst).absolute())))

        def link(src, dst, **kw):
            real_link(src, dst, **kw)
            self.events.append(("link", str(Path(src).absolute()), str(Path(dst).absolute())))

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(os, "link", link)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
@pytest.mark.parametrize("growing", [False, True])
def test_every_file_a_commit_counts_is_durable_before_it(tmp_path, monkeypatch, growing):
    """Power-loss safety, checked on the order of the real system calls of two ingests
    (half a run, then the rest: the second rewrites the partial last chunks): every
    Zarr, zarr.json and Parquet file is fsynced under its temporary name before it
    replaces anything, and before the commit is linked every directory that got an
    entry has been fsynced after its last entry arrived."""
    from pfflake.lake import Lake
    from pfflake.lake.ingest import IngestOptions, ingest
    from tests.test_lake import grow_copy

    run = tmp_path / "run" / EXAMPLE_RUN.name
    grow_copy(EXAMPLE_RUN, run, 0.5)
    lake = Lake(tmp_path / "lake")
    options = IngestOptions(workers=1, progress=False, growing=growing)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # half a run: its last frames are cut short
        ingest(lake, [run], options)  # creates the lake and its stores
        grow_copy(EXAMPLE_RUN, run, 1.0)
        spy = SyncSpy(monkeypatch)
        ingest(lake, [run], options)
        monkeypatch.undo()
    root = str(lake.root.resolve())
    events = spy.events
    commit = next(i for i, e in enumerate(events) if e[0] == "link")
    synced_at: dict[str, list[int]] = {}
    for i, (kind, path, _) in enumerate(events[:commit]):
        if kind == "fsync":
            synced_at.setdefault(path, []).append(i)

    def synced(path: str, after: int, before: int) -> bool:
        return any(after < i < before for i in synced_at.get(path, ()))

    renames = [(i, a, b) for i, (kind, a, b) in enumerate(events[:commit])
               if kind == "rename" and b.startswith(root) and "/_staging/" not in b]
    for i, a, b in renames:
        # the new content durable before it replaces anything, or (a file no reader
        # can reach yet: staged tables) at its final name before the commit
        assert synced(a, -1, i) or synced(b, i, commit), f"{b} not durable before the commit"
        if "/zarr/" in b:
            assert synced(a, -1, i), f"{b} replaced by {a} before it was fsynced"
    last_entry: dict[str, int] = {}
    for i, _, b in renames:
        last_entry[str(Path(b).parent)] = i
    for d, i in last_entry.items():
        assert synced(d, i, commit), f"{d} not fsynced after its last new entry"
    assert len(renames) > 20  # Zarr chunks and shards, zarr.json documents, Parquet files
