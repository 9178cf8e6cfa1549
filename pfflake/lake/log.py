"""The lake's commit log: ``_pfflake_log/<version>.json``, one file per commit.

A commit lists the data files it adds (and removes) and the ingest state it
leaves behind (frames committed per stream, what was read of each source
file). Readers build a :class:`Snapshot` from the log alone, so files that
no commit names (a killed ingest's leftovers, strays) are never read.

Publishing a commit is atomic and exclusive: the JSON is written to a
temporary file, fsynced, then hard-linked to its version's name, which fails
if another writer got that version first (:class:`CommitConflict`). A reader
therefore never sees a half-written commit.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import CommitConflict, FrameNotFoundError
from ..faults import fault

LOG_DIR = "_pfflake_log"
_VERSION_DIGITS = 20


def _split(d: Mapping[str, Any], known: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``d`` as (known keys, everything else): unknown keys are kept, never an error, so a
    log written by a newer pfflake still reads (and is written back unchanged)."""
    return {k: d[k] for k in known if k in d}, {k: v for k, v in d.items() if k not in known}


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

    @classmethod
    def from_json(cls, d: Mapping[str, Any] | AddFile) -> AddFile:
        if isinstance(d, AddFile):
            return d
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
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. dl1/calibration ids, recipe

    _KEYS = ("version", "operation", "add", "remove", "streams", "runs", "hk_records",
             "thresholds", "run_ids", "committed_at", "writer")

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
        for k in ("operation", "thresholds", "run_ids", "committed_at", "writer"):
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

    def table_files(self, table: str) -> list[AddFile]:
        return self.files.get(table, [])

    def apply(self, commit: Commit) -> None:
        """Replay one commit onto this snapshot (in place)."""
        removed = {e.path for e in commit.remove}
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


def log_versions(root: Path) -> list[int]:
    log = root / LOG_DIR
    if not log.is_dir():
        return []
    out = []
    for p in log.iterdir():
        stem = p.name.removesuffix(".json")
        if p.name.endswith(".json") and stem.isdigit() and len(stem) == _VERSION_DIGITS:
            out.append(int(stem))
    return sorted(out)


def read_commit(root: Path, version: int) -> Commit:
    return Commit.from_json(json.loads((root / LOG_DIR / _version_name(version)).read_text()))


def load_snapshot(root: Path, as_of: int | None = None) -> Snapshot:
    """Replay the log up to ``as_of`` (default: the latest version)."""
    snap = Snapshot()
    for version in log_versions(root):
        if as_of is not None and version > as_of:
            break
        apply_commit(snap, read_commit(root, version))
    return snap


def apply_commit(snap: Snapshot, commit: Commit | Mapping[str, Any]) -> None:
    """:meth:`Snapshot.apply` (kept for callers that pass a commit's JSON)."""
    snap.apply(commit if isinstance(commit, Commit) else Commit.from_json(commit))


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
    return final
