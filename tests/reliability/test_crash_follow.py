"""Crash consistency of follow mode: SIGKILL a follow at the ingest fault points of its
first and of its second commit; the lake reads as its last commit, and following again
completes it with every frame exactly once.

The followed run starts half recorded (``grow_copy`` at 0.5, no end sentinel). The
follow (``--interval 2``) commits it at once; as soon as the test sees that commit, it
finishes the recording (every file whole, the sentinels last), and the follow's next
tick commits the rest and stops. Idle ticks touch no fault point (nothing changed:
nothing is opened), so the trace of an uninterrupted follow (``PFFLAKE_CRASH_TRACE``)
splits into the two commits, and ``point:n`` names one moment of one of them.

After each kill: the lake is at version 0, 1 (the half run) or 2 (the whole run) and
reads exactly as the naive parser reads the matching source; a second follow (the
sentinel is there: one ingest, then it stops) gives the lake an uninterrupted one-shot
ingest of the finished run gives, row for row and array for array, and fsck is clean.
The default run kills at 6 points; ``-m reliability_full`` at every point of both.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pfflake.lake import CRASH_POINTS, Lake
from tests.reliability._lakes import (
    ZARR_LAYOUT,
    assert_same_lake,
    check_reads_as,
    ingest,
    naive_truth,
    small_run,
)
from tests.test_lake import grow_copy

SENTINELS = ("collect_complete", "run_complete", "recording_ended")
#: (commit, point) of the default run: one per phase, spread over both commits.
FAST = [(1, "zarr_file"), (1, "published_file"), (1, "commit_linked"),
        (2, "store_resized"), (2, "parquet_staged"), (2, "commit_tmp")]


def follow_cmd(lake: Path, run: Path) -> list[str]:
    code = textwrap.dedent(f"""
        import warnings
        from pfflake.lake import Lake
        warnings.simplefilter("ignore")
        Lake({str(lake)!r}, **{ZARR_LAYOUT!r}).follow([{str(run)!r}], interval=2.0)
    """)
    return [sys.executable, "-c", code]


class World:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.src = small_run(root / "src").path
        self.half = root / "half" / self.src.name
        grow_copy(self.src, self.half, 0.5)
        for name in SENTINELS:
            (self.half / name).unlink(missing_ok=True)
        self.full_truth, self.half_truth = naive_truth(self.src), naive_truth(self.half)
        assert 0 < self.half_truth.total < self.full_truth.total
        self.ref = ingest(root / "ref", [self.src])
        self._trace: dict[int, list[tuple[str, int]]] | None = None

    def play(self, target: Path, env: dict[str, str]) -> tuple[subprocess.Popen, Path]:
        """Follow the half run into ``target``; finish the recording once commit 1 is
        visible (or the follow died first). Returns the finished process and the run."""
        run = target.parent / "run" / self.src.name
        shutil.copytree(self.half, run)
        proc = subprocess.Popen(follow_cmd(target, run), env={**os.environ, **env},
                                stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while proc.poll() is None and not self._committed(target):
            assert time.monotonic() < deadline, "the follow made no first commit"
            time.sleep(0.02)
        self.finish(run)
        proc.wait(timeout=120)
        return proc, run

    @staticmethod
    def _committed(lake: Path) -> bool:
        return (lake / "_pfflake_log").is_dir() and Lake(lake).version >= 1

    def finish(self, run: Path) -> None:
        for p in sorted(self.src.iterdir()):
            if p.name not in SENTINELS:
                tmp = run / f".{p.name}.tmp"
                shutil.copyfile(p, tmp)
                os.replace(tmp, run / p.name)
        for name in SENTINELS:
            if (self.src / name).exists():
                shutil.copyfile(self.src / name, run / name)

    def trace(self) -> dict[int, list[tuple[str, int]]]:
        """Fault points of an uninterrupted follow, per commit (1, 2)."""
        if self._trace is None:
            log = self.root / "trace.txt"
            proc, _ = self.play(self.root / "trace" / "lake", {"PFFLAKE_CRASH_TRACE": str(log)})
            assert proc.returncode == 0, proc.stderr.read().decode()[-2000:]
            hits = [(p, int(n)) for _pid, p, n in (x.split() for x in log.read_text().splitlines())]
            # After its second commit the follow compacts the two (pfflake.lake.maintain,
            # whose own crash harness is tests/reliability/test_crash_maintain.py).
            cut, end = (hits.index(("committed", c)) + 1 for c in (1, 2))
            assert {p for p, _ in hits[:end]} <= set(CRASH_POINTS)
            self._trace = {1: hits[:cut], 2: hits[cut:end]}
            assert ("committed", 2) in self._trace[2] and len(self._trace) == 2
        return self._trace


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return World(tmp_path_factory.mktemp("crash_follow"))


def kill_point(world: World, commit: int, point: str) -> int:
    occ = [n for p, n in world.trace()[commit] if p == point]
    assert occ, f"{point} not reached in commit {commit}"
    return occ[len(occ) // 2]


def kill_and_check(world: World, commit: int, point: str, tmp_path: Path) -> None:
    n = kill_point(world, commit, point)
    target = tmp_path / "lake"
    proc, run = world.play(target, {"PFFLAKE_CRASH_AT": f"{point}:{n}"})
    assert proc.returncode == -signal.SIGKILL, (commit, point, n,
                                               proc.stderr.read().decode()[-2000:])
    crashed = Lake(target, **ZARR_LAYOUT)
    version = crashed.version if (target / "_pfflake_log").is_dir() else 0
    linked = point in ("commit_linked", "committed")
    assert version == commit - 1 + linked, (commit, point, version)
    if version:
        check_reads_as(crashed, [world.half_truth, world.full_truth][version - 1], version)
    crashed.close()
    again = subprocess.run(follow_cmd(target, run), capture_output=True, timeout=120)
    assert again.returncode == 0, again.stderr.decode()[-2000:]
    rerun = Lake(target)
    assert_same_lake(rerun, world.ref)
    check_reads_as(rerun, world.full_truth, rerun.version)
    assert rerun.fsck(repair=True).ok
    after = rerun.fsck()
    assert after.ok and after.leftovers == [], after.leftovers


@pytest.mark.parametrize(("commit", "point"), FAST, ids=[f"{c}-{p}" for c, p in FAST])
def test_kill_9_during_follow(world, commit, point, tmp_path):
    kill_and_check(world, commit, point, tmp_path)


@pytest.mark.reliability_full
@pytest.mark.parametrize("commit", [1, 2])
@pytest.mark.parametrize("point", CRASH_POINTS)
def test_kill_9_during_follow_full(world, commit, point, tmp_path):
    if point not in {p for p, _ in world.trace()[commit]}:
        pytest.skip(f"commit {commit} does not reach {point}")
    kill_and_check(world, commit, point, tmp_path)


def test_follow_trace_covers_both_commits(world):
    """Both commits reach every phase; the second also resizes the stores it grows."""
    first, second = ({p for p, _ in world.trace()[c]} for c in (1, 2))
    phases = {"read_batch", "zarr_file", "parquet_staged", "published_file", "commit_tmp",
              "committed"}
    assert phases <= first and phases <= second
    assert "store_resized" in second and "store_resized" not in first
    assert {p for _, p in FAST} <= first | second
