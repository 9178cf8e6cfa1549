"""One PFF data file: memory map, frame index, damage, byte ranges.

A :class:`PFFFile` knows where each frame of one file starts and decodes
header fields and pixels for ranges of frames. Two layouts:

* **fixed** (every DAQ file): frame ``k`` starts at ``k * frame_size``;
  header fields are decoded vectorised (:mod:`pfflake.header`);
* **generic** (other writers, damaged files): frames are found by walking
  the blocks and every header is parsed as JSON once, at open.

Damage: a cut-short last frame is dropped with a :class:`PFFWarning` and
reported by :meth:`PFFFile.info`. Any other broken frame raises a
:class:`~pfflake.errors.PFFError` naming the file, frame and byte offset,
unless ``strict=False``: then the frame is skipped, every intact frame is
kept, and :attr:`PFFFile.damage` says what was skipped.

Arrays handed out that view the memory map keep the map alive by reference,
so :meth:`PFFFile.close` never invalidates them (pypff can crash here).
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import stat
import warnings
from pathlib import Path

import numpy as np

from .errors import (
    CorruptFrameError,
    CorruptHeaderError,
    PFFError,
    PFFWarning,
    TruncatedFrameError,
)
from .file_index import (
    WINDOW_FRAMES,
    FileIndexer,
    header_kind_of,
    sample_frames,
    sampled_rows_differ,
    with_header_kind,
)
from .header import (
    DecodePlan,
    HeaderLayout,
    check_delimiters,
    decode_fixed,
    delimiters_differ,
    flatten_header,
    header_kind,
    parse_header,
)
from .products import DataProduct
from .reader_info import Damage, FileInfo, no_frames_reason
from .timestamps import TimeOverflowError, frame_times

#: Files larger than this release mapped pages behind a sequential pass (bounded RSS).
RELEASE_PAGES_ABOVE = 64 * 1024 * 1024


def _open_fd(path: Path) -> tuple[int, int]:
    """``(descriptor, size)`` of ``path`` opened read-only with ``os.open`` (no Python
    file object per open); a directory raises ``IsADirectoryError`` as ``open()`` does."""
    fd = os.open(path, os.O_RDONLY)
    st = os.fstat(fd)
    if stat.S_ISDIR(st.st_mode):
        os.close(fd)
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    return fd, st.st_size


class PFFFile(FileIndexer):
    """Index of one PFF data file of a known data product.

    Parameters
    ----------
    path:
        The file.
    product:
        Its data product (image shape and dtype are not in the file).
    strict:
        ``True`` (default): a broken frame raises. ``False``: broken frames
        are skipped and listed in :attr:`damage`.
    verify:
        ``"sample"`` (default) checks frame delimiters of first, last and
        sampled frames at open and every frame whenever its header is decoded;
        ``"full"`` checks every frame at open (always done when ``strict=False``).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        product: DataProduct,
        *,
        strict: bool = True,
        verify: str = "sample",
    ) -> None:
        self.path = path if isinstance(path, Path) else Path(path)
        self.strict = strict
        #: The product named by the caller; :attr:`product` carries the header kind
        #: of the file's own first header when the two disagree (see header_kind_of).
        self.declared_product = product
        self.product = product
        self.layout: HeaderLayout | None = None
        self.frame_size: int | None = None
        self.truncated_tail_bytes = 0
        self.damage: list[Damage] = []
        self._keep: np.ndarray | None = None  # fixed layout: physical frames kept (lenient)
        self._offsets: np.ndarray | None = None  # generic layout: header start per frame
        self._img_offsets: np.ndarray | None = None  # generic layout: first pixel per frame
        self._meta: dict[str, np.ndarray] | None = None  # generic layout: decoded fields
        self._mm: mmap.mmap | None = None
        self._view: np.ndarray | None = None
        self._closed = False
        self._plans: dict[tuple[str, ...], DecodePlan] = {}
        self.n_frames = 0
        # One open of the file serves the whole index: its size, the map, the first
        # header (parsed once, for the header kind and the layout) and the sampled rows.
        fd, self.size = _open_fd(self.path)
        try:
            if self.size:
                self._map_from(fd)
                first = self._first_header()
                if first is not None:
                    self.product = with_header_kind(product, header_kind(first[1]))
                self._index(fd, first, full=(verify == "full" or not strict))
        finally:
            os.close(fd)

    # -- mapping ---------------------------------------------------------------

    @property
    def buffer(self) -> np.ndarray:
        """The mapped file as a read-only uint8 array.

        Built with ``np.frombuffer``, which holds a buffer export on the map:
        every array derived from it keeps the map alive, so ``mmap.close()``
        cannot unmap memory a live array still points to. (``np.ndarray(buffer=
        mmap)`` keeps only a plain reference: closing then crashes readers.)
        """
        if self._view is None:
            if self._closed:
                # Reopen lazily, like pypff's LRU: closing releases resources, not the object.
                self._closed = False
            fd, _ = _open_fd(self.path)
            try:
                self._map_from(fd)
            finally:
                os.close(fd)
        return self._view

    def _map_from(self, fd: int) -> None:
        self._mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        self._view = np.frombuffer(self._mm, dtype=np.uint8)
        if len(self._view) < self.size:
            self._view = self._mm = None
            raise TruncatedFrameError("file shrank since it was indexed", path=self.path)

    def close(self) -> None:
        """Drop the memory map. Arrays still viewing it keep it alive until they go."""
        self._view = None
        mm, self._mm = self._mm, None
        if mm is not None:
            try:  # noqa: SIM105 - contextlib.suppress builds a context object on every close
                mm.close()
            except BufferError:  # live views hold exports: unmapped when they are freed
                pass
        self._closed = True

    def release_pages(self, start: int, stop: int) -> None:
        """Tell the kernel we are done with bytes [start, stop) (bounded RSS on big passes)."""
        if self._mm is None or self.size < RELEASE_PAGES_ABOVE:
            return
        page = mmap.PAGESIZE
        lo = (start // page) * page
        hi = min(-(-stop // page) * page, len(self._mm))
        if hi > lo:
            with contextlib.suppress(OSError, ValueError, AttributeError):  # non-Linux
                self._mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)

    # -- access ----------------------------------------------------------------

    def physical(self, local: np.ndarray) -> np.ndarray:
        """Physical frame numbers (fixed layout) of local frame indices."""
        return local if self._keep is None else self._keep[local]

    def frame_offset(self, local: int) -> int:
        """Byte offset of the ``{`` that starts local frame ``local``."""
        if self._offsets is not None:
            return int(self._offsets[local])
        return int(self.physical(np.int64(local))) * self.frame_size

    def frame_offsets(self, local: np.ndarray) -> np.ndarray:
        if self._offsets is not None:
            return self._offsets[local]
        return self.physical(local) * self.frame_size

    def image_offsets(self, local: np.ndarray) -> np.ndarray:
        """Byte offset of the first pixel of each local frame."""
        local = np.asarray(local, dtype=np.int64)
        if self._img_offsets is not None:
            return self._img_offsets[local]
        return self.frame_offsets(local) + self.layout.header_size + 1

    @property
    def contiguous(self) -> bool:
        """True if frames are evenly spaced (pixel ranges are zero-copy strided views)."""
        return self.layout is not None and self._keep is None

    def images(self, start: int, count: int) -> np.ndarray:
        """Pixels of local frames [start, start+count): a zero-copy view when contiguous.

        The view is read-only and keeps the file's map alive; copy it to keep
        it past the file's life cheaply.
        """
        buf = self._view
        if buf is None:
            buf = self.buffer  # maps the file again after close()
        if self._keep is None and self.layout is not None:  # contiguous
            fs = self.frame_size
            base = start * fs
            if count and delimiters_differ(buf, base, count, fs, self.layout):
                self._raise_structure(start, count)
            rows, cols = self.product.image_shape
            dtype = self.product.dtype
            item = dtype.itemsize
            return np.ndarray(
                (count, rows, cols), dtype, buf, base + self.layout.header_size + 1,
                (fs, cols * item, item),
            )
        return self.gather_images(np.arange(start, start + count, dtype=np.int64))

    def image(self, local: int) -> np.ndarray:
        """Pixels of one local frame: a read-only zero-copy view (keeps the map alive).

        The per-call path of ``seq[i]``: the frame's delimiters are checked on the
        map's bytes directly, with no numpy temporaries.
        """
        if not self.contiguous:
            return self.gather_images(np.array([local], dtype=np.int64))[0]
        buf = self.buffer
        h = self.layout.header_size
        off = local * self.frame_size
        if not 0 <= local < self.n_frames:
            raise IndexError(f"frame {local} out of range [0, {self.n_frames})")
        mm = self._mm
        if mm[off] != 0x7B or mm[off + h - 3 : off + h + 1] != self.layout.template[h - 3 :] + b"*":
            self._raise_structure(local, 1)
        return np.ndarray(self.product.image_shape, self.product.dtype, buf, off + h + 1)

    def gather_images(self, local: np.ndarray) -> np.ndarray:
        """Pixels of arbitrary local frames, as a new array in the given order.

        Contiguous files: one fancy-indexing copy from a strided view of the
        whole file, after checking the delimiters of just those frames.
        """
        local = np.asarray(local, dtype=np.int64)
        if self.contiguous and len(local):
            fs, h, buf = self.frame_size, self.layout.header_size, self.buffer
            starts = local * fs
            bad = (buf[starts] != ord("{")) | (buf[starts + h] != ord("*"))
            if bad.any():
                k = int(local[np.flatnonzero(bad)[0]])
                self._raise_structure(k, 1)
            shape = (self.n_frames, *self.product.image_shape)
            item = self.product.dtype.itemsize
            whole = np.ndarray(shape, self.product.dtype, buf, h + 1, (fs, shape[2] * item, item))
            return whole[local]
        offsets = self.image_offsets(local)
        dtype = self.product.dtype
        nbytes = self.product.image_bytes
        raw = self.buffer
        out = np.empty((len(offsets), nbytes), dtype=np.uint8)
        for i, off in enumerate(offsets):
            out[i] = raw[off : off + nbytes]
        return out.view(dtype).reshape(len(offsets), *self.product.image_shape)

    def _raise_structure(self, start: int, count: int) -> None:
        bad = check_delimiters(
            self.buffer, start * self.frame_size, count, self.frame_size, self.layout
        )
        k = start + int(np.flatnonzero(bad)[0])
        raise CorruptFrameError(
            "frame delimiters ('{', blank line, '*') not where the layout puts them",
            path=self.path,
            frame=k,
            offset=self.frame_offset(k),
        )

    def header_bytes(self, local: int) -> bytes:
        """Raw header text of one frame (through its blank line)."""
        off = self.frame_offset(local)
        if self.layout is not None:
            return bytes(self.buffer[off : off + self.layout.header_size])
        return bytes(self.buffer[off : int(self._img_offsets[local]) - 1])

    def header(self, local: int) -> dict:
        """Parsed JSON header of one frame (a fresh dict).

        Strict files also check the product's fields (present, integers, time
        in range), as every other strict access does: a header that parses as
        JSON but holds e.g. ``"pkt_tai": [1]`` is corrupt, not a result.
        """
        off = self.frame_offset(local)
        try:
            header = parse_header(self.header_bytes(local))
            if self.strict:
                self._check_fields(flatten_header(header))
            return header
        except ValueError as e:
            raise CorruptHeaderError(
                f"header does not parse: {e}", path=self.path, frame=local, offset=off
            ) from None

    def frame_times(
        self, meta: dict[str, np.ndarray], start: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(unix_t_ns, time_quality)`` of local frames ``start, start+1, ...`` from their
        decoded primary timing fields (:func:`~pfflake.timestamps.frame_times`); fields
        it needs beyond ``meta`` are decoded here. A time that does not fit int64 ns
        raises :class:`CorruptHeaderError` naming this file, the frame and its offset."""
        try:
            return frame_times(
                meta,
                self.product.header_kind,
                lambda keys, rows: self.decode_at(keys, rows + start),
            )
        except TimeOverflowError as e:
            raise self.time_error(start + int(e.rows[0]), e) from None

    def time_error(self, local: int, err: Exception) -> CorruptHeaderError:
        """The error for local frame ``local`` whose time does not fit int64 ns."""
        return CorruptHeaderError(
            str(err), path=self.path, frame=local, offset=self.frame_offset(local)
        )

    def decode(self, keys: list[str], start: int, count: int) -> dict[str, np.ndarray]:
        """Header fields of local frames [start, start+count) as int64 arrays (new arrays)."""
        if self._meta is not None:
            return {k: self._meta_field(k)[start : start + count].copy() for k in keys}
        out = {k: np.empty(count, dtype=np.int64) for k in keys}
        if count == 0:
            return out
        if self._keep is not None:
            phys = self._keep[start : start + count]
            lo, hi = int(phys[0]), int(phys[-1]) + 1
            span = self._decode_physical(keys, lo, hi - lo)
            return {k: v[phys - lo] for k, v in span.items()}
        return self._decode_physical(keys, start, count)

    def _meta_field(self, key: str) -> np.ndarray:
        if key not in self._meta:
            raise KeyError(f"{self.path.name}: no header field {key!r}")
        return self._meta[key]

    def _decode_physical(self, keys: list[str], start: int, count: int) -> dict[str, np.ndarray]:
        layout, fs = self.layout, self.frame_size
        missing = [k for k in keys if k not in layout.spans]
        if missing:
            raise KeyError(f"{self.path.name}: no header field(s) {missing}")
        buf = self.buffer
        # The decode pass also compares every byte outside the value spans (key names,
        # quotes, commas, braces) with the template, so strict decoding never accepts a
        # frame that the lenient open calls damaged, at no second pass over the headers.
        out, bad = decode_fixed(
            buf, start * fs, count, fs, layout, keys, self._plan(keys), done=self.release_pages
        )
        for j in np.flatnonzero(bad):
            k = start + int(j)
            if self._keep is not None and k not in self._keep:
                continue  # a known damaged frame inside the requested span
            flat = self._parse_fixed_frame(k * fs, layout, k)
            if check_delimiters(buf, k * fs, 1, fs, layout)[0]:
                raise CorruptFrameError(
                    "frame delimiters out of place", path=self.path, frame=k, offset=k * fs
                )
            for key in keys:
                out[key][j] = flat[key]
        return out

    def _plan(self, keys: list[str]) -> DecodePlan:
        key = tuple(keys)
        if key not in self._plans:
            self._plans[key] = DecodePlan(self.layout, keys)
        return self._plans[key]

    def decode_at(self, keys: list[str], local: np.ndarray) -> dict[str, np.ndarray]:
        """Header fields of arbitrary local frames, in the given order."""
        local = np.asarray(local, dtype=np.int64)
        if self._meta is not None:
            return {k: self._meta_field(k)[local] for k in keys}
        out = {k: np.empty(len(local), dtype=np.int64) for k in keys}
        if len(local) == 0:
            return out
        order = np.argsort(local, kind="stable")
        srt = local[order]
        lo, hi = int(srt[0]), int(srt[-1]) + 1
        if hi - lo <= 64 * len(local):
            dense = self.decode(keys, lo, hi - lo)
            return {k: v[local - lo] for k, v in dense.items()}
        # Sparse: decode one frame at a time (a strided view of length 1 each).
        for i, k in enumerate(local):
            one = self.decode(keys, int(k), 1)
            for key in keys:
                out[key][i] = one[key][0]
        return out

    # -- reporting -------------------------------------------------------------

    def info(self) -> FileInfo:
        return FileInfo(
            path=self.path,
            size=self.size,
            frames=self.n_frames,
            layout="fixed" if self.layout is not None else "generic",
            frame_size=self.frame_size,
            header_size=self.layout.header_size if self.layout else None,
            truncated_tail_bytes=self.truncated_tail_bytes,
            damage=list(self.damage),
            header_note=self.header_note,
        )

    @property
    def header_note(self) -> str | None:
        """Why the header kind differs from the product's usual one (``None`` if it does not)."""
        declared, actual = self.declared_product.header_kind, self.product.header_kind
        if declared == actual:
            return None
        return (
            f"{self.product.name} files usually hold {declared} headers; this one holds "
            f"{actual} headers (read as the file has them)"
        )

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_mm"] = state["_view"] = None
        return state



def file_info(path: str | os.PathLike, product: DataProduct) -> FileInfo:
    """Report on one file without raising: damage is listed, a fatal problem goes in ``error``."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PFFWarning)
            f = PFFFile(path, product, strict=False)
        try:
            info = f.info()
        finally:
            f.close()
        if info.frames == 0:
            info.error = no_frames_reason(info)
        return info
    except (PFFError, OSError, ValueError) as e:
        size = path.stat().st_size if path.exists() else 0
        return FileInfo(path=path, size=size, error=str(e))



__all__ = [
    "RELEASE_PAGES_ABOVE",
    "WINDOW_FRAMES",
    "Damage",
    "FileInfo",
    "PFFFile",
    "PFFWarning",
    "file_info",
    "header_kind_of",
    "no_frames_reason",
    "sample_frames",
    "sampled_rows_differ",
    "with_header_kind",
]
