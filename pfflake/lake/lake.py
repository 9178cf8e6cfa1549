"""The lake's front door: :class:`Lake` (open, read, ingest, check).

Every path under the root is in :mod:`pfflake.lake.layout`; the ingest (plan ->
execute -> commit, and why a crash never shows a half commit) in
:mod:`pfflake.lake.ingest`; the commit log in :mod:`pfflake.lake.log`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import LakeError
from ..store.resize import resize_store
from .follow import FollowResult, follow
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
from .log import Snapshot, load_snapshot, log_versions
from .tables import TABLES as _TABLE_SPECS

if TYPE_CHECKING:  # the optional [distributed] extra: never imported on the local path
    import threading
    from collections.abc import Callable

    import dask.array
    import dask.dataframe
    import distributed

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
        self._con = None
        self._con_version: int | None = None
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
    ) -> FollowResult:
        """Ingest runs while they are being recorded: a commit every ``interval`` seconds
        with the whole frames that arrived, until every run's end sentinel appears (a
        final commit marks them complete) or ``stop`` is set (a final commit first).

        Without ``stop``, SIGINT/SIGTERM end the follow that way (main thread only; the
        handlers are restored after). Each commit is an :meth:`ingest`, with its
        guarantees; ``on_commit`` gets each one's result. See :mod:`pfflake.lake.follow`.
        """
        return follow(self, run_dirs, IngestOptions(
            workers=workers, strict=strict, threshold=threshold, progress=False, growing=True,
        ), interval=interval, stop=stop, on_commit=on_commit)

    # -- checking ---------------------------------------------------------------

    def fsck(self, repair: bool = False, sources: bool = False):
        """Check committed files against the log; find (and with ``repair`` remove)
        uncommitted leftovers: staged files, unreferenced data files, Zarr frames
        beyond the committed count. ``sources``: also re-read every ingested byte
        range of the source PFF files and compare its CRC-32 (see :mod:`pfflake.fsck`)."""
        from .fsck import fsck

        return fsck(self, repair=repair, sources=sources)


__all__ = ["CRASH_POINTS", "IMAGE_CHUNK_BYTES", "IMAGE_SHARD_FRAMES", "LAKE_CODEC", "STAGING",
           "UNIT_FRAMES", "FollowResult", "IngestResult", "Lake", "LakeError",
           "check_lake_target", "is_lake", "lake_zarr_layout", "resize_store", "safe_name"]
