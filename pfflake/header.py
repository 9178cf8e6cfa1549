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
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .products import DataProduct

# A numeric value in a DAQ header: `"key":<spaces><digits>` followed by `,` or `}`.
_VALUE_RE = re.compile(rb'"(\w+)":( *-?\d+)(?=\s*[,}])')
_QUABO_RE = re.compile(rb'"(quabo_\d)"\s*:\s*\{')

_ONES = np.uint64(0x0101010101010101)
_LO = np.uint64(0x0F0F0F0F0F0F0F0F)
_HI = np.uint64(0xF0F0F0F0F0F0F0F0)
_E0 = np.uint64(0xE0E0E0E0E0E0E0E0)
_SIX = np.uint64(0x0606060606060606)
_X10 = np.uint64(0x1010101010101010)
_X30 = np.uint64(0x3030303030303030)
_M8 = np.uint64(0x00FF00FF00FF00FF)
_M16 = np.uint64(0x0000FFFF0000FFFF)
_M32 = np.uint64(0x00000000FFFFFFFF)


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

    @property
    def value_mask(self) -> np.ndarray:
        mask = np.zeros(self.header_size, dtype=bool)
        for start, end in self.spans.values():
            mask[start:end] = True
        return mask


def flatten_header(header: dict) -> dict[str, int]:
    """Flatten a parsed header to pypff's keys (``quabo_0.pkt_num``, ``pkt_num``).

    Only integer values are kept: those are the fields pfflake decodes.
    """
    flat: dict[str, int] = {}
    for key, value in header.items():
        if isinstance(value, dict):
            for sub, v in value.items():
                if isinstance(v, int) and not isinstance(v, bool):
                    flat[f"{key}.{sub}"] = v
        elif isinstance(value, int) and not isinstance(value, bool):
            flat[key] = value
    return flat


def _reject_duplicates(pairs: list[tuple[str, object]]) -> dict:
    seen: dict = {}
    for k, v in pairs:
        if k in seen:
            raise ValueError(f"duplicate key {k!r}")
        seen[k] = v
    return seen


def parse_header(raw: bytes) -> dict:
    """Parse one header's JSON text (raises ``ValueError`` with the reason).

    Duplicate keys are rejected: JSON would silently keep the last one.
    """
    text = raw.decode("ascii")  # UnicodeDecodeError is a ValueError
    header = json.loads(text, object_pairs_hook=_reject_duplicates)
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    return header


def check_fields(flat: dict[str, int], product: DataProduct) -> None:
    """Raise ``ValueError`` if a header lacks a field the product requires."""
    missing = [k for k in product.header_fields if k not in flat]
    if missing:
        raise ValueError(f"header lacks field(s) {', '.join(missing)}")


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
    for m in _VALUE_RE.finditer(header):
        key = m[1].decode()
        if product.header_kind == "module":
            owner = [name for pos, name in quabos if pos < m.start()]
            if not owner:
                return None
            key = f"{owner[-1]}.{key}"
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


def _word_view(buf, offset: int, n: int, stride: int) -> np.ndarray:
    return np.ndarray((n,), dtype="<u8", buffer=buf, offset=offset, strides=(stride,))


def _swar8(lo: np.ndarray) -> np.ndarray:
    """Eight digit nibbles (most significant in the lowest byte) -> integer."""
    lo = ((lo * np.uint64(10)) + (lo >> np.uint64(8))) & _M8
    lo = ((lo * np.uint64(100)) + (lo >> np.uint64(16))) & _M16
    return ((lo * np.uint64(10000)) + (lo >> np.uint64(32))) & _M32


def _digits_word(buf, offset: int, n: int, stride: int, nbytes: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode the last ``nbytes`` (1..8) bytes of the words ending at ``offset+8``.

    Returns ``(value, bad)``: ``bad`` marks frames whose bytes are not
    right-padded ASCII digits/spaces (a ``-`` also counts as bad here, and the
    caller re-parses such frames as JSON).
    """
    words = _word_view(buf, offset, n, stride)
    keep = np.uint64(0xFFFFFFFFFFFFFFFF ^ ((1 << (8 * (8 - nbytes))) - 1))
    a = (words ^ _X30) & keep
    hi = a & _HI
    lo = a & _LO
    bad = (hi & _E0) | ((lo + _SIX) & _X10) | (((hi >> np.uint64(4)) * np.uint64(15)) & lo)
    return _swar8(lo), bad != 0


def decode_fixed(
    buf, base: int, n: int, frame_size: int, layout: HeaderLayout, keys: Iterable[str]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Decode ``keys`` for ``n`` consecutive frames starting at byte ``base`` of ``buf``.

    Returns ``(values, bad)``: int64 arrays per key and a bool array marking
    frames whose delimiters or value bytes do not match the layout (their
    values are meaningless; re-parse those frames with :func:`parse_header`).
    """
    out: dict[str, np.ndarray] = {}
    bad = check_delimiters(buf, base, n, frame_size, layout)
    for key in keys:
        start, end = layout.spans[key]
        width = end - start
        value, b = _digits_word(buf, base + end - 8, n, frame_size, min(width, 8))
        bad |= b
        if width > 8:
            high, b = _digits_word(buf, base + end - 16, n, frame_size, width - 8)
            bad |= b
            value += high * np.uint64(100_000_000)
        out[key] = value.view(np.int64)
        before = np.ndarray((n,), np.uint8, buf, base + start - 1, (frame_size,))
        after = np.ndarray((n,), np.uint8, buf, base + end, (frame_size,))
        bad |= (before != ord(":")) | ((after != ord(",")) & (after != ord("}")))
    return out, bad


def check_delimiters(buf, base: int, n: int, frame_size: int, layout: HeaderLayout) -> np.ndarray:
    """Bool array: frames whose ``{`` start, blank line or ``*`` marker are not in place."""
    h = layout.header_size

    def at(pos: int) -> np.ndarray:
        return np.ndarray((n,), np.uint8, buf, base + pos, (frame_size,))

    return (at(0) != ord("{")) | (at(h - 2) != 10) | (at(h - 1) != 10) | (at(h) != ord("*"))


def check_template(buf, base: int, frame_indices: np.ndarray, frame_size: int,
                   layout: HeaderLayout) -> np.ndarray:
    """Bool array: which of the given frames differ from the template outside value spans."""
    h = layout.header_size
    template = np.frombuffer(layout.template, dtype=np.uint8)
    fixed = ~layout.value_mask
    rows = np.ndarray((int(frame_indices.max()) + 1 if len(frame_indices) else 0, h), np.uint8,
                      buf, base, (frame_size, 1))
    sample = rows[frame_indices]
    return (sample[:, fixed] != template[fixed]).any(axis=1)
