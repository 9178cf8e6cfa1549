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
import dataclasses
import logging
import mmap
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import CorruptFrameError, CorruptHeaderError, PFFError, TruncatedFrameError
from .header import (
    DecodePlan,
    HeaderLayout,
    check_delimiters,
    check_fields,
    decode_fixed,
    detect_layout,
    flatten_header,
    header_kind,
    parse_header,
    rows_differ,
)
from .products import DataProduct, HeaderKind
from .timestamps import TimeOverflowError, frame_time_fits, frame_times, overflowing_frames

logger = logging.getLogger(__name__)

#: Frames decoded per window: bounds temporaries and lets big files drop pages behind.
WINDOW_FRAMES = 32_768
#: Files larger than this release mapped pages behind a sequential pass (bounded RSS).
RELEASE_PAGES_ABOVE = 64 * 1024 * 1024
_SAMPLE_FRAMES = 32
_MAX_HEADER = 64 * 1024


def header_kind_of(path: str | os.PathLike) -> HeaderKind | None:
    """``"module"`` or ``"quabo"``, from the file's first header; ``None`` if it does not parse.

    The header kind is the file's fact, not the product's: a module header holds
    ``quabo_<n>`` objects, a single-quabo header holds the packet fields itself.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
            end = head.find(b"\n\n")
            if end < 0:
                head += f.read(_MAX_HEADER - len(head))
                end = head.find(b"\n\n")
    except OSError:
        return None
    if not head.startswith(b"{") or end < 0:
        return None
    try:
        header = parse_header(head[: end + 2])
    except ValueError:
        return None
    if not isinstance(header, dict):
        return None
    return header_kind(header)


def sample_frames(n: int) -> np.ndarray:
    """The frames a sampled open checks: first, last and evenly spaced between (sorted)."""
    if n <= _SAMPLE_FRAMES:
        return np.arange(n, dtype=np.int64)
    # as np.linspace(0, n - 1, _SAMPLE_FRAMES) would pick them, in exact integers
    return np.unique(np.arange(_SAMPLE_FRAMES, dtype=np.int64) * (n - 1) // (_SAMPLE_FRAMES - 1))


def sampled_rows_differ(
    fd: int, frames: np.ndarray, frame_size: int, layout: HeaderLayout
) -> np.ndarray:
    """Bool per given frame: a header byte outside the value spans, or the ``*``, is not
    the template's (:func:`~pfflake.header.rows_differ`); rows read with ``os.pread``."""
    stride, mask, expect = layout.row_check
    row = layout.header_size + 1
    rows = np.zeros((len(frames), stride), dtype=np.uint8)
    for i, k in enumerate(frames.tolist()):
        got = os.pread(fd, row, k * frame_size)
        rows[i, : len(got)] = np.frombuffer(got, dtype=np.uint8)
    bad = np.empty(len(frames), dtype=bool)
    rows_differ(rows.view("<u8"), mask, expect, bad)
    return bad


def with_header_kind(product: DataProduct, kind: HeaderKind | None) -> DataProduct:
    """``product`` with header kind ``kind`` (unchanged when ``kind`` is None or the same)."""
    if kind is None or kind == product.header_kind:
        return product
    return dataclasses.replace(product, header_kind=kind)


class PFFWarning(UserWarning):
    """Recoverable damage in a PFF file (e.g. a cut-short last frame)."""


@dataclass(frozen=True)
class Damage:
    """One stretch of a file that holds no intact frame."""

    offset: int
    length: int
    frame: int | None
    reason: str


@dataclass
class FileInfo:
    """What :meth:`PFFFile.info` found; built without raising."""

    path: Path
    size: int
    frames: int = 0
    layout: str = "unknown"
    frame_size: int | None = None
    header_size: int | None = None
    truncated_tail_bytes: int = 0
    damage: list[Damage] = field(default_factory=list)
    error: str | None = None
    #: set when the file's header kind is not its product's usual one (read as the file has it)
    header_note: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.damage and not self.truncated_tail_bytes


class PFFFile:
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
        self.path = Path(path)
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
        with open(self.path, "rb") as fh:
            self.size = os.fstat(fh.fileno()).st_size
            if self.size:
                self._map_from(fh)
                first = self._first_header()
                if first is not None:
                    self.product = with_header_kind(product, header_kind(first[1]))
                self._index(fh.fileno(), first, full=(verify == "full" or not strict))

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
            with open(self.path, "rb") as f:
                self._map_from(f)
        return self._view

    def _map_from(self, f) -> None:
        self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self._view = np.frombuffer(self._mm, dtype=np.uint8)
        if len(self._view) < self.size:
            self._view = self._mm = None
            raise TruncatedFrameError("file shrank since it was indexed", path=self.path)

    def close(self) -> None:
        """Drop the memory map. Arrays still viewing it keep it alive until they go."""
        self._view = None
        if self._mm is not None:
            # Live views hold exports: then the map is unmapped when they are freed.
            with contextlib.suppress(BufferError):
                self._mm.close()
            self._mm = None
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

    # -- indexing --------------------------------------------------------------

    def _index(self, fd: int, first: tuple[bytes, dict] | None, full: bool) -> None:
        layout = None
        if first is not None:
            with contextlib.suppress(ValueError):
                layout = detect_layout(first[0], self.product, first[1])
        if layout is None:
            # Frame 0 may be the damaged one: learn the layout from the next frame.
            nxt = self._resync(1)
            cand = self._detect(nxt) if nxt < self.size else None
            if cand is not None and nxt == cand.header_size + 1 + self.product.image_bytes:
                layout = cand
        if layout is not None and self._index_fixed(fd, layout, full):
            return
        self._index_generic()

    def _header_at(self, pos: int) -> bytes | None:
        """The header text starting at byte ``pos`` (through its blank line), if one does."""
        data = self._map()
        end = data.find(b"\n\n", pos, min(self.size, pos + _MAX_HEADER))
        if data[pos : pos + 1] != b"{" or end < 0:
            return None
        return data[pos : end + 2]

    def _first_header(self) -> tuple[bytes, dict] | None:
        """Frame 0's header text and its parse, or ``None`` if it does not parse."""
        raw = self._header_at(0)
        if raw is None:
            return None
        try:
            return raw, parse_header(raw)
        except ValueError:
            return None

    def _detect(self, pos: int) -> HeaderLayout | None:
        raw = self._header_at(pos)
        if raw is None:
            return None
        try:
            return detect_layout(raw, self.product)
        except ValueError:
            return None

    def _map(self) -> mmap.mmap:
        self.buffer  # noqa: B018 - opens the map if needed
        return self._mm

    def _index_fixed(self, fd: int, layout: HeaderLayout, full: bool) -> bool:
        """Adopt the fixed layout if the frames agree with it; False -> generic walk."""
        fs = layout.header_size + 1 + self.product.image_bytes
        n = self.size // fs
        if n == 0:
            return False
        buf = self.buffer
        if full:
            bad = np.zeros(n, dtype=bool)
            for lo in range(0, n, WINDOW_FRAMES):
                cnt = min(WINDOW_FRAMES, n - lo)
                vals, b = decode_fixed(buf, lo * fs, cnt, fs, layout, list(layout.spans))
                # b: a value, or a byte outside the values (template, '*'), is not as laid out
                bad[lo : lo + cnt] = b | overflowing_frames(vals, self.product.header_kind)
                self.release_pages(lo * fs, (lo + cnt) * fs)
        else:
            sample = sample_frames(n)
            # The sampled rows are read with pread, not through the map: a fault maps a
            # whole page-cache folio (and unmapping it costs again), for ~500 bytes.
            bad_sample = sampled_rows_differ(fd, sample, fs, layout)
            bad = None
            if bad_sample.any():
                bad = np.zeros(n, dtype=bool)
                bad[sample] = bad_sample
        if bad is not None and bad.any():
            # Frames whose header is only unusual (e.g. a negative value) still parse;
            # a frame that moved the boundaries means the layout is not fixed.
            for k in np.flatnonzero(bad):
                if check_delimiters(buf, int(k) * fs, 1, fs, layout)[0]:
                    return False
            self._fixed_damage(layout, fs, n, np.flatnonzero(bad))
        tail = self.size - n * fs
        if tail and not self._tail_fits(layout, n * fs, tail):
            return False  # frames are not all fs bytes long (e.g. a compact writer)
        self.layout, self.frame_size = layout, fs
        self.n_frames = n if self._keep is None else len(self._keep)
        self._note_tail(n * fs)
        return True

    def _tail_fits(self, layout: HeaderLayout, start: int, length: int) -> bool:
        """Do the bytes after the last whole frame match the start of the header template?"""
        upto = min(length, layout.header_size)
        got = self.buffer[start : start + upto]
        want = np.frombuffer(layout.template[:upto], dtype=np.uint8)
        fixed = ~layout.value_mask[:upto]
        return bool((got[fixed] == want[fixed]).all())

    def _fixed_damage(self, layout: HeaderLayout, fs: int, n: int, suspects: np.ndarray) -> None:
        broken = []
        for k in suspects:
            k = int(k)
            try:
                self._parse_fixed_frame(k * fs, layout, k)
            except CorruptHeaderError as e:
                if self.strict:
                    raise
                broken.append(k)
                self.damage.append(Damage(k * fs, fs, k, e.reason))
        if broken:
            self._keep = np.setdiff1d(np.arange(n, dtype=np.int64), broken)
            logger.warning("%s: skipped %d damaged frame(s)", self.path, len(broken))

    def _parse_fixed_frame(self, offset: int, layout: HeaderLayout, frame: int) -> dict[str, int]:
        raw = bytes(self.buffer[offset : offset + layout.header_size])
        try:
            flat = flatten_header(parse_header(raw))
            self._check_fields(flat)
        except ValueError as e:
            raise CorruptHeaderError(
                f"header does not parse: {e}", path=self.path, frame=frame, offset=offset
            ) from None
        return flat

    def _check_fields(self, flat: dict[str, int]) -> None:
        """Required fields present and in range, and the frame time fits int64 ns."""
        check_fields(flat, self.product)
        if not frame_time_fits(flat, self.product.header_kind):
            raise ValueError("frame time does not fit int64 ns since the UNIX epoch")

    def _index_generic(self) -> None:
        """Walk the blocks one by one; every header is parsed as JSON (slow, exact)."""
        buf = self.buffer
        data = self._map()
        img = self.product.image_bytes
        offsets: list[int] = []
        images: list[int] = []
        rows: list[dict[str, int]] = []
        pos = 0
        frame = -1
        while pos < self.size:
            frame += 1
            problem = None
            end = data.find(b"\n\n", pos, min(self.size, pos + _MAX_HEADER))
            if data[pos : pos + 1] != b"{":
                problem = "no header starts here (expected '{')"
            elif end < 0:
                if self.size - pos < _MAX_HEADER and data.find(b"\n\n", pos) < 0:
                    self._note_tail(pos)
                    break
                problem = "header has no end (no blank line)"
            else:
                star = end + 2
                if star + 1 + img > self.size and (star >= self.size or buf[star] == ord("*")):
                    self._note_tail(pos)
                    break
                if buf[star] != ord("*"):
                    problem = "no '*' image marker after the header"
                else:
                    try:
                        flat = flatten_header(parse_header(bytes(buf[pos:star])))
                        self._check_fields(flat)
                    except ValueError as e:
                        problem = f"header does not parse: {e}"
            if problem is None:
                offsets.append(pos)
                images.append(star + 1)
                rows.append(flat)
                pos = star + 1 + img
                continue
            if self.strict:
                cls = CorruptHeaderError if "parse" in problem else CorruptFrameError
                raise cls(problem, path=self.path, frame=frame, offset=pos)
            nxt = self._resync(pos + 1)
            self.damage.append(Damage(pos, nxt - pos, frame, problem))
            pos = nxt
        self._offsets = np.asarray(offsets, dtype=np.int64)
        self._img_offsets = np.asarray(images, dtype=np.int64)
        keys = self.product.header_fields
        self._meta = {  # only the product's fields: other keys may hold any JSON number
            k: np.fromiter((r[k] for r in rows), dtype=np.int64, count=len(rows)) for k in keys
        }
        self.n_frames = len(offsets)
        if self.damage:
            logger.warning("%s: skipped %d damaged stretch(es)", self.path, len(self.damage))

    def _resync(self, pos: int) -> int:
        """Next offset where a whole, parseable frame starts (or end of file)."""
        data = self._map()
        img = self.product.image_bytes
        while True:
            pos = data.find(b"{", pos)
            if pos < 0:
                return self.size
            end = data.find(b"\n\n", pos, min(self.size, pos + _MAX_HEADER))
            if end > 0 and end + 2 < self.size and data[end + 2] == ord("*"):
                try:
                    self._check_fields(flatten_header(parse_header(data[pos : end + 2])))
                    if end + 3 + img <= self.size:
                        return pos
                except ValueError:
                    pass
            pos += 1

    def _note_tail(self, whole_end: int) -> None:
        tail = self.size - whole_end
        if tail > 0:
            self.truncated_tail_bytes = tail
            msg = (
                f"{self.path}: last frame cut short at byte offset {whole_end} "
                f"({tail} bytes); dropped"
            )
            warnings.warn(msg, PFFWarning, stacklevel=4)
            logger.warning(msg)

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
        shape = (count, *self.product.image_shape)
        dtype = self.product.dtype
        buf = self.buffer
        if self.contiguous:
            fs = self.frame_size
            h = self.layout.header_size
            base = start * fs
            if count and check_delimiters(buf, base, count, fs, self.layout).any():
                self._raise_structure(start, count)
            item = dtype.itemsize
            strides = (fs, shape[2] * item, item)
            return np.ndarray(shape, dtype, buf, base + h + 1, strides)
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


def no_frames_reason(info: FileInfo) -> str:
    """Why a file holds no frame: empty, shorter than one frame, or not PFF data at all."""
    if info.size == 0:
        return "empty file (0 bytes)"
    if info.truncated_tail_bytes >= info.size:
        return f"holds no whole frame: {info.size} bytes, cut short inside frame 0"
    return f"not a PFF file: no frame header ('{{' ... blank line ... '*') in its {info.size} bytes"


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
