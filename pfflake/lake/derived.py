"""Tables derived from the lake (calibration, dl1): work units, staging, one commit.

The same path as an ingest, for tables computed from committed frames: the
calling process (the coordinator) plans picklable work units from one
snapshot; each unit writes one staged Parquet file under
``_staging/<txn>/`` (a private name, fsynced, renamed) and returns its row
count; units run in-process, in local processes (``workers``), or on a Dask
cluster (``client=``, retried on failure). The coordinator then moves the
files into place and publishes one typed commit, with the ingest's own
move-into-place and retry code (:mod:`pfflake.lake.ingest`); a commit
conflict with a concurrent writer re-publishes at the next version (the
files do not depend on it). Nothing is visible before the commit; a
crash leaves leftovers that ``fsck`` lists and ``fsck --repair`` removes.

Workers must see the lake at the same absolute path (a shared file system).
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import LakeError
from .cluster import require_dask
from .ingest import publish_files, retry_conflicts
from .layout import new_staging as _new_staging
from .log import AddFile, Commit, load_snapshot, publish_commit
from .units import fsync_file

if TYPE_CHECKING:
    import distributed

    from .lake import Lake

COMMIT_RETRIES = 5
TASK_RETRIES = 2


@dataclass
class UnitOutput:
    """What a unit wrote: its staged file (relative to the staging dir), rows, bytes, extra."""

    rel_path: str
    rows: int
    bytes: int
    extra: dict[str, Any]


def write_staged(table: pa.Table, staging: str, rel_path: str,
                 extra: dict[str, Any] | None = None) -> UnitOutput:
    """Write ``table`` to ``staging/rel_path`` under a private name, fsync, rename."""
    out = Path(staging) / rel_path
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd", write_statistics=True)
        fsync_file(tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return UnitOutput(rel_path, table.num_rows, out.stat().st_size, extra or {})


def new_staging(lake: Lake) -> tuple[str, Path]:
    """A fresh staging area (with the owner file fsck uses to tell live from dead)."""
    lake.root.mkdir(parents=True, exist_ok=True)
    return _new_staging(lake.root)


def run_tasks(fn: Callable[[Any], UnitOutput | None], tasks: Sequence[Any], *,
              workers: int | None = None, client: distributed.Client | None = None
              ) -> list[UnitOutput | None]:
    """Run ``fn`` over ``tasks`` (in order of results = order of tasks).

    ``client``: on its Dask cluster, each task retried up to :data:`TASK_RETRIES` times;
    else ``workers`` spawned processes (default: all cores), in-process for one task or
    ``workers=1``. A task that fails for good raises :class:`~pfflake.lake.LakeError`
    after every other task has settled.
    """
    if not tasks:
        return []
    if client is not None:
        require_dask("client=", cluster=True)
        from distributed import wait

        futures = client.map(fn, list(tasks), retries=TASK_RETRIES, pure=False,
                             key=[f"pfflake-derived-{time.time_ns():x}-{i}"
                                  for i in range(len(tasks))])
        wait(futures)
        bad = [f for f in futures if f.status != "finished"]
        if bad:
            exc = bad[0].exception() if bad[0].status == "error" else None
            client.cancel(futures)
            raise LakeError(f"{len(bad)} of {len(tasks)} unit(s) failed on the cluster: "
                            f"{exc!r}; nothing was committed") from exc
        return client.gather(futures)
    workers = workers or os.cpu_count() or 1
    if workers <= 1 or len(tasks) <= 1:
        return [fn(t) for t in tasks]
    with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=get_context("spawn")) as pool:
        return list(pool.map(fn, tasks))


def commit_outputs(lake: Lake, staging: Path, operation: str, table: str,
                   outputs: Sequence[UnitOutput | None],
                   remove: Callable[[Any], list[dict[str, Any]]] | None = None,
                   extra: dict[str, Any] | None = None) -> int | None:
    """Move the outputs' files into place and publish one commit; returns its version
    (``None`` when there is nothing to add or remove).

    ``remove(snapshot)`` lists committed entries the commit replaces (asked again
    against the new snapshot after a conflict).
    """
    written = [o for o in outputs if o is not None and o.rows]
    add = [AddFile.from_json({"table": table, "path": f"{table}/{o.rel_path}", "rows": o.rows,
                              "bytes": o.bytes, **o.extra}) for o in written]
    publish_files(lake.root, [(staging / o.rel_path, e.path)
                              for o, e in zip(written, add, strict=True)])

    def attempt() -> int | None:
        snap = load_snapshot(lake.root)
        removed = [AddFile.from_json(e) for e in (remove(snap) if remove is not None else [])]
        if not add and not removed:
            return None
        commit = Commit(snap.version + 1, operation, add=add, remove=removed)
        commit.extra.update(extra or {})
        publish_commit(lake.root, commit)
        return commit.version

    return retry_conflicts(
        lake.root, attempt, COMMIT_RETRIES,
        f"(the {table} files are uncommitted leftovers; fsck --repair removes them)",
    )


def cleanup(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)


__all__ = ["UnitOutput", "cleanup", "commit_outputs", "new_staging", "run_tasks", "write_staged"]
