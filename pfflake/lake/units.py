"""One ingest work unit: frames [start, stop) of one stream into its Zarr store and one
staged Parquet file. This is what a worker process runs (local pool or Dask), so it
depends only on the reader, the store writer and the table schemas, never on the
planning and commit code of :mod:`pfflake.lake.ingest`.

A unit is idempotent: run again (a retry, a worker restarted by its nanny) it rewrites
the same Zarr bytes and overwrites the same staged file.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import schema as S
from ..arrow import frame_batches
from ..faults import fault as _fault
from ..file import PFFWarning
from ..sequence import PFFSequence
from ..store.layout import fsync_path
from ..store.write import FrameWriter

ROW_GROUP_ROWS = 131_072
INGEST_BATCH_FRAMES = 16_384  # frames in memory at once per worker (bounds RSS)
_FINGERPRINT_BYTES = 65_536


class Phases(dict[str, float]):
    """Seconds spent per phase of an ingest (``IngestResult.phases``), and counts
    (``fsyncs``). Cheap (two clock reads per phase); kept so a slow follow tick can say
    where its time went (``benchmarks/bench_follow.py`` prints them per tick)."""

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t)

    def add(self, name: str, value: float) -> None:
        self[name] = self.get(name, 0.0) + value

    def merge(self, other: dict[str, float]) -> None:
        for k, v in other.items():
            self.add(k, v)


@dataclass
class UnitTask:
    """Frames [zarr_start, stop) of one stream: Zarr gets all, Parquet [row_start, stop)."""

    run: str
    stream: str
    paths: list[str]
    strict: bool
    zarr_start: int
    row_start: int
    stop: int
    store: str
    staging_file: str
    threshold: float | None
    zarr_workers: int


@dataclass
class UnitResult:
    task: UnitTask
    rows: int
    bytes: int
    min_unix_t_ns: int | None
    max_unix_t_ns: int | None
    sources: list[dict[str, Any]] = field(default_factory=list)  # see source_checksums
    phases: Phases = field(default_factory=Phases)  # unit_open, read, zarr, checksum, ...


#: Bytes hashed at a time by :func:`source_checksums` (pages released behind: bounded RSS).
CHECKSUM_BLOCK = 8 * 1024 * 1024


def source_checksums(seq, start: int, stop: int) -> list[dict[str, Any]]:
    """CRC-32 of the source bytes of frames [start, stop) of ``seq``, one entry per file.

    Each entry names the file (absolute path), the byte range ``[offset, offset
    + length)`` from the first of those frames' ``{`` to the last one's final
    pixel byte (damaged stretches in between included), and ``crc32``.
    ``pfflake fsck --sources`` re-reads exactly these ranges. Computed from the
    memory map the unit has just read, so the bytes are in the page cache.
    """
    import zlib

    import numpy as np

    out = []
    first = 0
    for pf in seq.files:
        lo_f, hi_f = max(start - first, 0), min(stop - first, pf.n_frames)
        first += pf.n_frames
        if hi_f <= lo_f:
            continue
        lo = pf.frame_offset(lo_f)
        hi = int(pf.image_offsets(np.array([hi_f - 1]))[0]) + pf.product.image_bytes
        buf, crc = pf.buffer, 0
        for pos in range(lo, hi, CHECKSUM_BLOCK):
            end = min(pos + CHECKSUM_BLOCK, hi)
            crc = zlib.crc32(buf[pos:end], crc)
            pf.release_pages(pos, end)
        out.append({"path": str(Path(pf.path).resolve()), "offset": lo, "length": hi - lo,
                    "crc32": crc, "frames": [lo_f, hi_f]})
    return out


def run_unit(task: UnitTask) -> UnitResult:
    """One work unit; runs in a worker process (or in-process for small ingests).

    Its result's ``phases``: ``unit_open`` (the sequence), ``read`` (frames parsed,
    headers and stats), ``zarr`` (handing frames to the writer and waiting for its
    chunk/shard files), ``zarr_sync`` (of that: waiting for them to be durable at the end),
    ``checksum``
    (source CRCs), ``parquet`` (table built and written), ``fsync`` (the staged Parquet
    file) and ``fsyncs`` (a count)."""
    ph = Phases()
    clock = time.perf_counter
    t = clock()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        seq = PFFSequence(task.paths, strict=task.strict)
    header_cols = {S.header_column(f): f for f in seq.product.header_fields}
    parts: list[pa.RecordBatch] = []
    ph.add("unit_open", clock() - t)
    with FrameWriter(task.store, task.zarr_start, workers=task.zarr_workers,
                     end=task.stop, durable=True) as zw:
        batches = frame_batches(
            seq,
            run=task.run,
            start=task.zarr_start,
            stop=task.stop,
            batch_size=INGEST_BATCH_FRAMES,
            images=False,
            stats=True,
            threshold=task.threshold,
            with_pixels=True,
        )
        while True:
            t = clock()
            fb = next(batches, None)
            t1 = clock()
            ph.add("read", t1 - t)
            if fb is None:
                break
            b = fb.batch
            headers = {f: column_numpy(b.column(c)) for c, f in header_cols.items()}
            zw.append(
                fb.pixels,
                headers,
                column_numpy(b.column(S.UNIX_T_NS)),
                column_numpy(b.column(S.TIME_QUALITY)),
            )
            ph.add("zarr", clock() - t1)
            _fault("read_batch")
            skip = max(0, task.row_start - fb.start)
            if skip < b.num_rows:
                parts.append(b.slice(skip))
        t = clock()
    ph.add("zarr", clock() - t)  # the writer's close: its last files, made durable
    if zw.durable is not None:
        ph.add("zarr_sync", zw.durable.wait_seconds)
        ph.add("fsyncs", zw.durable.synced)
    with ph.timed("checksum"):
        sources = source_checksums(seq, task.row_start, task.stop)
        seq.close()
    table = pa.Table.from_batches(parts) if parts else None
    if table is None or table.num_rows == 0:
        return UnitResult(task, 0, 0, None, None, phases=ph)
    t = clock()
    table = table.drop_columns([k for k, _ in S.PARTITION_KEYS])
    table = table.sort_by(S.UNIX_T_NS)
    out = Path(task.staging_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    _fault("parquet_staging")
    # Written under a private name, then renamed: a retried unit (Dask) whose first
    # attempt is still running never exposes a half-written file at the staged path.
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        pq.write_table(
            table,
            tmp,
            compression="zstd",
            row_group_size=ROW_GROUP_ROWS,
            write_statistics=True,
        )
        ph.add("parquet", clock() - t)
        fsync_file(tmp, ph)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    _fault("parquet_staged")
    ts = table.column(S.UNIX_T_NS)
    return UnitResult(
        task, table.num_rows, out.stat().st_size, pc.min(ts).as_py(), pc.max(ts).as_py(),
        sources, ph,
    )


def column_numpy(col: pa.Array) -> np.ndarray:
    """A numeric Arrow column without nulls as a zero-copy numpy view (a read-only
    view of the batch's buffer), anything else as ``col.to_numpy()``.

    ``Array.to_numpy`` probes for pandas, and importing it cost the first commit of a
    follow (a fresh process) 1.7 s on the benchmark machine."""
    t = col.type
    if col.null_count or not (pa.types.is_integer(t) or pa.types.is_floating(t)):
        return col.to_numpy()
    dtype = np.dtype(t.to_pandas_dtype())
    return np.frombuffer(col.buffers()[1], dtype=dtype, count=len(col),
                         offset=col.offset * dtype.itemsize)


def fsync_file(path: Path, phases: Phases | None = None) -> None:
    """fsync a file or directory by path (``phases``: its time and count added to
    ``fsync`` / ``fsyncs``)."""
    t = time.perf_counter()
    fsync_path(path)
    if phases is not None:
        phases.add("fsync", time.perf_counter() - t)
        phases.add("fsyncs", 1)


def fingerprint(path: Path, size: int, last_frame: tuple[int, int] | None) -> str:
    """Hash of the file's first 64 KiB and of its last ingested frame's bytes.

    Cheap enough for every ingest; detects a source file rewritten under the
    lake (its prefix changed) without rereading everything.
    """
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        h.update(f.read(min(size, _FINGERPRINT_BYTES)))
        if last_frame is not None:
            f.seek(last_frame[0])
            h.update(f.read(last_frame[1]))
    return h.hexdigest()


__all__ = [
    "CHECKSUM_BLOCK",
    "INGEST_BATCH_FRAMES",
    "ROW_GROUP_ROWS",
    "Phases",
    "UnitResult",
    "UnitTask",
    "column_numpy",
    "fingerprint",
    "fsync_file",
    "run_unit",
    "source_checksums",
]
