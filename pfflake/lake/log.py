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
import hashlib
import json
import logging
import os
import re
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import CommitConflict, FrameNotFoundError, LakeError
from ..faults import fault

logger = logging.getLogger(__name__)

LOG_DIR = "_pfflake_log"
_VERSION_DIGITS = 20


def _split(d: Mapping[str, Any], known: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``d`` as (known keys, everything else): unknown keys are kept, never an error, so a
    log written by a newer pfflake still reads (and is written back unchanged)."""
    got = {k: d[k] for k in known if k in d}
    if len(got) == len(d):  # the usual case, and the hot path of opening a checkpoint
        return got, {}
    return got, {k: v for k, v in d.items() if k not in known}


@dataclass
class FileState:
    """What the lake has read of one source PFF file."""

    name: str
    size: int
    frames: int  # whole frames ingested
    fingerprint: str
    damaged_frames: int = 0
    truncated_tail_bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know

    _KEYS = ("name", "size", "frames", "fingerprint", "damaged_frames", "truncated_tail_bytes")

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> FileState:
        known, extra = _split(d, cls._KEYS)
        return cls(**known, extra=extra)

    def to_json(self) -> dict[str, Any]:
        return {**{k: getattr(self, k) for k in self._KEYS}, **self.extra}


@dataclass
class StreamState:
    """Committed state of one stream (run, data product, module)."""

    run: str
    stream: str
    data_product: str
    module: int
    frames: int = 0
    store: str | None = None  # Zarr store, relative to the lake root
    files: dict[str, FileState] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    _KEYS = ("run", "stream", "data_product", "module", "frames", "store", "files")

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> StreamState:
        known, extra = _split(d, cls._KEYS)
        files = [FileState.from_json(f) for f in known.pop("files", [])]
        return cls(**known, files={f.name: f for f in files}, extra=extra)

    def to_json(self) -> dict[str, Any]:
        """The commit form: ``files`` as a list (as every log has it)."""
        out = {k: getattr(self, k) for k in self._KEYS[:-1]}
        if self.store is None:
            del out["store"]
        return {**out, "files": [f.to_json() for f in self.files.values()], **self.extra}


@dataclass(frozen=True, eq=True)
class AddFile:
    """One data file a commit adds to (or removes from) a table.

    ``partition`` (frames: ``data_product``, ``module``), the frame range and time range
    and ``sources`` (issue 11: CRC-32 of each source byte range, for ``fsck --sources``)
    are written for ``frames`` files; other tables' entries carry only what they need,
    and keys this version does not know (``dl1``'s ``run``/``data_product``/``module``,
    a newer writer's additions) are kept in ``extra``.

    Reads like the dict it was before typed records (``e["path"]``, ``e.get("run")``):
    code written against ``Snapshot.table_files()`` returning dicts keeps working.
    """

    table: str
    path: str  # relative to the lake root
    rows: int
    bytes: int
    partition: dict[str, Any] | None = None
    run: str | None = None
    stream: str | None = None
    first_frame: int | None = None
    last_frame: int | None = None
    min_unix_t_ns: int | None = None
    max_unix_t_ns: int | None = None
    sources: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    _KEYS = ("table", "path", "rows", "bytes", "partition", "run", "stream", "first_frame",
             "last_frame", "min_unix_t_ns", "max_unix_t_ns", "sources")
    _KEYSET = frozenset(_KEYS)

    @classmethod
    def from_json(cls, d: Mapping[str, Any] | AddFile) -> AddFile:
        if isinstance(d, AddFile):
            return d
        if _ADD_REQUIRED <= d.keys() <= cls._KEYSET:  # the hot path of opening a checkpoint
            # Every key known and the required ones there: fill the instance directly,
            # what the frozen dataclass __init__ does field by field (3x slower; 10^4
            # entries per season's checkpoint).
            obj = object.__new__(cls)
            obj.__dict__.update(_ADD_OPTIONAL, **d, extra={})
            return obj
        known, extra = _split(d, cls._KEYS)
        return cls(**known, extra=extra)

    def to_json(self) -> dict[str, Any]:
        """Exactly the keys the entry was written with (``None`` optionals left out)."""
        out = {k: getattr(self, k) for k in self._KEYS}
        return {**{k: v for k, v in out.items() if v is not None}, **self.extra}

    # -- the dict face (read-only) --
    def __getitem__(self, key: str) -> Any:
        return self.to_json()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_json().get(key, default)

    def keys(self):
        return self.to_json().keys()

    def __contains__(self, key: object) -> bool:
        return key in self.to_json()

    def __hash__(self) -> int:
        return hash((self.table, self.path))


_ADD_REQUIRED = frozenset(("table", "path", "rows", "bytes"))
_ADD_OPTIONAL = {k: None for k in AddFile._KEYS if k not in _ADD_REQUIRED}


@dataclass
class Commit:
    """One ``_pfflake_log/<version>.json``: what it adds and removes, and the ingest state
    it leaves (streams, hk records, runs, thresholds, run identities)."""

    version: int
    operation: str | None = None
    add: list[AddFile] = field(default_factory=list)
    remove: list[AddFile] = field(default_factory=list)
    streams: list[StreamState] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    hk_records: dict[str, int] = field(default_factory=dict)
    thresholds: dict[str, float | None] | None = None  # issue 11; absent in older logs
    run_ids: dict[str, dict[str, str]] | None = None  # issue 11; absent in older logs
    committed_at: str | None = None  # filled by publish_commit
    writer: dict[str, Any] | None = None  # {"host", "pid"}, filled by publish_commit
    #: issue 16 (``remove``, ``ingest --replace``): runs taken out of the lake before this
    #: commit's ``streams``/``runs`` apply (their streams, hk count, threshold, identity)
    removed_runs: list[str] | None = None
    #: issue 16: streams taken out, ``{"run", "stream", "store"}`` (the store stays on disk
    #: for older versions until ``vacuum``)
    removed_streams: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. dl1/calibration ids, recipe

    _KEYS = ("version", "operation", "add", "remove", "streams", "runs", "hk_records",
             "thresholds", "run_ids", "committed_at", "writer", "removed_runs",
             "removed_streams")

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Commit:
        known, extra = _split(d, cls._KEYS)
        known["add"] = [AddFile.from_json(e) for e in known.get("add", [])]
        known["remove"] = [AddFile.from_json(e) for e in known.get("remove", [])]
        known["streams"] = [
            s if isinstance(s, StreamState) else StreamState.from_json(s)
            for s in known.get("streams", [])
        ]
        known["runs"] = list(known.get("runs", []))
        return cls(**known, extra=extra)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": self.version,
            "add": [e.to_json() for e in self.add],
            "remove": [e.to_json() for e in self.remove],
            "streams": [s.to_json() for s in self.streams],
            "runs": list(self.runs),
            "hk_records": dict(self.hk_records),
        }
        for k in ("operation", "thresholds", "run_ids", "committed_at", "writer",
                  "removed_runs", "removed_streams"):
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        return {**out, **self.extra}


@dataclass
class Snapshot:
    """The lake as of one version: data files per table and stream states."""

    version: int = 0
    files: dict[str, list[AddFile]] = field(default_factory=dict)
    streams: dict[tuple[str, str], StreamState] = field(default_factory=dict)
    hk_records: dict[str, int] = field(default_factory=dict)  # run -> hk records ingested
    runs: set[str] = field(default_factory=set)
    #: run -> the pixels_above threshold its frames were ingested with (None: not computed);
    #: runs ingested before thresholds were recorded are absent
    thresholds: dict[str, float | None] = field(default_factory=dict)
    #: run -> its identity {"observatory", "start" (ISO UTC), "source_path"}; runs ingested
    #: before identities were recorded are absent
    run_ids: dict[str, dict[str, str]] = field(default_factory=dict)
    #: Zarr stores of streams a commit removed (issue 16): kept on disk for older versions
    #: until vacuumed, so an ingest of the same stream again must write a new store
    retired_stores: set[str] = field(default_factory=set)

    def to_json(self) -> dict[str, Any]:
        """The whole state as JSON (a checkpoint's body): typed records' ``to_json``."""
        return {
            "version": self.version,
            "files": {t: [e.to_json() for e in es] for t, es in self.files.items()},
            "streams": [s.to_json() for s in self.streams.values()],
            "hk_records": dict(self.hk_records),
            "runs": sorted(self.runs),
            "thresholds": dict(self.thresholds),
            "run_ids": dict(self.run_ids),
            "retired_stores": sorted(self.retired_stores),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Snapshot:
        streams = [StreamState.from_json(s) for s in d.get("streams", [])]
        return cls(
            version=d["version"],
            files={t: [AddFile.from_json(e) for e in es] for t, es in d["files"].items()},
            streams={(s.run, s.stream): s for s in streams},
            hk_records=dict(d.get("hk_records", {})),
            runs=set(d.get("runs", [])),
            thresholds=dict(d.get("thresholds", {})),
            run_ids=dict(d.get("run_ids", {})),
            retired_stores=set(d.get("retired_stores", [])),
        )

    def table_files(self, table: str) -> list[AddFile]:
        return self.files.get(table, [])

    def apply(self, commit: Commit) -> None:
        """Replay one commit onto this snapshot (in place).

        Removals first (files, then runs and streams), then additions: a commit that
        removes a run and ingests it again (``ingest --replace``) leaves the new state."""
        gone_runs = set(commit.removed_runs or ())
        gone_streams = {(d["run"], d["stream"]) for d in commit.removed_streams or ()}
        if gone_runs or gone_streams:
            self.retired_stores.update(
                s.store for k, s in self.streams.items()
                if s.store and (k[0] in gone_runs or k in gone_streams))
            self.streams = {k: s for k, s in self.streams.items()
                            if k[0] not in gone_runs and k not in gone_streams}
            for run in gone_runs:
                self.runs.discard(run)
                for d in (self.hk_records, self.thresholds, self.run_ids):
                    d.pop(run, None)
        removed = {e.path for e in commit.remove}
        if removed:  # (a filter per commit made replay quadratic in the file count)
            for table, entries in list(self.files.items()):
                self.files[table] = [e for e in entries if e.path not in removed]
        for entry in commit.add:
            self.files.setdefault(entry.table, []).append(entry)
        for s in commit.streams:
            key = (s.run, s.stream)
            state = self.streams.get(key) or StreamState(
                s.run, s.stream, s.data_product, s.module
            )
            state.frames = s.frames
            state.store = s.store if s.store is not None else state.store
            state.files.update(s.files)
            self.streams[key] = state
        self.hk_records.update(commit.hk_records)
        self.runs.update(commit.runs)
        self.thresholds.update(commit.thresholds or {})
        self.run_ids.update(commit.run_ids or {})
        self.version = commit.version

    # -- lookups for readers (engineer B, issue 13 step 9) --

    def stream_index(self) -> dict[tuple[str, str, int], StreamState]:
        """Streams by ``(run, data_product, module)``."""
        return {(s.run, s.data_product, int(s.module)): s for s in self.streams.values()}

    def find_stream(self, run: str, stream: str | None = None, *,
                    data_product: str | None = None, module: int | None = None) -> StreamState:
        """The one stream of ``run`` matching the name and/or data product and module;
        :class:`~pfflake.errors.FrameNotFoundError` (listing the run's streams) otherwise."""
        found = [
            s for s in self.streams.values()
            if s.run == run and (stream is None or s.stream == stream)
            and (data_product is None or s.data_product == data_product)
            and (module is None or int(s.module) == int(module))
        ]
        if len(found) != 1:
            have = sorted(s.stream for s in self.streams.values() if s.run == run)
            what = "no stream" if not found else f"{len(found)} streams"
            raise FrameNotFoundError(
                f"run {run!r}: {what} match stream={stream!r} data_product={data_product!r} "
                f"module={module!r} in version {self.version}; streams of this run: "
                f"{have or 'none'}"
            )
        return found[0]

    def files_between(self, table: str, t0: int, t1: int) -> list[AddFile]:
        """Files of ``table`` that may hold rows with ``t0 <= unix_t_ns <= t1`` (int ns), by
        the commit's per-file time range; files without one (other tables) are kept."""
        return [e for e in self.table_files(table)
                if e.min_unix_t_ns is None or e.max_unix_t_ns is None
                or (e.min_unix_t_ns <= t1 and e.max_unix_t_ns >= t0)]


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
_CKPT_HEAD = re.compile(rb'\{"format":1,"sha256":"([0-9a-f]{64})","version":(\d+),"snapshot":')


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
    fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_checkpoint(root: Path, snap: Snapshot) -> Path:
    """Write ``snap`` as ``<version>.checkpoint.json`` and move ``_last_checkpoint`` to it
    (never backwards). The body is the snapshot's JSON; its SHA-256 sits in front of it, so
    a reader detects a damaged file without trusting it."""
    body = json.dumps(snap.to_json(), sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256(body).hexdigest()
    head = f'{{"format":1,"sha256":"{digest}","version":{snap.version},"snapshot":'.encode()
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
    """The version ``_last_checkpoint`` names (a hint: readers list the log anyway)."""
    return _read_pointer(root / LOG_DIR / LAST_CHECKPOINT)


def read_checkpoint(root: Path, version: int) -> Snapshot | None:
    """The snapshot a checkpoint holds, or ``None`` if it is missing or damaged (wrong
    shape, checksum, or version): the caller then replays the log instead."""
    try:
        data = checkpoint_path(root, version).read_bytes()
    except OSError:
        return None
    m = _CKPT_HEAD.match(data)
    if m is None or not data.endswith(b"}") or int(m[2]) != version:
        return None
    body = data[m.end():-1]
    if hashlib.sha256(body).hexdigest().encode() != m[1]:
        return None
    try:
        snap = Snapshot.from_json(json.loads(body))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
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
    """
    target = version if version is not None else as_of
    _check_readable(root, target)
    versions, ckpts = _scan_log(root)
    snap = None
    if checkpoints:
        for c in reversed(ckpts):
            if target is not None and c > target:
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
    fd = os.open(log, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    _checkpoint_after(root, version)
    return final
