"""Crash consistency of remove, compact and vacuum: SIGKILL at every fault point they reach.

As in ``test_crash.py``, the kill points are not guessed: each operation runs once
uninterrupted with ``PFFLAKE_CRASH_TRACE`` and the kills go to every point name of that
trace (its middle occurrence). The compact run checkpoints every commit, so the
checkpoint's points are killed too.

After each kill (return code -9):

1. the lake opens at its old version, or at the new one if the kill came after the
   commit's link, and every view reads exactly as the uninterrupted run's before or
   after state (row for row);
2. ``fsck`` finds no error in committed data;
3. a re-run completes the operation: the lake equals the uninterrupted result, and
   after ``fsck --repair`` nothing is left over. For vacuum: the latest reads as before,
   the old version raises the "vacuumed" error, and exactly the reference's files are
   gone.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import warnings
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pfflake.errors import LakeError
from pfflake.lake import Lake
from pfflake.lake.maintain import CRASH_POINTS
from tests.reliability._lakes import ZARR_LAYOUT, ingest, small_run
from tests.test_lake import grow_copy

VIEWS = {
    "frames": "SELECT * FROM frames ORDER BY run, data_product, module, frame",
    "runs_all": "SELECT * FROM runs_all ORDER BY ALL",
    "files_all": "SELECT * FROM files_all ORDER BY ALL",
    "hk": "SELECT * FROM hk ORDER BY ALL",
}
AFTER_COMMIT = {"commit_linked", "maintain_committed", "checkpoint_tmp", "checkpoint_pointer"}
CHECKPOINT_POINTS = {"checkpoint_tmp", "checkpoint_pointer"}


def views(root: Path) -> dict:
    lake = Lake(root)
    try:
        return {k: lake.sql(q).to_arrow_table() for k, q in VIEWS.items()}
    finally:
        lake.close()


def on_disk(root: Path) -> set[str]:
    out = set()
    for d in ("frames", "runs", "files", "hk"):
        out |= {p.relative_to(root).as_posix() for p in (root / d).rglob("*.parquet")}
    return out | {p.relative_to(root).as_posix() for p in (root / "zarr").glob("*/*.zarr")}


class World:
    """Base lakes per operation, their uninterrupted results and kill traces (built once)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        a = small_run(root / "a").path
        b = small_run(root / "b", products=("img16",), modules=(1,),
                      start=datetime(2024, 7, 1, 9, tzinfo=UTC)).path
        self.b_name = b.name
        self.base: dict[str, Path] = {}
        ab = root / "base_remove"
        ingest(ab, [a, b])  # one commit: shared runs/files files get rewritten
        self.base["remove"] = ab
        grown = root / "base_compact"
        live = root / "live" / a.name
        for fraction in (0.4, 0.7, 1.0):
            grow_copy(a, live, fraction)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ingest(grown, [live])
        self.base["compact"] = grown
        vac = root / "base_vacuum"
        shutil.copytree(ab, vac)
        Lake(vac).remove(self.b_name)
        Lake(vac).compact()
        self.base["vacuum"] = vac
        self.before = {op: views(p) for op, p in self.base.items()}
        self.versions = {op: Lake(p).version for op, p in self.base.items()}
        self.after: dict[str, dict] = {}
        self.gone: dict[str, set[str]] = {}
        self.traces: dict[str, list[tuple[str, int]]] = {}
        for op in self.base:
            target = root / f"ref_{op}"
            shutil.copytree(self.base[op], target)
            log = root / f"trace_{op}.txt"
            proc = run_op(self, op, target, {"PFFLAKE_CRASH_TRACE": str(log)})
            assert proc.returncode == 0, proc.stderr.decode()[-2000:]
            self.after[op] = views(target)
            self.gone[op] = on_disk(self.base[op]) - on_disk(target)
            hits = [line.split() for line in log.read_text().splitlines()]
            self.traces[op] = [(p, int(n)) for _pid, p, n in hits]


def op_code(world: World, op: str, target: Path) -> str:
    call = {
        "remove": f"lake.remove({world.b_name!r})",
        "compact": "L.CHECKPOINT_INTERVAL = 1\nlake.compact()",
        "vacuum": "lake.vacuum('0s')",
    }[op]
    return textwrap.dedent(f"""
        import warnings
        warnings.simplefilter("ignore")
        import pfflake.lake.log as L
        from pfflake.lake import Lake
        lake = Lake({str(target)!r}, **{ZARR_LAYOUT!r})
    """) + call + "\n"


def run_op(world: World, op: str, target: Path, env: dict[str, str]):
    return subprocess.run([sys.executable, "-c", op_code(world, op, target)],
                          env={**os.environ, **env}, capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return World(tmp_path_factory.mktemp("crash_maintain"))


def kills(world: World) -> list[tuple[str, str, int]]:
    out = []
    for op, trace in world.traces.items():
        names = list(dict.fromkeys(p for p, _ in trace))
        for name in names:
            occ = [n for p, n in trace if p == name]
            out.append((op, name, occ[len(occ) // 2]))
    return out


def test_every_point_is_named_and_reached(world):
    reached = {p for t in world.traces.values() for p, _ in t}
    assert reached <= set(CRASH_POINTS) | CHECKPOINT_POINTS
    assert set(CRASH_POINTS) <= reached  # every documented point is killed below
    assert {p for p, _ in world.traces["compact"]} >= CHECKPOINT_POINTS


SLOTS = 17  # the points the three operations reach (checked below)


@pytest.mark.parametrize("slot", range(SLOTS))
def test_kill_9_maintenance(world, slot, tmp_path):
    todo = kills(world)
    assert len(todo) == SLOTS, todo
    op, point, n = todo[slot]
    target = tmp_path / "lake"
    shutil.copytree(world.base[op], target)
    proc = run_op(world, op, target, {"PFFLAKE_CRASH_AT": f"{point}:{n}"})
    assert proc.returncode == -signal.SIGKILL, (op, point, proc.stderr.decode()[-2000:])
    base = world.versions[op]
    lake = Lake(target)
    committed = op != "vacuum" and point in AFTER_COMMIT
    assert lake.version == base + (1 if committed else 0), (op, point)
    got = views(target)
    want = world.after[op] if committed or op == "vacuum" else world.before[op]
    for name in VIEWS:
        assert got[name].equals(want[name]), (op, point, name)
    assert lake.fsck().ok, lake.fsck().errors
    # the re-run completes it
    if not (op == "remove" and committed):  # a second remove of the run is refused
        proc = run_op(world, op, target, {})
        assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    elif op == "remove":
        with pytest.raises(LakeError, match="no run"):
            Lake(target).remove(world.b_name)
    got = views(target)
    for name in VIEWS:
        assert got[name].equals(world.after[op][name]), (op, point, name)
    assert Lake(target).fsck(repair=True).ok
    after = Lake(target).fsck()
    assert after.ok and after.leftovers == [], after.leftovers
    if op == "vacuum":
        assert on_disk(world.base[op]) - on_disk(target) == world.gone[op]
        with pytest.raises(LakeError, match="vacuumed"):
            Lake(target).snapshot(1)
