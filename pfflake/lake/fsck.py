"""``pfflake fsck``: check a lake's committed files against its log; find leftovers.

Committed damage (a file the log names that is missing, truncated or
unreadable; a Zarr store shorter than its committed frame count) is reported
as an error and never "repaired" away. With ``sources=True`` every byte range
of the source PFF files that the lake ingested is re-read and its CRC-32
compared with the one recorded while ingesting (:func:`check_sources`).
Leftovers of interrupted ingests (staged files, data files no commit names,
Zarr frames beyond the committed count, temporary log files) are reported, and
removed with ``repair=True``. Data files that a later commit removed (a
recomputed ``dl1`` or calibration replaces its rows that way) are neither:
older snapshots still read them, so they are counted as ``replaced`` and
kept.
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

from .log import LOG_DIR, log_versions, read_commit

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
    replaced: int = 0  # files a later commit removed: kept for older snapshots

    source_ranges: int = 0  # ingested byte ranges re-read (--sources)
    source_bytes: int = 0
    unchecked_ranges: int = 0  # committed before checksums were recorded

    @property
    def ok(self) -> bool:
        """No damage in committed data (leftovers are not damage)."""
        return not self.errors

    @property
    def clean(self) -> bool:
        """Nothing to report: no damage and no leftover still in place (exit code 0)."""
        return not self.errors and len(self.repaired) >= len(self.leftovers)

    def summary(self) -> str:
        state = "OK" if self.ok else f"{len(self.errors)} error(s)"
        text = (
            f"lake version {self.version}: {self.committed_files} committed files, {state}, "
            f"{len(self.leftovers)} leftover(s), {len(self.repaired)} repaired"
        )
        if self.replaced:
            text += f"; {self.replaced} file(s) replaced by later commits (kept for older versions)"
        if self.source_ranges or self.unchecked_ranges:
            text += (f"; sources: {self.source_ranges} byte range(s), "
                     f"{self.source_bytes / 1e6:,.1f} MB re-read")
            if self.unchecked_ranges:
                text += (f", {self.unchecked_ranges} ingested before checksums were recorded "
                         "(not checked)")
        return text


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_sources(snap, report: FsckReport) -> None:
    """Re-read each ingested byte range of the source files; compare its CRC-32.

    Catches any change to bytes the lake ingested (a rewritten, truncated or
    deleted source file), at the cost of reading all ingested source data once.
    Bytes appended after the ingested frames (a run still recording) are not
    ingested yet and are not checked.
    """
    import zlib

    from .units import CHECKSUM_BLOCK

    for entry in snap.table_files("frames"):
        if entry.sources is None:
            report.unchecked_ranges += 1
            continue
        for src in entry.sources:
            report.source_ranges += 1
            path, lo, n = src["path"], src["offset"], src["length"]
            what = (f"source {path} bytes {lo}-{lo + n - 1} (frames {src['frames'][0]}-"
                    f"{src['frames'][1] - 1} of that file, {entry.stream})")
            crc, got = 0, 0
            try:
                with open(path, "rb") as f:
                    f.seek(lo)
                    while got < n:
                        block = f.read(min(CHECKSUM_BLOCK, n - got))
                        if not block:
                            break
                        crc = zlib.crc32(block, crc)
                        got += len(block)
            except OSError as exc:
                report.errors.append(f"{what}: cannot read ({exc.strerror or exc})")
                continue
            report.source_bytes += got
            if got < n:
                report.errors.append(f"{what}: file is shorter now ({lo + got} bytes)")
            elif crc != src["crc32"]:
                report.errors.append(f"{what}: content changed since it was ingested")


def fsck(lake: Lake, repair: bool = False, sources: bool = False) -> FsckReport:
    from .lake import STAGING, resize_store

    root = lake.root
    snap = lake.snapshot()
    report = FsckReport(version=snap.version)
    committed = set()
    for entries in snap.files.values():
        for e in entries:
            committed.add(e.path)
            path = root / e.path
            report.committed_files += 1
            if not path.is_file():
                report.errors.append(f"missing committed file {e['path']}")
                continue
            if path.stat().st_size != e.bytes:
                report.errors.append(
                    f"{e['path']}: {path.stat().st_size} bytes, log says {e['bytes']}"
                )
                continue
            try:
                rows = pq.read_metadata(path).num_rows
            except Exception as exc:  # any unreadable footer is damage
                report.errors.append(f"{e['path']}: unreadable Parquet ({exc})")
                continue
            if rows != e.rows:
                report.errors.append(f"{e['path']}: {rows} rows, log says {e['rows']}")
    removed = {e.path for v in log_versions(root) if v <= snap.version
               for e in read_commit(root, v).remove} - committed
    # uncommitted data files
    for d in _TABLE_DIRS:
        base = root / d
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            rel = path.relative_to(root).as_posix()
            if path.is_file() and rel in removed:
                report.replaced += 1
            elif path.is_file() and rel not in committed:
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
    if sources:
        check_sources(snap, report)
    return report
