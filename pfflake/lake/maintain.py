"""Curating a lake after the night: remove runs, compact small files, vacuum old files.

All three go through the commit log like an ingest:

* :func:`remove` takes runs out in one commit: every data file that holds only
  their rows is removed, a file shared with other runs (``runs``, ``files``, and
  any ``hk`` file that mixes runs) is rewritten without their rows and the
  rewrite added in the same commit, and their streams leave the snapshot
  (``removed_runs``/``removed_streams``). Nothing is deleted: older versions
  still read the files and the Zarr stores until :func:`vacuum`.
* :func:`compact` rewrites many small Parquet files of one stream (``frames``),
  one run (``hk``) or one small table (``runs``, ``files``) into few large ones,
  in one commit (``remove`` + ``add``). Rows are unchanged, and so are the
  documented order guarantees (rows sorted by ``unix_t_ns`` inside each
  ``frames``/``hk`` file). Zarr stores are not touched.
* :func:`vacuum` deletes what no version newer than a cutoff needs: files a
  commit removed, Zarr stores of removed streams, and staging areas of dead
  ingests. It never deletes a file the latest version names, nor a file no
  commit ever named (``fsck --repair`` does that). What it deleted is recorded
  in ``_pfflake_log/_vacuum.json`` first, so reading a version whose files are
  gone raises :class:`LakeError` naming the oldest readable version.

A commit conflict (another writer published first) re-plans against the new
snapshot, up to :data:`COMMIT_RETRIES` times; the other commit is never lost.
(``compact`` first tries its merged files again on top of the new version: they
stay right as long as every file they replace is still committed.)
Files staged for a commit that is given up are deleted again; a crash leaves
them as leftovers that ``fsck`` lists and ``fsck --repair`` removes.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import schema as S
from ..errors import CommitConflict, LakeError
from ..faults import fault
from .fsck import pid_alive
from .layout import STAGING, safe_name
from .log import (
    LOG_DIR,
    AddFile,
    Commit,
    Snapshot,
    log_versions,
    publish_commit,
    read_commit,
    read_vacuum_record,
    record_vacuum,
)
from .units import ROW_GROUP_ROWS, fsync_file

if TYPE_CHECKING:
    from .lake import Lake

COMMIT_RETRIES = 5
#: compact: files of a group are merged up to about this many bytes per output file
DEFAULT_TARGET_BYTES = 128 * 2**20
#: compact: a group is rewritten only if at least this many of its files merge
DEFAULT_MIN_FILES = 2
#: tables compact rewrites (dl1/calibration entries carry per-file keys that a
#: recompute uses to replace its results: they are left as written)
COMPACT_TABLES = ("frames", "hk", "runs", "files")
#: staging areas and temporary log files younger than this are never vacuumed, whatever
#: ``older_than`` says: a live writer may be about to use them
MIN_LEFTOVER_AGE = timedelta(hours=1)

CRASH_POINTS = (  # fault points of remove / compact / vacuum (pfflake.faults), in order
    "maintain_staged",  # one rewritten/merged Parquet file fsynced in staging
    "maintain_planned",  # every file staged, nothing moved
    "maintain_published_file",  # one staged file moved into place
    "commit_tmp",  # (pfflake.lake.log) commit JSON written, not linked
    "commit_linked",  # (pfflake.lake.log) commit visible, log dir not fsynced
    "maintain_committed",  # commit published, staging not yet removed
    "vacuum_record_tmp",  # vacuum record written under a temporary name
    "vacuum_recorded",  # vacuum record in place, nothing deleted
    "vacuum_deleted",  # one file or store deleted
)


# -- shared steps ---------------------------------------------------------------------------


@contextlib.contextmanager
def _staging(lake: Lake) -> Iterator[tuple[str, Path]]:
    """A fresh ``_staging/<txn>/`` with the owner file fsck and vacuum use, removed at exit."""
    txn = f"{int(time.time())}-{uuid.uuid4().hex[:12]}"
    staging = lake.root / STAGING / txn
    staging.mkdir(parents=True)
    (staging / "owner.json").write_text(
        json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
    try:
        yield txn, staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write(table: pa.Table, out: Path, row_group_size: int = ROW_GROUP_ROWS) -> int:
    """``table`` to ``out`` (zstd, statistics), fsynced; returns its size in bytes."""
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out, compression="zstd", row_group_size=row_group_size,
                   write_statistics=True)
    fsync_file(out)
    fault("maintain_staged")
    return out.stat().st_size


def _read(root: Path, e: AddFile, columns: list[str] | None = None) -> pa.Table:
    """One committed file as written (no hive columns from its path)."""
    return pq.ParquetFile(root / e.path).read(columns=columns)


def _publish(lake: Lake, staging: Path, entries: list[AddFile]) -> None:
    """Move staged files into place (invisible until the commit names them)."""
    dirs = set()
    for e in entries:
        dst = lake.root / e.path
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / e.path, dst)
        fault("maintain_published_file")
        dirs.add(dst.parent)
    for d in dirs:
        fsync_file(d)


def _republish(lake: Lake, commit: Commit, tries: int) -> bool:
    """After a conflict: publish the same commit on top of the new version if every file it
    removes is still there (a merge does not depend on what else was committed); False
    as soon as one is gone (the caller re-plans)."""
    for _ in range(tries):
        snap = lake.snapshot()
        live = {e.path for es in snap.files.values() for e in es}
        if not all(e.path in live for e in commit.remove):
            return False
        commit.version = snap.version + 1
        try:
            publish_commit(lake.root, commit)
            return True
        except CommitConflict:
            continue
    return False


def _commit(lake: Lake, operation: str,
            plan: Callable[[Snapshot, Path, str], Commit | None], retries: int,
            reusable: bool = False) -> Commit | None:
    """Plan against the latest snapshot, stage, move into place, publish; on a conflict
    (``reusable``: first republish the same commit while its inputs are all still
    committed) delete what was moved and plan again against the new snapshot."""
    lake._require()
    for _attempt in range(retries + 1):
        with _staging(lake) as (txn, staging):
            snap = lake.snapshot()
            commit = plan(snap, staging, txn)
            if commit is None:
                return None
            fault("maintain_planned")
            _publish(lake, staging, commit.add)
            try:
                publish_commit(lake.root, commit)
            except CommitConflict:
                if not (reusable and _republish(lake, commit, retries)):
                    for e in commit.add:  # never named by a commit: nobody reads them
                        (lake.root / e.path).unlink(missing_ok=True)
                    continue
            fault("maintain_committed")
            return commit
    raise LakeError(f"{lake.root}: {operation} gave up after {retries + 1} commit conflicts "
                    "with concurrent writers; the lake is unchanged")


def _entry_run(e: AddFile) -> Any:
    """The one run an entry's file holds, from the entry alone; ``...`` if the entry does
    not say (``runs``, ``files``, ``hk``, gain calibrations: read the file)."""
    if e.run is not None:
        return e.run
    if "run" in e.extra:
        return e.extra["run"]
    return ...


def _file_runs(root: Path, e: AddFile) -> set[str | None]:
    """The distinct ``run`` values of a committed file (``{None}`` if it has no such column)."""
    pf = pq.ParquetFile(root / e.path)
    if S.RUN not in pf.schema_arrow.names:
        return {None}
    return set(pc.unique(pf.read(columns=[S.RUN]).column(S.RUN)).to_pylist())


# -- remove ---------------------------------------------------------------------------------


def plan_remove(root: Path, snap: Snapshot, runs: Iterable[str], staging: Path,
                txn: str) -> Commit:
    """The commit (at ``snap.version + 1``) that takes ``runs`` out of ``snap``: its
    ``remove`` entries, the rewrites of shared files (staged under ``staging`` at their
    final relative paths, to be moved into place before publishing) and the removed
    runs and streams. Raises :class:`LakeError` for a run the snapshot does not hold.

    Also used by ``ingest --replace``, whose commit carries these actions."""
    runs = list(dict.fromkeys(runs))
    known = snap.runs | {r for r, _ in snap.streams}
    missing = [r for r in runs if r not in known]
    if missing:
        raise LakeError(f"{root}: no run {', '.join(map(repr, missing))} in the lake "
                        f"(version {snap.version})")
    gone = set(runs)
    commit = Commit(version=snap.version + 1, operation="remove", removed_runs=runs,
                    removed_streams=[{"run": s.run, "stream": s.stream, "store": s.store}
                                     for s in snap.streams.values() if s.run in gone])
    for table, entries in snap.files.items():
        for i, e in enumerate(entries):
            run = _entry_run(e)
            held = _file_runs(root, e) if run is ... else {run}
            if not held & gone:
                continue
            commit.remove.append(e)
            if held <= gone:
                continue
            t = _read(root, e)
            keep = pc.invert(pc.fill_null(pc.is_in(t.column(S.RUN), pa.array(runs)), False))
            t = t.filter(keep)
            rel = Path(e.path).parent / f"{txn}.r{i}.parquet"
            size = _write(t, staging / rel)
            commit.add.append(AddFile(table, rel.as_posix(), t.num_rows, size,
                                      partition=e.partition, extra=dict(e.extra)))
    return commit


def replacing(root: Path, snap: Snapshot, run_dirs: Iterable[str | os.PathLike[str]],
              staging: Path, txn: str) -> tuple[Snapshot, Commit | None]:
    """For ``ingest --replace``: the snapshot to plan the ingest against (``snap`` without
    the runs of ``run_dirs`` it holds, still at ``snap.version``) and the removal to merge
    into the ingest's commit (:func:`with_removal`; ``None`` if no run is in the lake).
    Rewrites of shared files are staged in the ingest's own staging area."""
    names = [Path(d).name for d in run_dirs]
    held = [n for n in dict.fromkeys(names) if n in snap.runs
            or any(r == n for r, _ in snap.streams)]
    if not held:
        return snap, None
    removal = plan_remove(root, snap, held, staging, txn)
    planning = Snapshot(snap.version, {t: list(es) for t, es in snap.files.items()},
                        dict(snap.streams), dict(snap.hk_records), set(snap.runs),
                        dict(snap.thresholds), dict(snap.run_ids), set(snap.retired_stores))
    planning.apply(removal)
    planning.version = snap.version  # the ingest commits the next version: both at once
    return planning, removal


def with_removal(commit: Commit, removal: Commit) -> Commit:
    """``commit`` (an ingest) carrying ``removal``'s actions too: one atomic replace."""
    commit.operation = "replace"
    commit.remove = removal.remove + commit.remove
    commit.add = removal.add + commit.add
    commit.removed_runs = removal.removed_runs
    commit.removed_streams = removal.removed_streams
    return commit


def remove(lake: Lake, runs: Iterable[str], *, retries: int = COMMIT_RETRIES) -> Commit:
    """Take ``runs`` out of the lake in one commit (see the module docstring).

    Returns the published :class:`Commit`. Raises :class:`LakeError` for a run the
    lake does not hold (nothing is committed then)."""
    runs = list(runs)
    if not runs:
        raise LakeError(f"{lake.root}: remove needs at least one run")
    commit = _commit(lake, "remove", lambda snap, staging, txn: plan_remove(
        lake.root, snap, runs, staging, txn), retries)
    assert commit is not None
    return commit


# -- compact --------------------------------------------------------------------------------


def _groups(root: Path, snap: Snapshot) -> dict[tuple, list[AddFile]]:
    """Files that may be merged together: one stream's frames (in frame order), one run's
    hk (in commit order), all of runs, all of files."""
    groups: dict[tuple, list[AddFile]] = {}
    for e in snap.table_files("frames"):
        groups.setdefault(("frames", e.run, e.stream), []).append(e)
    for e in snap.table_files("hk"):
        held = _file_runs(root, e)
        key = ("hk", next(iter(held))) if len(held) == 1 else ("hk", None, e.path)
        groups.setdefault(key, []).append(e)
    for table in ("runs", "files"):
        if snap.table_files(table):
            groups[(table,)] = list(snap.table_files(table))
    for key, entries in groups.items():
        if key[0] == "frames":
            entries.sort(key=lambda e: (e.first_frame or 0, e.last_frame or 0))
    return groups


def _bins(entries: list[AddFile], target_bytes: int) -> list[list[AddFile]]:
    """Runs of consecutive small files, each up to ``target_bytes`` in total; a file of
    ``target_bytes`` or more is left alone and ends the run before it."""
    out: list[list[AddFile]] = []
    cur: list[AddFile] = []
    total = 0
    for e in entries:
        if e.bytes >= target_bytes or total + e.bytes > target_bytes:
            if len(cur) > 1:
                out.append(cur)
            cur, total = [], 0
        if e.bytes < target_bytes:
            cur.append(e)
            total += e.bytes
    if len(cur) > 1:
        out.append(cur)
    return out


def _merge_frames(root: Path, entries: list[AddFile], out: Path) -> tuple[int, int]:
    """Merge one stream's frames files (in frame order) into ``out``, rows sorted by
    ``unix_t_ns``. Files whose time ranges follow each other are streamed one at a time
    (memory: one input file and one row group); otherwise all are read and sorted
    (stable, so equal times keep their order)."""
    schemas = [pq.read_schema(root / e.path) for e in entries]
    ordered = all(
        a.max_unix_t_ns is not None and b.min_unix_t_ns is not None
        and a.max_unix_t_ns <= b.min_unix_t_ns for a, b in itertools.pairwise(entries))
    same = all(s.equals(schemas[0], check_metadata=False) for s in schemas)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not (ordered and same):
        t = pa.concat_tables([_read(root, e) for e in entries], promote_options="default")
        return t.num_rows, _write(t.sort_by(S.UNIX_T_NS), out)
    rows = 0
    with pq.ParquetWriter(out, schemas[0], compression="zstd", write_statistics=True) as w:
        buf: list[pa.Table] = []
        held = 0
        for e in entries:
            t = _read(root, e).cast(schemas[0])
            buf.append(t)
            held += t.num_rows
            rows += t.num_rows
            if held >= ROW_GROUP_ROWS:
                whole = pa.concat_tables(buf)
                n = (held // ROW_GROUP_ROWS) * ROW_GROUP_ROWS
                w.write_table(whole.slice(0, n), row_group_size=ROW_GROUP_ROWS)
                buf, held = [whole.slice(n)], held - n
        if held:
            w.write_table(pa.concat_tables(buf), row_group_size=ROW_GROUP_ROWS)
    fsync_file(out)
    fault("maintain_staged")
    return rows, out.stat().st_size


def _merged_entry(key: tuple, entries: list[AddFile], rel: str, rows: int,
                  size: int) -> AddFile:
    extra = entries[0].extra if all(e.extra == entries[0].extra for e in entries) else {}
    if key[0] != "frames":
        return AddFile(key[0], rel, rows, size, partition=entries[0].partition,
                       extra=dict(extra))

    def span(name, fn):
        vals = [getattr(e, name) for e in entries]
        return None if any(v is None for v in vals) else fn(vals)

    sources = None
    if all(e.sources is not None for e in entries):
        sources = [s for e in entries for s in e.sources]  # the union of the ranges
    first = entries[0]
    return AddFile("frames", rel, rows, size, partition=first.partition, run=first.run,
                   stream=first.stream, first_frame=span("first_frame", min),
                   last_frame=span("last_frame", max),
                   min_unix_t_ns=span("min_unix_t_ns", min),
                   max_unix_t_ns=span("max_unix_t_ns", max), sources=sources,
                   extra=dict(extra))


def plan_compact(root: Path, snap: Snapshot, staging: Path, txn: str, *,
                 target_bytes: int = DEFAULT_TARGET_BYTES,
                 min_files: int = DEFAULT_MIN_FILES) -> Commit | None:
    """The compaction commit of ``snap`` with its merged files staged, or ``None``."""
    commit = Commit(version=snap.version + 1, operation="compact")
    n = 0
    for key, entries in _groups(root, snap).items():
        bins = _bins(entries, target_bytes)
        if sum(len(b) for b in bins) < max(min_files, 2):
            continue
        for b in bins:
            n += 1
            if key[0] == "frames":
                first = b[0]
                part = first.partition or {}
                rel = (f"frames/{S.DATA_PRODUCT}={part.get(S.DATA_PRODUCT)}/"
                       f"{S.MODULE}={part.get(S.MODULE)}/{safe_name(first.run or '_')}."
                       f"{min(e.first_frame or 0 for e in b)}-"
                       f"{max(e.last_frame or 0 for e in b)}.{txn}.parquet")
                rows, size = _merge_frames(root, b, staging / rel)
            else:
                stem = f"{safe_name(key[1])}." if key[0] == "hk" and key[1] else ""
                rel = f"{key[0]}/{stem}{txn}.c{n}.parquet"
                t = pa.concat_tables([_read(root, e) for e in b], promote_options="default")
                if key[0] == "hk":
                    t = t.sort_by(S.UNIX_T_NS)
                rows, size = t.num_rows, _write(t, staging / rel)
            if rows != sum(e.rows for e in b):
                raise LakeError(f"{root}: compacting {len(b)} {key[0]} files gave {rows} rows, "
                                f"the log says {sum(e.rows for e in b)}; nothing committed")
            commit.remove += b
            commit.add.append(_merged_entry(key, b, rel, rows, size))
    return commit if commit.add else None


def compact(lake: Lake, *, target_bytes: int = DEFAULT_TARGET_BYTES,
            min_files: int = DEFAULT_MIN_FILES, retries: int = COMMIT_RETRIES) -> Commit | None:
    """Merge small Parquet files into files of up to ``target_bytes``, in one commit.

    Per group (one stream's ``frames`` in frame order; one run's ``hk``; all of ``runs``;
    all of ``files``), runs of consecutive files smaller than ``target_bytes`` are merged
    when at least ``min_files`` of the group's files would be. A merged ``frames`` entry
    spans its inputs' frame and time ranges and lists the union of their ``sources``
    (``fsck --sources`` still checks every byte). Returns the commit, or ``None`` when
    nothing needed merging. The old files stay for older versions until ``vacuum``."""
    return _commit(lake, "compact", lambda snap, staging, txn: plan_compact(
        lake.root, snap, staging, txn, target_bytes=target_bytes, min_files=min_files),
        retries, reusable=True)


# -- vacuum ---------------------------------------------------------------------------------


@dataclass
class VacuumReport:
    """What :func:`vacuum` deleted (or, with ``dry_run``, would delete)."""

    cutoff: datetime
    kept_from: int  # every version from this one on keeps all its files
    oldest_readable: int  # versions before this one raise LakeError when read
    files: list[str] = field(default_factory=list)
    stores: list[str] = field(default_factory=list)
    staging: list[str] = field(default_factory=list)
    bytes: int = 0
    dry_run: bool = False

    def summary(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        return (f"vacuum {verb} {len(self.files)} file(s), {len(self.stores)} Zarr store(s), "
                f"{len(self.staging)} leftover(s), {self.bytes / 1e6:,.1f} MB; versions from "
                f"{self.kept_from} on are kept, the oldest readable version is "
                f"{self.oldest_readable}")


def parse_duration(text: str) -> timedelta:
    """``7d``, ``12h``, ``30m``, ``45s``, ``0s``, ``2w`` or a sum (``1d12h``) as a timedelta."""
    import re

    seconds = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
    t = text.strip().lower()
    if not re.fullmatch(r"(\d+(\.\d+)?[wdhms])+", t):
        raise ValueError(f"{text!r}: not a duration (use e.g. 7d, 12h, 30m, 0s)")
    return timedelta(seconds=sum(float(n) * seconds[u]
                                 for n, u in re.findall(r"(\d+(?:\.\d+)?)([wdhms])", t)))


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _stamp(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def _dead_staging(root: Path, cutoff: datetime) -> list[Path]:
    base = root / STAGING
    if not base.is_dir():
        return []
    out = []
    young = datetime.now(UTC) - MIN_LEFTOVER_AGE
    for txn in sorted(base.iterdir()):
        owner: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            owner = json.loads((txn / "owner.json").read_text())
        mtime = datetime.fromtimestamp(txn.stat().st_mtime, UTC)
        if owner.get("host") == socket.gethostname():
            dead = not pid_alive(owner.get("pid", -1))
        else:  # another host's pid cannot be checked: age alone decides
            dead = mtime < min(cutoff, young)
        if dead:
            out.append(txn)
    return out


def vacuum(lake: Lake, older_than: timedelta, *, dry_run: bool = False) -> VacuumReport:
    """Delete files that no version committed after ``now - older_than`` needs.

    The version that was the latest at the cutoff and every later one keep all their
    files (``kept_from``); files a commit removed at or before it, and the Zarr stores
    of streams removed by then, are deleted, unless the latest version names them.
    Staging areas of dead ingests go too. The deletions are recorded first in
    ``_pfflake_log/_vacuum.json``; reading an older version whose files were deleted
    then raises :class:`LakeError` (``oldest_readable``). ``older_than=0`` keeps only
    the latest version. Nothing in the latest version is ever deleted.
    """
    lake._require()
    root = lake.root
    now = datetime.now(UTC)
    cutoff = now - older_than
    versions = log_versions(root)
    kept_from = versions[0] if versions else 0
    removed_at: dict[str, int] = {}  # file path -> version whose commit removed it
    store_gone: dict[str, int] = {}  # store -> version whose commit removed its stream
    for v in versions:
        c = read_commit(root, v)
        t = _stamp(c.committed_at)
        if t is not None and t <= cutoff:
            kept_from = v
        for e in c.remove:
            removed_at[e.path] = v
        for e in c.add:
            removed_at.pop(e.path, None)
        for d in c.removed_streams or ():
            if d.get("store"):
                store_gone[d["store"]] = v
        for s in c.streams:
            if s.store:
                store_gone.pop(s.store, None)
    latest = lake.snapshot()
    live = {e.path for es in latest.files.values() for e in es}
    live_stores = {s.store for s in latest.streams.values() if s.store}
    report = VacuumReport(cutoff=cutoff, kept_from=kept_from, oldest_readable=0,
                          dry_run=dry_run)
    oldest = 0
    for path, v in sorted(removed_at.items()):
        if v <= kept_from and path not in live and (root / path).is_file():
            report.files.append(path)
            oldest = max(oldest, v)
    for store, v in sorted(store_gone.items()):
        if v <= kept_from and store not in live_stores and (root / store).exists():
            report.stores.append(store)
            oldest = max(oldest, v)
    dead = _dead_staging(root, cutoff)
    report.staging = [p.relative_to(root).as_posix() for p in dead]
    report.bytes = sum(_size(root / p) for p in [*report.files, *report.stores])
    rec = read_vacuum_record(root) or {}
    report.oldest_readable = max(oldest, rec.get("oldest_readable", 0))
    if dry_run:
        return report
    if report.files or report.stores:
        record_vacuum(root, {"at": now.isoformat(), "older_than_s": older_than.total_seconds(),
                             "kept_from": kept_from, "oldest_readable": oldest,
                             "files": report.files, "stores": report.stores,
                             "bytes": report.bytes})
    fault("vacuum_recorded")
    for path in report.files:
        (root / path).unlink(missing_ok=True)
        fault("vacuum_deleted")
    for store in report.stores:
        shutil.rmtree(root / store, ignore_errors=True)
        fault("vacuum_deleted")
    for p in dead:
        shutil.rmtree(p, ignore_errors=True)
    return report


__all__ = ["COMMIT_RETRIES", "CRASH_POINTS", "DEFAULT_MIN_FILES", "DEFAULT_TARGET_BYTES",
           "LOG_DIR", "VacuumReport", "compact", "parse_duration", "plan_compact",
           "plan_remove", "remove", "replacing", "vacuum", "with_removal"]
