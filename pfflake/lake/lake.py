"""The lake: runs ingested into Parquet (frame metadata) and Zarr v3 (pixels).

Layout under the lake root::

    _pfflake_log/<version>.json          commits (see pfflake.log)
    _staging/<txn>/...                   data files being written
    frames/data_product=<dp>/module=<m>/<run>.<first>-<last>.<txn>.parquet
    runs/<txn>.parquet  files/<txn>.parquet  hk/<run>.<txn>.parquet
    zarr/<run>/<run>.<stream>.zarr       pypff-compatible stores (convert_run layout)

An ingest writes every Parquet file under ``_staging``, writes pixels into
Zarr regions beyond what is committed, moves the Parquet files into place,
and then publishes one commit. Readers use only the files a commit names and
only the frames a commit counts, so a crash at any moment leaves the lake
reading as its last commit; the next ingest redoes the rest (every frame
exactly once), and :meth:`Lake.fsck` reports or removes the leftovers.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from .. import schema as S
from ..errors import LakeError
from ..faults import fault as _fault
from ..file import PFFWarning
from ..identity import checked_identity, run_threshold
from ..paths import HK_FILE_NAME
from ..store.layout import write_unit
from ..store.resize import create_store_in_place, resize_store
from .log import (
    LOG_DIR,
    CommitConflict,
    FileState,
    Snapshot,
    StreamState,
    load_snapshot,
    log_versions,
    publish_commit,
)
from .sources import file_row, file_states, new_hk_rows, redacted_configs, run_row
from .tables import FILES_SCHEMA, RUNS_SCHEMA
from .tables import TABLES as _TABLE_SPECS
from .units import (
    UnitResult,
    UnitTask,
    fingerprint,
    fsync_file,
    run_unit,
)

if TYPE_CHECKING:  # the optional [distributed] extra: never imported on the local path
    import dask.array
    import dask.dataframe
    import distributed

logger = logging.getLogger(__name__)

STAGING = "_staging"
TABLES = tuple(_TABLE_SPECS)  # the table names of the log (kept for pfflake.lake.TABLES)
UNIT_FRAMES = 65_536  # target frames per work unit (rounded to Zarr write units)
#: Lake stores keep images in chunks of about this many bytes, in shards of
#: IMAGE_SHARD_FRAMES frames: a scattered query hit costs one small chunk's
#: decode (not pypff's 8 MB), and the shard keeps the file count of a 4096-chunk store.
IMAGE_CHUNK_BYTES = 65_536
IMAGE_SHARD_FRAMES = 4096
#: Blosc LZ4 after bit-shuffling: on photon-count pixels it compresses better than
#: zstd level 3 (2.5:1 vs 2.35:1 on simulated img16), encodes ~10x and decodes ~5x faster.
LAKE_CODEC = "blosc-lz4-bitshuffle"


CRASH_POINTS = (  # every fault point of an ingest (pfflake.faults), in the order reached
    "planned",  # stores created or resized, nothing written
    "store_resized",  # one zarr.json rewritten by resize_store (growing run)
    "read_batch",  # one batch read and handed to the Zarr writer
    "zarr_file",  # one Zarr chunk/shard file renamed into place
    "parquet_staging",  # a unit's frames in memory, its Parquet file not yet written
    "parquet_staged",  # a unit's Parquet file written and fsynced in staging
    "unit_written",  # after a work unit (Zarr region + staged Parquet)
    "units_written",  # all units done, nothing moved
    "table_staged",  # one runs/files/hk Parquet file staged
    "staged",  # runs/files/hk tables staged
    "published_file",  # one data file moved into place
    "published_files",  # data files in place, no commit yet
    "commit_tmp",  # commit JSON written and fsynced under a temporary name
    "commit_linked",  # commit linked to its version name, log dir not yet fsynced
    "committed",  # commit published, staging not yet removed
)


def safe_name(name: str) -> str:
    """A file-name-safe token: no path separators, no ``..``, no ``:``.

    Names come from run directories and file names, which the lake does not
    control; nothing derived from them may point outside the lake root.
    """
    token = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    token = re.sub(r"\.{2,}", "_", token).strip(".")
    return token or "_"


# -- tables other than frames ---------------------------------------------------

# -- ingest planning --------------------------------------------------------------


@dataclass
class IngestResult:
    """What one ingest did (also printed as the CLI's one-line summary)."""

    version: int | None
    runs: int = 0
    streams: int = 0
    frames: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    files_added: int = 0
    runs_checked: int = 0
    unchanged_version: int | None = None  # the lake's version when nothing was committed

    @property
    def mb_per_s(self) -> float:
        return self.bytes_read / 1e6 / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        if self.version is None:
            at = "" if self.unchanged_version is None else f" at version {self.unchanged_version}"
            return f"no new data in {self.runs_checked} run(s); the lake is unchanged{at}"
        v = f"version {self.version}"
        return (
            f"ingested {self.runs} run(s), {self.streams} stream(s), {self.frames:,} frames, "
            f"{self.bytes_read / 1e6:,.1f} MB in {self.seconds:.2f} s "
            f"({self.mb_per_s:,.0f} MB/s); lake at {v}"
        )


@dataclass
class _StreamPlan:
    run: str
    stream: str
    seq: Any
    state: StreamState | None
    start: int  # first frame not yet committed
    stop: int
    store: Path
    new_store: bool
    file_states: list[FileState] = field(default_factory=list)
    file_rows: list[dict[str, Any]] = field(default_factory=list)


def is_lake(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` holds a pfflake lake (its commit log directory exists)."""
    return (Path(path) / LOG_DIR).is_dir()


def check_lake_target(path: str | os.PathLike[str]) -> None:
    """Refuse to create a lake where one does not belong.

    A lake may be created in a missing or empty directory; an existing lake is
    reused. A run directory (it holds ``.pff`` files) or any other non-empty
    directory is refused with :class:`LakeError`, so a mistyped ``--lake`` never
    scatters lake files among raw data.
    """
    root = Path(path)
    if is_lake(root):
        return
    if root.exists() and not root.is_dir():
        raise LakeError(f"{root}: is a file, not a lake directory")
    if not root.is_dir():
        return
    entries = sorted(p.name for p in root.iterdir())
    if not entries:
        return
    if any(name.endswith(".pff") for name in entries):
        raise LakeError(
            f"{root}: is a run directory (it holds .pff files), not a lake; "
            "give --lake a new or empty directory"
        )
    shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
    raise LakeError(
        f"{root}: not empty and not a pfflake lake (holds {shown}); "
        "give --lake a new or empty directory, or an existing lake"
    )


class Lake:
    """A pfflake lake at ``path``.

    Reading a path that holds no lake raises :class:`LakeError` (a typo must not
    read as an empty lake). :meth:`ingest` creates the lake in a missing or
    empty directory; ``create=True`` creates it now (an empty lake at version 0).
    Neither ever creates one inside a run directory or a non-empty foreign one.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = False,
                 **zarr_layout: Any) -> None:
        """``zarr_layout``: :func:`pfflake.zarr.create_store` options for new stores
        (``time_chunk``, ``ts_chunk``, ``shard_factor``, ``image_shard``, ``codec``,
        ``level``); given, they replace :func:`lake_zarr_layout` entirely. Stores
        already in the lake keep the layout they were created with."""
        self.root = Path(path)
        self.zarr_layout = zarr_layout
        self._con = None
        self._con_version: int | None = None
        if create:
            self._create()

    def _create(self) -> None:
        check_lake_target(self.root)
        (self.root / LOG_DIR).mkdir(parents=True, exist_ok=True)

    def _require(self) -> None:
        if not is_lake(self.root):
            what = "no such directory" if not self.root.exists() else "no pfflake lake here"
            raise LakeError(
                f"{self.root}: {what} (a lake has a {LOG_DIR}/ directory; "
                f"build one with `pfflake ingest RUN --lake {self.root}`)"
            )

    # -- reading --------------------------------------------------------------

    def snapshot(self, as_of: int | None = None) -> Snapshot:
        """The committed state (latest, or ``as_of`` a version)."""
        self._require()
        return load_snapshot(self.root, as_of)

    @property
    def version(self) -> int:
        self._require()
        versions = log_versions(self.root)
        return versions[-1] if versions else 0

    def table_paths(self, table: str, snap: Snapshot | None = None) -> list[Path]:
        """Committed data files of ``table`` (from the log, never a directory glob)."""
        snap = snap or self.snapshot()
        return [self.root / e.path for e in snap.table_files(table)]

    def connect(self, snap: Snapshot | None = None):
        """A new DuckDB connection with the lake's views (``frames``, ``runs``, ``files``,
        ``hk`` and the derived views in ``sql/views``) over one snapshot."""
        import duckdb

        from .query import register_views

        con = duckdb.connect()
        register_views(con, self, snap or self.snapshot())
        return con

    def sql(self, query: str):
        """Run SQL over the committed lake; returns a DuckDB relation.

        Reuses one connection while the lake's version is unchanged (a new
        connection costs ~15 ms; a query on a reused one ~1 ms).
        """
        return self.connection().sql(query)

    def connection(self):
        """The lake's reused DuckDB connection, reopened when the lake's version changes."""
        version = self.version
        if self._con is None or self._con_version != version:
            if self._con is not None:
                self._con.close()
            self._con = self.connect(self.snapshot(version))
            self._con_version = version
        return self._con

    def scan(self, name: str = "frames"):
        """A Polars LazyFrame over the committed files of a table (partition and time pruning)."""
        from .query import scan

        return scan(self, name)

    def images(
        self,
        result,
        *,
        as_xarray: bool = False,
        data_product: str | None = None,
        calibrated: bool = False,
    ):
        """Images of the frames in a query result, in its row order (see :func:`query.images`).

        ``calibrated=True``: ``(raw - pedestal) / gain`` as float32, from the committed
        calibrations valid at each frame's time (see :func:`caltables.calibrated_images`)."""
        if calibrated:
            if as_xarray:
                raise ValueError("calibrated images are plain arrays; as_xarray is not supported")
            from ..caltables import calibrated_images

            return calibrated_images(self, result)
        from .query import images

        return images(self, result, as_xarray=as_xarray, data_product=data_product)

    def images_at(self, module: int, unix_t_ns, tolerance_ns: int, **kw):
        """Frames of ``module`` nearest to the given times, within ``tolerance_ns``."""
        from .query import images_at

        return images_at(self, module, unix_t_ns, tolerance_ns, **kw)

    def frames_with_hk(self, fields: Sequence[str] = ("DET_TEMP",), **kw):
        """Frames with the latest housekeeping reading at or before each frame (as-of join)."""
        from .query import frames_with_hk

        return frames_with_hk(self, fields, **kw)

    def coincidences(self, modules: Sequence[int], window_ns: int, **kw):
        """Frames from several modules within ``window_ns`` of each other."""
        from .query import coincidences

        return coincidences(self, modules, window_ns, **kw)

    def light_curve(self, bucket_ns: int, **kw):
        """Time-bucketed pixel statistics per module, ready to plot."""
        from .query import light_curve

        return light_curve(self, bucket_ns, **kw)

    def compute_pedestals(self, **kw):
        """Pedestal, pedvar, hot and dead calibration rows per stream window, one commit
        (see :func:`pfflake.caltables.compute_pedestals`)."""
        from ..caltables import compute_pedestals

        return compute_pedestals(self, **kw)

    def compute_gain(self, data_product: str, module: int, **kw):
        """A relative gain map from two committed pedvar maps, with fallbacks to flat 1.0
        (see :func:`pfflake.caltables.compute_gain`)."""
        from ..caltables import compute_gain

        return compute_gain(self, data_product, module, **kw)

    def calibration(self, kind: str, module: int, at_ns: int, **kw):
        """The latest committed ``kind`` calibration (pedestal, pedvar, hot, dead, gain) of
        ``module`` valid at ``at_ns`` (int ns) (see :func:`pfflake.caltables.lookup`)."""
        from ..caltables import lookup

        return lookup(self, kind, module, at_ns, **kw)

    def compute_dl1(self, **kw):
        """Cleaned-image Hillas parameters of selected frames into the ``dl1`` table, one
        commit (see :func:`pfflake.dl1.compute_dl1`)."""
        from ..dl1 import compute_dl1

        return compute_dl1(self, **kw)
    def time_offsets(self, reference: int, modules: Sequence[int], **kw):
        """Clock offsets of modules against a reference per bin (:func:`timing.time_offsets`)."""
        from ..timing import time_offsets

        return time_offsets(self, reference, modules, **kw)

    def coincidence_groups(self, modules: Sequence[int], window_ns: int, **kw):
        """k-of-N coincidence groups, a row per member (:func:`coincidence.coincidence_groups`)."""
        from ..coincidence import coincidence_groups

        return coincidence_groups(self, modules, window_ns, **kw)

    def coincidence_rate(self, groups, bin_ns: int):
        """Groups per time bin and multiplicity (:func:`coincidence.coincidence_rate`)"""
        from ..coincidence import coincidence_rate

        return coincidence_rate(groups, bin_ns)

    def select(self, cuts=None, **kw):
        """Frames with the event-selection cuts flagged, a summary (:func:`cuts.lake_select`)."""
        from ..cuts import Cuts, lake_select

        return lake_select(self, cuts or Cuts(), **kw)

    def to_dask(self, name: str = "frames", *, snap: Snapshot | None = None,
                columns: Sequence[str] | None = None) -> dask.dataframe.DataFrame:
        """A Dask DataFrame over one snapshot's committed Parquet files of a table
        (needs ``pfflake[distributed]``; see :func:`pfflake.distributed.to_dask`)."""
        from .cluster import to_dask

        return to_dask(self, name, snap=snap, columns=columns)

    def images_dask(self, run: str, stream: str | None = None, *,
                    data_product: str | None = None, module: int | None = None,
                    array: str = "images", snap: Snapshot | None = None) -> dask.array.Array:
        """A Dask array over one stream's committed frames (``pfflake[distributed]``;
        see :func:`pfflake.distributed.images_dask`)."""
        from .cluster import images_dask

        return images_dask(self, run, stream, data_product=data_product, module=module,
                           array=array, snap=snap)

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    # -- ingest ---------------------------------------------------------------

    def ingest(
        self,
        run_dirs: Iterable[str | os.PathLike[str]],
        *,
        workers: int | None = None,
        strict: bool = True,
        threshold: float | None = None,
        progress: bool | None = None,
        max_retries: int = 3,
        client: distributed.Client | None = None,
    ) -> IngestResult:
        """Add new frames of ``run_dirs`` to the lake in one commit.

        Idempotent and incremental: frames already committed are skipped, a
        run still being recorded is read up to its last whole frame, and a
        later ingest continues from there. ``workers`` processes (default:
        all cores) write the data; ``threshold`` sets the ``pixels_above``
        statistic. ``strict=False`` skips damaged frames instead of failing.
        A concurrent ingest that commits first makes this one re-plan (up to
        ``max_retries`` times); overlapping work fails with :class:`LakeError`.

        ``client`` (a ``distributed.Client``; needs ``pfflake[distributed]``)
        runs the work units on a Dask cluster instead of local processes
        (``workers`` is then ignored); this process still plans and commits
        once, and the lake is the same as a local ingest's. The workers must
        see the lake and the run directories at the same absolute paths. A
        unit that fails is retried; if it fails for good, nothing is committed
        and :class:`LakeError` is raised (see :mod:`pfflake.distributed`).
        """
        t0 = time.perf_counter()
        run_dirs = [Path(p) for p in run_dirs]
        for run_dir in run_dirs:  # before anything is created
            _check_run_dir(run_dir, self.root)
        for attempt in range(max_retries + 1):
            try:
                result = self._ingest_once(run_dirs, workers, strict, threshold, progress,
                                           client)
                result.seconds = time.perf_counter() - t0
                return result
            except OSError as e:  # disk full, permissions, ... : one clear error
                raise _io_error(self, e) from None
            except CommitConflict:
                if attempt == max_retries:
                    raise LakeError(
                        f"{self.root}: gave up after {max_retries} commit conflicts "
                        "with concurrent ingests"
                    ) from None
                logger.info("commit conflict; re-planning against the new lake version")
        raise AssertionError("unreachable")

    def _ingest_once(self, run_dirs, workers, strict, threshold, progress,
                     client=None) -> IngestResult:
        from ..run import PanosetiRun

        self._create()
        snap = self.snapshot()
        txn = f"{int(time.time())}-{uuid.uuid4().hex[:12]}"
        staging = self.root / STAGING / txn
        staging.mkdir(parents=True)
        (staging / "owner.json").write_text(
            json.dumps({"host": socket.gethostname(), "pid": os.getpid()})
        )
        result = IngestResult(version=None)
        try:
            plans: list[_StreamPlan] = []
            runs: list[tuple[Any, Path]] = []
            self._thresholds, self._run_ids = {}, {}
            for run_dir in run_dirs:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", PFFWarning)
                    run = PanosetiRun(run_dir, strict=strict)
                runs.append((run, run_dir))
                name = run.run_dir.name
                self._run_ids[name] = checked_identity(run, run_dir, snap)
                self._thresholds[name] = run_threshold(name, threshold, snap)
                plans += self._plan_run(run, snap)
            tasks = self._make_tasks(plans, staging, strict, self._thresholds, workers)
            _fault("planned")
            unit_results = self._execute(tasks, workers, progress, client)
            _fault("units_written")
            body = self._commit_body(snap, runs, plans, unit_results, staging, txn)
            _fault("staged")
            result.runs_checked = len(runs)
            if not body["add"] and not body["streams"]:
                result.unchanged_version = snap.version
                return result
            self._publish_files(staging, body["add"])
            _fault("published_files")
            version = snap.version + 1
            publish_commit(self.root, version, body)
            _fault("committed")
            result.version = version
            result.runs = len({p.run for p in plans if p.stop > p.start}) or len(body["runs"])
            result.streams = sum(1 for p in plans if p.stop > p.start)
            result.frames = sum(r.rows for r in unit_results)
            result.bytes_read = sum(
                sum(f.size for f in p.seq.files) * (p.stop - p.start) // max(len(p.seq), 1)
                for p in plans
            )
            result.files_added = len(body["add"])
            for run, _ in runs:
                run.close()
            return result
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _plan_run(self, run, snap: Snapshot) -> list[_StreamPlan]:
        name = run.run_dir.name
        plans = []
        for stream in run.list_products():
            seq = run.get_product(stream)
            state = snap.streams.get((name, stream))
            committed = state.frames if state else 0
            self._check_unchanged(run, seq, state)
            rel = Path("zarr") / safe_name(name) / f"{safe_name(name)}.{safe_name(stream)}.zarr"
            plans.append(
                _StreamPlan(
                    run=name,
                    stream=stream,
                    seq=seq,
                    state=state,
                    start=committed,
                    stop=len(seq),
                    store=self.root / rel,
                    new_store=state is None or state.store is None,
                )
            )
        return plans

    def _check_unchanged(self, run, seq, state: StreamState | None) -> None:
        """Refuse to append if a source file's ingested part changed under the lake."""
        if state is None:
            return
        names = [p.name for p in seq.file_paths]
        for fname, fs in state.files.items():
            if fname not in names:
                raise LakeError(
                    f"{run.run_dir / fname}: ingested file is gone from the run; "
                    "the lake keeps its frames (re-ingest into a new lake to drop them)"
                )
            pf = seq.files[names.index(fname)]
            if pf.n_frames < fs.frames:
                raise LakeError(f"{pf.path}: has {pf.n_frames} frames, lake has {fs.frames}")
            last = None
            if fs.frames:
                off = pf.frame_offset(fs.frames - 1)
                last = (off, pf.frame_offset(fs.frames) - off if fs.frames < pf.n_frames
                        else fs.size - off - fs.truncated_tail_bytes)
            if fingerprint(pf.path, fs.size, last) != fs.fingerprint:
                raise LakeError(f"{pf.path}: content changed since it was ingested")
        if len(seq) < state.frames:
            raise LakeError(f"{run.run_dir}/{state.stream}: fewer frames than the lake has")

    def _make_tasks(self, plans, staging, strict, thresholds, workers) -> list[UnitTask]:
        tasks = []
        for p in plans:
            if p.stop <= p.start:
                continue
            configs = redacted_configs(p.seq)
            if p.new_store:
                layout = self.zarr_layout or lake_zarr_layout(p.seq.product)
                create_store_in_place(p.store, p.seq, p.stop, configs, staging, layout)
            else:
                resize_store(p.store, p.stop)
            unit = write_unit(p.store)
            per = max(unit, (UNIT_FRAMES // unit) * unit)
            first = (p.start // unit) * unit
            for zs in range(first, p.stop, per):
                stop = min(zs + per, p.stop)
                row_start = max(zs, p.start)
                tag = f"{safe_name(p.run)}.{row_start}-{stop - 1}.{staging.name}"
                rel = (
                    Path("frames")
                    / f"{S.DATA_PRODUCT}={p.seq.product.name}"
                    / f"{S.MODULE}={p.seq.module}"
                    / f"{tag}.parquet"
                )
                tasks.append(
                    UnitTask(
                        run=p.run,
                        stream=p.stream,
                        paths=[str(x) for x in p.seq.file_paths],
                        strict=strict,
                        zarr_start=zs,
                        row_start=row_start,
                        stop=stop,
                        store=str(p.store),
                        staging_file=str(staging / rel),
                        threshold=thresholds[p.run],
                        zarr_workers=1,
                    )
                )
        return tasks

    def _execute(self, tasks, workers, progress, client=None) -> list[UnitResult]:
        workers = workers or os.cpu_count() or 1
        total = sum(t.stop - t.zarr_start for t in tasks)
        show = _progress(progress, total)
        results = []
        try:
            if client is not None:
                from .cluster import run_units

                results = run_units(client, tasks, on_done=show)
            elif workers <= 1 or len(tasks) <= 1 or total < 2 * UNIT_FRAMES:
                for t in tasks:
                    t.zarr_workers = min(2, workers)
                    results.append(run_unit(t))
                    _fault("unit_written")
                    show(t.stop - t.zarr_start)
            else:
                ctx = get_context("spawn")
                with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=ctx) as pool:
                    for r in pool.map(run_unit, tasks):
                        results.append(r)
                        show(r.task.stop - r.task.zarr_start)
        finally:
            show(None)
        return results

    def _commit_body(self, snap, runs, plans, results, staging, txn) -> dict[str, Any]:
        version = snap.version + 1
        add: list[dict[str, Any]] = []
        for r in results:
            if r.rows == 0:
                continue
            rel = Path(r.task.staging_file).relative_to(staging)
            product, module = rel.parts[1].split("=", 1)[1], int(rel.parts[2].split("=", 1)[1])
            add.append(
                {
                    "table": "frames",
                    "path": rel.as_posix(),
                    "rows": r.rows,
                    "bytes": r.bytes,
                    "partition": {S.DATA_PRODUCT: product, S.MODULE: module},
                    "run": r.task.run,
                    "stream": r.task.stream,
                    "first_frame": r.task.row_start,
                    "last_frame": r.task.stop - 1,
                    "min_unix_t_ns": r.min_unix_t_ns,
                    "max_unix_t_ns": r.max_unix_t_ns,
                    "sources": r.sources,
                }
            )
        streams = []
        file_rows = []
        for p in plans:
            states = file_states(p.seq)
            changed = p.state is None or p.stop > p.start or any(
                p.state.files.get(s.name) != s for s in states
            )
            if not changed:
                continue
            streams.append(
                {
                    "run": p.run,
                    "stream": p.stream,
                    "data_product": p.seq.product.name,
                    "module": p.seq.module,
                    "frames": p.stop,
                    "store": p.store.relative_to(self.root).as_posix(),
                    "files": [s.to_json() for s in states],
                }
            )
            for s, path in zip(states, p.seq.file_paths, strict=True):
                if p.state is None or p.state.files.get(s.name) != s:
                    file_rows.append(file_row(p, s, path, version))
        run_rows, hk_tables, hk_counts, new_runs = [], [], {}, []
        for run, run_dir in runs:
            name = run.run_dir.name
            if name not in snap.runs:
                new_runs.append(name)
                run_rows.append(run_row(run, run_dir, version, self._run_ids[name],
                                         self._thresholds[name]))
            hk = new_hk_rows(run, snap.hk_records.get(name, 0))
            if hk is not None and hk.num_rows:
                hk_tables.append(hk)
                hk_counts[name] = snap.hk_records.get(name, 0) + hk.num_rows
        add += _write_small_table(staging, "runs", txn, RUNS_SCHEMA, run_rows)
        add += _write_small_table(staging, "files", txn, FILES_SCHEMA, file_rows)
        for hk in hk_tables:
            run_name = hk.column(S.RUN)[0].as_py()
            rel = Path("hk") / f"{safe_name(run_name)}.{txn}.parquet"
            out = staging / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(hk.sort_by(S.UNIX_T_NS), out, compression="zstd")
            fsync_file(out)
            _fault("table_staged")
            add.append({"table": "hk", "path": rel.as_posix(), "rows": hk.num_rows,
                        "bytes": out.stat().st_size})
        return {
            "operation": "ingest",
            "add": add,
            "remove": [],
            "streams": streams,
            "runs": new_runs,
            "hk_records": hk_counts,
            "thresholds": {r: self._thresholds[r] for r in new_runs},
            "run_ids": {r: self._run_ids[r] for r in new_runs},
        }

    def _publish_files(self, staging: Path, entries: list[dict[str, Any]]) -> None:
        """Move staged files to their final paths (still invisible until the commit)."""
        dirs = set()
        for e in entries:
            src, dst = staging / e["path"], self.root / e["path"]
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
            _fault("published_file")
            dirs.add(dst.parent)
        for d in dirs:
            fsync_file(d)

    # -- checking ---------------------------------------------------------------

    def fsck(self, repair: bool = False, sources: bool = False):
        """Check committed files against the log; find (and with ``repair`` remove)
        uncommitted leftovers: staged files, unreferenced data files, Zarr frames
        beyond the committed count. ``sources``: also re-read every ingested byte
        range of the source PFF files and compare its CRC-32 (see :mod:`pfflake.fsck`)."""
        from .fsck import fsck

        return fsck(self, repair=repair, sources=sources)

    # -- curating (issue 16: pfflake.lake.maintain) ----------------------------------------

    def remove(self, runs: str | Iterable[str]):
        """Take a run (or several) out of the lake in one commit: its rows leave every table
        and its streams the snapshot; older versions still read them until :meth:`vacuum`.
        Returns the :class:`~pfflake.lake.log.Commit` (see :func:`pfflake.lake.maintain.remove`)."""
        from .maintain import remove

        return remove(self, [runs] if isinstance(runs, str) else list(runs))

    def compact(self, *, target_bytes: int | None = None, min_files: int | None = None):
        """Merge small Parquet files into large ones in one commit, rows unchanged; returns
        the commit or ``None`` (see :func:`pfflake.lake.maintain.compact`)."""
        from .maintain import DEFAULT_MIN_FILES, DEFAULT_TARGET_BYTES, compact

        return compact(self, target_bytes=target_bytes or DEFAULT_TARGET_BYTES,
                       min_files=min_files or DEFAULT_MIN_FILES)

    def vacuum(self, older_than, *, dry_run: bool = False):
        """Delete files no version committed in the last ``older_than`` (a ``timedelta`` or
        ``"7d"``/``"12h"``/``"0s"``) needs; never the latest's. Returns a
        :class:`~pfflake.lake.maintain.VacuumReport` (see :func:`pfflake.lake.maintain.vacuum`)."""
        from .maintain import parse_duration, vacuum

        if isinstance(older_than, str):
            older_than = parse_duration(older_than)
        return vacuum(self, older_than, dry_run=dry_run)


def _check_run_dir(run_dir: Path, lake_root: Path) -> None:
    """Refuse what is no run directory: missing, a lake, or holding no PFF data file."""
    if not run_dir.is_dir():
        raise LakeError(f"{run_dir}: run directory not found")
    if is_lake(run_dir):
        raise LakeError(f"{run_dir}: is a pfflake lake, not a run directory")
    if not any(p.name != HK_FILE_NAME for p in run_dir.glob("*.pff")):
        raise LakeError(
            f"{run_dir}: no PFF data files (*.pff) here; is it a run directory?"
        )


def lake_zarr_layout(product) -> dict[str, int]:
    """The lake's default store layout for ``product``: image chunks of a power of two
    frames near :data:`IMAGE_CHUNK_BYTES` (16..4096 frames), image shards of
    :data:`IMAGE_SHARD_FRAMES`, header arrays in pypff's 65536-frame chunks, all
    compressed with :data:`LAKE_CODEC`."""
    frames = max(1, IMAGE_CHUNK_BYTES // max(product.image_bytes, 1))
    chunk = min(IMAGE_SHARD_FRAMES, max(16, 1 << (frames.bit_length() - 1)))
    return {"time_chunk": chunk, "image_shard": IMAGE_SHARD_FRAMES, "codec": LAKE_CODEC}


def _io_error(lake: Lake, e: OSError) -> LakeError:
    """One clear message for an I/O failure: the path, the cause, the lake's state.

    The ingest's own ``finally`` already removed its staging area; data files
    it moved or Zarr chunks it wrote beyond the commit are invisible leftovers
    (``fsck --repair`` removes them). The full traceback goes to the debug log.
    """
    logger.debug("ingest I/O failure", exc_info=e)
    where = e.filename or lake.root
    cause = e.strerror or str(e)
    return LakeError(
        f"{where}: {cause}; ingest stopped, the lake is still at version "
        f"{lake.version if is_lake(lake.root) else 0}"
    )


def _write_small_table(staging: Path, table: str, txn: str, schema: pa.Schema,
                       rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not rows:
        return []
    rel = Path(table) / f"{txn}.parquet"
    out = staging / rel
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), out, compression="zstd")
    fsync_file(out)
    _fault("table_staged")
    return [{"table": table, "path": rel.as_posix(), "rows": len(rows),
             "bytes": out.stat().st_size}]


def _progress(enabled: bool | None, total: int) -> Callable[[int | None], None]:
    """A rich progress bar on a TTY (silent otherwise); call with frames done, None to end."""
    import sys

    if enabled is False or (enabled is None and not sys.stderr.isatty()) or total == 0:
        return lambda _n: None
    from rich.progress import BarColumn, Progress, TimeRemainingColumn

    bar = Progress("ingest", BarColumn(), "{task.completed:,}/{task.total:,} frames",
                   TimeRemainingColumn(), transient=True)
    task = bar.add_task("ingest", total=total)
    bar.start()

    def update(n: int | None) -> None:
        if n is None:
            bar.stop()
        else:
            bar.advance(task, n)

    return update


__all__ = ["IngestResult", "Lake", "LakeError", "check_lake_target", "is_lake", "resize_store",
           "safe_name"]
