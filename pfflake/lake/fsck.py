"""``pfflake fsck``: check a lake's committed files against its log; find leftovers.

Committed damage (a file the log names that is missing, truncated or
unreadable; a Zarr store shorter than its committed frame count) is reported
as an error and never "repaired" away. With ``sources=True`` every byte range
of the source PFF files that the lake ingested is re-read and its CRC-32
compared with the one recorded while ingesting (:func:`check_sources`).
Leftovers of interrupted ingests (staged files, data files no commit names,
Zarr frames beyond the committed count, temporary log files) are reported, and
removed with ``repair=True``. Data files that a later commit removed (a
recomputed ``dl1`` or calibration, ``compact``, ``remove``) and the Zarr stores of
removed runs are neither: older snapshots still read them, so they are counted
as ``replaced`` and kept (``vacuum`` deletes them once no kept version needs
them; a vacuumed file is gone on purpose and is no error). A checkpoint that
is damaged or disagrees with a replay of the log is a leftover (``--repair``
deletes it; readers then replay).

:func:`fsck` composes small checks, each usable on its own:
:func:`check_committed_files`, :func:`find_uncommitted_files`,
:func:`find_dead_staging`, :func:`find_temp_logs`,
:func:`find_uncommitted_stores`, :func:`check_store_lengths`,
:func:`check_checkpoints` and (``sources=True``) :func:`check_sources`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq

from ..errors import ZarrLayoutError
from ..store.layout import ArrayLayout
from ..store.resize import resize_store
from .layout import STAGING
from .log import (
    LOG_DIR,
    Snapshot,
    checkpoint_path,
    checkpoint_versions,
    log_versions,
    read_checkpoint,
    read_commit,
)
from .units import CHECKSUM_BLOCK

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
    replaced: int = 0  # files (and stores) a later commit removed: kept for older snapshots
    checkpoints: int = 0  # checkpoints that agree with a replay of the log

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


def pid_alive(pid: int) -> bool:
    """True if a process ``pid`` runs on this host (or exists and is not ours)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_pid_alive = pid_alive  # the name before issue 16


@dataclass
class LogHistory:
    """What the log up to one version says beyond its snapshot: files some commit removed
    and stores of removed streams (kept on disk for older versions until vacuumed)."""

    removed_files: set[str] = field(default_factory=set)
    removed_stores: set[str] = field(default_factory=set)


def log_history(root: Path, version: int) -> LogHistory:
    h = LogHistory()
    for v in log_versions(root):
        if v > version:
            break
        c = read_commit(root, v)
        h.removed_files.update(e.path for e in c.remove)
        h.removed_stores.update(d["store"] for d in c.removed_streams or () if d.get("store"))
    return h


def check_sources(snap, report: FsckReport) -> None:
    """Re-read each ingested byte range of the source files; compare its CRC-32.

    Catches any change to bytes the lake ingested (a rewritten, truncated or
    deleted source file), at the cost of reading all ingested source data once.
    Bytes appended after the ingested frames (a run still recording) are not
    ingested yet and are not checked.
    """
    import zlib

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


def check_committed_files(root: Path, snap: Snapshot, report: FsckReport) -> set[str]:
    """Every file the snapshot names exists with its logged size, a readable footer and
    its logged row count; returns the committed paths."""
    committed = set()
    for entries in snap.files.values():
        for e in entries:
            committed.add(e.path)
            path = root / e.path
            report.committed_files += 1
            if not path.is_file():
                report.errors.append(f"missing committed file {e.path}")
                continue
            size = path.stat().st_size
            if size != e.bytes:
                report.errors.append(f"{e.path}: {size} bytes, log says {e.bytes}")
                continue
            try:
                rows = pq.read_metadata(path).num_rows
            except Exception as exc:  # any unreadable footer is damage
                report.errors.append(f"{e.path}: unreadable Parquet ({exc})")
                continue
            if rows != e.rows:
                report.errors.append(f"{e.path}: {rows} rows, log says {e.rows}")
    return committed


def find_uncommitted_files(root: Path, committed: set[str], history: LogHistory,
                           report: FsckReport, repair: bool) -> None:
    """Data files under the table directories that no commit names (leftovers); files a
    commit removed are counted as ``replaced`` and kept."""
    for d in _TABLE_DIRS:
        base = root / d
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            if not path.is_file():
                continue
            rel = path.relative_to(root).as_posix()
            if rel in committed:
                continue
            if rel in history.removed_files:
                report.replaced += 1
                continue
            report.leftovers.append(f"uncommitted file {rel}")
            if repair:
                path.unlink()
                report.repaired.append(f"removed {rel}")


def find_dead_staging(root: Path, report: FsckReport, repair: bool) -> None:
    """Staging areas of ingests (and maintenance runs) no longer running on this host."""
    staging = root / STAGING
    if not staging.is_dir():
        return
    for txn in sorted(staging.iterdir()):
        if _owner_alive(txn):
            continue
        report.leftovers.append(f"staging area {txn.name} of a stopped ingest")
        if repair:
            shutil.rmtree(txn, ignore_errors=True)
            report.repaired.append(f"removed staging {txn.name}")


def find_temp_logs(root: Path, report: FsckReport, repair: bool) -> None:
    """Temporary files of interrupted commits, checkpoints or vacuum records."""
    log = root / LOG_DIR
    for tmp in sorted(log.glob(".tmp-*")) if log.is_dir() else []:
        report.leftovers.append(f"temporary log file {tmp.name}")
        if repair:
            tmp.unlink(missing_ok=True)
            report.repaired.append(f"removed {tmp.name}")


#: What an interrupted atomic Zarr write leaves in a store: ``.zarr.json.<uuid hex>``
#: (``store.layout.write_json``) and ``.<name>.<hex>.partial`` (chunk and shard files).
_STORE_TEMP = re.compile(
    r"^\.(zarr\.json\.[0-9a-f]{32}|.+\.[0-9a-f]{8}(?:[0-9a-f]{24})?\.partial)$")


def _owner_alive(txn: Path) -> bool:
    """The ingest (or maintenance run) that owns staging area ``txn`` runs on this host."""
    owner = {}
    with contextlib.suppress(OSError, ValueError):
        owner = json.loads((txn / "owner.json").read_text())
    return owner.get("host") == socket.gethostname() and pid_alive(owner.get("pid", -1))


def _live_ingest(root: Path) -> bool:
    """An ingest (or maintenance run) of this lake is running on this host."""
    staging = root / STAGING
    return any(_owner_alive(txn) for txn in (staging.iterdir() if staging.is_dir() else ()))


def find_store_temp_files(root: Path, snap: Snapshot, report: FsckReport,
                          repair: bool) -> None:
    """Temporary files of interrupted Zarr writes in committed stores (a killed ingest
    leaves them; zarr warns about them when it lists a group). Never part of the data;
    ``repair`` deletes them unless an ingest of this lake is running (it may own them)."""
    live = None
    for store in sorted({s.store for s in snap.streams.values() if s.store}):
        for d, _dirs, files in os.walk(root / store):
            for name in sorted(f for f in files if _STORE_TEMP.match(f)):
                rel = (Path(d) / name).relative_to(root)
                report.leftovers.append(f"temporary Zarr file {rel} of an interrupted write")
                if not repair:
                    continue
                live = _live_ingest(root) if live is None else live
                if live:
                    report.leftovers[-1] += " (not removed: an ingest is running)"
                    continue
                (Path(d) / name).unlink(missing_ok=True)
                report.repaired.append(f"removed {rel}")


def find_uncommitted_stores(root: Path, snap: Snapshot, history: LogHistory,
                            report: FsckReport, repair: bool) -> None:
    """Zarr stores no stream of the snapshot uses: a removed stream's store is
    ``replaced`` (kept for older versions), anything else a leftover."""
    stores = {s.store for s in snap.streams.values() if s.store}
    zroot = root / "zarr"
    if not zroot.is_dir():
        return
    for store in sorted(zroot.glob("*/*.zarr")):
        rel = store.relative_to(root).as_posix()
        if rel in stores:
            continue
        if rel in history.removed_stores:
            report.replaced += 1
            continue
        report.leftovers.append(f"uncommitted Zarr store {rel}")
        if repair:
            shutil.rmtree(store, ignore_errors=True)
            report.repaired.append(f"removed {rel}")


def _store_length(store: Path) -> int:
    try:
        return ArrayLayout(store / "images").n_frames
    except ZarrLayoutError:  # a layout the fast reader does not handle: ask zarr-python
        import zarr

        return int(zarr.open_array(store / "images", mode="r").shape[0])


def check_store_lengths(root: Path, snap: Snapshot, report: FsckReport, repair: bool) -> None:
    """Each committed store holds at least its committed frames; frames beyond are
    leftovers of an interrupted ingest (``repair`` truncates the store's metadata)."""
    for state in snap.streams.values():
        if not state.store:
            continue
        rel, store = state.store, root / state.store
        if not (store / "images" / "zarr.json").is_file():
            report.errors.append(f"missing committed Zarr store {rel}")
            continue
        length = _store_length(store)
        if length < state.frames:
            report.errors.append(f"{rel}: {length} frames, log says {state.frames}")
        elif length > state.frames:
            report.leftovers.append(f"{rel}: {length - state.frames} uncommitted frames")
            if repair:
                resize_store(store, state.frames)
                report.repaired.append(f"truncated {rel} to {state.frames} frames")


def check_versions(root: Path, report: FsckReport) -> None:
    """The log's versions are 1..N without a gap. Writers only ever publish the next
    version, and readers that start from a checkpoint stop at the first missing one, so a
    deleted commit file would hide every later commit from them."""
    versions = log_versions(root)
    if versions and versions != list(range(1, versions[-1] + 1)):
        have = set(versions)
        missing = [v for v in range(1, versions[-1] + 1) if v not in have]
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        report.errors.append(f"the commit log misses {len(missing)} version(s): {shown} "
                             f"(of 1..{versions[-1]}); readers stop before the first gap")


def check_checkpoints(root: Path, report: FsckReport, repair: bool) -> None:
    """Every checkpoint equals a full replay of the log to its version; a damaged or
    disagreeing one is a leftover (readers skip a damaged one, never a wrong one:
    ``repair`` deletes it)."""
    ckpts = checkpoint_versions(root)
    if not ckpts:
        return
    versions = log_versions(root)
    replay, i = Snapshot(), 0
    for c in ckpts:
        while i < len(versions) and versions[i] <= c:
            replay.apply(read_commit(root, versions[i]))
            i += 1
        got = read_checkpoint(root, c)
        if got is None:
            problem = "is damaged"
        elif replay.version != c:
            problem = "has no commit of its version"
        elif got.to_json() != replay.to_json():
            problem = "disagrees with a replay of the log"
        else:
            report.checkpoints += 1
            continue
        name = checkpoint_path(root, c).name
        report.leftovers.append(f"checkpoint {name} {problem}")
        if repair:
            checkpoint_path(root, c).unlink(missing_ok=True)
            report.repaired.append(f"removed {name}")


def fsck(lake: Lake, repair: bool = False, sources: bool = False) -> FsckReport:
    root = lake.root
    snap = lake.snapshot()
    report = FsckReport(version=snap.version)
    history = log_history(root, snap.version)
    committed = check_committed_files(root, snap, report)
    find_uncommitted_files(root, committed, history, report, repair)
    find_dead_staging(root, report, repair)
    find_temp_logs(root, report, repair)
    find_uncommitted_stores(root, snap, history, report, repair)
    check_store_lengths(root, snap, report, repair)
    find_store_temp_files(root, snap, report, repair)
    check_versions(root, report)
    check_checkpoints(root, report, repair)
    if sources:
        check_sources(snap, report)
    return report
