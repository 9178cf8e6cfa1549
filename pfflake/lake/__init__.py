"""The lake: runs ingested into Parquet (frame metadata) and Zarr v3 (pixels), read through
one commit log.

Modules (each imports only those listed before it, plus :mod:`pfflake.store`):

- :mod:`~pfflake.lake.log`: the commit log and :class:`Snapshot` (what a version holds);
- :mod:`~pfflake.lake.layout`: every path under the root, the default store layout;
- :mod:`~pfflake.lake.tables`: a TableSpec per table, a ViewSpec per name readers accept;
- :mod:`~pfflake.lake.units`: one ingest work unit (what a worker process runs);
- :mod:`~pfflake.lake.sources`: file states and the runs/files/hk rows of a run;
- :mod:`~pfflake.lake.ingest`: :class:`IngestOptions`, plan -> execute -> commit;
- :mod:`~pfflake.lake.views`: :class:`LakeView` (one snapshot and its connection), DuckDB
  views, Polars scans;
- :mod:`~pfflake.lake.images`: query results -> images, ``images_at``;
- :mod:`~pfflake.lake.analysis`: frames with hk, coincidences, light curves;
- :mod:`~pfflake.lake.follow`: a commit every few seconds while a run records;
- :mod:`~pfflake.lake.lake`: :class:`Lake`, the front door;
- :mod:`~pfflake.lake.query`: the old module, a face of views/images/analysis;
- :mod:`~pfflake.lake.fsck`: checks of committed files and leftovers;
- :mod:`~pfflake.lake.cluster`: Dask (ingest units on a cluster, lake as Dask collections).

``pfflake.lake.X`` keeps every name it had when this was one module. Patch names where
they are used (``pfflake.lake.ingest.UNIT_FRAMES``, ``pfflake.lake.ingest.publish_commit``,
``pfflake.lake.ingest._fault``, ``pfflake.lake.units.source_checksums``):
setting an attribute of this package changes nothing the code reads. (The function
:func:`pfflake.lake.ingest.ingest` is not re-exported here: ``pfflake.lake.ingest`` is the
module.)
"""

from ..errors import CommitConflict, FrameNotFoundError, LakeError, QueryError
from ..store.resize import resize_store
from .follow import FollowResult
from .ingest import CRASH_POINTS, UNIT_FRAMES, IngestOptions, IngestResult
from .lake import TABLES, Lake
from .layout import (
    IMAGE_CHUNK_BYTES,
    IMAGE_SHARD_FRAMES,
    LAKE_CODEC,
    STAGING,
    check_lake_target,
    is_lake,
    lake_zarr_layout,
    safe_name,
)
from .log import FileState, Snapshot, StreamState, load_snapshot, publish_commit
from .tables import FILES_SCHEMA, HK_SCHEMA, RUNS_SCHEMA
from .units import (
    CHECKSUM_BLOCK,
    INGEST_BATCH_FRAMES,
    ROW_GROUP_ROWS,
    UnitResult,
    UnitTask,
    fingerprint,
    run_unit,
    source_checksums,
)
from .views import LakeView

__all__ = [
    "CHECKSUM_BLOCK",
    "CRASH_POINTS",
    "FILES_SCHEMA",
    "HK_SCHEMA",
    "IMAGE_CHUNK_BYTES",
    "IMAGE_SHARD_FRAMES",
    "INGEST_BATCH_FRAMES",
    "LAKE_CODEC",
    "ROW_GROUP_ROWS",
    "RUNS_SCHEMA",
    "STAGING",
    "TABLES",
    "UNIT_FRAMES",
    "CommitConflict",
    "FileState",
    "FollowResult",
    "FrameNotFoundError",
    "IngestOptions",
    "IngestResult",
    "Lake",
    "LakeError",
    "LakeView",
    "QueryError",
    "Snapshot",
    "StreamState",
    "UnitResult",
    "UnitTask",
    "check_lake_target",
    "fingerprint",
    "is_lake",
    "lake_zarr_layout",
    "load_snapshot",
    "publish_commit",
    "resize_store",
    "run_unit",
    "safe_name",
    "source_checksums",
]
