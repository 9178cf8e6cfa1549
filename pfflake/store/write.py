"""Writing frames into a store: numcodecs in threads, straight to chunk/shard files.

Chunks are byte-identical to zarr-python's for the same codec; chunks holding only zeros
are not stored (zarr-python's default). A :class:`FrameWriter` covers whole write units
(:func:`pfflake.store.layout.write_unit`), so writers in different processes never touch
the same file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ZarrLayoutError
from ..faults import fault
from ..sequence import PFFSequence
from ..timestamps import frame_unix_t_ns
from .layout import (
    EMPTY_OFFSET,
    IMAGES,
    SYNC_THREADS,
    TIME_QUALITY,
    UNIX_T_NS,
    ArrayLayout,
    fsync_path,
    fsync_paths,
    store_arrays,
    zarr_name,
)


class ArrayFiles(ArrayLayout):
    """An array's layout plus the encoding and atomic writing of its chunk/shard files."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._dirs: set[Path] = set()

    def encode(self, chunk: np.ndarray) -> bytes | None:
        """Encoded chunk, or ``None`` when it holds only zeros (not stored)."""
        data: Any = chunk
        for c in self.compressors:
            data = c.encode(data)
        data = bytes(data) if self.compressors else chunk.tobytes()
        # Only chunks that compress extremely well can be all zeros: test just those.
        if (len(data) * 64 < self.raw_chunk_bytes or not self.compressors) and not chunk.any():
            return None
        return data

    def put(self, index: int, payload: bytes | None, atomic: bool = True,
            durable: DurableFiles | None = None) -> None:
        """Write one chunk/shard file, atomically by default (``None`` removes it).

        ``durable``: the file is written under its temporary name only and handed to it
        (fsynced at once, renamed by :meth:`DurableFiles.publish`)."""
        target = self.key_path(index)
        if payload is None:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
            return
        new_dirs = []
        if target.parent not in self._dirs:
            d = target.parent
            while not d.exists():  # the directories this creates need syncing too
                new_dirs.append(d)
                d = d.parent
            target.parent.mkdir(parents=True, exist_ok=True)
            self._dirs.add(target.parent)
        tmp = target
        if atomic or durable is not None:
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
        try:
            tmp.write_bytes(payload)
        except OSError as e:  # a failed write() names no file: say which (disk full, EFBIG)
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise OSError(e.errno, e.strerror, str(target)) from None
        if durable is not None:
            durable.add(tmp, target, new_dirs)
            return
        if atomic:
            os.replace(tmp, target)
        fault("zarr_file")

    def assemble_shard(self, parts: list[bytes | None]) -> bytes | None:
        """Shard file: inner chunks then the index (offset, nbytes) and its crc32c."""
        import google_crc32c

        n_inner = self.shard_frames // self.chunk_frames  # type: ignore[operator]
        index = np.full((n_inner, 2), EMPTY_OFFSET, dtype="<u8")
        pieces, offset = [], 0
        for i, part in enumerate(parts):
            if part is not None:
                index[i] = (offset, len(part))
                pieces.append(part)
                offset += len(part)
        if not pieces:
            return None
        raw = index.tobytes()
        crc = np.array([google_crc32c.value(raw)], dtype="<u4").tobytes()
        return b"".join([*pieces, raw, crc])


class DurableFiles:
    """Files written under temporary names that must be durable before they get their
    final names: each is fsynced as soon as it is handed over (on :data:`SYNC_THREADS`
    threads, while the writer goes on reading and encoding), and :meth:`publish`, once
    all are synced, renames them into place and fsyncs the directories that got an
    entry (:func:`fsync_paths`: together, about one journal commit).

    Syncing each file when it is written overlaps the disk writes with the work of the
    tick instead of adding them at its end. ``synced`` counts the fsyncs,
    ``wait_seconds`` the time :meth:`publish` spent on them.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(SYNC_THREADS, thread_name_prefix="pfflake-fsync")
        self._lock = threading.Lock()
        self._futures: list[Future[None]] = []
        self.files: list[tuple[Path, Path]] = []  # (temporary name, final name)
        self.dirs: set[Path] = set()
        self.synced = 0
        self.wait_seconds = 0.0

    def add(self, tmp: Path, target: Path, new_dirs: list[Path]) -> None:
        """``tmp``, to be renamed to ``target``; ``new_dirs``: directories created for it."""
        with self._lock:
            self.files.append((tmp, target))
            self.dirs.add(target.parent)
            self.dirs.update(d.parent for d in new_dirs)
            self._futures.append(self._pool.submit(fsync_path, tmp))

    def publish(self) -> None:
        t = time.perf_counter()
        try:
            for fut in self._futures:
                fut.result()
        finally:
            self._pool.shutdown(wait=True)
        for tmp, target in self.files:
            os.replace(tmp, target)
            fault("zarr_file")
        self.synced = len(self._futures) + fsync_paths(sorted(self.dirs))
        self.wait_seconds = time.perf_counter() - t
        self.files, self._futures = [], []

    def discard(self) -> None:
        """After a failure: stop syncing, remove the temporary files."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        for tmp, _ in self.files:
            tmp.unlink(missing_ok=True)


class ArrayStream:
    """Rows of one array arriving in order; emits full chunks (and shards) to the pool."""

    def __init__(self, files: ArrayFiles, start: int, writer: FrameWriter) -> None:
        self.files = files
        self.pos = start
        self.writer = writer
        self.buf: np.ndarray | None = None
        self.shard_parts: list[Future[bytes | None]] = []

    def push(self, rows: np.ndarray) -> None:
        f = self.files
        n, i = len(rows), 0
        end = self.writer.end
        if self.pos + n > end:
            raise ZarrLayoutError(
                f"{f.name}: frames {self.pos}..{self.pos + n} beyond "
                + (f"the store's {f.n_frames}" if end == f.n_frames else f"the end ({end})")
            )
        while i < n:
            off = self.pos % f.chunk_frames
            if self.buf is None:
                self.buf = np.empty(f.chunk_shape, dtype=f.dtype)
            k = min(f.chunk_frames - off, n - i)
            self.buf[off : off + k] = rows[i : i + k]
            self.pos += k
            i += k
            if off + k == f.chunk_frames or self.pos == end:
                self._emit(off + k)

    def _emit(self, filled: int) -> None:
        f, buf = self.files, self.buf
        assert buf is not None
        self.buf = None
        if filled < f.chunk_frames:
            buf[filled:] = 0
        chunk_index = (self.pos - 1) // f.chunk_frames
        atomic, durable = self.writer.atomic, self.writer.durable
        if not f.shard_frames:
            self.writer._submit(lambda: f.put(chunk_index, f.encode(buf), atomic, durable))
            return
        self.shard_parts.append(self.writer._submit(f.encode, buf))
        per_shard = f.shard_frames // f.chunk_frames
        if len(self.shard_parts) == per_shard or self.pos == self.writer.end:
            parts, self.shard_parts = self.shard_parts, []
            shard_index = chunk_index // per_shard
            # The inner encodes were queued first, so waiting on them here cannot deadlock.
            self.writer._submit(lambda: f.put(
                shard_index, f.assemble_shard([p.result() for p in parts]), atomic, durable))

    def finish(self) -> None:
        if self.buf is not None or self.shard_parts:
            raise ZarrLayoutError(
                f"{self.files.name}: frame range ends at {self.pos}, inside a chunk/shard; "
                f"ranges must end on a multiple of {self.writer.unit} frames or at "
                f"{self.writer.end}"
            )


class FrameWriter:
    """Write consecutive frames into a store made by :func:`create_store` (or pypff).

    Starts at ``start_frame``, a multiple of :func:`write_unit`; the frames
    given to :meth:`append` must end, at :meth:`close`, on a unit boundary or
    at ``end`` (default: the end of the store). A store grown ahead of its data (a
    followed run's, see :func:`pfflake.lake.ingest.grown_length`) is written up to
    ``end``: the last chunk/shard is written padded with the fill value, as at the end
    of a store, and rewritten whole by the writer that continues from it. Two
    writers on disjoint unit ranges touch disjoint files, so they can run in
    different processes. Chunks are
    encoded on ``workers`` threads (default: CPU count); memory stays around
    one chunk per array plus the chunks in flight. Each file is written under
    a temporary name and renamed (``atomic=False`` skips that, for stores
    nobody reads yet).

    ``durable=True`` (the lake's ingests): :meth:`close` returns once every file
    written is on disk, and renames none of them before (:class:`DurableFiles`). A
    file renamed before its data is durable could, after a power loss, replace a chunk
    that holds committed frames (the partial last chunk a follow rewrites at every
    commit) by an empty one; and a commit may only count frames whose files are
    durable.
    """

    def __init__(
        self,
        store_path: str | os.PathLike[str],
        start_frame: int = 0,
        *,
        workers: int | None = None,
        atomic: bool = True,
        end: int | None = None,
        durable: bool = False,
        _pool: ThreadPoolExecutor | None = None,
    ) -> None:
        self.path = Path(store_path)
        self.atomic = atomic
        self.durable = DurableFiles() if durable else None
        self.arrays = store_arrays(self.path, ArrayFiles)
        attrs = json.loads((self.path / "zarr.json").read_text()).get("attributes", {})
        self.header_kind = "module" if attrs.get("header_format") == "module" else "quabo"
        self.unit = math.lcm(*(a.object_frames for a in self.arrays.values()))
        self.n_frames = self.arrays[IMAGES].n_frames
        if start_frame % self.unit or not 0 <= start_frame <= self.n_frames:
            raise ZarrLayoutError(
                f"start_frame {start_frame} is not a multiple of the write unit ({self.unit} "
                f"frames) within [0, {self.n_frames}]"
            )
        self.start = self.pos = start_frame
        self.end = self.n_frames if end is None else end
        if not start_frame <= self.end <= self.n_frames:
            raise ZarrLayoutError(f"end {self.end} outside [{start_frame}, {self.n_frames}]")
        self.fields = {
            n: a.attributes["pff_header_field"]
            for n, a in self.arrays.items()
            if "pff_header_field" in a.attributes
        }
        self.streams = {n: ArrayStream(a, start_frame, self) for n, a in self.arrays.items()}
        n_workers = workers or os.cpu_count() or 1
        self._own_pool = _pool is None
        self._pool = _pool or ThreadPoolExecutor(n_workers, thread_name_prefix="pfflake-zarr")
        self._slots = threading.BoundedSemaphore(4 * n_workers + 8)
        self._futures: list[Future[Any]] = []

    def _submit(self, fn: Any, *args: Any) -> Future[Any]:
        self._slots.acquire()
        fut = self._pool.submit(fn, *args)
        fut.add_done_callback(lambda _: self._slots.release())
        self._futures.append(fut)
        if len(self._futures) > 256:
            for done in [f for f in self._futures if f.done()]:
                done.result()  # re-raise worker errors early
            self._futures = [f for f in self._futures if not f.done()]
        return fut

    def append(
        self,
        images: np.ndarray,
        headers: Mapping[str, np.ndarray],
        unix_t_ns: np.ndarray | None = None,
        time_quality: np.ndarray | None = None,
    ) -> None:
        """Add frames. ``headers`` keyed by pypff names (``quabo_0.pkt_num``) or array
        names (``quabo_0_pkt_num``); timestamps and flags are computed from the headers
        when not given. Header values that do not fit the array dtype raise."""
        n = len(images)
        by_name = {zarr_name(k): np.asarray(v) for k, v in headers.items()}
        if unix_t_ns is None or (time_quality is None and TIME_QUALITY in self.arrays):
            dotted = {self.fields[k]: v for k, v in by_name.items() if k in self.fields}
            ns, flags = frame_unix_t_ns(dotted, self.header_kind)
            unix_t_ns = ns if unix_t_ns is None else unix_t_ns
            time_quality = flags if time_quality is None else time_quality
        by_name[UNIX_T_NS] = np.asarray(unix_t_ns)
        by_name[TIME_QUALITY] = np.asarray(time_quality)
        by_name[IMAGES] = np.asarray(images)
        for name, stream in self.streams.items():
            if name not in by_name:
                raise KeyError(f"no values for array {name!r} of {self.path.name}")
            values = by_name[name]
            if values.shape != (n, *stream.files.shape[1:]):
                raise ValueError(
                    f"{name}: shape {values.shape} for {n} frames of {stream.files.shape[1:]}"
                )
            stream.push(checked_cast(values, stream.files.dtype, name, self.pos))
        self.pos += n

    def close(self) -> None:
        """Flush the last chunks, wait for every file, check the range ended on a boundary
        (durable: make every file durable, then rename them into place)."""
        try:
            for stream in self.streams.values():
                stream.finish()
        finally:
            self._wait()
        if self.durable is not None:
            self.durable.publish()

    def _wait(self) -> None:
        try:
            for fut in self._futures:
                fut.result()
        finally:
            self._futures = []
            if self._own_pool:
                self._pool.shutdown(wait=True)

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            with contextlib.suppress(Exception):
                self._wait()
            if self.durable is not None:
                self.durable.discard()


def checked_cast(values: np.ndarray, dtype: np.dtype, name: str, first: int) -> np.ndarray:
    """``values`` as ``dtype``; raises instead of wrapping or truncating."""
    if values.dtype == dtype or not len(values):
        return values
    integer = np.issubdtype(dtype, np.integer)
    if (values.dtype.kind not in "iub") if integer else not np.can_cast(values.dtype, dtype):
        raise TypeError(f"{name}: cannot store {values.dtype} values as {dtype.name}")
    if integer and values.dtype.kind != "b":
        info = np.iinfo(dtype)
        lo, hi = values.min(), values.max()
        if lo < info.min or hi > info.max:
            bad = int(np.flatnonzero((values < info.min) | (values > info.max))[0])
            raise ValueError(
                f"{name}: value {int(values[bad])} at frame {first + bad} does not fit {dtype.name}"
            )
    return values.astype(dtype)


def write_frames(
    store_path: str | os.PathLike[str],
    start_frame: int,
    images: np.ndarray,
    headers: Mapping[str, np.ndarray],
    unix_t_ns: np.ndarray | None = None,
    time_quality: np.ndarray | None = None,
    *,
    workers: int | None = None,
) -> None:
    """Write frames ``[start_frame, start_frame + len(images))`` in one call (see
    :class:`FrameWriter` for the alignment rule and for streaming large ranges)."""
    with FrameWriter(store_path, start_frame, workers=workers) as writer:
        writer.append(images, headers, unix_t_ns, time_quality)


def write_sequence_range(
    store_path: str | os.PathLike[str],
    seq: PFFSequence,
    start: int,
    stop: int,
    *,
    workers: int | None = None,
) -> None:
    """Copy frames ``[start, stop)`` of ``seq`` into its store (one write unit or more)."""
    with FrameWriter(store_path, start, workers=workers) as writer:
        step = writer.arrays[IMAGES].chunk_frames
        fields = list(seq.product.header_fields)
        for a in range(start, stop, step):
            b = min(a + step, stop)
            meta = seq.get_metadata_arrays(
                [*fields, UNIX_T_NS, TIME_QUALITY], slice_obj=slice(a, b)
            )
            writer.append(
                seq.read_images_range(a, b - a),
                {k: meta[k] for k in fields},
                meta[UNIX_T_NS],
                meta[TIME_QUALITY],
            )



__all__ = ["ArrayFiles", "DurableFiles", "FrameWriter", "checked_cast", "write_frames",
           "write_sequence_range"]
