"""The lake's front door: :class:`Lake` (open, read, ingest, check).

Every path under the root is in :mod:`pfflake.lake.layout`; the ingest (plan ->
execute -> commit, and why a crash never shows a half commit) in
:mod:`pfflake.lake.ingest`; the commit log in :mod:`pfflake.lake.log`.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..calibration import PedestalRecipe
from ..coincidence import coincidence_groups, coincidence_rate
from ..cuts import Cuts, Selection, lake_select
from ..errors import LakeError
from ..store.resize import resize_store
from ..timing import time_offsets
from . import analysis, cluster, views
from . import images as lake_images
from .caltables import (
    Calibration,
    CalibrationResult,
    calibrated_images,
    compute_gain,
    compute_pedestals,
    lookup,
)
from .dl1 import Dl1Recipe, Dl1Result, compute_dl1
from .follow import COMPACT_EVERY, FollowResult, follow
from .fsck import fsck as check_lake
from .ingest import CRASH_POINTS, UNIT_FRAMES, IngestOptions, IngestResult, ingest
from .layout import (
    IMAGE_CHUNK_BYTES,
    IMAGE_SHARD_FRAMES,
    LAKE_CODEC,
    LOG_DIR,
    STAGING,
    check_lake_target,
    create_lake,
    is_lake,
    lake_zarr_layout,
    safe_name,
)
from .log import Snapshot, latest_version
from .maintain import (
    DEFAULT_MIN_FILES,
    DEFAULT_TARGET_BYTES,
    compact,
    parse_duration,
    remove,
    vacuum,
)
from .tables import TABLES as _TABLE_SPECS
from .views import LakeView, snapshot_at

if TYPE_CHECKING:  # the optional [distributed] extra: never imported on the local path
    import threading
    from collections.abc import Callable

    import dask.array
    import dask.dataframe
    import distributed
    import duckdb
    import polars
    import pyarrow as pa


logger = logging.getLogger(__name__)

TABLES = tuple(_TABLE_SPECS)  # the table names of the log (kept for pfflake.lake.TABLES)


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
        self._latest: LakeView | None = None  # the latest version's view, reused
        self._views: weakref.WeakValueDictionary[int, LakeView] = weakref.WeakValueDictionary()
        if create:
            self._create()

    def _create(self) -> None:
        create_lake(self.root)

    def _require(self) -> None:
        if not is_lake(self.root):
            what = "no such directory" if not self.root.exists() else "no pfflake lake here"
            raise LakeError(
                f"{self.root}: {what} (a lake has a {LOG_DIR}/ directory; "
                f"build one with `pfflake ingest RUN --lake {self.root}`)"
            )

    # -- reading --------------------------------------------------------------
    # Every read goes through a LakeView: one snapshot and its own DuckDB connection.
    # The methods below read the latest version (``self.at()``); ``self.at(v)`` reads v.

    def snapshot(self, as_of: int | None = None) -> Snapshot:
        """The committed state (latest, or ``as_of`` a version; :class:`LakeError` for a
        version the log does not hold)."""
        self._require()
        return snapshot_at(self.root, as_of)

    @property
    def version(self) -> int:
        self._require()
        return latest_version(self.root)

    def at(self, version: int | None = None, *,
           time: datetime | str | int | None = None) -> LakeView:
        """A read-only :class:`~pfflake.lake.views.LakeView` of one version (time travel).

        ``version``: a committed version (None: the latest; 0: the empty lake).
        ``time``: a datetime, ISO 8601 string (naive means UTC) or int ns: the
        last version committed at or before it. A version the log does not hold
        raises :class:`LakeError` naming the versions available. Views are
        cached per version while referenced; a view's relations stay valid when
        the lake moves on, until the view (or this lake) is closed.
        """
        self._require()
        snap = None
        if version is None and time is None:
            latest = self.version
            if self._latest is not None and self._latest.version == latest \
                    and not self._latest.closed:
                return self._latest
            version = latest
        elif time is not None:
            snap = snapshot_at(self.root, version, time=time)
            version = snap.version
        view = self._views.get(version)
        if view is None or view.closed:
            view = LakeView(self.root, snap or snapshot_at(self.root, version))
            self._views[version] = view
        if self._latest is None or view.version >= self._latest.version:
            self._latest = view  # held; older views live as long as their users hold them
        return view

    def table_paths(self, table: str, snap: Snapshot | None = None) -> list[Path]:
        """Committed data files of ``table`` (from the log, never a directory glob)."""
        snap = snap or self.snapshot()
        return [self.root / e.path for e in snap.table_files(table)]

    def connect(self, snap: Snapshot | None = None) -> duckdb.DuckDBPyConnection:
        """A new DuckDB connection with the lake's views (``frames``, ``runs``, ``files``,
        ``hk`` and the derived views in ``sql/views``) over one snapshot; the caller closes it."""
        return views.connect(self.root, snap or self.snapshot())

    def sql(self, query: str) -> duckdb.DuckDBPyRelation:
        """Run SQL over the latest committed version; returns a DuckDB relation.

        Reuses the latest view's connection while the lake's version is unchanged
        (a new connection costs ~15 ms; a query on a reused one ~1 ms).
        """
        return self.at().sql(query)

    def connection(self) -> duckdb.DuckDBPyConnection:
        """The latest version's DuckDB connection. When the version moves, the next call
        gives a new one; the old one is not closed (relations on it stay valid)."""
        return self.at().connection()

    def scan(self, name: str = "frames") -> polars.LazyFrame:
        """A Polars LazyFrame over the committed files of a table (partition and time pruning)."""
        return self.at().scan(name)

    def images(
        self,
        result: Any,
        *,
        as_xarray: bool = False,
        data_product: str | None = None,
        calibrated: bool = False,
    ) -> Any:
        """Images of the frames in a query result, in its row order (see
        :func:`pfflake.lake.images.images`).

        ``calibrated=True``: ``(raw - pedestal) / gain`` as float32, from the committed
        calibrations valid at each frame's time (see :func:`caltables.calibrated_images`)."""
        if calibrated:
            if as_xarray:
                raise ValueError("calibrated images are plain arrays; as_xarray is not supported")

            return calibrated_images(self.at(), result)
        return lake_images.images(self.at(), result, as_xarray=as_xarray,
                                  data_product=data_product)

    def images_at(self, module: int, unix_t_ns: Any, tolerance_ns: int, *,
                  data_product: str | None = None,
                  run: str | None = None) -> tuple[Any, pa.Table]:
        """Frames of ``module`` nearest to the given times, within ``tolerance_ns``
        (see :func:`pfflake.lake.images.images_at`)."""
        return lake_images.images_at(self.at(), module, unix_t_ns, tolerance_ns,
                                     data_product=data_product, run=run)

    def frames_with_hk(self, fields: str | Sequence[str] = ("DET_TEMP",), *,
                       where: str | None = None,
                       devices: str | Mapping[int, str] | None = None,
                       ) -> duckdb.DuckDBPyRelation:
        """Frames with the latest housekeeping reading at or before each frame (as-of join;
        see :func:`pfflake.lake.analysis.frames_with_hk`)."""
        return analysis.frames_with_hk(self.at(), fields, where=where, devices=devices)

    def coincidences(self, modules: Sequence[int], window_ns: int, *,
                     where: str | None = None,
                     data_product: str | None = None) -> duckdb.DuckDBPyRelation:
        """Frames from several modules within ``window_ns`` of each other
        (see :func:`pfflake.lake.analysis.coincidences`)."""
        return analysis.coincidences(self.at(), modules, window_ns, where=where,
                                     data_product=data_product)

    def light_curve(self, bucket_ns: int, *, module: int | Sequence[int] | None = None,
                    data_product: str | None = None, where: str | None = None,
                    pixel: tuple[int, int] | None = None) -> duckdb.DuckDBPyRelation:
        """Time-bucketed pixel statistics per module, ready to plot
        (see :func:`pfflake.lake.analysis.light_curve`)."""
        return analysis.light_curve(self.at(), bucket_ns, module=module,
                                    data_product=data_product, where=where, pixel=pixel)

    # Calibration tables and dl1 (lake/caltables.py, lake/dl1.py) commit through the log;
    # timing, coincidence and cuts import nothing of the lake (they get a view). Reads go
    # through one view.

    def compute_pedestals(self, *, where: str | None = None, data_product: str | None = None,
                          module: int | list[int] | None = None,
                          recipe: PedestalRecipe | None = None, workers: int | None = None,
                          client: distributed.Client | None = None) -> CalibrationResult:
        """Pedestal, pedvar, hot and dead calibration rows per stream window, one commit
        (see :func:`pfflake.lake.caltables.compute_pedestals`; ``recipe`` None: the default)."""

        return compute_pedestals(self, where=where, data_product=data_product, module=module,
                                 recipe=recipe or PedestalRecipe(), workers=workers,
                                 client=client)

    def compute_gain(self, data_product: str, module: int, *,
                     fields: list[tuple[str, int, int]], valid_from_ns: int, valid_to_ns: int,
                     sigma: float = 3.0, quabo: int | None = None) -> CalibrationResult:
        """A relative gain map from two committed pedvar maps, with fallbacks to flat 1.0
        (see :func:`pfflake.lake.caltables.compute_gain`)."""

        return compute_gain(self, data_product, module, fields=fields,
                            valid_from_ns=valid_from_ns, valid_to_ns=valid_to_ns, sigma=sigma,
                            quabo=quabo)

    def calibration(self, kind: str, module: int, at_ns: int, *,
                    data_product: str | None = None, quabo: int | None = None,
                    as_of: int | None = None) -> Calibration:
        """The latest committed ``kind`` calibration (pedestal, pedvar, hot, dead, gain) of
        ``module`` valid at ``at_ns`` (int ns), in version ``as_of`` (None: the latest)
        (see :func:`pfflake.lake.caltables.lookup`)."""

        return lookup(self.at(as_of), kind, module, at_ns, data_product=data_product,
                      quabo=quabo)

    def compute_dl1(self, *, where: str | None = None, data_product: str | None = None,
                    module: int | list[int] | None = None, recipe: Dl1Recipe | None = None,
                    workers: int | None = None,
                    client: distributed.Client | None = None) -> Dl1Result:
        """Cleaned-image Hillas parameters of selected frames into the ``dl1`` table, one
        commit (see :func:`pfflake.lake.dl1.compute_dl1`; ``recipe`` None: the default)."""

        return compute_dl1(self, where=where, data_product=data_product, module=module,
                           recipe=recipe or Dl1Recipe(), workers=workers, client=client)

    def time_offsets(self, reference: int, modules: Sequence[int] | str, *,
                     window_ns: int = 20_000_000, bin_ns: int = 120_000_000_000,
                     time_base: str = "host", where: str | None = None,
                     data_product: str | None = None, cuts: Any = None,
                     peak_bin_ns: int | None = None, refine_ns: int | None = None,
                     iterations: int = 3, min_pairs: int = 5) -> pa.Table:
        """Clock offsets of modules against a reference per bin (:func:`timing.time_offsets`)."""
        return time_offsets(self.at(), reference, modules, window_ns=window_ns, bin_ns=bin_ns,
                            time_base=time_base, where=where, data_product=data_product,
                            cuts=cuts, peak_bin_ns=peak_bin_ns, refine_ns=refine_ns,
                            iterations=iterations, min_pairs=min_pairs)

    def coincidence_groups(self, modules: Sequence[int] | str, window_ns: int, *,
                           min_multiplicity: int = 2, time_base: str = "host",
                           offsets: pa.Table | None = None, where: str | None = None,
                           data_product: str | None = None, cuts: Any = None) -> pa.Table:
        """k-of-N coincidence groups, a row per member (:func:`coincidence.coincidence_groups`)."""
        return coincidence_groups(self.at(), modules, window_ns,
                                  min_multiplicity=min_multiplicity, time_base=time_base,
                                  offsets=offsets, where=where, data_product=data_product,
                                  cuts=cuts)

    def coincidence_rate(self, groups: pa.Table, bin_ns: int) -> pa.Table:
        """Groups per time bin and multiplicity (:func:`coincidence.coincidence_rate`)"""
        return coincidence_rate(groups, bin_ns)

    def select(self, cuts: Cuts | None = None, *, modules: Sequence[int] | None = None,
               time_base: str = "host", where: str | None = None,
               data_product: str | None = None) -> Selection:
        """Frames with the event-selection cuts flagged, a summary (:func:`cuts.lake_select`)."""
        return lake_select(self.at(), cuts or Cuts(), modules=modules, time_base=time_base,
                           where=where, data_product=data_product)

    def to_dask(self, name: str = "frames", *, snap: Snapshot | None = None,
                columns: Sequence[str] | None = None) -> dask.dataframe.DataFrame:
        """A Dask DataFrame over one snapshot's committed Parquet files of a table
        (needs ``pfflake[distributed]``; see :func:`pfflake.lake.cluster.to_dask`)."""
        view = self.at() if snap is None else LakeView(self.root, snap)
        return cluster.to_dask(view, name, columns=columns)

    def images_dask(self, run: str, stream: str | None = None, *,
                    data_product: str | None = None, module: int | None = None,
                    array: str = "images", snap: Snapshot | None = None) -> dask.array.Array:
        """A Dask array over one stream's committed frames (``pfflake[distributed]``;
        see :func:`pfflake.lake.cluster.images_dask`)."""
        view = self.at() if snap is None else LakeView(self.root, snap)
        return cluster.images_dask(view, run, stream, data_product=data_product, module=module,
                                   array=array)

    def close(self) -> None:
        """Close every view (and connection) this lake made: relations on them stop working."""
        for view in list(self._views.values()):
            view.close()
        self._views.clear()
        self._latest = None

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
        unit_frames: int | None = None,
    ) -> IngestResult:
        """Add new frames of ``run_dirs`` to the lake in one commit.

        Idempotent and incremental: frames already committed are skipped, a
        run still being recorded is read up to its last whole frame, and a
        later ingest continues from there. ``workers`` processes (default:
        all cores) write the data; ``threshold`` sets the ``pixels_above``
        statistic. ``strict=False`` skips damaged frames instead of failing.
        A concurrent ingest that commits first makes this one re-plan (up to
        ``max_retries`` times); overlapping work fails with :class:`LakeError`.
        ``unit_frames``: frames per work unit (default
        :data:`~pfflake.lake.ingest.UNIT_FRAMES`, 65,536).

        ``client`` (a ``distributed.Client``; needs ``pfflake[distributed]``)
        runs the work units on a Dask cluster instead of local processes
        (``workers`` is then ignored); this process still plans and commits
        once, and the lake is the same as a local ingest's. The workers must
        see the lake and the run directories at the same absolute paths. A
        unit that fails is retried; if it fails for good, nothing is committed
        and :class:`LakeError` is raised (see :mod:`pfflake.distributed`).
        """
        return ingest(self, run_dirs, IngestOptions(
            workers=workers, strict=strict, threshold=threshold, progress=progress,
            max_retries=max_retries, client=client, unit_frames=unit_frames,
        ))

    def follow(
        self,
        run_dirs: Iterable[str | os.PathLike[str]],
        *,
        interval: float = 1.0,
        workers: int | None = 1,
        strict: bool = True,
        threshold: float | None = None,
        stop: threading.Event | None = None,
        on_commit: Callable[[IngestResult], None] | None = None,
        compact_every: int = COMPACT_EVERY,
    ) -> FollowResult:
        """Ingest runs while they are being recorded: a commit every ``interval`` seconds
        with the whole frames that arrived, until every run's end sentinel appears (a
        final commit marks them complete) or ``stop`` is set (a final commit first).

        Without ``stop``, SIGINT/SIGTERM end the follow that way (main thread only; the
        handlers are restored after). Each commit is an :meth:`ingest`, with its
        guarantees; ``on_commit`` gets each one's result. Every ``compact_every`` commits
        the small files are merged (0: only at the end). See :mod:`pfflake.lake.follow`.
        """
        return follow(self, run_dirs, IngestOptions(
            workers=workers, strict=strict, threshold=threshold, progress=False, growing=True,
        ), interval=interval, stop=stop, on_commit=on_commit, compact_every=compact_every)

    # -- checking ---------------------------------------------------------------

    def fsck(self, repair: bool = False, sources: bool = False):
        """Check committed files against the log; find (and with ``repair`` remove)
        uncommitted leftovers: staged files, unreferenced data files, Zarr frames
        beyond the committed count. ``sources``: also re-read every ingested byte
        range of the source PFF files and compare its CRC-32 (see :mod:`pfflake.fsck`)."""
        return check_lake(self, repair=repair, sources=sources)

    # -- curating (issue 16: pfflake.lake.maintain) ----------------------------------------

    def remove(self, runs: str | Iterable[str]):
        """Take a run (or several) out of the lake in one commit: its rows leave every table
        and its streams the snapshot; older versions still read them until :meth:`vacuum`.
        Returns the :class:`~pfflake.lake.log.Commit` (see :func:`pfflake.lake.maintain.remove`)."""
        return remove(self, [runs] if isinstance(runs, str) else list(runs))

    def compact(self, *, target_bytes: int | None = None, min_files: int | None = None):
        """Merge small Parquet files into large ones in one commit, rows unchanged; returns
        the commit or ``None`` (see :func:`pfflake.lake.maintain.compact`)."""
        return compact(self, target_bytes=target_bytes or DEFAULT_TARGET_BYTES,
                       min_files=min_files or DEFAULT_MIN_FILES)

    def vacuum(self, older_than, *, dry_run: bool = False):
        """Delete files no version committed in the last ``older_than`` (a ``timedelta`` or
        ``"7d"``/``"12h"``/``"0s"``) needs; never the latest's. Returns a
        :class:`~pfflake.lake.maintain.VacuumReport` (see :func:`pfflake.lake.maintain.vacuum`)."""
        if isinstance(older_than, str):
            older_than = parse_duration(older_than)
        return vacuum(self, older_than, dry_run=dry_run)

    def replace(self, run_dirs: Iterable[str | os.PathLike[str]], *, workers: int | None = None,
                strict: bool = True, threshold: float | None = None,
                progress: bool | None = None, client: distributed.Client | None = None,
                ) -> IngestResult:
        """Ingest ``run_dirs`` again from scratch (``pfflake ingest --replace``): runs the
        lake holds are removed and re-ingested in ONE commit (a run whose source files
        changed, which :meth:`ingest` refuses). Readers see the old run or the new one,
        never neither; the new streams get new Zarr stores, and older versions still read
        the old ones until :meth:`vacuum`. A run new to the lake is simply ingested."""
        return ingest(self, run_dirs, IngestOptions(
            workers=workers, strict=strict, threshold=threshold, progress=progress,
            client=client, replace=True))


__all__ = ["CRASH_POINTS", "IMAGE_CHUNK_BYTES", "IMAGE_SHARD_FRAMES", "LAKE_CODEC", "STAGING",
           "UNIT_FRAMES", "FollowResult", "IngestResult", "Lake", "LakeError",
           "check_lake_target", "is_lake", "lake_zarr_layout", "resize_store", "safe_name"]
