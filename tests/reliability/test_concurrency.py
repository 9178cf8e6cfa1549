"""Concurrency: readers during ingests see only whole commits; two ingests at once
never corrupt the lake (one wins each commit version, the other re-plans or fails
with a clear LakeError).

Truth is the naive parser's reading of the sources (``_lakes.naive_truth``) and
an uninterrupted in-process ingest, never the concurrent lake's own output.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import zarr

from pfflake.lake import Lake, is_lake
from pfflake.log import Snapshot
from tests.reliability._lakes import (
    ZARR_LAYOUT,
    assert_same_lake,
    check_reads_as,
    ingest,
    ingest_cmd,
    naive_truth,
    small_run,
)
from tests.test_lake import grow_copy

STEPS = (0.25, 0.5, 0.75, 1.0)
REPO = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("conc")
    a = small_run(root / "a").path
    b = small_run(root / "b", start=datetime(2024, 7, 2, 5, tzinfo=UTC), seed=1).path
    return root, a, b


def _writer_script(lake: Path, src: Path, live: Path) -> list[str]:
    """A process that grows ``live`` step by step and ingests after each step."""
    code = textwrap.dedent(f"""
        import warnings
        from pathlib import Path
        from pfflake.lake import Lake
        from tests.test_lake import grow_copy
        warnings.simplefilter("ignore")
        lake = Lake({str(lake)!r}, **{ZARR_LAYOUT!r})
        for f in {STEPS!r}:
            grow_copy(Path({str(src)!r}), Path({str(live)!r}), f)
            lake.ingest([{str(live)!r}], workers=1)
    """)
    return [sys.executable, "-c", code]


def test_readers_see_only_whole_commits(runs, tmp_path):
    """A reader polls while a writer commits 4 growing-run steps: every snapshot it
    sees has exactly the frames (SQL) and pixels (Zarr) of one committed step."""
    _, src, _ = runs
    truths = {}
    for i, f in enumerate(STEPS, 1):
        copy = tmp_path / f"step{i}" / src.name
        grow_copy(src, copy, f)
        truths[i] = naive_truth(copy)
    live = tmp_path / "live" / src.name
    target = tmp_path / "lake"
    writer = subprocess.Popen(
        _writer_script(target, src, live), stderr=subprocess.PIPE, cwd=REPO
    )
    seen: dict[int, int] = {}
    reads = 0
    try:
        while True:
            done = writer.poll() is not None
            lake = Lake(target)
            # before the writer creates the lake, reading it is an error: nothing to see yet
            snap = lake.snapshot() if is_lake(target) else Snapshot()
            if snap.version:
                truth = truths[snap.version]
                with lake.connect(snap) as con:
                    rows = con.sql(
                        "SELECT data_product, module, count(*) FROM frames GROUP BY ALL"
                    ).fetchall()
                assert {(d, m): n for d, m, n in rows} == truth.frames, snap.version
                s = sorted(snap.streams.values(), key=lambda s: s.stream)[reads % 4]
                g = zarr.open_group(target / s.store, mode="r")
                np.testing.assert_array_equal(
                    g["images"][: s.frames], truth.images[(s.data_product, s.module)]
                )
                seen[snap.version] = seen.get(snap.version, 0) + 1
                reads += 1
            if done:
                break
            time.sleep(0.01)
    finally:
        if writer.poll() is None:
            writer.kill()
        _, err = writer.communicate()
    assert writer.returncode == 0, err.decode()[-2000:]
    assert Lake(target).version == len(STEPS)
    check_reads_as(Lake(target), truths[len(STEPS)], len(STEPS))
    assert len(seen) >= 2, f"reader saw too few versions: {seen}"


def _race(target: Path, jobs: list[list[Path]], delay: float = 0.0):
    """Start one ingest process per job (the second ``delay`` s later); wait for all."""
    procs = []
    for i, job in enumerate(jobs):
        if i and delay:
            time.sleep(delay)
        procs.append(
            subprocess.Popen(ingest_cmd(target, job), stderr=subprocess.PIPE, cwd=REPO)
        )
    out = []
    for p in procs:
        _, err = p.communicate(timeout=300)
        out.append((p.returncode, err.decode()))
    return out


def _check_outcomes(outcomes) -> None:
    """Each process succeeded, or failed with one clear LakeError (no other traceback)."""
    for code, err in outcomes:
        if code != 0:
            last = err.strip().splitlines()[-1]
            assert last.startswith("pfflake.lake.LakeError:"), err[-3000:]
    assert any(code == 0 for code, _ in outcomes)


FULL = pytest.mark.reliability_full


@pytest.mark.parametrize(
    "delay", [0.0, 0.7, *(pytest.param(d, marks=FULL) for d in (0.3, 1.0, 1.5, 2.0))]
)
def test_two_ingests_same_run(runs, tmp_path, delay):
    """Two processes ingest the same run at once: one commit wins; the lake equals an
    uninterrupted ingest, every frame exactly once, fsck clean."""
    root, a, _ = runs
    ref = _reference(root, [a])
    target = tmp_path / "lake"
    _check_outcomes(_race(target, [[a], [a]], delay))
    lake = Lake(target)
    assert lake.version == 1  # the loser re-planned and found nothing new
    check_reads_as(lake, naive_truth(a), 1)
    assert_same_lake(lake, ref)
    assert lake.fsck().ok


@pytest.mark.parametrize("delay", [0.0, pytest.param(0.7, marks=FULL)])
def test_two_ingests_different_runs(runs, tmp_path, delay):
    """Two processes ingest different runs at once: two commits, both runs whole."""
    root, a, b = runs
    target = tmp_path / "lake"
    _check_outcomes(_race(target, [[a], [b]], delay))
    lake = Lake(target)
    assert lake.version == 2
    ta, tb = naive_truth(a), naive_truth(b)
    per_run = lake.sql("SELECT run, count(*) FROM frames GROUP BY ALL ORDER BY ALL").fetchall()
    assert per_run == sorted([(a.name, ta.total), (b.name, tb.total)])
    n, distinct = lake.sql(
        "SELECT count(*), count(DISTINCT (run, data_product, module, frame)) FROM frames"
    ).fetchall()[0]
    assert n == distinct == ta.total + tb.total
    assert_same_lake(lake, _reference(root, [a, b]))
    assert lake.fsck().ok


_REFS: dict[tuple[str, ...], Lake] = {}


def _reference(root: Path, srcs: list[Path]) -> Lake:
    key = tuple(sorted(str(s) for s in srcs))
    if key not in _REFS:
        path = root / f"ref{len(_REFS)}"
        shutil.rmtree(path, ignore_errors=True)
        _REFS[key] = ingest(path, sorted(srcs))
    return _REFS[key]


def test_stale_plan_never_blanks_committed_pixels(runs, tmp_path, monkeypatch):
    """The worst interleaving of two same-run ingests, made deterministic: B planned
    against the empty lake, A committed, then B (re)creates the stream's stores.
    Committed pixels must stay readable throughout, even if B then dies."""
    _, a, _ = runs
    target = tmp_path / "lake"
    ingest(target, [a])  # A
    truth = naive_truth(a)
    b = Lake(target, **ZARR_LAYOUT)
    monkeypatch.setattr(Lake, "snapshot", lambda self, as_of=None: Snapshot())  # stale view

    def die(point: str) -> None:
        if point == "planned":
            raise KeyboardInterrupt("B dies right after creating its stores")

    monkeypatch.setattr("pfflake.lake.ingest._fault", die)
    with pytest.raises(KeyboardInterrupt):
        b.ingest([a], workers=1)
    monkeypatch.undo()
    check_reads_as(Lake(target), truth, 1)
