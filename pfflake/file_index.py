"""How a :class:`~pfflake.file.PFFFile` finds its frames at open: the index and the damage scan.

Two layouts (see :mod:`pfflake.file`):

* **fixed**: frame 0's header is the template (:func:`~pfflake.header.detect_layout`);
  the layout is adopted when sampled frames (or, with ``verify="full"`` and in
  lenient mode, every frame) match it byte for byte outside the values, so a
  file whose frames are not all one size falls back to
* **generic**: the blocks are walked one by one and every header is parsed as
  JSON once.

A broken frame raises a :class:`~pfflake.errors.PFFError` naming the file, frame and
byte offset, or (``strict=False``) is recorded as :class:`~pfflake.reader_info.Damage`
and skipped; a cut-short last frame is dropped with a :class:`~pfflake.errors.PFFWarning`.
"""

from __future__ import annotations

import dataclasses
import logging
import mmap
import os
import warnings

import numpy as np

from .errors import CorruptFrameError, CorruptHeaderError, PFFWarning
from .header import (
    HeaderLayout,
    check_delimiters,
    check_fields,
    decode_fixed,
    detect_layout,
    flatten_header,
    header_kind,
    parse_header,
)
from .products import DataProduct, HeaderKind
from .reader_info import Damage
from .timestamps import frame_time_fits, overflowing_frames

logger = logging.getLogger("pfflake.file")  # the reader's one logger name for damage lines

#: Frames decoded per window: bounds temporaries and lets big files drop pages behind.
WINDOW_FRAMES = 32_768
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


def sample_frames(n: int) -> list[int]:
    """The frames a sampled open checks: first, last and evenly spaced between (ascending).

    As ``np.linspace(0, n - 1, 32)`` would pick them, in exact integers; with more
    than 32 frames the steps are at least 1, so the list has no repeats.
    """
    if n <= _SAMPLE_FRAMES:
        return list(range(n))
    return [i * (n - 1) // (_SAMPLE_FRAMES - 1) for i in range(_SAMPLE_FRAMES)]


def sampled_rows_differ(
    fd: int, frames: list[int], frame_size: int, layout: HeaderLayout, mapped=None
) -> list[bool]:
    """Per given frame: does a header byte outside the value spans, or the ``*`` marker,
    differ from the template's (the bytes :attr:`~pfflake.header.HeaderLayout.row_check`
    compares)?

    Rows are read with ``os.pread`` (frame 0's from ``mapped``, the file's map, when
    given: the open has read that page already) and compared as little-endian integers
    under the template's byte mask: a handful of int operations per row, no numpy
    temporaries, on the path of every open. A short read (the file shrank) compares as
    if zero-padded, so it differs.
    """
    row = layout.header_size + 1
    mask, expect = layout.row_int_check
    number = int.from_bytes
    return [
        number(
            mapped[0:row] if k == 0 and mapped is not None else os.pread(fd, row, k * frame_size),
            "little",
        )
        & mask
        != expect
        for k in frames
    ]


def with_header_kind(product: DataProduct, kind: HeaderKind | None) -> DataProduct:
    """``product`` with header kind ``kind`` (unchanged when ``kind`` is None or the same)."""
    if kind is None or kind == product.header_kind:
        return product
    return dataclasses.replace(product, header_kind=kind)


class FileIndexer:
    """The index half of :class:`~pfflake.file.PFFFile` (a mixin: it reads and sets the
    file's attributes, ``path``, ``size``, ``product``, ``strict``, ``layout``,
    ``frame_size``, ``n_frames``, ``damage``, ``truncated_tail_bytes`` and the private
    frame tables, and maps the file through ``buffer``)."""

    def _index(self, fd: int, first: tuple[bytes, dict] | None, full: bool) -> None:
        layout = None
        if first is not None:
            try:  # not contextlib.suppress: a context object per open costs too
                layout = detect_layout(first[0], self.product, first[1])
            except ValueError:
                layout = None
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
        buf = self._view  # mapped by the open
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
            bad_sample = sampled_rows_differ(fd, sample, fs, layout, self._mm)
            bad = None
            if any(bad_sample):
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
