"""Dask for the lake: ingest work units on a ``distributed`` cluster, read the lake as Dask
collections.

Ingest: :meth:`pfflake.lake.Lake.ingest` with ``client=`` plans in the calling
process (the coordinator) exactly as a local ingest does, then hands the same
picklable :class:`~pfflake.lake.UnitTask` objects to :func:`run_units`, which
runs :func:`pfflake.lake.run_unit` once per task on the cluster. Each task
writes its Zarr region in place and one staged Parquet file; the coordinator
gathers one :class:`~pfflake.lake.UnitResult` per task and commits once through
the lake's log. A retried task (an exception, or a worker that died and was
restarted by its nanny) rewrites the same Zarr bytes and overwrites the same
staged file, so whatever the number of attempts every frame is committed
exactly once. If a task fails for good, :func:`run_units` waits for every
other task to settle (no worker writes after the coordinator removes the
staging), then raises :class:`~pfflake.lake.LakeError`; nothing is committed.

Workers must see the lake and the run directories at the same absolute paths
as the coordinator (a shared file system: NFS, Lustre, GPFS, CephFS).

Reading: :func:`to_dask` (a Dask DataFrame over the committed Parquet files of
one snapshot) and :func:`images_dask` (a Dask array over one stream's Zarr
store, clipped to the committed frames).

dask and distributed are the optional extra ``pfflake[distributed]``; this
module imports them only inside its functions, and nothing on the local
ingest/query path imports this module.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..errors import FrameNotFoundError, LakeError, QueryError
from .tables import VIEWS
from .units import run_unit
from .views import LakeView, as_view

if TYPE_CHECKING:
    import dask.array
    import dask.dataframe
    import distributed

    from .log import Snapshot
    from .units import UnitResult, UnitTask

#: Attempts after the first for a task that raises (a worker that dies is retried by the
#: scheduler up to ``distributed.scheduler.allowed-failures`` times on its own).
TASK_RETRIES = 2

#: Test hook, like ``PFFLAKE_CRASH_AT``: ``kill-once:<marker path>`` makes the first unit that
#: creates the marker file kill its worker process right after writing its Zarr region and
#: staged Parquet (before it reports back); ``raise`` makes every unit fail.
FAULT_ENV = "PFFLAKE_DASK_FAULT"

_EXTRA_HINT = "pip install 'pfflake[distributed]'"


def require_dask(what: str = "this", *, cluster: bool = False) -> None:
    """Raise a clear ImportError naming the extra if dask (and, for ``cluster``,
    distributed) is not installed."""
    import importlib

    names = ["dask.array", "dask.dataframe"] + (["distributed"] if cluster else [])
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ImportError(
                f"{what} needs dask and distributed ({name} is not installed): {_EXTRA_HINT}"
            ) from exc


def connect(address: str) -> distributed.Client:
    """A ``distributed.Client`` for a running scheduler (``tcp://host:8786``), for the CLI."""
    require_dask("pfflake ingest --scheduler", cluster=True)
    from distributed import Client

    return Client(address)


# -- ingest ---------------------------------------------------------------------------


def _unit(task: UnitTask) -> UnitResult:
    """One work unit on a Dask worker: :func:`pfflake.lake.run_unit` (+ the test hook)."""

    fault = os.environ.get(FAULT_ENV, "")
    if fault == "raise":
        raise RuntimeError(f"{FAULT_ENV}=raise: unit {task.stream} [{task.row_start}, "
                           f"{task.stop}) fails")
    result = run_unit(task)
    if fault.startswith("kill-once:"):
        try:
            fd = os.open(fault.split(":", 1)[1], os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return result
        os.close(fd)
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
    return result


def run_units(
    client: distributed.Client,
    tasks: Sequence[UnitTask],
    *,
    retries: int = TASK_RETRIES,
    on_done: Callable[[int], None] | None = None,
    key_prefix: str = "pfflake-unit",
) -> list[UnitResult]:
    """Run ``tasks`` on ``client``'s cluster; one result per task, in task order.

    Every task is submitted at once (the scheduler balances them over the
    workers); ``on_done(frames)`` is called as each finishes. Returns only
    after every task has settled. If any task failed for good (after
    ``retries`` retries, or a worker killed more often than the scheduler's
    ``allowed-failures``), raises :class:`~pfflake.lake.LakeError` naming the
    first failure, chained to its exception.
    """
    require_dask("Lake.ingest(client=...)", cluster=True)
    from distributed import as_completed
    if not tasks:
        return []
    stamp = f"{time.time_ns():x}"
    keys = [f"{key_prefix}-{stamp}-{i}" for i in range(len(tasks))]
    # Workers do not share the coordinator's working directory: send absolute paths.
    sent = [_absolute(t) for t in tasks]
    futures = client.map(_unit, sent, key=keys, retries=retries, pure=False)
    results: dict[str, UnitResult] = {}
    failed: list[tuple[Any, BaseException]] = []
    try:
        for fut in as_completed(futures):
            if fut.status == "finished":
                result = fut.result()
                if fut.key in results:  # never: one future per task
                    raise LakeError(f"unit {fut.key} reported twice")
                results[fut.key] = result
                if on_done is not None:
                    on_done(result.task.stop - result.task.zarr_start)
            elif fut.status == "error":
                failed.append((fut, fut.exception()))
            else:  # cancelled from elsewhere (another client, the cluster closing)
                failed.append((fut, RuntimeError(f"unit {fut.key} {fut.status}")))
    finally:
        client.cancel(futures)
    if failed:
        fut, exc = failed[0]
        i = keys.index(fut.key)
        t = tasks[i]
        raise LakeError(
            f"{len(failed)} of {len(tasks)} ingest unit(s) failed on the cluster; first: "
            f"{t.run}/{t.stream} frames [{t.row_start}, {t.stop}): {exc!r}; "
            "nothing was committed"
        ) from exc
    missing = [k for k in keys if k not in results]
    if missing:
        raise LakeError(f"{len(missing)} ingest unit(s) returned no result; nothing committed")
    # The commit is built from the coordinator's own tasks (paths as it planned them).
    return [replace(results[k], task=t) for k, t in zip(keys, tasks, strict=True)]


def _absolute(task: UnitTask) -> UnitTask:
    return replace(
        task,
        paths=[os.path.abspath(p) for p in task.paths],
        store=os.path.abspath(task.store),
        staging_file=os.path.abspath(task.staging_file),
    )


# -- reading ---------------------------------------------------------------------------


def _pandas_types() -> dict[pa.DataType, Any]:
    import pandas as pd

    return {
        pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(),
        pa.int64(): pd.Int64Dtype(), pa.uint8(): pd.UInt8Dtype(), pa.uint16(): pd.UInt16Dtype(),
        pa.uint32(): pd.UInt32Dtype(), pa.uint64(): pd.UInt64Dtype(),
        pa.bool_(): pd.BooleanDtype(), pa.string(): pd.StringDtype(),
    }


def _to_pandas(table: pa.Table):
    """Arrow -> pandas with the same dtypes whether or not a column has nulls.

    Integers and booleans become pandas' nullable types of the same width (a
    plain conversion would turn a column with nulls, another product's header
    field, into float64, and the partitions would disagree with the meta);
    timestamps stay ``datetime64[ns, UTC]``, floats stay floats (NaN for null).
    """
    return table.to_pandas(ignore_metadata=True, types_mapper=_pandas_types().get)


class _ReadPart:
    """Read one committed Parquet file as a pandas frame of the table's full schema.

    Columns a file lacks (another product's header fields) read as null, and the
    ``frames`` partition keys come from the commit entry, with the pinned types
    of :data:`pfflake.schema.PARTITION_KEYS`: the same columns as the DuckDB
    ``frames`` view (``union_by_name`` + hive partitioning). Picklable, so it
    runs on any worker that sees the lake's path. Its ``columns`` keyword lets
    Dask's optimizer push a column selection (``df[["module", "pixel_sum"]]``)
    into the read.
    """

    def __init__(self, schema: pa.Schema, columns: list[str] | None = None) -> None:
        self.schema = schema
        self.columns = columns

    def __call__(self, part: tuple[str, dict[str, Any]], columns: list[str] | None = None):
        import pyarrow.parquet as pq

        path, partition = part
        wanted = list(columns) if columns is not None else (self.columns or self.schema.names)
        on_disk = set(pq.read_schema(path).names)
        table = pq.read_table(path, columns=[c for c in wanted if c in on_disk])
        cols = []
        for name in wanted:
            field = self.schema.field(name)
            if name in partition:
                cols.append(pa.array([partition[name]] * table.num_rows, field.type))
            elif name in on_disk:
                cols.append(table.column(name).cast(field.type))
            else:
                cols.append(pa.nulls(table.num_rows, field.type))
        return _to_pandas(pa.table(cols, schema=pa.schema([self.schema.field(c) for c in wanted])))


def to_dask(
    view: LakeView,
    name: str = "frames",
    *,
    snap: Snapshot | None = None,
    columns: Sequence[str] | None = None,
) -> dask.dataframe.DataFrame:
    """A Dask DataFrame over the committed Parquet files of one table of one snapshot.

    ``view``: a :class:`~pfflake.lake.views.LakeView` (``Lake.at(version)``), or a
    ``Lake`` (then ``snap``, default the latest version, pinned when this is
    called). The file list is the view's snapshot's, so a later commit never
    changes what the collection reads. One partition per committed file:
    ``frames`` files hold up to one ingest unit (65,536 frames) each, sorted
    by ``unix_t_ns``. ``frames`` has every product's columns (null where a
    product lacks them) and the partition columns ``data_product`` and
    ``module``, like the DuckDB view; ``columns`` reads only those. ``runs``
    and ``files`` keep the latest row per run / (run, file), as the views do;
    ``runs_all``/``files_all``/``hk`` are the tables as stored. Workers must
    see the lake at the same path.

    Built with ``dask.dataframe.from_map`` over the committed files rather
    than ``read_parquet``: ``read_parquet`` takes its schema from one file, so
    the header columns of the other products would silently disappear.
    """
    require_dask("Lake.to_dask")
    import dask.dataframe as dd

    if name not in VIEWS:
        raise QueryError(
            f"no Dask DataFrame for {name!r}; expected one of {', '.join(VIEWS)} "
            "(derived views: lake.sql('SELECT * FROM <view>').df())"
        )
    source = as_view(view, snap)  # the file list is pinned to this view's snapshot
    snap = source.snapshot
    view = VIEWS[name]
    spec = view.spec
    schema = spec.view_schema()
    cols = list(columns) if columns is not None else None
    if cols is not None:
        unknown = [c for c in cols if c not in view.columns()]
        if unknown:
            raise QueryError(f"{name}: no column(s) {unknown}; columns: {view.columns()}")
    entries = snap.table_files(spec.name)
    parts = []
    for e in entries:
        partition = dict(e.partition or {})
        for key, typ in spec.partition_keys:  # the log keeps them as JSON; pin their types
            if key in partition and pa.types.is_integer(typ):
                partition[key] = int(partition[key])
        parts.append((str(source.root / e.path), partition))
    reader = _ReadPart(schema, cols)
    meta_schema = pa.schema([schema.field(c) for c in (cols or view.columns())])
    meta = _to_pandas(meta_schema.empty_table())
    if view.latest_key:
        # runs/files are small (a row per run or source file per commit): read them as one
        # partition and keep the latest version per key, like the views.
        latest = _Latest(reader, list(view.latest_key), hidden=list(view.hidden), columns=cols)
        meta = latest.empty(meta_schema)
        return dd.from_map(latest, [parts], meta=meta, label=f"pfflake-{name}",
                           enforce_metadata=False)
    if not parts:
        return dd.from_pandas(meta, npartitions=1)
    return dd.from_map(reader, parts, meta=meta, label=f"pfflake-{name}", enforce_metadata=False)


class _Latest:
    """All files of ``runs``/``files`` as one partition: the rows whose ``version`` is their
    key's maximum (the rule of :mod:`pfflake.lake.tables`)."""

    def __init__(self, reader: _ReadPart, keys: list[str], *, hidden: list[str],
                 columns: list[str] | None) -> None:
        self.reader = _ReadPart(reader.schema)  # every column: keys and version are needed
        self.keys = keys
        self.hidden = hidden
        self.columns = columns

    def _select(self, df):
        if self.hidden:
            df = df.drop(columns=self.hidden)
        return df[self.columns] if self.columns is not None else df

    def empty(self, schema: pa.Schema):
        full = _to_pandas(self.reader.schema.empty_table())
        return self._select(full)

    def __call__(self, parts: list[tuple[str, dict[str, Any]]]):
        import pandas as pd

        frames = [self.reader(p) for p in parts]
        if not frames:
            return self.empty(self.reader.schema)
        df = pd.concat(frames, ignore_index=True)
        newest = df.groupby(self.keys, dropna=False)["version"].transform("max")
        return self._select(df[df["version"] == newest].reset_index(drop=True))


def images_dask(
    view: LakeView,
    run: str,
    stream: str | None = None,
    *,
    data_product: str | None = None,
    module: int | None = None,
    array: str = "images",
    snap: Snapshot | None = None,
) -> dask.array.Array:
    """A Dask array over one stream's Zarr store: frames ``[0, committed)`` of one snapshot
    (the view's; a ``Lake`` gives ``snap`` or its latest version).

    Name the stream (``dp_img16.bpp_2.module_1``) or give ``data_product``
    and/or ``module``; exactly one committed stream of ``run`` must match.
    ``array`` picks the store's array (``images``; ``unix_t_ns``,
    ``time_quality`` or a header field such as ``quabo_0_pkt_num``). A store
    can hold frames beyond the committed count (an ingest in progress or
    interrupted); they are never part of the result. Dask chunks are the
    store's shards (or chunks when unsharded), so each task reads whole
    stored objects. Workers must see the lake at the same path.
    """
    require_dask("Lake.images_dask")
    import dask.array as da
    import zarr

    view = as_view(view, snap)
    state = view.snapshot.find_stream(run, stream, data_product=data_product, module=module)
    if state.store is None:
        raise FrameNotFoundError(f"run {run!r} stream {state.stream!r} has no Zarr store")
    path = view.root / state.store
    arr = zarr.open_array(str(path), path=array, mode="r")
    if arr.shape[0] < state.frames:
        raise LakeError(
            f"{path}/{array}: {arr.shape[0]} frames stored, {state.frames} committed "
            "(run `pfflake fsck`)"
        )
    stored = getattr(arr, "shards", None) or arr.chunks
    out = da.from_zarr(str(path), component=array, chunks=tuple(stored))
    return out[: state.frames]


__all__ = [
    "FAULT_ENV",
    "TASK_RETRIES",
    "connect",
    "images_dask",
    "require_dask",
    "run_units",
    "to_dask",
]
