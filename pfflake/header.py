"""PFF frame headers: layout detection, vectorised fixed-width decode, JSON fallback.

The DAQ prints every header with fixed printf widths, so every numeric field
of every frame of a file sits at the same byte span. :func:`detect_layout`
finds those spans in frame 0; :func:`decode_fixed` then decodes fields for
many frames at once (SWAR: eight ASCII digits per ``uint64`` word) and, in the
same pass, checks each value's bytes and every byte outside the values against
frame 0's template, so a frame that breaks the layout is *reported*, never
decoded into a wrong number.
Frames that fail go back to a per-frame JSON parse (:func:`parse_header`).

Two kernels implement that decode, with one contract: the C extension
``pfflake._header`` (built at install when a compiler is there, see
``hatch_build.py``; one pass over the mapped headers, GIL released) and the
numpy kernel below (always there). :data:`KERNEL` says which one runs;
``PFFLAKE_KERNEL=numpy`` in the environment selects numpy.
"""

from __future__ import annotations

import functools
import importlib
import itertools
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .products import DataProduct

try:  # the optional C kernel (pfflake/_header.c, built by hatch_build.py). A compiled leaf
    # module that imports nothing: by name, so the import contract does not read it as an
    # import of the whole package.
    _c_kernel = importlib.import_module("pfflake._header")
except ImportError:  # no compiler at install time: the numpy kernel does the same work
    _c_kernel = None

#: The kernels this installation has: ``("c", "numpy")``, or ``("numpy",)`` where the C
#: extension was not built (no compiler at install time, or a big-endian host).
KERNELS = ("c", "numpy") if hasattr(_c_kernel, "decode") else ("numpy",)
#: ``"c"`` or ``"numpy"``: the kernel :class:`DecodePlan` decodes with. Same answers; the
#: C one makes one pass over the mapped headers (3-6x faster on hot pages). Tests set it
#: to run every check on both.
KERNEL = "numpy" if os.environ.get("PFFLAKE_KERNEL") == "numpy" else KERNELS[0]


def kernel_description() -> str:
    """Which decode runs, for reports: ``"C (SSE4.1)"``, ``"C (scalar)"`` or ``"numpy"``."""
    if KERNEL != "c":
        return "numpy"
    return "C (SSE4.1)" if _c_kernel.simd() else "C (scalar)"

# A numeric value in a DAQ header: `"key":<spaces><digits>` followed by `,` or `}`.
_VALUE_RE = re.compile(rb'"(\w+)":( *-?\d+)(?=\s*[,}])')
_QUABO_RE = re.compile(rb'"(quabo_\d)"\s*:\s*\{')


@dataclass(frozen=True)
class HeaderLayout:
    """Where each numeric field sits in a fixed-width header.

    ``header_size`` counts the header text including its closing blank line,
    so the image marker ``*`` is at ``header_size`` and pixels start one byte
    later. ``spans[key] = (start, end)`` are byte offsets within the frame of
    the value *including* its space padding; keys are pypff's dotted names.
    ``template`` is frame 0's header with every value span blanked to spaces.
    """

    header_size: int
    spans: dict[str, tuple[int, int]]
    template: bytes

    @cached_property  # built once per layout: every open and sampled check reads it
    def value_mask(self) -> np.ndarray:
        mask = np.zeros(self.header_size, dtype=bool)
        for start, end in self.spans.values():
            mask[start:end] = True
        mask.flags.writeable = False
        return mask

    @cached_property
    def compared(self) -> bytes:
        """The header row (header and ``*`` marker) as a byte mask: ``0xff`` where a frame
        must equal the template (outside the value spans), ``0`` in the spans. Every check
        of a row against the layout compares these bytes."""
        # Built with bytes operations: every open builds one (a fresh layout per file).
        fixed = bytearray(b"\xff" * (self.header_size + 1))
        for start, end in self.spans.values():
            fixed[start:end] = bytes(end - start)
        return bytes(fixed)

    @cached_property
    def row_check(self) -> tuple[int, np.ndarray, np.ndarray]:
        """``(stride, mask, expect)``: a frame's header and ``*`` marker as ``uint64`` words
        in a row padded to ``stride`` bytes match the layout iff ``words & mask == expect``
        (the mask is :attr:`compared`; padding is not compared)."""
        h = self.header_size
        stride = -(-(h + 1) // 8) * 8
        pad = bytes(stride - h - 1)
        mask = np.frombuffer(self.compared + pad, dtype="<u8")
        expect = np.frombuffer(self.template + b"*" + pad, dtype="<u8")
        return stride, mask, expect & mask

    @cached_property
    def row_int_check(self) -> tuple[int, int]:
        """``(mask, expect)``: a row read as one little-endian integer matches the layout
        iff ``row & mask == expect`` (no numpy: for the open's few sampled rows)."""
        mask = int.from_bytes(self.compared, "little")
        return mask, int.from_bytes(self.template + b"*", "little") & mask


def flatten_header(header: dict) -> dict[str, int]:
    """Flatten a parsed header to pypff's keys (``quabo_0.pkt_num``, ``pkt_num``).

    Only integer values are kept: those are the fields pfflake decodes.
    """
    flat: dict[str, int] = {}
    for key, value in header.items():
        kind = type(value)
        if kind is dict:
            for sub, v in value.items():
                if type(v) is int:  # JSON ints are exactly int (bools are not)
                    flat[f"{key}.{sub}"] = v
        elif kind is int:
            flat[key] = value
        elif isinstance(value, dict):
            flat.update(flatten_header({key: dict(value)}))
    return flat


def _reject_duplicates(pairs: list[tuple[str, object]]) -> dict:
    seen: dict = {}
    for k, v in pairs:
        if k in seen:
            raise ValueError(f"duplicate key {k!r}")
        seen[k] = v
    return seen


_DECODER = json.JSONDecoder(object_pairs_hook=_reject_duplicates)  # built once: per-call path


def parse_header(raw: bytes) -> dict:
    """Parse one header's JSON text (raises ``ValueError`` with the reason).

    Duplicate keys are rejected: JSON would silently keep the last one.
    """
    text = raw.decode("ascii")  # UnicodeDecodeError is a ValueError
    try:
        header = _DECODER.decode(text)
    except RecursionError:
        raise ValueError("header nests too deeply") from None
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    return header


def header_kind(header: dict) -> str | None:
    """``"module"`` or ``"quabo"`` from one parsed header (``None``: neither).

    A module header holds ``quabo_<n>`` objects, a single-quabo header holds
    the packet fields itself.
    """
    if any(
        k.startswith("quabo_") and k != "quabo_num" and isinstance(v, dict)
        for k, v in header.items()
    ):
        return "module"
    return "quabo" if "pkt_num" in header else None


def check_fields(flat: dict[str, int], product: DataProduct) -> None:
    """Raise ``ValueError`` if a header lacks a field the product requires."""
    missing = [k for k in product.header_fields if k not in flat]
    if missing:
        raise ValueError(f"header lacks field(s) {', '.join(missing)}")
    wide = [k for k in product.header_fields if not -(2**63) <= flat[k] < 2**63]
    if wide:
        raise ValueError(f"header field(s) {', '.join(wide)} outside the int64 range")


def detect_layout(
    header: bytes, product: DataProduct, parsed: dict | None = None
) -> HeaderLayout | None:
    """Find the value spans of a fixed-width header (``header`` ends with ``\\n\\n``).

    Returns ``None`` when the header cannot serve as a template for the fast
    path (a value not a plain integer, a span too close to the frame start
    for a 16-byte word, a field found twice): readers then parse every frame
    as JSON. Raises ``ValueError`` when the header itself is not valid.
    ``parsed``: ``parse_header(header)`` when the caller has it already (the
    open parses the first header once, for its header kind and its layout).
    """
    if parsed is None:
        parsed = parse_header(header)
    flat = flatten_header(parsed)
    check_fields(flat, product)
    quabos = [(m.start(), m[1].decode()) for m in _QUABO_RE.finditer(header)]
    spans: dict[str, tuple[int, int]] = {}
    q = -1  # the last quabo object opened before the value (matches come in order)
    for m in _VALUE_RE.finditer(header):
        key = m[1].decode()
        if product.header_kind == "module":
            while q + 1 < len(quabos) and quabos[q + 1][0] < m.start():
                q += 1
            if q < 0:
                return None
            key = f"{quabos[q][1]}.{key}"
        if key in spans:
            return None
        spans[key] = (m.start(2), m.end(2))
    if set(spans) != set(flat):
        return None
    for key, (start, end) in spans.items():
        text = header[start:end]
        if b"-" in text or end - start > 16 or end < 16 or int(text) != flat[key]:
            return None
    template = bytearray(header)
    for start, end in spans.values():
        template[start:end] = b" " * (end - start)
    return HeaderLayout(len(header), spans, bytes(template))


# The word matrices of one window (three, uint64 per field word and frame) go through
# ~30 numpy passes, so they should stay in L2 (1 MiB per core here). The rows are read
# three times only (copy, template check, gather) and are not counted: on cold maps of
# the real files, windows sized with the rows counted were up to 10% slower.
_WORDS_BYTES = 1 << 20
_MIN_WINDOW, _MAX_WINDOW = 256, 4096  # frames per window
_PARALLEL_ABOVE = 4_096  # frames; fewer: the second thread costs more than it saves
# The C kernel keeps nothing between frames, so its windows only balance the two threads
# and pace page releases (``done``); a call costs ~2 us.
_C_WINDOW = 1024


_U = np.uint64
_LOW7 = _U(0x7F7F7F7F7F7F7F7F)
_TEN_UP = _U(0x7676767676767676)  # adding this sets bit 7 of each byte above 9
_HIGH_BITS = _U(0x8080808080808080)
_FLIPPED_SPACES = _U(0x1010101010101010)  # ' ' ^ '0' in every byte
_LAST_ONLY = _U(0xFF << 56)  # digit mask of a word whose only digit is its last byte
_ALL = _U(0xFFFFFFFFFFFFFFFF)
_EVEN_BYTES = _U(0x00FF00FF00FF00FF)
_EVEN_HALVES = _U(0x0000FFFF0000FFFF)
# x * (1 + c << s) >> s == (x >> s) + c * x: combines neighbouring lanes in one step
_PAIR, _QUAD, _OCTET = _U(10 * 2**8 + 1), _U(100 * 2**16 + 1), _U(10_000 * 2**32 + 1)
_E8 = _U(100_000_000)


_PLAN_PARTS: dict[tuple, dict] = {}  # DecodePlan attributes by (layout bytes, keys)
_PLAN_PARTS_MAX = 256


def _pool():
    """One persistent worker thread that shares the windows of big decodes (new after fork)."""
    global _POOL
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(1, thread_name_prefix="pfflake-decode")
    return _POOL


_POOL = None


def _forget_pool() -> None:
    global _POOL
    _POOL = None  # a forked child has no worker thread: make a new pool on demand


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


class DecodePlan:
    """How to decode a set of fields of one layout; built once, reused per window.

    Per window of frames (sized so its word matrices stay in L2):

    1. one strided copy of the header rows (one memcpy each) into rows padded
       to a multiple of 8 bytes;
    2. every byte outside the value spans (key names, quotes, colons, commas,
       braces, blank line, ``*``) is compared with the template: an OR and an
       AND reduction of the rows as ``uint64`` equal the template under the
       mask iff every row does, so the per-row compare runs only when a frame
       differs;
    3. each field's one or two 8-byte words are gathered into a
       ``(words, frames)`` matrix and decoded with branch-free SWAR arithmetic
       in a fixed number of numpy passes (no lookup table: on this hardware a
       table lookup costs about ten arithmetic passes).

    A value is accepted only as ``%Nd`` prints it: spaces, then at least one
    digit, no leading zero (``0`` alone is fine). Anything else flags the
    frame bad (callers re-parse it as JSON); it is never decoded into a wrong
    number. For big ranges two threads take windows in turn from one counter
    (numpy releases the GIL), so a slow thread never holds up the other.
    """

    def __init__(self, layout: HeaderLayout, keys: Iterable[str]) -> None:
        keys = list(keys)
        # Every open builds the plans it decodes with, and the files of a run share one
        # layout: the arrays depend only on the layout's bytes and the keys, so they are
        # built once per process (read-only, shared) and looked up by those.
        memo = (layout.header_size, layout.template, tuple(layout.spans.items()), tuple(keys))
        parts = _PLAN_PARTS.get(memo)
        if parts is None:
            parts = self._build(layout, keys)
            if len(_PLAN_PARTS) >= _PLAN_PARTS_MAX:
                _PLAN_PARTS.pop(next(iter(_PLAN_PARTS)))  # the oldest
            _PLAN_PARTS[memo] = parts
        self.__dict__.update(parts)

    def _build(self, layout: HeaderLayout, keys: list[str]) -> dict:
        """The plan's attributes (arrays made read-only: plans share them)."""
        self.keys = keys
        spans = layout.spans
        h = layout.header_size
        self.row = h + 1  # header text plus the '*' marker
        self.stride = layout.row_check[0]
        width = {k: spans[k][1] - spans[k][0] for k in self.keys}
        wide = [k for k in self.keys if width[k] > 8]
        self.order = wide + [k for k in self.keys if width[k] <= 8]
        self.n_wide = len(wide)
        # Word j < len(order): the last 8 bytes of field j; then the 8 before those (wide).
        words = [(spans[k][1] - 8, spans[k]) for k in self.order]
        words += [(spans[k][1] - 16, spans[k]) for k in wide]
        self.offsets = [off for off, _ in words]
        # Per word, which of its 8 bytes lie inside its field (one array op, not a loop:
        # every open builds the plans it decodes with).
        geo = np.array([(off, start, end) for off, (start, end) in words], dtype=np.int64)
        geo = geo.reshape(-1, 3)
        at = geo[:, :1] + np.arange(8)
        inside = (geo[:, 1:2] <= at) & (at < geo[:, 2:3])
        self.keep = np.where(inside, 0xFF, 0).astype(np.uint8).view("<u8")
        # digits flip to 0..9 and spaces to 0x10; bytes outside the field act as spaces
        self.flip = np.where(inside, 0x30, 0x10).astype(np.uint8).view("<u8")
        _, self.row_mask, self.row_expect = layout.row_check
        fit = _WORDS_BYTES // (8 * 3 * max(len(words), 1))
        self.window = min(_MAX_WINDOW, max(_MIN_WINDOW, 1 << (fit.bit_length() - 1)))
        # The C kernel's view: the value words' offsets, and the row (header and '*') in
        # 16-byte chunks, the last one ending at the row's end (so it may overlap).
        self.offsets_i64 = np.asarray(self.offsets, dtype=np.int64)
        starts = list(range(0, self.row - 15, 16))
        if starts[-1] != self.row - 16:
            starts.append(self.row - 16)
        self.chunk_at = np.asarray(starts, dtype=np.int64)
        at = (self.chunk_at[:, None] + np.arange(16)).ravel()
        self.chunk_expect = np.frombuffer(layout.template + b"*", dtype=np.uint8)[at]
        self.chunk_mask = np.frombuffer(layout.compared, dtype=np.uint8)[at]
        parts = dict(self.__dict__)
        for value in parts.values():
            if isinstance(value, np.ndarray):
                value.flags.writeable = False
        return parts

    def decode(
        self,
        buf: np.ndarray,
        base: int,
        n: int,
        frame_size: int,
        done: Callable[[int, int], None] | None = None,
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Values (int64 per key) and a bad-frame mask for ``n`` frames from byte ``base``.

        ``done(byte_start, byte_stop)`` is called (from worker threads) as
        windows of the input are finished, so callers can release pages.
        """
        out = np.empty((len(self.order), n), dtype=np.int64)
        bad = np.empty(n, dtype=bool)
        # Windows are handed out one at a time from one counter (its next() is atomic
        # under the GIL): on a busy machine the worker starts late or runs slow, and with
        # fixed halves the calling thread then waited for it; now it takes over windows.
        windows = itertools.count()
        run = self._run_c if KERNEL == "c" else self._run
        if n > _PARALLEL_ABOVE:
            job = _pool().submit(run, buf, base, frame_size, n, windows, out, bad, done)
            try:
                run(buf, base, frame_size, n, windows, out, bad, done)
            finally:
                job.result()
        else:
            run(buf, base, frame_size, n, windows, out, bad, done)
        return {k: out[j] for j, k in enumerate(self.order)}, bad

    def _run_c(self, buf, base, frame_size, n, windows, out, bad, done) -> None:
        k, m = len(self.order), self.n_wide
        decode = _c_kernel.decode
        for i in windows:
            s = i * _C_WINDOW
            if s >= n:
                break
            c = min(_C_WINDOW, n - s)
            start = base + s * frame_size
            decode(
                buf,
                start,
                c,
                frame_size,
                self.offsets_i64,
                self.keep,
                self.flip,
                k,
                m,
                self.chunk_at,
                self.chunk_expect,
                self.chunk_mask,
                self.row,
                out,
                s,
                bad,
            )
            if done is not None:
                done(start, start + c * frame_size)

    def _run(self, buf, base, frame_size, n, windows, out, bad, done) -> None:
        win = min(self.window, max(n, 1))
        nw, k, m = len(self.offsets), len(self.order), self.n_wide
        rows_buf = np.empty((win, self.stride), dtype=np.uint8)
        row_type = np.dtype(f"V{self.row}")
        rows_dst = np.ndarray((win,), row_type, rows_buf, 0, (self.stride,))
        a_buf, t_buf = (np.empty((nw, win), dtype=np.uint64) for _ in range(2))
        # Every 8-byte word at every byte offset of a row (overlapping, unaligned reads):
        # the fields' words are then one fancy-indexing gather, laid out (word, frame).
        at = np.asarray(self.offsets, dtype=np.intp)
        err_buf = np.empty(win, dtype=np.uint64)
        keep, flip = self.keep, self.flip
        for i in windows:
            s = i * win
            if s >= n:
                break
            c = min(win, n - s)
            rows = rows_buf[:c]
            np.copyto(
                rows_dst[:c], np.ndarray((c,), row_type, buf, base + s * frame_size, (frame_size,))
            )
            frame_bad = bad[s : s + c]
            rows_differ(rows.view("<u8"), self.row_mask, self.row_expect, frame_bad)
            a, t, err = a_buf[:, :c], t_buf[:, :c], err_buf[:c]
            x = np.ndarray((self.stride - 7, c), "<u8", rows, 0, (1, self.stride))[at]
            np.bitwise_and(x, keep, out=x)
            np.bitwise_xor(x, flip, out=x)  # digits are 0..9 now, spaces 0x10
            np.bitwise_and(x, _LOW7, out=a)
            np.add(a, _TEN_UP, out=a)
            np.bitwise_or(a, x, out=a)
            np.bitwise_and(a, _HIGH_BITS, out=a)  # bit 7 of each byte that is not a digit
            np.right_shift(a, _U(7), out=a)
            np.multiply(a, _U(0xFF), out=a)  # a: 0xFF in each byte that is not a digit
            np.bitwise_xor(x, _FLIPPED_SPACES, out=t)
            np.bitwise_and(t, a, out=t)  # a byte that is neither digit nor space
            np.bitwise_or.reduce(t, axis=0, out=err)
            np.add(a, _U(1), out=t)
            np.bitwise_and(t, a, out=t)  # a space after a digit (non-digits not a prefix)
            np.bitwise_or(err, np.bitwise_or.reduce(t, axis=0), out=err)
            np.invert(a, out=a)  # a: 0xFF in each digit byte (a suffix of the word)
            np.bitwise_and(x, a, out=x)  # x: the digits' values, 0 elsewhere
            np.left_shift(a, _U(8), out=t)
            np.bitwise_xor(t, a, out=t)
            np.bitwise_and(t, x, out=t)  # t == 0: the first digit is '0', or no digit at all
            lead = t[:k] == 0
            lead &= a[:k] != _LAST_ONLY  # ... and it is not "0" alone
            if m:  # wide fields: the high word decides when it holds digits
                hi_digits = a[k:] != 0
                hi_lead = (t[k:] == 0) | (a[:m] != _ALL)  # lead zero, or lo word not all digits
                np.copyto(lead[:m], hi_lead, where=hi_digits)
            frame_bad |= lead.any(axis=0)
            frame_bad |= err != 0
            np.multiply(x, _PAIR, out=x)
            np.right_shift(x, _U(8), out=x)
            np.bitwise_and(x, _EVEN_BYTES, out=x)  # 16-bit lanes of 0..99
            np.multiply(x, _QUAD, out=x)
            np.right_shift(x, _U(16), out=x)
            np.bitwise_and(x, _EVEN_HALVES, out=x)  # 32-bit lanes of 0..9999
            np.multiply(x, _OCTET, out=x)
            np.right_shift(x, _U(32), out=x)  # the word's value, first byte most significant
            if m:
                np.multiply(x[k:], _E8, out=t[:m])
                np.add(x[:m], t[:m], out=x[:m])
            out[:, s : s + c] = x[:k].view(np.int64)
            if done is not None:
                done(base + s * frame_size, base + (s + c) * frame_size)


def rows_differ(words: np.ndarray, mask: np.ndarray, expect: np.ndarray, bad: np.ndarray) -> None:
    """``bad[:] =`` which rows of ``words`` (frames x uint64) differ from ``expect`` under ``mask``.

    An OR and an AND reduction over the rows equal ``expect`` under the mask iff
    every row does: two read-only passes; the per-row compare runs only on a miss.
    """
    ors = np.bitwise_or.reduce(words.T, axis=1)  # this order runs ~2x faster than axis=0
    ands = np.bitwise_and.reduce(words.T, axis=1)
    if not ((((ors & mask) ^ expect) | ((ands & mask) ^ expect)).any()):
        bad[:] = False
        return
    bad[:] = (((words & mask) ^ expect) != 0).any(axis=1)


def frames_differ(buf, frames: np.ndarray, frame_size: int, layout: HeaderLayout) -> np.ndarray:
    """Bool per given frame: a byte outside the value spans, or the ``*``, is not the template's.

    One gather of the frames' header rows into padded rows, then :func:`rows_differ`.
    """
    stride, mask, expect = layout.row_check
    row_type = np.dtype(f"V{layout.header_size + 1}")
    n_all = (len(buf) - layout.header_size - 1) // frame_size + 1
    rows = np.zeros((len(frames), stride), dtype=np.uint8)
    dst = np.ndarray((len(frames),), row_type, rows, 0, (stride,))
    dst[:] = np.ndarray((n_all,), row_type, buf, 0, (frame_size,))[np.asarray(frames)]
    bad = np.empty(len(frames), dtype=bool)
    rows_differ(rows.view("<u8"), mask, expect, bad)
    return bad


def decode_fixed(
    buf,
    base: int,
    n: int,
    frame_size: int,
    layout: HeaderLayout,
    keys: Iterable[str],
    plan: DecodePlan | None = None,
    done: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Decode ``keys`` for ``n`` consecutive frames starting at byte ``base`` of ``buf``.

    Returns ``(values, bad)``: int64 arrays per key and a bool array marking
    frames whose delimiters or value bytes do not match the layout (their
    values are meaningless; re-parse those frames with :func:`parse_header`).
    """
    plan = plan or DecodePlan(layout, keys)
    return plan.decode(buf, base, n, frame_size, done)


def check_delimiters(buf, base: int, n: int, frame_size: int, layout: HeaderLayout) -> np.ndarray:
    """Bool array: frames whose ``{`` start, blank line or ``*`` marker are not in place.

    Runs on every batch of pixels handed out, so it reads two values per
    frame: the ``{`` and the four bytes ending the header (``}\\n\\n*`` as in
    the template).
    """
    h = layout.header_size
    tail = np.frombuffer(layout.template[h - 3 : h] + b"*", dtype="<u4")[0]
    first = np.ndarray((n,), np.uint8, buf, base, (frame_size,))
    last = np.ndarray((n,), "<u4", buf, base + h - 3, (frame_size,))
    return (first != ord("{")) | (last != tail)


def delimiters_differ(buf, base: int, n: int, frame_size: int, layout: HeaderLayout) -> bool:
    """``check_delimiters(...).any()``, for the per-batch path of pixel reads: the same
    bytes, gathered by two strided copies and compared as bytes (no temporaries per frame).
    """
    first = np.ndarray((n,), np.uint8, buf, base, (frame_size,)).tobytes()
    h = layout.header_size
    tails = np.ndarray((n,), "<u4", buf, base + h - 3, (frame_size,)).tobytes()
    want_first, want_tails = _delimiter_bytes(n, layout.template[h - 3 : h] + b"*")
    return first != want_first or tails != want_tails


@functools.lru_cache(maxsize=16)  # a scan asks for the same batch size every time
def _delimiter_bytes(n: int, tail: bytes) -> tuple[bytes, bytes]:
    return b"{" * n, tail * n
