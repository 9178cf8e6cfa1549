"""Crash consistency: SIGKILL an ingest at many points of every phase, then check.

The kill points are not guessed: an uninterrupted ingest runs once with
``PFFLAKE_CRASH_TRACE`` (see :mod:`pfflake.faults`), which lists every fault
point it reached and how often (reading batches, Zarr chunk files, Parquet
staging, moving files into place, the commit). Kills are then spread over
that trace, every point name first, then evenly over its occurrences.

Two scenarios:

* ``fresh``: an empty lake ingests the whole run;
* ``grow``: the lake already holds the run as it was half-recorded (commit 1),
  and the kill hits the second ingest of the finished run, which resizes
  stores and rewrites the Zarr unit holding the last committed frames.

After each kill (the process must have died by SIGKILL, return code -9):

1. the lake opens at exactly its last commit (``Lake.version``): the old one,
   or the new one if the kill came after the commit's link;
2. SQL per-stream counts, distinct frame keys and the committed Zarr pixels
   equal the naive parser's reading of the source for that commit;
3. ``fsck`` finds no error in committed data (leftovers are allowed);
4. a re-run produces a lake equal to an uninterrupted ingest, row for row
   (every column, sorted) and array for array (every Zarr array up to the
   committed count), and ``fsck(repair=True)`` then leaves no leftover.

The default run kills at 12 points; ``-m reliability_full`` kills at 60
trace points plus 6 timer kills at seeded random moments.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pfflake.lake import CRASH_POINTS, Lake
from tests.reliability._lakes import (
    ZARR_LAYOUT,
    Truth,
    assert_same_lake,
    check_reads_as,
    ingest,
    ingest_cmd,
    naive_truth,
    run_ingest,
    small_run,
)
from tests.test_lake import grow_copy

#: Points after which the new commit is visible (the version file exists).
AFTER_COMMIT = {"commit_linked", "committed"}
FAST = {"fresh": 9, "grow": 3}
FULL = {"fresh": 36, "grow": 24}
TIMER_KILLS = 6
#: Fast-subset order: one point per phase first (resize, Zarr, reading, Parquet, moving, commit).
PRIORITY = [
    "store_resized", "zarr_file", "read_batch", "parquet_staged", "published_file",
    "commit_tmp", "commit_linked", "table_staged", "planned", "committed",
]


class World:
    """The run, its half-recorded copy, reference lakes and kill traces (built once)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.src = small_run(root / "src").path
        self.half = root / "half" / self.src.name
        grow_copy(self.src, self.half, 0.5)
        self.full_truth = naive_truth(self.src)
        self.half_truth = naive_truth(self.half)
        assert 0 < self.half_truth.total < self.full_truth.total
        # Reference lakes, in-process and uninterrupted; anchored to the naive truth.
        self.ref = ingest(root / "ref", [self.src])
        check_reads_as(self.ref, self.full_truth, 1)
        self.half_lake = root / "half_lake"
        check_reads_as(ingest(self.half_lake, [self.half]), self.half_truth, 1)
        self.traces: dict[str, list[tuple[str, int]]] = {}
        self.seconds: dict[str, float] = {}

    def prepare(self, scenario: str, target: Path) -> None:
        if scenario == "grow":
            shutil.copytree(self.half_lake, target, symlinks=True)

    def trace(self, scenario: str) -> list[tuple[str, int]]:
        if scenario not in self.traces:
            target = self.root / f"trace_{scenario}"
            self.prepare(scenario, target)
            log = self.root / f"trace_{scenario}.txt"
            t0 = time.perf_counter()
            proc = run_ingest(target, [self.src], env={"PFFLAKE_CRASH_TRACE": str(log)})
            self.seconds[scenario] = time.perf_counter() - t0
            assert proc.returncode == 0, proc.stderr.decode()[-2000:]
            hits = [line.split() for line in log.read_text().splitlines()]
            self.traces[scenario] = [(p, int(n)) for _pid, p, n in hits]
            assert {p for p, _ in self.traces[scenario]} <= set(CRASH_POINTS)
        return self.traces[scenario]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return World(tmp_path_factory.mktemp("crash"))


def spread(trace: list[tuple[str, int]], k: int) -> list[tuple[str, int]]:
    """``k`` distinct kill points ``(point, n)`` from a trace.

    Fewer kills than point names (the fast subset): the names first in
    :data:`PRIORITY` (one per phase), each at its middle occurrence. Otherwise every name
    once, then the extra kills round-robin over the names that recur (Zarr
    files, moved files, batches), evenly spaced over their occurrences.
    """
    names = list(dict.fromkeys(p for p, _ in trace))
    occ = {name: [n for p, n in trace if p == name] for name in names}
    if k <= len(names):
        picks = sorted(names, key=lambda x: PRIORITY.index(x) if x in PRIORITY else 99)[:k]
        return [(name, occ[name][len(occ[name]) // 2]) for name in picks]
    quota = dict.fromkeys(names, 1)
    left = k - len(names)
    while left:
        before = left
        for name in sorted(names, key=lambda x: -len(occ[x])):
            if left and quota[name] < len(occ[name]):
                quota[name] += 1
                left -= 1
        if left == before:
            break
    out = []
    for name in names:
        c, o = quota[name], occ[name]
        out += [(name, o[round(i * (len(o) - 1) / max(c - 1, 1))]) for i in range(c)]
    return out


def kill_and_check(world: World, scenario: str, point: str, n: int, tmp_path: Path) -> None:
    target = tmp_path / "lake"
    world.prepare(scenario, target)
    proc = run_ingest(target, [world.src], env={"PFFLAKE_CRASH_AT": f"{point}:{n}"})
    assert proc.returncode == -signal.SIGKILL, (point, n, proc.stderr.decode()[-2000:])
    check_after_crash(world, scenario, target, committed=point in AFTER_COMMIT)


def check_after_crash(world: World, scenario: str, target: Path, committed: bool) -> None:
    base_version, base = (1, world.half_truth) if scenario == "grow" else (0, None)
    crashed = Lake(target, **ZARR_LAYOUT)
    if committed:
        check_reads_as(crashed, world.full_truth, base_version + 1)
    else:
        check_reads_as(crashed, base, base_version)
    crashed.close()
    rerun = ingest(target, [world.src])
    assert_same_lake(rerun, world.ref)
    assert Lake(target).fsck(repair=True).ok
    after = Lake(target).fsck()
    assert after.ok and after.leftovers == [], after.leftovers
    check_reads_as(Lake(target), world.full_truth, rerun.version)


def _params(counts: dict[str, int], marks=()) -> list:
    return [
        pytest.param(scenario, i, marks=list(marks), id=f"{scenario}-{i}")
        for scenario, k in counts.items()
        for i in range(k)
    ]


@pytest.mark.parametrize(("scenario", "slot"), _params(FAST))
def test_kill_9_fast(world, scenario, slot, tmp_path):
    point, n = spread(world.trace(scenario), FAST[scenario])[slot]
    kill_and_check(world, scenario, point, n, tmp_path)


@pytest.mark.parametrize(
    ("scenario", "slot"), _params(FULL, marks=[pytest.mark.reliability_full])
)
def test_kill_9_full(world, scenario, slot, tmp_path):
    point, n = spread(world.trace(scenario), FULL[scenario])[slot]
    kill_and_check(world, scenario, point, n, tmp_path)


@pytest.mark.reliability_full
@pytest.mark.parametrize("slot", range(TIMER_KILLS))
def test_kill_9_at_random_moment(world, slot, tmp_path):
    """Complement to the named points: SIGKILL after a seeded random delay."""
    scenario = ("fresh", "grow")[slot % 2]
    world.trace(scenario)  # measures the uninterrupted duration
    delay = random.Random(slot).uniform(0.3, 1.0) * world.seconds[scenario]
    target = tmp_path / "lake"
    world.prepare(scenario, target)
    proc = subprocess.Popen(ingest_cmd(target, [world.src]), stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    committed = Lake(target).version > (1 if scenario == "grow" else 0)
    check_after_crash(world, scenario, target, committed=committed)


def test_spread_covers_every_phase(world):
    """The kills cover reading, Zarr, Parquet and commit points; the full set has >= 50."""
    fresh, grow = world.trace("fresh"), world.trace("grow")
    phases = ("read_batch", "zarr_file", "parquet_staged", "published_file", "commit_tmp")
    assert set(phases) <= {p for p, _ in fresh}
    fast = [("fresh", *x) for x in spread(fresh, FAST["fresh"])]
    fast += [("grow", *x) for x in spread(grow, FAST["grow"])]
    assert len(set(fast)) == sum(FAST.values())
    assert set(phases) <= {p for _, p, _ in fast}
    full = [("fresh", *x) for x in spread(fresh, FULL["fresh"])]
    full += [("grow", *x) for x in spread(grow, FULL["grow"])]
    assert len(set(full)) == sum(FULL.values()) >= 50
    assert {p for _, p, _ in full} == {p for p, _ in fresh} | {p for p, _ in grow}
    assert "store_resized" in {p for s, p, _ in full if s == "grow"}


def test_truth_is_independent(world):
    """Sanity of the harness: the naive truth sees the whole run and the half run."""
    assert isinstance(world.full_truth, Truth)
    assert world.full_truth.total == 4 * 360
    assert os.path.isdir(world.half)
