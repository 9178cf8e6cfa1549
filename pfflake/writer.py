"""Write PFF files: the DAQ's exact fixed-width layout, or compact JSON headers.

Reading and writing are symmetric: a file parsed by a reader and written back
here is byte-for-byte the original (tested on the real sample files).

The DAQ prints every header with printf widths (``pkt_num`` %10u,
``pkt_tai`` %4u, ``pkt_nsec`` %9u, ``tv_sec`` %10li, ``tv_usec`` %6li,
``quabo_num`` %1u), so all frames of a DAQ file have the same length and each
number sits at the same byte offset. :class:`FixedLayout` describes that
layout once; the scalar path (:meth:`PFFWriter.write_frame`) formats it with
the DAQ's printf string and the bulk path (:meth:`PFFWriter.write_frames`)
fills a template with numpy digit arrays (several GB/s of header bytes).

Header field units: ``pkt_nsec`` ns within the White Rabbit second,
``pkt_tai`` low 10 bits of WR TAI seconds, ``tv_sec`` s and ``tv_usec`` us of
the DAQ host's UNIX clock, ``pkt_num`` a per-quabo packet counter.

A value that does not fit its printf width (or is negative) raises
``ValueError``: printf would widen the field and shift every later byte, a
file no fixed-layout reader can trust.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import numpy as np

from .errors import FileNameError
from .paths import parse_pff_name
from .products import FIELD_DTYPES, FIELD_WIDTHS, QUABO_FIELDS, DataProduct, get_product

#: Largest value each header field may take: the printf width and the field's dtype both bound it.
FIELD_MAX: dict[str, int] = {
    name: min(10**width - 1, int(np.iinfo(FIELD_DTYPES[name]).max))
    for name, width in FIELD_WIDTHS.items()
}

#: printf conversion of each field in the DAQ's format string (after the width).
_PRINTF = {
    "quabo_num": "u",
    "pkt_num": "u",
    "pkt_tai": "u",
    "pkt_nsec": "u",
    "tv_sec": "li",
    "tv_usec": "li",
}

#: Bytes per ``write`` call: a few MB keeps each kernel copy cache-sized.
_WRITE_SLICE_BYTES = 4 << 20

#: Frames per internal block of :meth:`PFFWriter.write_frames` (bounds its memory).
DEFAULT_CHUNK_FRAMES = 8192


def _base_field(key: str) -> str:
    """``quabo_2.tv_sec`` -> ``tv_sec``."""
    return key.rpartition(".")[2]


@dataclass(frozen=True)
class FixedLayout:
    """The DAQ's fixed-width header layout of one data product.

    ``template`` is the header bytes up to and including the ``*`` image
    marker with every number blanked to spaces; ``spans`` maps each dotted
    field key (``quabo_0.pkt_num`` or ``pkt_num``) to its ``(offset, width)``
    in the header; ``printf`` is the DAQ's C format string and ``pyformat``
    its Python ``%`` equivalent, one conversion per key in ``keys`` order.
    """

    product: DataProduct
    keys: tuple[str, ...]
    template: bytes
    spans: dict[str, tuple[int, int]]
    printf: str
    pyformat: str

    @property
    def header_bytes(self) -> int:
        """Header length including the blank line and the ``*`` marker."""
        return len(self.template)

    @property
    def frame_bytes(self) -> int:
        return len(self.template) + self.product.image_bytes


def _packet_pieces(prefix: str, fields: tuple[str, ...]) -> list[str | tuple[str, int]]:
    pieces: list[str | tuple[str, int]] = ["{ "]
    for i, name in enumerate(fields):
        pieces.append(f'"{name}": ' if i == 0 else f', "{name}": ')
        pieces.append((prefix + name, FIELD_WIDTHS[name]))
    pieces.append("}")
    return pieces


@cache
def fixed_layout(data_product: str) -> FixedLayout:
    """The DAQ layout of ``data_product`` (module products: 4 quabo lines; ph256: one line)."""
    product = get_product(data_product)
    pieces: list[str | tuple[str, int]]
    if product.header_kind == "module":
        pieces = ["{\n"]
        for q in range(4):
            pieces.append(f'   "quabo_{q}": ')
            pieces += _packet_pieces(f"quabo_{q}.", QUABO_FIELDS)
            pieces.append(", \n" if q < 3 else "\n}")
    else:
        pieces = _packet_pieces("", ("quabo_num", *QUABO_FIELDS))
    pieces.append("\n\n*")

    template, printf, pyformat, spans = bytearray(), [], [], {}
    for piece in pieces:
        if isinstance(piece, str):
            template += piece.encode()
            printf.append(piece)
            pyformat.append(piece.replace("%", "%%"))
        else:
            key, width = piece
            spans[key] = (len(template), width)
            template += b" " * width
            printf.append(f"%{width}{_PRINTF[_base_field(key)]}")
            pyformat.append(f"%{width}d")
    return FixedLayout(
        product, tuple(spans), bytes(template), spans, "".join(printf), "".join(pyformat)
    )


# ---------------------------------------------------------------------------- header checks


def flatten_header(
    header: Mapping[str, Any], product: DataProduct, frame: int = 0
) -> dict[str, int]:
    """A header as ``{dotted key: int}`` in the product's canonical field order.

    Accepts pypff-style nested module headers (``{"quabo_0": {"pkt_num": ...}}``),
    already-dotted keys, or a flat ph256 header. Missing, unexpected,
    non-integer, negative or too-wide values raise ``ValueError``/``TypeError``
    naming ``frame``.
    """
    flat: dict[str, Any] = {}
    for key, value in header.items():
        if isinstance(value, Mapping):
            for sub_key, sub_value in value.items():
                flat[f"{key}.{sub_key}"] = sub_value
        else:
            flat[key] = value
    expected = product.header_fields
    missing = [k for k in expected if k not in flat]
    extra = [k for k in flat if k not in expected]
    if missing or extra:
        raise ValueError(
            f"frame {frame}: {product.name} header fields do not match: "
            f"missing {missing}, unexpected {extra}"
        )
    out = {}
    for key in expected:
        try:
            if isinstance(flat[key], bool):
                raise TypeError
            value = operator.index(flat[key])
        except TypeError:
            raise TypeError(
                f"frame {frame}: header field {key} must be an integer, "
                f"got {type(flat[key]).__name__} {flat[key]!r}"
            ) from None
        _check_range(key, np.array([value]), frame)
        out[key] = value
    return out


def _check_range(key: str, values: np.ndarray, first_frame: int) -> None:
    """Raise naming the first frame whose ``key`` value does not fit the DAQ printf width."""
    name = _base_field(key)
    if values.size and (values.min() < 0 or values.max() > FIELD_MAX[name]):
        i = int(np.flatnonzero((values < 0) | (values > FIELD_MAX[name]))[0])
        raise ValueError(
            f"frame {first_frame + i}: header field {key} = {values[i]} does not fit its "
            f"DAQ format %{FIELD_WIDTHS[name]}{_PRINTF[name]} (allowed 0..{FIELD_MAX[name]})"
        )


def check_header_arrays(
    header_arrays: Mapping[str, np.ndarray],
    product: DataProduct,
    n_frames: int,
    first_frame: int = 0,
) -> dict[str, np.ndarray]:
    """Validate bulk header columns: every field present, integer, length ``n_frames``, in range.

    Returns int64 arrays (views when the input already is int64). Errors name
    the offending frame counting from ``first_frame``.
    """
    expected = product.header_fields
    missing = [k for k in expected if k not in header_arrays]
    extra = [k for k in header_arrays if k not in expected]
    if missing or extra:
        raise ValueError(
            f"{product.name} header arrays do not match: missing {missing}, unexpected {extra}"
        )
    out = {}
    for key in expected:
        column = np.asarray(header_arrays[key])
        if column.dtype.kind not in "iu":
            raise TypeError(f"header array {key} must have an integer dtype, got {column.dtype}")
        if column.shape != (n_frames,):
            raise ValueError(
                f"header array {key} has shape {column.shape}, expected ({n_frames},) "
                "(one value per image)"
            )
        _check_range(key, column, first_frame)
        out[key] = column.astype(np.int64, copy=False)
    return out


def check_images(images: np.ndarray, product: DataProduct, *, single: bool = False) -> np.ndarray:
    """Images as a C-contiguous array of the product's exact dtype; never casts silently."""
    images = np.asarray(images)
    shape = product.image_shape if single else (*images.shape[:1], *product.image_shape)
    if images.dtype != product.dtype:
        raise ValueError(
            f"{product.name} pixels must be {product.dtype} ({product.dtype.str}), "
            f"got {images.dtype} ({images.dtype.str}); cast explicitly if intended"
        )
    if images.ndim != len(shape) or images.shape != shape:
        want = "x".join(map(str, product.image_shape))
        raise ValueError(
            f"{product.name} image{'' if single else 's'} must have shape "
            f"{'' if single else '(N, '}{want}{'' if single else ')'}, got {images.shape}"
        )
    return np.ascontiguousarray(images)


# ---------------------------------------------------------------------------- encoders


def _ascii4(fmt: str) -> np.ndarray:
    """4-digit groups 0..9999 formatted with ``fmt`` as packed little-endian uint32 ASCII."""
    codes = [int.from_bytes(format(k, fmt).encode(), "little") for k in range(10_000)]
    return np.array(codes, "<u4")


_ZERO_PADDED = _ascii4("04d")  # a group below a nonzero higher group: "0042"
_SPACE_PADDED = _ascii4("4d")  # the lowest group of a value: "  42", "   0"
_BLANK_ZERO = _SPACE_PADDED.copy()  # a group all of whose higher groups are zero: "  42", "    "
_BLANK_ZERO[0] = int.from_bytes(b"    ", "little")


def ascii_right_aligned(values: np.ndarray, width: int) -> np.ndarray:
    """``(N, width)`` uint8: each value as printf ``%<width>d`` (right-aligned, space padded).

    Works in base-10000 groups through 4-byte ASCII lookup tables (a few ns per
    value). Values must be non-negative and below ``10**width`` (the callers check).
    """
    values = np.asarray(values, dtype=np.int64)
    groups = -(-width // 4)
    packed = np.empty((len(values), groups), "<u4")
    rest = values
    for g in range(groups - 1, -1, -1):
        low = rest % 10_000
        rest = rest // 10_000
        higher_all_zero = values < 10 ** (4 * (groups - g))
        table = _SPACE_PADDED if g == groups - 1 else _BLANK_ZERO
        packed[:, g] = np.where(higher_all_zero, table[low], _ZERO_PADDED[low])
    return packed.view(np.uint8)[:, 4 * groups - width :]


def encode_header(values: Mapping[str, int], product: DataProduct, *, fixed_width: bool) -> bytes:
    """One frame's header bytes up to and including ``*`` (values already checked)."""
    if fixed_width:
        layout = fixed_layout(product.name)
        return (layout.pyformat % tuple(values[k] for k in layout.keys)).encode()
    if product.header_kind == "module":
        nested: dict[str, dict[str, int]] = {}
        for key, value in values.items():
            quabo, _, name = key.partition(".")
            nested.setdefault(quabo, {})[name] = value
        return json.dumps(nested).encode() + b"\n\n*"
    return json.dumps(dict(values)).encode() + b"\n\n*"


# ---------------------------------------------------------------------------- writer


class PFFWriter:
    """Write one PFF data file, frame by frame or in vectorised blocks.

    ``data_product`` defaults to the product in ``path``'s name; giving one
    that contradicts a PFF file name raises (readers take the geometry from
    the name). ``fixed_width=True`` reproduces the DAQ's byte layout;
    ``fixed_width=False`` writes compact ``json.dumps`` headers as other
    writers do, so frame lengths vary. ``append=True`` adds to an existing file.

    Use as a context manager; :attr:`frames_written` and :attr:`bytes_written`
    count this writer's output.
    """

    def __init__(
        self,
        path: str | Path,
        data_product: str | None = None,
        *,
        fixed_width: bool = True,
        append: bool = False,
        chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    ) -> None:
        self.path = Path(path)
        self.product = _product_for(self.path, data_product)
        self.fixed_width = fixed_width
        self.chunk_frames = max(1, int(chunk_frames))
        self.frames_written = 0
        self.bytes_written = 0
        self._buffer: np.ndarray | None = None
        self._file: BinaryIO | None = open(self.path, "ab" if append else "wb")  # noqa: SIM115

    # context manager -------------------------------------------------------
    def __enter__(self) -> PFFWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._buffer = None

    @property
    def layout(self) -> FixedLayout:
        return fixed_layout(self.product.name)

    def _out(self) -> BinaryIO:
        if self._file is None:
            raise ValueError(f"PFFWriter for {self.path} is closed")
        return self._file

    @contextmanager
    def _in_file(self) -> Iterator[None]:
        """Prefix check errors with this writer's path (same exception type)."""
        try:
            yield
        except (ValueError, TypeError) as error:
            raise type(error)(f"file {self.path}, {error}") from None

    def _emit(self, data: bytes | memoryview, n_frames: int) -> None:
        out = self._out()
        view = memoryview(data).cast("B")
        for start in range(0, len(view), _WRITE_SLICE_BYTES):
            out.write(view[start : start + _WRITE_SLICE_BYTES])
        self.frames_written += n_frames
        self.bytes_written += len(view)

    # scalar path -----------------------------------------------------------
    def encode_frame(self, header: Mapping[str, Any], image: np.ndarray) -> bytes:
        """One frame's bytes (header, ``*``, pixels) without writing them."""
        with self._in_file():
            values = flatten_header(header, self.product, self.frames_written)
            pixels = check_images(image, self.product, single=True)
        return encode_header(values, self.product, fixed_width=self.fixed_width) + pixels.tobytes()

    def write_frame(self, header: Mapping[str, Any], image: np.ndarray) -> None:
        """Append one frame. ``header``: nested or dotted module header, or flat ph256 header."""
        self._emit(self.encode_frame(header, image), 1)

    def write_partial_frame(
        self, header: Mapping[str, Any], image: np.ndarray, keep_bytes: int
    ) -> None:
        """Append the first ``keep_bytes`` bytes of a frame, as when recording stops mid-frame."""
        frame = self.encode_frame(header, image)
        if not 0 < keep_bytes < len(frame):
            raise ValueError(f"keep_bytes must be in 1..{len(frame) - 1}, got {keep_bytes}")
        self._out().write(frame[:keep_bytes])
        self.bytes_written += keep_bytes

    # bulk path -------------------------------------------------------------
    def write_frames(self, header_arrays: Mapping[str, np.ndarray], images: np.ndarray) -> None:
        """Append ``len(images)`` frames from header columns (dotted keys -> ``(N,)`` ints).

        Fixed-width mode is vectorised: numpy fills a reused frame template in
        blocks of ``chunk_frames`` frames, so memory stays bounded whatever N.
        Compact mode formats JSON per frame (slow; meant for tests).
        """
        with self._in_file():
            images = check_images(images, self.product)
            columns = check_header_arrays(
                header_arrays, self.product, len(images), self.frames_written
            )
        if not self.fixed_width:
            keys = self.product.header_fields
            for i in range(len(images)):
                values = {k: int(columns[k][i]) for k in keys}
                header = encode_header(values, self.product, fixed_width=False)
                self._emit(header + images[i].tobytes(), 1)
            return
        for start in range(0, len(images), self.chunk_frames):
            stop = min(start + self.chunk_frames, len(images))
            block = self._fill_block(
                {k: c[start:stop] for k, c in columns.items()}, images[start:stop]
            )
            self._emit(memoryview(block), stop - start)

    def _fill_block(self, columns: Mapping[str, np.ndarray], images: np.ndarray) -> np.ndarray:
        layout = self.layout
        n = len(images)
        if self._buffer is None or len(self._buffer) < n:
            self._buffer = np.empty((max(n, self.chunk_frames), layout.frame_bytes), np.uint8)
            self._buffer[:, : layout.header_bytes] = np.frombuffer(layout.template, np.uint8)
        block = self._buffer[:n]
        for key, (offset, width) in layout.spans.items():
            block[:, offset : offset + width] = ascii_right_aligned(columns[key], width)
        block[:, layout.header_bytes :] = images.reshape(n, -1).view(np.uint8)
        return block


def _product_for(path: Path, data_product: str | None) -> DataProduct:
    try:
        named = parse_pff_name(path).product
    except FileNameError:
        named = None
    if data_product is None:
        if named is None:
            raise ValueError(
                f"{path.name} is not a PFF data file name; pass data_product= explicitly"
            )
        return named
    product = get_product(data_product)
    if named is not None and named != product:
        raise ValueError(
            f"data_product {product.name!r} contradicts the file name {path.name} "
            f"(dp_{named.name}); readers take the geometry from the name"
        )
    return product


def write_pff(
    path: str | Path,
    header_arrays: Mapping[str, np.ndarray],
    images: np.ndarray,
    data_product: str | None = None,
    *,
    fixed_width: bool = True,
) -> Path:
    """Write a whole PFF file in one call (see :class:`PFFWriter`); returns the path."""
    with PFFWriter(path, data_product, fixed_width=fixed_width) as writer:
        writer.write_frames(header_arrays, images)
    return writer.path


# ---------------------------------------------------------------------------- housekeeping


def hk_block(device: str, fields: Mapping[str, Any]) -> bytes:
    """One hk.pff text block: ``{"<device>": {"FIELD": "value", ...}}`` and a blank line.

    Values are stored as strings, as the DAQ does; ints and floats are
    converted with ``str``; anything else raises ``TypeError``.
    """
    if not isinstance(device, str) or not device:
        raise ValueError(f"hk device name must be a non-empty string, got {device!r}")
    as_text = {}
    for name, value in fields.items():
        if isinstance(value, bool) or not isinstance(value, str | int | float | np.number):
            raise TypeError(
                f"hk field {device}.{name} must be a string or number, got {type(value).__name__}"
            )
        as_text[str(name)] = value if isinstance(value, str) else str(value)
    return json.dumps({device: as_text}).encode() + b"\n\n"


def write_hk(
    path: str | Path,
    records: Iterable[tuple[str, Mapping[str, Any]] | Mapping[str, Mapping[str, Any]]],
    *,
    append: bool = False,
) -> Path:
    """Write hk.pff text blocks. ``records``: ``(device, fields)`` pairs or ``{device: fields}``.

    Field values are written as strings (``Computer_UTC`` in s since the epoch,
    temperatures in degrees C, ...); returns the path.
    """
    path = Path(path)
    with open(path, "ab" if append else "wb") as out:
        for record in records:
            pairs = record.items() if isinstance(record, Mapping) else [record]
            for device, fields in pairs:
                out.write(hk_block(device, fields))
    return path
