"""PFF -> Arrow: a sequence's frames as record batches of :func:`pfflake.schema.frame_schema`.

One path feeds every consumer: :func:`frame_batches` (batches plus the
pixels, for the lake ingest), :func:`to_arrow` (a streaming
``pyarrow.RecordBatchReader``) and :func:`arrow_c_stream` (the Arrow
PyCapsule stream behind ``PFFSequence.__arrow_c_stream__``, which Polars,
DuckDB and pyarrow read without copies).

What a caller must know:

* Every batch holds exactly ``batch_size`` frames except the last: a batch
  may span seqno files (its ``seqno`` column then changes inside it).
* Memory is bounded by the batch, never by the file: pixels are read and
  statistics computed in cache-sized blocks, mapped pages are released
  behind the cursor, and each file's map is closed once the stream has
  passed it (it reopens lazily on the next use).
* Pixels are copied once: the contiguous ``(n, H, W)`` copy behind the
  ``image`` column is the one :attr:`FrameBatch.pixels` returns. Without
  ``images``/``with_pixels`` only a small scratch block is used for the
  statistics, and without ``stats`` either, pixels are not read at all.
* ``unix_t_ns``/``time_quality`` follow :meth:`PFFSequence.timestamps` (the
  rule lives in :mod:`pfflake.timestamps`); ``time`` is the same int64
  buffer typed ``timestamp[ns, tz=UTC]``.
* A header value that does not fit its column's natural width raises
  :class:`~pfflake.errors.CorruptHeaderError` naming file, frame and byte
  offset; nothing wraps.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from .errors import CorruptHeaderError, PFFError
from .paths import parse_pff_name
from .schema import (
    BYTE_OFFSET,
    DATA_PRODUCT,
    FILE_FRAME,
    FRAME,
    HOST_UNIX_T_NS,
    IMAGE,
    MODULE,
    PACKET_LOSS,
    PIXEL_ARGMAX,
    PIXEL_MAX,
    PIXEL_MEAN,
    PIXEL_MIN,
    PIXEL_STD,
    PIXEL_SUM,
    PIXELS_ABOVE,
    RUN,
    SEQNO,
    TIME,
    TIME_QUALITY,
    UNIX_T_NS,
    frame_schema,
    header_column,
    stats_fields,
)
from .timestamps import TimeOverflowError, host_times

if TYPE_CHECKING:
    from .file import PFFFile
    from .sequence import PFFSequence

#: Frames per statistics block: its float64 copy (2 MB for 32x32) stays near the cache.
_STATS_ROWS = 256
#: Frames per thread task: enough work to amortise the hand-off.
_TASK_ROWS = 4096
#: numpy releases the GIL in copies and reductions: pixel work runs on this many threads.
_THREADS = max(1, min(4, os.cpu_count() or 1))

_STAT_NAMES = (PIXEL_SUM, PIXEL_MIN, PIXEL_MAX, PIXEL_MEAN, PIXEL_STD, PIXEL_ARGMAX, PIXELS_ABOVE)


@dataclass(frozen=True)
class FrameBatch:
    """One record batch of frames ``[start, start + batch.num_rows)`` of a sequence.

    ``pixels`` is the contiguous ``(n, H, W)`` copy the ``image`` column views
    (``with_pixels=True``), else ``None``.
    """

    batch: pa.RecordBatch
    start: int
    pixels: np.ndarray | None


def frame_batches(
    seq: PFFSequence,
    *,
    run: str | None = None,
    start: int = 0,
    stop: int | None = None,
    batch_size: int = 65536,
    images: bool = False,
    stats: bool = True,
    threshold: float | None = None,
    with_pixels: bool = False,
) -> Iterator[FrameBatch]:
    """Stream frames ``[start, stop)`` of ``seq`` as :class:`FrameBatch` es.

    Batches follow ``frame_schema(seq.product, images=images, stats=stats)``
    exactly. ``start``/``stop`` follow slice rules (negative counts from the
    end, clipped to the sequence). ``run`` defaults to the name of the
    directory holding the sequence's first file. ``pixels_above`` counts
    pixels ``> threshold`` (a null column when ``threshold`` is None).
    Arguments are checked here; reading errors surface while iterating.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    lo, hi, _ = slice(start, stop).indices(len(seq))
    builder = _BatchBuilder(seq, run, images, stats, threshold, with_pixels)
    return builder.batches(lo, max(lo, hi), batch_size)


def to_arrow(
    seq: PFFSequence,
    *,
    batch_size: int = 65536,
    images: bool = True,
    stats: bool = True,
    run: str | None = None,
) -> pa.RecordBatchReader:
    """All frames of ``seq`` as a streaming reader (one pass; see :func:`frame_batches`)."""
    schema = frame_schema(seq.product, images=images, stats=stats)
    gen = frame_batches(seq, run=run, batch_size=batch_size, images=images, stats=stats)
    return pa.RecordBatchReader.from_batches(schema, (fb.batch for fb in gen))


def arrow_c_stream(seq: PFFSequence, requested_schema: Any = None) -> Any:
    """The Arrow PyCapsule stream of :func:`to_arrow` (``__arrow_c_stream__``).

    Consumers that do not know the ``arrow.fixed_shape_tensor`` extension
    type see its storage (``fixed_size_list<H*W>``).
    """
    return to_arrow(seq).__arrow_c_stream__(requested_schema)


# ---------------------------------------------------------------------------- building batches


@dataclass(frozen=True)
class _Piece:
    """Local frames ``[lo, hi)`` of file ``file`` at rows ``[row, row + hi - lo)`` of a batch."""

    file: int
    lo: int
    hi: int
    row: int


class _BatchBuilder:
    """Fills the columns of one batch at a time from the sequence's files."""

    def __init__(
        self,
        seq: PFFSequence,
        run: str | None,
        images: bool,
        stats: bool,
        threshold: float | None,
        with_pixels: bool,
    ) -> None:
        self.seq = seq
        self.product = seq.product
        self.files: list[PFFFile] = seq.files
        self.schema = frame_schema(seq.product, images=images, stats=stats)
        self.run = run if run is not None else seq.file_paths[0].absolute().parent.name
        self.images, self.stats, self.with_pixels = images, stats, with_pixels
        self.threshold = threshold
        self.keys = list(seq.product.header_fields)
        self.header_dtypes = {
            k: np.dtype(self.schema.field(header_column(k)).type.to_pandas_dtype())
            for k in self.keys
        }
        self.stat_dtypes = {
            f.name: np.dtype(f.type.to_pandas_dtype()) for f in stats_fields(seq.product)
        }
        self.seqnos = [_seqno_or_none(p) for p in seq.file_paths]
        counts = np.array([f.n_frames for f in self.files], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(counts)])

    # -- iteration --------------------------------------------------------------

    def batches(self, start: int, stop: int, size: int) -> Iterator[FrameBatch]:
        with ThreadPoolExecutor(_THREADS, thread_name_prefix="pfflake-arrow") as pool:
            for lo in range(start, stop, size):
                hi = min(lo + size, stop)
                pieces = list(self._pieces(lo, hi))
                yield self._build(lo, hi - lo, pieces, pool)
                for p in pieces:
                    if p.hi == self.files[p.file].n_frames:
                        self.files[p.file].close()

    def _pieces(self, start: int, stop: int) -> Iterator[_Piece]:
        first = int(np.searchsorted(self.starts, start, side="right")) - 1
        for f in range(max(first, 0), len(self.files)):
            s = int(self.starts[f])
            if s >= stop:
                break
            lo, hi = max(start, s), min(stop, int(self.starts[f + 1]))
            if hi > lo:
                yield _Piece(f, lo - s, hi - s, lo - start)

    # -- one batch ------------------------------------------------------------

    def _build(
        self, start: int, n: int, pieces: list[_Piece], pool: ThreadPoolExecutor
    ) -> FrameBatch:
        shape = self.product.image_shape
        pixels = (
            np.empty((n, *shape), dtype=self.product.dtype)
            if self.images or self.with_pixels
            else None
        )
        stat_cols = (
            {name: np.empty(n, dtype=dt) for name, dt in self.stat_dtypes.items()}
            if self.stats
            else None
        )
        if stat_cols is not None and self.threshold is None:
            del stat_cols[PIXELS_ABOVE]
        # Pixels before headers: the header decode releases mapped pages behind
        # itself, and reading pixels after it would fault them in again.
        if pixels is not None or stat_cols is not None:
            jobs = []
            for p in pieces:
                view = self.files[p.file].images(p.lo, p.hi - p.lo)
                for a in range(0, p.hi - p.lo, _TASK_ROWS):
                    b = min(a + _TASK_ROWS, p.hi - p.lo)
                    jobs.append((view[a:b], p.row + a))
            list(pool.map(lambda job: self._pixel_task(*job, pixels, stat_cols), jobs))

        headers = {k: np.empty(n, dtype=self.header_dtypes[k]) for k in self.keys}
        file_frame = np.empty(n, dtype=np.int64)
        byte_offset = np.empty(n, dtype=np.int64)
        unix_t_ns = np.empty(n, dtype=np.int64)
        quality = np.empty(n, dtype=np.uint8)
        host_ns = np.empty(n, dtype=np.int64)
        packet_loss = np.empty(n, dtype=bool)
        seqno = np.empty(n, dtype=np.int32)
        seqno_null = np.zeros(n, dtype=bool)
        for p in pieces:
            rows = slice(p.row, p.row + p.hi - p.lo)
            pf = self.files[p.file]
            local = np.arange(p.lo, p.hi, dtype=np.int64)
            meta = pf.decode(self.keys, p.lo, p.hi - p.lo)
            for k in self.keys:
                self._check_fits(k, meta[k], pf, p.lo)
                headers[k][rows] = meta[k]
            ts, q = pf.frame_times(meta, p.lo)
            unix_t_ns[rows], quality[rows] = ts, q
            try:
                host_ns[rows], packet_loss[rows] = host_times(meta, self.product.header_kind)
            except TimeOverflowError as e:
                raise pf.time_error(p.lo + int(e.rows[0]), e) from None
            file_frame[rows] = local
            byte_offset[rows] = pf.frame_offsets(local)
            s = self.seqnos[p.file]
            seqno[rows] = 0 if s is None else s
            seqno_null[rows] = s is None
            if pf.contiguous:
                pf.release_pages(p.lo * pf.frame_size, p.hi * pf.frame_size)

        module = self.seq.module
        time_ns = _array(unix_t_ns)
        columns: dict[str, pa.Array] = {
            RUN: _repeat_string(self.run, n),
            DATA_PRODUCT: _repeat_string(self.product.name, n),
            MODULE: pa.nulls(n, pa.int32())
            if module is None
            else _array(np.full(n, module, dtype=np.int32)),
            SEQNO: _array(seqno, seqno_null if seqno_null.any() else None),
            FRAME: _array(np.arange(start, start + n, dtype=np.int64)),
            FILE_FRAME: _array(file_frame),
            BYTE_OFFSET: _array(byte_offset),
            UNIX_T_NS: time_ns,
            TIME: time_ns.view(self.schema.field(TIME).type),
            TIME_QUALITY: _array(quality),
            HOST_UNIX_T_NS: _array(host_ns),
            PACKET_LOSS: _bool_array(packet_loss),
        }
        for k in self.keys:
            columns[header_column(k)] = _array(headers[k])
        if stat_cols is not None:
            for name in _STAT_NAMES:
                col = stat_cols.get(name)
                dtype = self.schema.field(name).type
                columns[name] = _array(col) if col is not None else pa.nulls(n, dtype)
        if self.images:
            columns[IMAGE] = _tensor_array(pixels, self.schema.field(IMAGE).type)
        batch = pa.RecordBatch.from_arrays(
            [columns[name] for name in self.schema.names], schema=self.schema
        )
        return FrameBatch(batch, start, pixels if self.with_pixels else None)

    # -- pixels ---------------------------------------------------------------

    def _pixel_task(
        self,
        src: np.ndarray,
        row: int,
        pixels: np.ndarray | None,
        stat_cols: dict[str, np.ndarray] | None,
    ) -> None:
        """Copy ``src`` (maybe a strided map view) to ``pixels[row:]``; fill the stats there."""
        n = len(src)
        if stat_cols is None:
            np.copyto(pixels[row : row + n], src)
            return
        npix = src.shape[1] * src.shape[2]
        scratch = None if pixels is not None else np.empty((_STATS_ROWS, *src.shape[1:]), src.dtype)
        wide = np.empty((_STATS_ROWS, npix), dtype=np.float64)
        for a in range(0, n, _STATS_ROWS):
            b = min(a + _STATS_ROWS, n)
            block = pixels[row + a : row + b] if pixels is not None else scratch[: b - a]
            np.copyto(block, src[a:b])
            flat = block.reshape(b - a, npix)
            _block_stats(flat, wide[: b - a], stat_cols, row + a, self.threshold)

    def _check_fits(self, key: str, values: np.ndarray, pf: PFFFile, lo: int) -> None:
        dtype = self.header_dtypes[key]
        if dtype == np.int64 or not len(values):
            return
        info = np.iinfo(dtype)
        if values.min() >= info.min and values.max() <= info.max:
            return
        j = int(np.flatnonzero((values < info.min) | (values > info.max))[0])
        raise CorruptHeaderError(
            f"header field {key} = {int(values[j])} does not fit its column "
            f"{header_column(key)} ({dtype}, {info.min}..{info.max})",
            path=pf.path,
            frame=lo + j,
            offset=int(pf.frame_offsets(np.array([lo + j]))[0]),
        )


def _block_stats(
    flat: np.ndarray,
    wide: np.ndarray,
    out: dict[str, np.ndarray],
    row: int,
    threshold: float | None,
) -> None:
    """Statistics of ``flat`` (frames x pixels) into ``out[...][row:row + len(flat)]``.

    Sums and sums of squares are exact: integer pixels summed in float64 stay
    below 2**53, and the variance numerator ``n*sum(x^2) - sum(x)^2`` is formed
    in int64, so ``pixel_std`` is the population standard deviation without
    cancellation.
    """
    n, npix = flat.shape
    rows = slice(row, row + n)
    np.copyto(wide, flat, casting="unsafe")
    total = np.einsum("ij->i", wide).astype(np.int64)
    np.square(wide, out=wide)
    squares = np.einsum("ij->i", wide).astype(np.int64)
    brightest = flat.argmax(axis=1)
    out[PIXEL_SUM][rows] = total
    out[PIXEL_MIN][rows] = flat.min(axis=1)
    out[PIXEL_MAX][rows] = flat[np.arange(n), brightest]
    out[PIXEL_MEAN][rows] = total / npix
    out[PIXEL_STD][rows] = np.sqrt(npix * squares - total * total) / npix
    out[PIXEL_ARGMAX][rows] = brightest
    if threshold is not None:
        out[PIXELS_ABOVE][rows] = (flat > threshold).sum(axis=1, dtype=out[PIXELS_ABOVE].dtype)


def _tensor_array(pixels: np.ndarray, tensor_type: pa.DataType) -> pa.ExtensionArray:
    """``(n, H, W)`` C-contiguous pixels as a fixed_shape_tensor array viewing the same buffer."""
    storage = pa.FixedSizeListArray.from_arrays(
        _array(pixels.reshape(-1)), pixels.shape[1] * pixels.shape[2]
    )
    return pa.ExtensionArray.from_storage(tensor_type, storage)


def _array(values: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """A 1-D C-contiguous numpy array as an Arrow array over the same buffer (zero-copy).

    ``pa.array`` would do too, but it probes for pandas on every call, and
    importing pandas costs seconds in each fresh (worker) process.
    """
    validity = None if null is None else pa.py_buffer(np.packbits(~null, bitorder="little"))
    arrow_type = pa.from_numpy_dtype(values.dtype)
    return pa.Array.from_buffers(
        arrow_type, len(values), [validity, pa.py_buffer(values)], null_count=-1
    )


def _bool_array(values: np.ndarray) -> pa.Array:
    """A numpy bool array as an Arrow boolean array (bit-packed: one copy, no pandas probe)."""
    bits = pa.py_buffer(np.packbits(values, bitorder="little"))
    return pa.Array.from_buffers(pa.bool_(), len(values), [None, bits], null_count=0)


def _repeat_string(value: str, n: int) -> pa.Array:
    """``n`` copies of ``value`` as a ``string`` array (``pa.repeat`` also imports pandas)."""
    data = value.encode()
    if len(data) * n >= 2**31:
        raise ValueError(f"{n} copies of {value!r} exceed an Arrow string column (2 GiB)")
    offsets = np.arange(n + 1, dtype=np.int32) * np.int32(len(data))
    return pa.Array.from_buffers(
        pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data * n)]
    )


def _seqno_or_none(path: Path) -> int | None:
    try:
        return parse_pff_name(path).seqno
    except PFFError:
        return None


__all__ = ["FrameBatch", "arrow_c_stream", "frame_batches", "to_arrow"]
