"""The lake's typed records: what a commit says and the snapshot a replay builds.

Pure data and their JSON forms (the log's and a checkpoint's); no I/O. Unknown keys
are kept in ``extra``, never an error, so a log written by a newer pfflake still
reads (and is written back unchanged). :mod:`pfflake.lake.log` reads and writes
them; every name here is also importable from there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import FrameNotFoundError


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

    def to_json(self, columnar: bool = False) -> dict[str, Any]:
        """The whole state as JSON (a checkpoint's body): typed records' ``to_json``.

        ``columnar``: each table's file entries as columns (:func:`files_to_columns`,
        checkpoint format 2), which parse ~3x faster than a list of objects."""
        enc = files_to_columns if columnar else (lambda es: [e.to_json() for e in es])
        return {
            "version": self.version,
            "files": {t: enc(es) for t, es in self.files.items()},
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
            files={t: files_from_columns(t, es) if isinstance(es, Mapping)
                   else [AddFile.from_json(e) for e in es] for t, es in d["files"].items()},
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


# -- the columnar form of a table's file list (checkpoint format 2) -------------------------

_COLUMNS = AddFile._KEYS[1:]  # every key but ``table`` (the table is the list's key)
_FIELDS = (*AddFile._KEYS, "extra")


def files_to_columns(entries: list[AddFile]) -> dict[str, Any]:
    """``{"n": len(entries), "columns": {key: [value per entry]}}``.

    A column whose values are all ``None`` is left out; ``extra`` (keys this version
    does not know) is a column only when some entry has any. Lossless:
    :func:`files_from_columns` gives back equal entries in the same order."""
    cols: dict[str, list[Any]] = {}
    for k in _COLUMNS:
        col = [getattr(e, k) for e in entries]
        if any(v is not None for v in col):
            cols[k] = col
    if any(e.extra for e in entries):
        cols["extra"] = [e.extra or None for e in entries]
    return {"n": len(entries), "columns": cols}


def files_from_columns(table: str, d: Mapping[str, Any]) -> list[AddFile]:
    """The entries :func:`files_to_columns` wrote for ``table``. ``ValueError`` if the
    columns are not of one length or miss a required key (a damaged checkpoint)."""
    n, cols = d["n"], d["columns"]
    if not isinstance(n, int) or any(len(c) != n for c in cols.values()):
        raise ValueError(f"checkpoint table {table!r}: columns of unequal length")
    if n and not {"table", *cols} >= _ADD_REQUIRED:
        raise ValueError(f"checkpoint table {table!r}: a required column is missing")
    none = (None,) * n
    rows = zip((table,) * n, *(cols.get(k, none) for k in _COLUMNS), cols.get("extra", none),
               strict=True)
    new, cls, fields, out = object.__new__, AddFile, _FIELDS, []
    for row in rows:
        # Filled directly, as AddFile.from_json's hot path does: 10^4 entries per season
        # and the frozen dataclass __init__ is ~3x slower.
        obj = new(cls)
        obj.__dict__.update(zip(fields, row, strict=True))
        if row[-1] is None:
            obj.__dict__["extra"] = {}
        out.append(obj)
    return out
