"""Resource faults: disk full and permission errors during an ingest.

Every case runs the real CLI (``python -m pfflake.cli ingest``) in a
subprocess against a lake already at version 1 (the half-recorded run), then
asks it to ingest the finished run. The ingest must fail with exactly one
``pfflake: error:`` line naming a path and the cause (no traceback, no worker
noise), and the lake must still read as version 1 (naive truth) with ``fsck``
finding no damage in committed data.

Disk full: ``RLIMIT_FSIZE`` (any platform, any user; SIGXFSZ ignored so the
write fails with EFBIG) at several sizes, so different files hit the limit;
and, where the test may mount one (root), a tmpfs too small for the ingest
(ENOSPC). Permissions: as root, chmod does not stop the writer, so the
child drops CAP_DAC_OVERRIDE (and friends) before exec, so a directory
made read-only (0555) stops it as it would any user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pfflake.lake import Lake
from tests.reliability._lakes import ZARR_LAYOUT, check_reads_as, ingest, naive_truth, small_run
from tests.test_lake import grow_copy

ROOT = os.geteuid() == 0


@pytest.fixture(scope="module")
def world():
    """Sources and a lake at version 1 (the half-recorded run)."""
    base = Path(tempfile.mkdtemp(prefix="pfflake-res-"))
    src = small_run(base / "src", truncate_tail_bytes=0).path
    half = base / "half" / src.name
    grow_copy(src, half, 0.5)
    lake = base / "lake_v1"
    ingest(lake, [half])
    yield base, src, half, lake, naive_truth(half)
    shutil.rmtree(base, ignore_errors=True)


def _cli(lake: Path, run: Path, fsize: int | None = None, drop_dac: bool = False):
    lines = ["import resource, signal, sys"]
    if fsize is not None:
        lines += [
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)",
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({fsize}, {fsize}))",
        ]
    lines += [
        f"sys.argv = ['pfflake', 'ingest', '--lake', {str(lake)!r}, '--workers', '1', "
        f"{str(run)!r}]",
        "from pfflake.cli import main",
        "main()",
    ]
    code = "\n".join(lines)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, timeout=300,
        cwd=Path(__file__).parents[2], preexec_fn=_drop_dac if drop_dac and ROOT else None,
    )


def _copy_lake(world, tmp_path: Path) -> Path:
    target = tmp_path / "lake"
    shutil.copytree(world[3], target, symlinks=True)
    return target


def check_failed_cleanly(proc, lake: Path, truth, *causes: str) -> str:
    err = proc.stderr.decode()
    assert proc.returncode != 0, err
    assert "Traceback" not in err, err[-3000:]
    lines = [x for x in err.splitlines() if x.startswith("pfflake: error:")]
    assert len(lines) == 1, err[-3000:]
    line = lines[0]
    assert any(c in line for c in causes), line
    assert str(lake) in line, line  # names a path inside the lake (or the lake)
    assert "version 1" in line, line
    print(line)  # shown with -s; docs/RELIABILITY.md quotes these
    check_reads_as(Lake(lake, **ZARR_LAYOUT), truth, 1)
    return line


@pytest.mark.parametrize("fsize", [4_000, 20_000])
def test_file_size_limit(world, tmp_path, fsize):
    """RLIMIT_FSIZE: some file of the ingest (Zarr chunk, Parquet, commit) hits EFBIG."""
    _, src, _, _, truth = world
    lake = _copy_lake(world, tmp_path)
    proc = _cli(lake, src, fsize=fsize)
    check_failed_cleanly(proc, lake, truth, "File too large")
    # the fault is transient: a later ingest completes and equals the one-shot lake
    rerun = ingest(lake, [src])
    check_reads_as(rerun, naive_truth(src), 2)


@pytest.mark.skipif(not ROOT or sys.platform != "linux", reason="mounting tmpfs needs root")
def test_tmpfs_full(world, tmp_path):
    """A real ENOSPC: the lake lives on a tmpfs with room for version 1 only."""
    _, src, _, lake_v1, truth = world
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    used = sum(p.stat().st_size for p in lake_v1.rglob("*") if p.is_file())
    size_kb = (used + 64 * 1024) // 1024 + 4 * len(list(lake_v1.rglob("*")))
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(mnt)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        lake = mnt / "lake"
        shutil.copytree(lake_v1, lake, symlinks=True)
        proc = _cli(lake, src)
        check_failed_cleanly(proc, lake, truth, "No space left on device")
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _drop_dac() -> None:
    """In the child, before exec: drop the capabilities that let root ignore file modes
    (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER) from the bounding set."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2, 3):
        if libc.prctl(24, cap, 0, 0, 0):  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


@pytest.mark.skipif(sys.platform != "linux", reason="drops Linux capabilities when root")
@pytest.mark.parametrize("where", ["_staging", "_pfflake_log", "frames", "zarr", "files"])
def test_permission_denied(world, tmp_path, where):
    """A directory of the lake is read-only: staging, commit, Parquet or Zarr writes fail."""
    _, src, _, _, truth = world
    lake = _copy_lake(world, tmp_path)
    ro = [lake / where, *(d for d in (lake / where).rglob("*") if d.is_dir())]
    try:
        for d in ro:
            d.chmod(0o555)
        proc = _cli(lake, src, drop_dac=True)
    finally:
        for d in ro:
            d.chmod(0o755)
    check_failed_cleanly(proc, lake, truth, "Permission denied")
