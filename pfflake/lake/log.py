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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import CommitConflict
from ..faults import fault

LOG_DIR = "_pfflake_log"
_VERSION_DIGITS = 20


@dataclass
class FileState:
    """What the lake has read of one source PFF file."""

    name: str
    size: int
    frames: int  # whole frames ingested
    fingerprint: str
    damaged_frames: int = 0
    truncated_tail_bytes: int = 0


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


@dataclass
class Snapshot:
    """The lake as of one version: data files per table and stream states."""

    version: int = 0
    files: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    streams: dict[tuple[str, str], StreamState] = field(default_factory=dict)
    hk_records: dict[str, int] = field(default_factory=dict)  # run -> hk records ingested
    runs: set[str] = field(default_factory=set)
    #: run -> the pixels_above threshold its frames were ingested with (None: not computed);
    #: runs ingested before thresholds were recorded are absent
    thresholds: dict[str, float | None] = field(default_factory=dict)
    #: run -> its identity {"observatory", "start" (ISO UTC), "source_path"}; runs ingested
    #: before identities were recorded are absent
    run_ids: dict[str, dict[str, str]] = field(default_factory=dict)

    def table_files(self, table: str) -> list[dict[str, Any]]:
        return self.files.get(table, [])


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


def read_commit(root: Path, version: int) -> dict[str, Any]:
    return json.loads((root / LOG_DIR / _version_name(version)).read_text())


def load_snapshot(root: Path, as_of: int | None = None) -> Snapshot:
    """Replay the log up to ``as_of`` (default: the latest version)."""
    snap = Snapshot()
    for version in log_versions(root):
        if as_of is not None and version > as_of:
            break
        apply_commit(snap, read_commit(root, version))
    return snap


def apply_commit(snap: Snapshot, commit: dict[str, Any]) -> None:
    removed = {e["path"] for e in commit.get("remove", [])}
    for table, entries in list(snap.files.items()):
        snap.files[table] = [e for e in entries if e["path"] not in removed]
    for entry in commit.get("add", []):
        snap.files.setdefault(entry["table"], []).append(entry)
    for s in commit.get("streams", []):
        files = {f["name"]: FileState(**f) for f in s.get("files", [])}
        key = (s["run"], s["stream"])
        state = snap.streams.get(key) or StreamState(
            s["run"], s["stream"], s["data_product"], s["module"]
        )
        state.frames = s["frames"]
        state.store = s.get("store", state.store)
        state.files.update(files)
        snap.streams[key] = state
    for run, count in commit.get("hk_records", {}).items():
        snap.hk_records[run] = count
    snap.runs.update(commit.get("runs", []))
    snap.thresholds.update(commit.get("thresholds", {}))
    snap.run_ids.update(commit.get("run_ids", {}))
    snap.version = commit["version"]


def publish_commit(root: Path, version: int, body: dict[str, Any]) -> Path:
    """Atomically create ``_pfflake_log/<version>.json``; raise :class:`CommitConflict` if taken."""
    log = root / LOG_DIR
    log.mkdir(parents=True, exist_ok=True)
    doc = {
        "version": version,
        "committed_at": datetime.now(UTC).isoformat(),
        "writer": {"host": socket.gethostname(), "pid": os.getpid()},
        **body,
    }
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
