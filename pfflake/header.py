"""PFF frame headers: layout detection, vectorised fixed-width decode, JSON fallback.

The DAQ prints every header with fixed printf widths, so every numeric field
of every frame of a file sits at the same byte span. :func:`detect_layout`
finds those spans in frame 0; :func:`decode_fixed` then decodes a field for
many frames at once from a strided ``uint64`` view of the memory map (SWAR:
eight ASCII digits per word), and checks each value's bytes on the way, so a
frame that breaks the layout is *reported*, never decoded into a wrong number.
Frames that fail go back to a per-frame JSON parse (:func:`parse_header`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .products import DataProduct

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
    def fixed_bytes(self) -> tuple[np.ndarray, np.ndarray]:
        """``(positions, expected bytes)`` of the template outside the value spans."""
        fixed = np.flatnonzero(~self.value_mask)
        return fixed, np.frombuffer(self.template, dtype=np.uint8)[fixed]


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


def check_fields(flat: dict[str, int], product: DataProduct) -> None:
    """Raise ``ValueError`` if a header lacks a field the product requires."""
    missing = [k for k in product.header_fields if k not in flat]
    if missing:
        raise ValueError(f"header lacks field(s) {', '.join(missing)}")
    wide = [k for k in product.header_fields if not -(2**63) <= flat[k] < 2**63]
    if wide:
        raise ValueError(f"header field(s) {', '.join(wide)} outside the int64 range")


def detect_layout(header: bytes, product: DataProduct) -> HeaderLayout | None:
    """Find the value spans of a fixed-width header (``header`` ends with ``\\n\\n``).

    Returns ``None`` when the header cannot serve as a template for the fast
    path (a value not a plain integer, a span too close to the frame start
    for a 16-byte word, a field found twice): readers then parse every frame
    as JSON. Raises ``ValueError`` when the header itself is not valid.
    """
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


_WORDS_BYTES = 3 << 19  # 1.5 MiB of gathered words per window: few numpy calls, L2/L3-sized
_MIN_WINDOW, _MAX_WINDOW = 2048, 16384  # frames per window
_RELEASE_BYTES = 32 << 20  # input bytes between ``done`` callbacks
_PARALLEL_ABOVE = 4_096  # frames; fewer: threads cost more than they save (real files: 1.3-1.7x)


def _pair_table() -> np.ndarray:
    """Two ASCII bytes (little-endian uint16) -> ``value | printed << 8``, or 0xFFFF.

    ``value`` is 0..99 (a space counts as 0) and ``printed`` the number of
    digits among the two bytes (0..2). Valid pairs are digits or spaces with
    no space after a digit (values are right-aligned): one table lookup
    decodes, counts and checks two bytes.
    """
    codes = np.arange(256)
    digit = np.where((codes >= 48) & (codes <= 57), codes - 48, -1)
    is_space = codes == 32
    first, second = np.meshgrid(codes, codes, indexing="ij")  # first = low byte
    d1, d2 = digit[first], digit[second]
    ok1 = (d1 >= 0) | is_space[first]
    ok2 = (d2 >= 0) | is_space[second]
    ok = ok1 & ok2 & ~((d1 >= 0) & is_space[second])
    value = np.maximum(d1, 0) * 10 + np.maximum(d2, 0)
    printed = (d1 >= 0).astype(np.int64) + (d2 >= 0)
    table = np.where(ok, value | (printed << 8), 0xFFFF).astype(np.uint16)
    return table.T.reshape(-1)  # index = first + 256 * second


_PAIRS = _pair_table()
_SPACES = np.uint64(0x2020202020202020)
_VALUE_BITS = np.uint64(0x007F007F007F007F)  # the four 0..99 values of a word's pairs
_PRINTED_BITS = np.uint64(0x0300030003000300)  # their printed-digit counts
_LANES = np.uint64(0x0001000100010001)  # x * _LANES sums the four lanes into the top one
# Smallest and one-past-largest value with d printed digits (index d; 0 digits: invalid).
_LOW = np.array([1] + [0] + [10**d for d in range(1, 18)], dtype=np.int64)
_HIGH = np.array([0] + [10**d for d in range(1, 19)], dtype=np.int64)


class DecodePlan:
    """How to decode a set of fields of one layout; built once, reused per window.

    Per window of frames: copy the header rows out of the map (one strided
    copy), gather each field's one or two 8-byte words into a
    ``(frames, words)`` matrix, pad bytes outside the field with spaces, and
    look every byte pair up in a 65536-entry table that gives its value
    (0..99) or marks it invalid. Four pair values per word are then combined
    in place (SWAR). The delimiters around every value are compared with the
    template too, so a frame that does not follow the layout is flagged, never
    decoded into a wrong number. Windows are split over two threads for big
    ranges (numpy releases the GIL).
    """

    def __init__(self, layout: HeaderLayout, keys: Iterable[str]) -> None:
        self.keys = list(keys)
        self.row = layout.header_size + 1  # header text plus the '*' marker
        width = {k: layout.spans[k][1] - layout.spans[k][0] for k in self.keys}
        wide = [k for k in self.keys if width[k] > 8]
        self.order = wide + [k for k in self.keys if width[k] <= 8]
        self.n_wide = len(wide)
        words = [(layout.spans[k][1] - 8, min(width[k], 8)) for k in self.order]
        words += [(layout.spans[k][1] - 16, width[k] - 8) for k in wide]
        self.offsets = [off for off, _ in words]
        # Windows of a power of two frames, larger when fewer words are decoded: the
        # per-window numpy calls hold the GIL, so fewer, larger calls let threads overlap.
        fit = _WORDS_BYTES // (8 * max(len(words), 1))
        self.window = min(_MAX_WINDOW, max(_MIN_WINDOW, 1 << (fit.bit_length() - 1)))
        keep = np.array(
            [0xFFFFFFFFFFFFFFFF ^ ((1 << (8 * (8 - k))) - 1) for _, k in words], dtype=np.uint64
        )
        self.keep = keep
        self.fill = _SPACES & ~keep
        h = layout.header_size
        delim = {0, h - 2, h - 1, h}
        for key in self.keys:
            start, end = layout.spans[key]
            delim |= {start - 1, end}
        self.delim_pos = np.array(sorted(delim), dtype=np.int64)
        self.delim_expect = np.frombuffer(layout.template + b"*", dtype=np.uint8)[self.delim_pos]

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
        stretches of the input are finished, so callers can release pages.
        """
        out = np.empty((len(self.order), n), dtype=np.int64)
        bad = np.empty(n, dtype=bool)
        if n > _PARALLEL_ABOVE:
            from concurrent.futures import ThreadPoolExecutor

            half = n // 2
            with ThreadPoolExecutor(2) as pool:
                jobs = [
                    pool.submit(self._run, buf, base, frame_size, lo, hi, out, bad, done)
                    for lo, hi in ((0, half), (half, n))
                ]
                for job in jobs:
                    job.result()
        else:
            self._run(buf, base, frame_size, 0, n, out, bad, done)
        return {k: out[j] for j, k in enumerate(self.order)}, bad

    def _run(self, buf, base, frame_size, lo, hi, out, bad, done) -> None:
        # Words are laid out (word, frame) so every step reads and writes whole rows
        # and the result rows are copied straight into ``out`` (one row per field).
        win = min(self.window, max(hi - lo, 1))
        stretch = max(win, _RELEASE_BYTES // frame_size)
        nw, k, m = len(self.offsets), len(self.order), self.n_wide
        rows_buf = np.empty((win, self.row), dtype=np.uint8)
        row_type = np.dtype(f"V{self.row}")
        rows_void = rows_buf.view(row_type).reshape(win)
        words_buf = np.empty((nw, win), dtype=np.uint64)
        pairs_buf = np.empty((nw, win * 4), dtype=np.uint16)
        tmp_buf = np.empty((nw, win), dtype=np.uint64)
        spare_buf = np.empty((nw, win), dtype=np.uint64)
        keep, fill = self.keep[:, None], self.fill[:, None]
        released = lo
        for s in range(lo, hi, win):
            c = min(win, hi - s)
            rows = rows_buf[:c]
            # One strided copy of the header rows, then gathers from that copy: far
            # fewer TLB misses than gathering each word straight from the map. Rows are
            # copied as opaque records (one memcpy each), 1.8x faster than as byte rows.
            rows_src = (c,), row_type, buf, base + s * frame_size, (frame_size,)
            np.copyto(rows_void[:c], np.ndarray(*rows_src))
            words = words_buf[:, :c]
            for i, off in enumerate(self.offsets):
                words[i] = np.ndarray((c,), "<u8", rows, off, (self.row,))
            delims = rows[:, self.delim_pos] != self.delim_expect
            np.bitwise_and(words, keep, out=words)
            np.bitwise_or(words, fill, out=words)
            pairs = pairs_buf[:, : 4 * c]
            np.take(_PAIRS, words.view(np.uint16), out=pairs, mode="wrap")
            frame_bad = bad[s : s + c]
            frame_bad[:] = False
            if pairs.max() == 0xFFFF:  # rare: find the frames with a bad byte pair
                frame_bad |= (pairs.reshape(nw, c, 4) == 0xFFFF).any(axis=(0, 2))
            if delims.any():
                frame_bad |= delims.any(axis=1)
            value = pairs.view(np.uint64)  # four 16-bit lanes, most significant first
            printed = spare_buf[:, :c]  # digits printed per word: sum of the lanes' counts
            np.bitwise_and(value, _PRINTED_BITS, out=printed)
            np.multiply(printed, _LANES, out=printed)
            np.right_shift(printed, np.uint64(56), out=printed)
            np.bitwise_and(value, _VALUE_BITS, out=value)
            tmp = tmp_buf[:, :c]
            np.right_shift(value, np.uint64(16), out=tmp)
            np.multiply(value, np.uint64(100), out=value)
            np.add(value, tmp, out=value)
            np.bitwise_and(value, np.uint64(0x0000FFFF0000FFFF), out=value)
            np.right_shift(value, np.uint64(32), out=tmp)
            np.multiply(value, np.uint64(10000), out=value)
            np.add(value, tmp, out=value)
            np.bitwise_and(value, np.uint64(0xFFFFFFFF), out=value)
            if m:
                np.multiply(value[k:], np.uint64(100_000_000), out=tmp[:m])
                np.add(value[:m], tmp[:m], out=value[:m])
            out[:, s : s + c] = value[:k]
            # A right-aligned number without leading zeros has exactly as many digits as
            # were printed: this catches "08" and a space inside a number ("6 4").
            if m:
                np.add(printed[:m], printed[k:], out=printed[:m])
            n_digits = printed[:k]
            vals = out[:, s : s + c]
            wrong = (vals < np.take(_LOW, n_digits, mode="wrap")) | (
                vals >= np.take(_HIGH, n_digits, mode="wrap")
            )
            if wrong.any():
                frame_bad |= wrong.any(axis=0)
            if done is not None and (s + c - released >= stretch or s + c == hi):
                done(base + released * frame_size, base + (s + c) * frame_size)
                released = s + c


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


def check_template(
    buf: np.ndarray, base: int, frame_indices: np.ndarray, frame_size: int, layout: HeaderLayout
) -> np.ndarray:
    """Bool array: which of the given frames differ from the template outside value spans.

    ``buf`` is the file as a 1-D uint8 array; only the bytes compared are read.
    """
    fixed, template = layout.fixed_bytes
    starts = base + np.asarray(frame_indices, dtype=np.int64) * frame_size
    return (buf[starts[:, None] + fixed[None, :]] != template).any(axis=1)
