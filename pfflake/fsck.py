"""``pfflake fsck``: check a lake's committed files against its log; find leftovers.

Committed damage (a file the log names that is missing, truncated or
unreadable; a Zarr store shorter than its committed frame count) is reported
as an error and never "repaired" away. Leftovers of interrupted ingests
(staged files, data files no commit names, Zarr frames beyond the committed
count, temporary log files) are reported, and removed with ``repair=True``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow.parquet as pq

from .log import LOG_DIR

if TYPE_CHECKING:
    from .lake import Lake

_TABLE_DIRS = ("frames", "runs", "files", "hk", "calibration", "dl1")


@dataclass
class FsckReport:
    version: int
    committed_files: int = 0
    errors: list[str] = field(default_factory=list)  # damage in committed data
    leftovers: list[str] = field(default_factory=list)  # uncommitted debris
    repaired: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        state = "OK" if self.ok else f"{len(self.errors)} error(s)"
        return (
            f"lake version {self.version}: {self.committed_files} committed files, {state}, "
            f"{len(self.leftovers)} leftover(s), {len(self.repaired)} repaired"
        )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fsck(lake: Lake, repair: bool = False) -> FsckReport:
    from .lake import STAGING, resize_store

    root = lake.root
    snap = lake.snapshot()
    report = FsckReport(version=snap.version)
    committed = set()
    for entries in snap.files.values():
        for e in entries:
            committed.add(e["path"])
            path = root / e["path"]
            report.committed_files += 1
            if not path.is_file():
                report.errors.append(f"missing committed file {e['path']}")
                continue
            if path.stat().st_size != e["bytes"]:
                report.errors.append(
                    f"{e['path']}: {path.stat().st_size} bytes, log says {e['bytes']}"
                )
                continue
            try:
                rows = pq.read_metadata(path).num_rows
            except Exception as exc:  # any unreadable footer is damage
                report.errors.append(f"{e['path']}: unreadable Parquet ({exc})")
                continue
            if rows != e["rows"]:
                report.errors.append(f"{e['path']}: {rows} rows, log says {e['rows']}")
    # uncommitted data files
    for d in _TABLE_DIRS:
        base = root / d
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            rel = path.relative_to(root).as_posix()
            if path.is_file() and rel not in committed:
                report.leftovers.append(f"uncommitted file {rel}")
                if repair:
                    path.unlink()
                    report.repaired.append(f"removed {rel}")
    # staging areas of ingests that are no longer running
    staging = root / STAGING
    if staging.is_dir():
        for txn in sorted(staging.iterdir()):
            owner = {}
            with contextlib.suppress(OSError, ValueError):
                owner = json.loads((txn / "owner.json").read_text())
            alive = owner.get("host") == socket.gethostname() and _pid_alive(owner.get("pid", -1))
            if alive:
                continue
            report.leftovers.append(f"staging area {txn.name} of a stopped ingest")
            if repair:
                shutil.rmtree(txn, ignore_errors=True)
                report.repaired.append(f"removed staging {txn.name}")
    for tmp in sorted((root / LOG_DIR).glob(".tmp-*")) if (root / LOG_DIR).is_dir() else []:
        report.leftovers.append(f"temporary log file {tmp.name}")
        if repair:
            tmp.unlink(missing_ok=True)
            report.repaired.append(f"removed {tmp.name}")
    # Zarr stores
    stores = {s.store: s for s in snap.streams.values() if s.store}
    zroot = root / "zarr"
    if zroot.is_dir():
        for store in sorted(zroot.glob("*/*.zarr")):
            rel = store.relative_to(root).as_posix()
            if rel not in stores:
                report.leftovers.append(f"uncommitted Zarr store {rel}")
                if repair:
                    shutil.rmtree(store, ignore_errors=True)
                    report.repaired.append(f"removed {rel}")
    for rel, state in stores.items():
        store = root / rel
        meta = store / "images" / "zarr.json"
        if not meta.is_file():
            report.errors.append(f"missing committed Zarr store {rel}")
            continue
        length = json.loads(meta.read_text())["shape"][0]
        if length < state.frames:
            report.errors.append(f"{rel}: {length} frames, log says {state.frames}")
        elif length > state.frames:
            report.leftovers.append(f"{rel}: {length - state.frames} uncommitted frames")
            if repair:
                resize_store(store, state.frames)
                report.repaired.append(f"truncated {rel} to {state.frames} frames")
    return report
