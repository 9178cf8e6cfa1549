"""Streaming a :class:`~pfflake.sequence.PFFSequence` in order: batches and byte ranges.

Batches are zero-copy read-only views of the memory maps where the layout
allows (copies for damaged or irregular files), never span two files, and
release mapped pages behind the cursor, so memory stays bounded on any size.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .timestamps import primary_timing_fields

_RELEASE_BYTES = 32 * 1024 * 1024  # streaming releases mapped pages behind it in steps of this


class SequenceStreaming:
    """The streaming methods of :class:`~pfflake.sequence.PFFSequence` (a mixin: it reads
    the sequence's ``product``, its files through ``_file``/``_files`` and the per-file
    frame counts)."""

    def iter_batches(
        self,
        size: int = 256,
        *,
        with_headers: bool = False,
        with_timestamps: bool = False,
    ) -> Iterator[Any]:
        """Yield frames in order, ``size`` at a time, as ``(n, H, W)`` arrays.

        A batch never spans two files, so the last batch of each file can be
        shorter; batches are zero-copy read-only views of the memory map
        (copies for damaged or irregular files). With ``with_headers`` yields
        ``(images, {field: int64 array})``, with ``with_timestamps``
        ``(images, unix_t_ns)``, with both ``(images, headers, unix_t_ns)``.
        Memory stays bounded: pages behind the cursor are released.
        """
        if size < 1:
            raise ValueError("batch size must be >= 1")
        for f, n in enumerate(self._file_frame_counts):
            yield from self._iter_file(f, 0, n, size, with_headers, with_timestamps)

    def _iter_file(
        self, f: int, lo: int, hi: int, size: int, with_headers: bool, with_timestamps: bool
    ) -> Iterator[Any]:
        if not (with_headers or with_timestamps):
            yield from self._iter_images(f, lo, hi, size)
            return
        keys = list(self.product.header_fields) if with_headers else []
        kind = self.product.header_kind
        if with_timestamps:
            keys += [k for k in primary_timing_fields(kind) if k not in keys]
        released = lo
        for start in range(lo, hi, size):
            pf = self._file(f)
            count = min(size, hi - start)
            images = pf.images(start, count)
            meta = pf.decode(keys, start, count)
            if with_timestamps:
                ts = pf.frame_times(meta, start)[0]
            if with_headers:
                headers = {k: meta[k] for k in self.product.header_fields}
                yield (images, headers, ts) if with_timestamps else (images, headers)
            else:
                yield images, ts
            if pf.contiguous and (start + count - released) * pf.frame_size >= _RELEASE_BYTES:
                pf.release_pages(released * pf.frame_size, (start + count) * pf.frame_size)
                released = start + count

    def _iter_images(self, f: int, lo: int, hi: int, size: int) -> Iterator[Any]:
        """The pixels-only loop of :meth:`_iter_file` (the common scan: one step per batch
        of work beyond the view is one step more than pypff takes)."""
        released = lo
        for start in range(lo, hi, size):
            pf = self._file(f)
            count = min(size, hi - start)
            yield pf.images(start, count)
            stop = start + count
            if pf.contiguous and (stop - released) * pf.frame_size >= _RELEASE_BYTES:
                pf.release_pages(released * pf.frame_size, stop * pf.frame_size)
                released = stop

    def iter_byte_range(
        self,
        file_idx: int,
        byte_start: int,
        byte_end: int,
        batch_size: int = 256,
        *,
        with_headers: bool = False,
        with_timestamps: bool = False,
    ) -> Iterator[Any]:
        """Yield the frames of one file whose first byte lies in ``[byte_start, byte_end)``.

        Adjacent ranges therefore cover every frame exactly once (pypff gives
        a frame that straddles a boundary to both ranges). Batches as in
        :meth:`iter_batches`.
        """
        if not 0 <= file_idx < len(self._files):
            raise IndexError(f"file index {file_idx} out of range [0, {len(self._files)})")
        pf = self._files[file_idx]
        n = pf.n_frames
        if n == 0 or byte_end <= byte_start:
            return
        starts = pf.frame_offsets(np.arange(n, dtype=np.int64))
        lo = int(np.searchsorted(starts, byte_start, side="left"))
        hi = int(np.searchsorted(starts, byte_end, side="left"))
        yield from self._iter_file(file_idx, lo, hi, batch_size, with_headers, with_timestamps)

    def byte_ranges(self, target_bytes: int = 256 * 1024 * 1024) -> list[tuple[int, int, int]]:
        """Split every file into ``(file_idx, byte_start, byte_end)`` work units of ~target size."""
        units = []
        for i, pf in enumerate(self._files):
            for s in range(0, max(pf.size, 1), target_bytes):
                units.append((i, s, min(s + target_bytes, pf.size)))
        return units
