"""Ingest: runs into the lake, plan -> execute -> commit.

1. **Plan** against one snapshot: per stream, the frames not yet committed (a run still
   being recorded is read up to its last whole frame), after checking that what the lake
   already holds of each source file is unchanged. Stores are created or resized.
2. **Execute** the work units (:mod:`pfflake.lake.units`): in-process, in spawned worker
   processes, or on a Dask cluster. Each writes its Zarr region beyond the committed
   frames and one staged Parquet file under ``_staging/<txn>``.
3. **Commit**: the runs/files/hk rows are staged, every staged file is moved into place
   (still invisible: no commit names it), then one :class:`~pfflake.lake.log.Commit` is
   published.

Readers use only the files a commit names and only the frames a commit counts, so a
crash at any moment leaves the lake reading as its last commit; the next ingest redoes
the rest (every frame exactly once), and ``fsck`` reports or removes the leftovers. The
fault points of :data:`CRASH_POINTS` (:mod:`pfflake.faults`) mark every step, for the
crash harness (``tests/reliability/test_crash.py``).

Patch targets for tests are globals of this module, the one that reads them:
``_fault``, ``publish_commit``, ``UNIT_FRAMES`` (prefer ``IngestOptions.unit_frames``).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow.parquet as pq

from .. import schema as S
from ..console import progress_bar
from ..errors import CommitConflict, LakeError, ZarrLayoutError
from ..faults import fault as _fault
from ..file import PFFWarning
from ..identity import checked_identity, run_threshold
from ..run import PanosetiRun
from ..store.layout import IMAGES, ArrayLayout, fsync_paths, write_unit
from ..store.resize import create_store_in_place, resize_store
from . import maintain
from .cluster import run_units
from .layout import (
    create_lake,
    grown_length,
    is_lake,
    lake_zarr_layout,
    new_staging,
    safe_name,
    store_path,
)
from .log import AddFile, Commit, FileState, Snapshot, StreamState, publish_commit
from .sources import (
    check_run_dir,
    file_row,
    file_states,
    new_hk_rows,
    newly_complete,
    redacted_configs,
    run_row,
    write_small_table,
)
from .tables import FILES_SCHEMA, RUNS_SCHEMA
from .units import Phases, UnitResult, UnitTask, fingerprint, run_unit

if TYPE_CHECKING:  # the optional [distributed] extra: never imported on the local path
    import distributed

    from .lake import Lake

logger = logging.getLogger(__name__)

UNIT_FRAMES = 65_536  # default target frames per work unit (rounded to Zarr write units)

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

T = TypeVar("T")


@dataclass
class IngestOptions:
    """How :func:`ingest` runs; :meth:`pfflake.lake.Lake.ingest` builds one from its keywords.

    ``workers``: processes for the work units (None: all cores; ignored with ``client``).
    ``strict=False`` skips damaged frames instead of failing. ``threshold``: the pixel
    value above which ``pixels_above`` counts (recorded per run). ``progress``: a bar on
    stderr (None: only on a terminal). ``max_retries``: re-plans after a concurrent
    ingest committed first. ``client``: a ``distributed.Client`` to run the units on.
    ``unit_frames``: target frames per work unit (None: :data:`UNIT_FRAMES`; rounded up
    to the store's write unit). ``zarr_layout``: :func:`pfflake.zarr.create_store`
    options for stores new to the lake (None: the lake's own, see :class:`Lake`).
    ``growing``: the runs are still recording and will be ingested again soon (a
    follow): new stores get :func:`lake_zarr_layout`'s ``growing`` layout.
    """

    workers: int | None = None
    strict: bool = True
    #: issue 16 (``ingest --replace``): runs the lake already holds are removed and
    #: ingested again in the same commit (see :func:`pfflake.lake.maintain.replacing`)
    replace: bool = False
    threshold: float | None = None
    progress: bool | None = None
    max_retries: int = 3
    client: distributed.Client | None = None
    unit_frames: int | None = None
    zarr_layout: dict[str, Any] | None = None
    growing: bool = False


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
    #: seconds per phase (``plan``, ``stores``, the units' ``read``/``zarr``/``parquet``/...,
    #: ``tables``, ``publish_files``, ``publish_commit``, ``cleanup``; ``fsync`` of them
    #: in fsyncs, ``fsyncs`` a count) of the attempt that committed; the units' phases
    #: are summed, so with several workers they add up to more than the wall time
    phases: Phases = field(default_factory=Phases)
    started_at: float | None = None  # time.time() when the ingest started
    published_at: float | None = None  # time.time() once the commit was published

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
class StreamPlan:
    """One stream's part of an ingest: frames [start, stop) into ``store``."""

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


@dataclass
class _Runs:
    """The runs of one ingest attempt, with what is recorded once per run."""

    opened: list[tuple[PanosetiRun, Path]] = field(default_factory=list)
    thresholds: dict[str, float | None] = field(default_factory=dict)
    run_ids: dict[str, dict[str, str]] = field(default_factory=dict)

    def close(self) -> None:
        for run, _ in self.opened:
            run.close()


# -- the entry point ----------------------------------------------------------------------


def ingest(lake: Lake, run_dirs: Iterable[str | os.PathLike[str]],
           options: IngestOptions | None = None) -> IngestResult:
    """Add the new frames of ``run_dirs`` to ``lake`` in one commit (see
    :meth:`pfflake.lake.Lake.ingest`, which documents the behaviour)."""
    options = options or IngestOptions()
    t0 = time.perf_counter()
    started_at = time.time()
    dirs = [Path(p) for p in run_dirs]
    for run_dir in dirs:  # before anything is created
        check_run_dir(run_dir)
    try:
        result = retry_conflicts(
            lake.root, lambda: _ingest_once(lake, dirs, options), options.max_retries,
            "with concurrent ingests",
        )
    except OSError as e:  # disk full, permissions, ... : one clear error
        raise _io_error(lake, e) from None
    result.seconds = time.perf_counter() - t0
    result.started_at = started_at
    return result


def retry_conflicts(root: Path, attempt: Callable[[], T], retries: int, what: str) -> T:
    """``attempt()``, again (up to ``retries`` more times) while it raises
    :class:`CommitConflict` (another writer published the version it planned for); then
    :class:`LakeError` saying ``what`` was left. Every writer of the lake commits
    through this loop, so each retries the same way."""
    for n in range(retries + 1):
        try:
            return attempt()
        except CommitConflict:
            if n == retries:
                raise LakeError(f"{root}: gave up after {retries} commit conflicts {what}"
                                ) from None
            logger.info("commit conflict; retrying against the new lake version")
    raise AssertionError("unreachable")


def _ingest_once(lake: Lake, run_dirs: Sequence[Path], options: IngestOptions) -> IngestResult:
    create_lake(lake.root)
    # Planned from lake.snapshot() (not load_snapshot): the concurrency tests replace it
    # to plan against a stale view.
    snap = lake.snapshot()
    txn, staging = new_staging(lake.root)
    result = IngestResult(version=None)
    ph = result.phases
    runs = _Runs()
    try:
        t_plan = time.perf_counter()
        removal = None
        if options.replace:  # plan against the lake without the runs; commit both at once
            snap, removal = maintain.replacing(lake.root, snap, run_dirs, staging, txn)
        plans: list[StreamPlan] = []
        for run_dir in run_dirs:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PFFWarning)
                run = PanosetiRun(run_dir, strict=options.strict)
            runs.opened.append((run, run_dir))
            name = run.run_dir.name
            runs.run_ids[name] = checked_identity(run, run_dir, snap)
            runs.thresholds[name] = run_threshold(name, options.threshold, snap)
            plans += plan_run(lake.root, run, snap)
        ph.add("plan", time.perf_counter() - t_plan)
        with ph.timed("stores"):
            tasks = _make_tasks(lake, plans, staging, runs.thresholds, options)
        _fault("planned")
        with ph.timed("units"):
            unit_results = _execute(tasks, options)
        for r in unit_results:
            ph.merge(r.phases)
        _fault("units_written")
        with ph.timed("tables"):
            commit = _build_commit(lake.root, snap, runs, plans, unit_results, staging, txn)
        _fault("staged")
        if removal is not None:
            commit = maintain.with_removal(commit, removal)
        result.runs_checked = len(runs.opened)
        if not commit.add and not commit.streams:
            result.unchanged_version = snap.version
            return result
        with ph.timed("publish_files"):
            publish_files(lake.root, [(staging / e.path, e.path) for e in commit.add], ph)
        _fault("published_files")
        with ph.timed("publish_commit"):
            publish_commit(lake.root, commit)
        result.published_at = time.time()
        _fault("committed")
        result.version = commit.version
        result.runs = len({p.run for p in plans if p.stop > p.start}) or len(commit.runs)
        result.streams = sum(1 for p in plans if p.stop > p.start)
        result.frames = sum(r.rows for r in unit_results)
        result.bytes_read = sum(
            sum(f.size for f in p.seq.files) * (p.stop - p.start) // max(len(p.seq), 1)
            for p in plans
        )
        result.files_added = len(commit.add)
        return result
    finally:
        with ph.timed("cleanup"):
            runs.close()
            shutil.rmtree(staging, ignore_errors=True)


# -- plan -----------------------------------------------------------------------------------


def plan_run(root: Path, run: PanosetiRun, snap: Snapshot) -> list[StreamPlan]:
    """Per stream of ``run``: the frames ``snap`` does not hold yet (after
    :func:`check_unchanged`)."""
    name = run.run_dir.name
    plans = []
    for stream in run.list_products():
        seq = run.get_product(stream)
        state = snap.streams.get((name, stream))
        committed = state.frames if state else 0
        check_unchanged(run, seq, state)
        plans.append(
            StreamPlan(
                run=name,
                stream=stream,
                seq=seq,
                state=state,
                start=committed,
                stop=len(seq),
                store=root / _new_store_path(snap, name, stream, state),
                new_store=state is None or state.store is None,
            )
        )
    return plans


def _new_store_path(snap: Snapshot, run: str, stream: str, state: StreamState | None) -> Path:
    """The stream's store; for a stream ingested again after a ``remove``, a new one
    (``<run>.<stream>.v<version>.zarr``): the old store still serves older versions."""
    rel = store_path(run, stream)
    if state is None and rel.as_posix() in snap.retired_stores:
        rel = rel.with_name(f"{rel.stem}.v{snap.version + 1}.zarr")
    return rel


def check_unchanged(run: PanosetiRun, seq, state: StreamState | None) -> None:
    """Refuse to append if a source file's ingested part changed under the lake.

    A file that grew (a run still being recorded) is not a change: its fingerprint
    covers only the first 64 KiB and the last frame the lake holds of it, so what was
    appended since does not enter it.
    """
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


def _make_tasks(lake: Lake, plans: list[StreamPlan], staging: Path,
                thresholds: dict[str, float | None], options: IngestOptions) -> list[UnitTask]:
    unit_frames = options.unit_frames or UNIT_FRAMES
    tasks = []
    for p in plans:
        if p.stop <= p.start:
            if not (options.growing or p.new_store):
                _trim_grown(p)
            continue
        configs = redacted_configs(p.seq)
        if p.new_store:
            layout = (options.zarr_layout or lake.zarr_layout
                      or lake_zarr_layout(p.seq.product, growing=options.growing))
            n = grown_length(p.stop) if options.growing else p.stop
            create_store_in_place(p.store, p.seq, n, configs, staging, layout)
            metas = list(p.store.glob("**/zarr.json"))  # durable before a commit names it
            fsync_paths([*metas, *{m.parent for m in metas},
                         *(lake.root / d for d in p.store.relative_to(lake.root).parents)])
        elif not options.growing:
            resize_store(p.store, p.stop)
        elif ArrayLayout(p.store / IMAGES).n_frames < p.stop:
            resize_store(p.store, grown_length(p.stop))
        unit = write_unit(p.store)
        per = max(unit, (unit_frames // unit) * unit)
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
                    strict=options.strict,
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


def _trim_grown(p: StreamPlan) -> None:
    """A store a follow grew ahead of its data, back to its committed length."""
    try:
        grown = ArrayLayout(p.store / IMAGES).n_frames > p.stop
    except (OSError, ZarrLayoutError):  # no store pfflake can read: nothing to trim
        return
    if grown:
        resize_store(p.store, p.stop)


# -- execute --------------------------------------------------------------------------------


def _execute(tasks: list[UnitTask], options: IngestOptions) -> list[UnitResult]:
    workers = options.workers or os.cpu_count() or 1
    unit_frames = options.unit_frames or UNIT_FRAMES
    total = sum(t.stop - t.zarr_start for t in tasks)
    show = progress_bar(options.progress, total)
    results = []
    try:
        if options.client is not None:
            results = run_units(options.client, tasks, on_done=show)
        elif workers <= 1 or len(tasks) <= 1 or total < 2 * unit_frames:
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


# -- commit ---------------------------------------------------------------------------------


def _build_commit(root: Path, snap: Snapshot, runs: _Runs, plans: list[StreamPlan],
                  results: list[UnitResult], staging: Path, txn: str) -> Commit:
    """The commit of one ingest (version: the snapshot's next), its small tables staged."""
    version = snap.version + 1
    add: list[AddFile] = []
    for r in results:
        if r.rows == 0:
            continue
        rel = Path(r.task.staging_file).relative_to(staging)
        product, module = rel.parts[1].split("=", 1)[1], int(rel.parts[2].split("=", 1)[1])
        add.append(AddFile(
            table="frames", path=rel.as_posix(), rows=r.rows, bytes=r.bytes,
            partition={S.DATA_PRODUCT: product, S.MODULE: module},
            run=r.task.run, stream=r.task.stream,
            first_frame=r.task.row_start, last_frame=r.task.stop - 1,
            min_unix_t_ns=r.min_unix_t_ns, max_unix_t_ns=r.max_unix_t_ns,
            sources=r.sources,
        ))
    streams = []
    file_rows = []
    for p in plans:
        states = file_states(p.seq)
        changed = p.state is None or p.stop > p.start or any(
            p.state.files.get(s.name) != s for s in states
        )
        if not changed:
            continue
        # A new stream with no whole frame yet (a followed run's first file holds half a
        # frame) has no store: recording one would make the next ingest resize nothing.
        no_store = p.new_store and p.stop <= p.start
        streams.append(StreamState(
            run=p.run, stream=p.stream, data_product=p.seq.product.name, module=p.seq.module,
            frames=p.stop, store=None if no_store else p.store.relative_to(root).as_posix(),
            files={s.name: s for s in states},
        ))
        for s, path in zip(states, p.seq.file_paths, strict=True):
            if p.state is None or p.state.files.get(s.name) != s:
                file_rows.append(file_row(p, s, path, version))
    run_rows, hk_tables, hk_counts, new_runs = [], [], {}, []
    completed = newly_complete(root, snap, [run for run, _ in runs.opened])
    for run, run_dir in runs.opened:
        name = run.run_dir.name
        if name not in snap.runs:
            new_runs.append(name)
        if name not in snap.runs or name in completed:  # the latest row per run is read
            run_rows.append(run_row(run, run_dir, version, runs.run_ids[name],
                                    runs.thresholds[name]))
        hk = new_hk_rows(run, snap.hk_records.get(name, 0))
        if hk is not None and hk.num_rows:
            hk_tables.append(hk)
            hk_counts[name] = snap.hk_records.get(name, 0) + hk.num_rows
    add += write_small_table(staging, "runs", txn, RUNS_SCHEMA, run_rows)
    add += write_small_table(staging, "files", txn, FILES_SCHEMA, file_rows)
    for hk in hk_tables:
        run_name = hk.column(S.RUN)[0].as_py()
        rel = Path("hk") / f"{safe_name(run_name)}.{txn}.parquet"
        out = staging / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(hk.sort_by(S.UNIX_T_NS), out, compression="zstd")  # synced by publish
        _fault("table_staged")
        add.append(AddFile("hk", rel.as_posix(), hk.num_rows, out.stat().st_size))
    return Commit(
        version=version,
        operation="ingest",
        add=add,
        streams=streams,
        runs=new_runs,
        hk_records=hk_counts,
        thresholds={r: runs.thresholds[r] for r in new_runs},
        run_ids={r: runs.run_ids[r] for r in new_runs},
    )


def publish_files(root: Path, moves: Iterable[tuple[Path, str]],
                  phases: Phases | None = None) -> None:
    """Move staged files (``(source, path relative to root)``) to their final paths, then
    fsync them and the directories that got them, all at once (:func:`fsync_paths`: one
    journal commit for all; a file already synced costs nothing). Still invisible: no
    commit names them yet; a crash leaves them as leftovers for ``fsck``."""
    dirs, files = set(), []
    for src, rel in moves:
        dst = root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
        _fault("published_file")
        dirs.add(dst.parent)
        files.append(dst)
    t = time.perf_counter()
    n = fsync_paths([*files, *sorted(dirs)])
    if phases is not None:
        phases.add("fsync", time.perf_counter() - t)
        phases.add("fsyncs", n)


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


__all__ = [
    "CRASH_POINTS",
    "UNIT_FRAMES",
    "IngestOptions",
    "IngestResult",
    "StreamPlan",
    "check_run_dir",  # (pfflake.lake.sources)
    "check_unchanged",
    "ingest",
    "plan_run",
    "publish_files",
    "retry_conflicts",
    "write_small_table",  # (pfflake.lake.sources)
]
