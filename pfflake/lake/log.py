"""The lake's commit log: ``_pfflake_log/<version>.json``, one file per commit.

A commit lists the data files it adds (and removes) and the ingest state it
leaves behind (frames committed per stream, what was read of each source
file). Readers build a :class:`Snapshot` from the log alone, so files that
no commit names (a killed ingest's leftovers, strays) are never read.

Publishing a commit is atomic and exclusive: the JSON is written to a
temporary file, fsynced, then hard-linked to its version's name, which fails
if another writer got that version first (:class:`CommitConflict`). A reader
therefore never sees a half-written commit.

Checkpoints (issue 16): whoever publishes a version that is a multiple of
:data:`CHECKPOINT_INTERVAL` then writes that version's whole :class:`Snapshot` as
``<version>.checkpoint.json`` (atomically, with a SHA-256 of its body) and points
``_last_checkpoint`` at it. :func:`load_snapshot` starts from the newest intact
checkpoint at or before the version asked for; a checkpoint is only a cache of
the replay, so a missing or damaged one costs time, never a wrong answer.
``_vacuum.json`` records what ``vacuum`` deleted and the oldest version still
readable.
"""

from __future__ import annotations

import bisect
import gc
import hashlib
import json
import logging
import os
import re
import socket
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import CommitConflict, LakeError
from ..faults import fault
from ..store.layout import fsync_path
from .records import AddFile, Commit, FileState, Snapshot, StreamState

logger = logging.getLogger(__name__)

LOG_DIR = "_pfflake_log"
_VERSION_DIGITS = 20


def _version_name(version: int) -> str:
    return f"{version:0{_VERSION_DIGITS}d}.json"


_COMMIT_NAME = re.compile(rf"^(\d{{{_VERSION_DIGITS}}})\.json$", re.M)
_CHECKPOINT_NAME = re.compile(rf"^(\d{{{_VERSION_DIGITS}}})\.checkpoint\.json$", re.M)


def _scan_log(root: Path) -> tuple[list[int], list[int]]:
    """(commit versions, checkpoint versions), both sorted, from one listing of the log."""
    try:
        names = "\n".join(os.listdir(root / LOG_DIR))
    except (FileNotFoundError, NotADirectoryError):
        return [], []
    # One regex pass in C over the joined listing (a season's log holds 10^4 names; a
    # Python loop over them was a third of a lake's open). Names are zero-padded to a
    # fixed width, so sorting them as strings sorts the versions.
    return ([int(x) for x in sorted(_COMMIT_NAME.findall(names))],
            [int(x) for x in sorted(_CHECKPOINT_NAME.findall(names))])


def log_versions(root: Path) -> list[int]:
    """The published commit versions, ascending (one directory listing)."""
    return _scan_log(root)[0]


def checkpoint_versions(root: Path) -> list[int]:
    """Versions that have a checkpoint file (damaged or not), ascending."""
    return _scan_log(root)[1]


def read_commit(root: Path, version: int) -> Commit:
    return Commit.from_json(json.loads((root / LOG_DIR / _version_name(version)).read_text()))


# -- checkpoints ----------------------------------------------------------------------------

#: A checkpoint is written for every version that is a multiple of this (0: never).
CHECKPOINT_INTERVAL = 100
CHECKPOINT_SUFFIX = ".checkpoint.json"
LAST_CHECKPOINT = "_last_checkpoint"
#: Format 2 (columnar file lists) is written; format 1 (lists of entries) is still read.
CHECKPOINT_FORMAT = 2
_CKPT_HEAD = re.compile(
    rb'\{"format":([12]),"sha256":"([0-9a-f]{64})","version":(\d+),"snapshot":')


def checkpoint_path(root: Path, version: int) -> Path:
    return root / LOG_DIR / f"{version:0{_VERSION_DIGITS}d}{CHECKPOINT_SUFFIX}"


def _write_atomic(final: Path, data: bytes, point: str) -> None:
    """``data`` to ``final`` via a fsynced ``.tmp-*`` file and a rename, then fsync the dir."""
    tmp = final.parent / f".tmp-{uuid.uuid4().hex}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        fault(point)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_path(final.parent)


def write_checkpoint(root: Path, snap: Snapshot) -> Path:
    """Write ``snap`` as ``<version>.checkpoint.json`` and move ``_last_checkpoint`` to it
    (never backwards). The body is the snapshot's JSON; its SHA-256 sits in front of it, so
    a reader detects a damaged file without trusting it."""
    doc = snap.to_json(columnar=True)
    body = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256(body).hexdigest()
    head = (f'{{"format":{CHECKPOINT_FORMAT},"sha256":"{digest}","version":{snap.version},'
            '"snapshot":').encode()
    final = checkpoint_path(root, snap.version)
    _write_atomic(final, head + body + b"}", "checkpoint_tmp")
    pointer = root / LOG_DIR / LAST_CHECKPOINT
    current = _read_pointer(pointer)
    if current is None or current < snap.version:
        _write_atomic(pointer, json.dumps({"version": snap.version}).encode(), "checkpoint_pointer")
    return final


def _read_pointer(pointer: Path) -> int | None:
    try:
        return int(json.loads(pointer.read_text())["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def last_checkpoint(root: Path) -> int | None:
    """The version ``_last_checkpoint`` names: a hint (readers check the checkpoint it
    names and fall back to listing the log when it is missing, damaged or too new)."""
    return _read_pointer(root / LOG_DIR / LAST_CHECKPOINT)


def read_checkpoint(root: Path, version: int) -> Snapshot | None:
    """The snapshot a checkpoint holds, or ``None`` if it is missing or damaged (wrong
    shape, checksum, or version): the caller then replays the log instead."""
    try:
        data = checkpoint_path(root, version).read_bytes()
    except OSError:
        return None
    m = _CKPT_HEAD.match(data)
    if m is None or not data.endswith(b"}") or int(m[3]) != version:
        return None
    body = data[m.end():-1]
    if hashlib.sha256(body).hexdigest().encode() != m[2]:
        return None
    # The parse builds ~10^5 objects per season; the cyclic GC would run ~100 times over
    # them meanwhile (half the time), and none of them can be garbage yet.
    enabled = gc.isenabled()
    gc.disable()
    try:
        snap = Snapshot.from_json(json.loads(body))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    finally:
        if enabled:
            gc.enable()
    return snap if snap.version == version else None


# -- vacuum record --------------------------------------------------------------------------

VACUUM_RECORD = "_vacuum.json"


def read_vacuum_record(root: Path) -> dict[str, Any] | None:
    """``_pfflake_log/_vacuum.json``: ``oldest_readable`` and one entry per vacuum that
    deleted files (``at``, ``oldest_readable``, ``paths``); ``None`` if never vacuumed."""
    try:
        return json.loads((root / LOG_DIR / VACUUM_RECORD).read_text())
    except FileNotFoundError:
        return None


def record_vacuum(root: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """Append ``entry`` (with its ``oldest_readable``) to the vacuum record, atomically.
    Written before any file is deleted, so a reader is never sent to a deleted file."""
    rec = read_vacuum_record(root) or {"oldest_readable": 0, "vacuums": []}
    rec["vacuums"].append(entry)
    rec["oldest_readable"] = max(rec["oldest_readable"], entry["oldest_readable"])
    _write_atomic(root / LOG_DIR / VACUUM_RECORD,
                  json.dumps(rec, indent=1, sort_keys=True).encode(), "vacuum_record_tmp")
    return rec


def _check_readable(root: Path, version: int | None) -> None:
    if version is None or version <= 0 or not (root / LOG_DIR / VACUUM_RECORD).exists():
        return
    rec = read_vacuum_record(root) or {}
    oldest = rec.get("oldest_readable", 0)
    if version >= oldest:
        return
    when = next((v["at"] for v in rec.get("vacuums", []) if v["oldest_readable"] > version), "?")
    raise LakeError(f"{root}: version {version}'s files were vacuumed on {when}; "
                    f"the oldest readable version is {oldest}")


def load_snapshot(root: Path, as_of: int | None = None, *, version: int | None = None,
                  checkpoints: bool = True) -> Snapshot:
    """The lake as of ``version`` (alias ``as_of``; default: the latest version).

    Starts from the newest intact checkpoint at or before it and replays only the later
    commits; a missing or damaged checkpoint is skipped (an older one, or a full replay,
    gives the same answer). ``checkpoints=False`` always replays the whole log.
    Raises :class:`LakeError` for a version whose files ``vacuum`` deleted.

    The usual open (``_last_checkpoint`` names an intact checkpoint at or before the
    version asked for) lists nothing: it reads that checkpoint and then the commits after
    it until the first version that does not exist. Versions have no gaps (a writer
    publishes ``snapshot.version + 1`` with an exclusive link; ``fsck`` reports a gap),
    so this replays exactly what a listing would.
    """
    target = version if version is not None else as_of
    _check_readable(root, target)
    hint = last_checkpoint(root) if checkpoints else None
    if hint is not None and (target is None or hint <= target):
        snap = read_checkpoint(root, hint)
        if snap is not None:
            return _replay_after(root, snap, target)
        logger.warning("%s: checkpoint %d is damaged; replaying the log instead", root, hint)
    versions, ckpts = _scan_log(root)
    snap = None
    if checkpoints:
        for c in reversed(ckpts):
            if (target is not None and c > target) or c == hint:
                continue
            snap = read_checkpoint(root, c)
            if snap is not None:
                break
            logger.warning("%s: checkpoint %d is damaged; replaying the log instead", root, c)
    snap = snap or Snapshot()
    for v in versions[bisect.bisect_right(versions, snap.version):]:
        if target is not None and v > target:
            break
        snap.apply(read_commit(root, v))
    return snap


def _replay_after(root: Path, snap: Snapshot, target: int | None) -> Snapshot:
    """Apply the commits after ``snap.version`` (up to ``target``) until one is missing."""
    v = snap.version + 1
    while target is None or v <= target:
        try:
            commit = read_commit(root, v)
        except FileNotFoundError:
            break
        snap.apply(commit)
        v += 1
    return snap


def latest_version(root: Path) -> int:
    """The newest published version (0: none), without listing the log when
    ``_last_checkpoint`` names a published version: the versions after it are probed
    one by one (at most :data:`CHECKPOINT_INTERVAL` of them in a lake that checkpoints)."""
    log = root / LOG_DIR
    hint = last_checkpoint(root)
    if hint is not None and (log / _version_name(hint)).exists():
        v = hint
        while (log / _version_name(v + 1)).exists():
            v += 1
        return v
    versions = log_versions(root)
    return versions[-1] if versions else 0


def apply_commit(snap: Snapshot, commit: Commit | Mapping[str, Any]) -> None:
    """:meth:`Snapshot.apply` (kept for callers that pass a commit's JSON)."""
    snap.apply(commit if isinstance(commit, Commit) else Commit.from_json(commit))


def _checkpoint_after(root: Path, version: int) -> None:
    """Checkpoint ``version`` if it is due. Best effort: the commit is already published,
    and a missing checkpoint only costs replay time."""
    interval = CHECKPOINT_INTERVAL
    if not interval or version % interval:
        return
    try:
        snap = load_snapshot(root, version)
        if snap.version == version:
            write_checkpoint(root, snap)
    except Exception as exc:  # never fail a published commit over its checkpoint
        logger.warning("%s: checkpoint %d not written (%s)", root, version, exc)


def publish_commit(
    root: Path, commit: Commit | int, body: Mapping[str, Any] | None = None
) -> Path:
    """Atomically create ``_pfflake_log/<version>.json``; raise :class:`CommitConflict` if taken.

    ``commit``: a :class:`Commit`, or (as before typed records) a version and the
    commit's JSON body. ``committed_at`` and ``writer`` are filled in here.
    """
    if not isinstance(commit, Commit):
        commit = Commit.from_json({**(body or {}), "version": commit})
    version = commit.version
    log = root / LOG_DIR
    log.mkdir(parents=True, exist_ok=True)
    commit.committed_at = datetime.now(UTC).isoformat()
    commit.writer = {"host": socket.gethostname(), "pid": os.getpid()}
    doc = commit.to_json()
    final = log / _version_name(version)
    tmp = log / f".tmp-{uuid.uuid4().hex}"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    fault("commit_tmp")
    try:
        os.link(tmp, final)
    except FileExistsError:
        raise CommitConflict(f"commit version {version} was published by another writer") from None
    finally:
        tmp.unlink(missing_ok=True)
    fault("commit_linked")
    fsync_path(log)
    _checkpoint_after(root, version)
    return final


__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_INTERVAL",
    "CHECKPOINT_SUFFIX",
    "LAST_CHECKPOINT",
    "LOG_DIR",
    "VACUUM_RECORD",
    # the typed records (defined in pfflake.lake.records)
    "AddFile",
    "Commit",
    "FileState",
    "Snapshot",
    "StreamState",
    "apply_commit",
    "checkpoint_path",
    "checkpoint_versions",
    "last_checkpoint",
    "latest_version",
    "load_snapshot",
    "log_versions",
    "publish_commit",
    "read_checkpoint",
    "read_commit",
    "read_vacuum_record",
    "record_vacuum",
    "write_checkpoint",
]
