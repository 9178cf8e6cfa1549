"""pypff's legacy ``io`` module (``datapff``, ``hkpff``, ``qconfig``), over pfflake's reader.

Same names, arguments, return shapes, dtypes and dict layouts as pypff 1.0.4.
Every byte is read by :class:`pfflake.file.PFFFile` (no second parser), so
these differences from pypff's legacy reader are on purpose:

* **real layout** -- pypff hard-codes a 124-byte header for ph256 and 492
  bytes for every other product, and fixed byte offsets for each field
  (:data:`md_loc`). pfflake finds each file's real header size and field
  positions (any writer, any width), so img8 files, files with other
  header widths, and module files whose header is single-quabo (or the
  reverse) read correctly; pypff returns shifted pixels and garbage fields.
* **header kind** -- the metadata dict is nested (``{"quabo_0": {...}}``)
  when the file's first header is a module header and flat otherwise,
  whatever the product name says.
* ``skip`` skips frames (pypff accepts and ignores it).
* ``mode="read"`` with ``samples`` returns ``samples`` frames (pypff reads
  ``samples * frame_size / bpp`` bytes: half the frames for 2-byte pixels).
* a cut-short last frame is dropped with a :class:`~pfflake.file.PFFWarning`
  (pypff fails to reshape); a corrupt frame raises a
  :class:`~pfflake.errors.PFFError` naming file, frame and byte offset.
* ``metadata=False`` returns ``{}`` (pypff returns the previous call's dict).
* ``hkpff.readhk``: JSON numbers keep their type (pypff truncates a float to
  int); strings convert as in pypff (int, else float, else the string).
* ``qconfig``: a quabo-config value that is not a string is kept (pypff
  raises ``AttributeError``).

``data`` is a read-only zero-copy view of the memory map with
``mode="mmap"`` (the map stays alive as long as the array) and a new array
with ``mode="read"``.
"""

from __future__ import annotations

import json
import os
from glob import glob
from pathlib import Path
from typing import Any

import numpy as np

from ..file import PFFFile
from ..paths import parse_pff_name

MOBO_DIM = 16
QUABO_DIM = 32

#: pypff's hard-coded ``[start, stop)`` byte positions of each header field (ph256,
#: then module products), kept for code that reads it. pfflake does not use them:
#: it finds each file's own positions.
_PH256_LOC = {
    "quabo_num": [14, 16],
    "pkt_num": [28, 39],
    "pkt_tai": [51, 56],
    "pkt_nsec": [69, 79],
    "tv_sec": [90, 101],
    "tv_usec": [113, 120],
}
_QUABO_STEP = 122
_MODULE_LOC = {
    f"quabo_{q}": {
        k: [a + q * _QUABO_STEP, b + q * _QUABO_STEP]
        for k, (a, b) in _PH256_LOC.items()
        if k != "quabo_num"
    }
    for q in range(4)
}
loc_arr = np.array([_PH256_LOC, _MODULE_LOC], dtype=object)
md_loc: dict[str, dict[str, Any]] = {
    "ph256": _PH256_LOC,
    "ph1024": _MODULE_LOC,
    "img16": _MODULE_LOC,
    "img8": _MODULE_LOC,
}

_HK_NAMES = {"TEMP1": "DET_TEMP", "TEMP2": "FPGA_TEMP"}


def _legacy_value(v: Any) -> Any:
    """pypff legacy conversion of a string: int, else float, else the string."""
    if not isinstance(v, str):
        return v
    try:
        return int(v)
    except ValueError:
        try:
            return float(v)
        except ValueError:
            return v


class hkpff:
    """Housekeeping file reader: ``readhk()`` -> ``{device: {field: list}}``."""

    def __init__(self, fn: str = "hk.pff") -> None:
        self.fn = fn
        self.hk_info: dict[str, Any] = {}

    def readhk(self) -> dict[str, Any]:
        """Every block of the file, values appended per device and field (lists, file order).

        ``TEMP1`` becomes ``DET_TEMP`` and ``TEMP2`` ``FPGA_TEMP``. Blocks that do
        not parse are skipped (a cut-short last block is dropped with a warning).
        """
        from ..hk import iter_hk_blocks  # hk loads pyarrow; `import pypff.io` stays light

        for block in iter_hk_blocks(self.fn, strict=False, check_time=False):
            for device, fields in block.items():
                target = self.hk_info.setdefault(device, {_HK_NAMES.get(k, k): [] for k in fields})
                for k, v in fields.items():
                    target.setdefault(_HK_NAMES.get(k, k), []).append(_legacy_value(v))
        return self.hk_info


def _pixel_dtype(dp: str) -> type[np.generic]:
    return {"ph256": np.int16, "ph1024": np.int16, "img16": np.uint16}.get(dp, np.uint8)


class datapff:
    """One data file (img16, img8, ph256, ph1024) read the legacy way.

    Attributes as pypff's: ``fn``, ``startdt`` (naive UTC ``datetime``, or
    ``None`` when the name has no full start time), ``dp``, ``bpp``,
    ``module``, ``seqno``, ``dtype``, ``datasize`` (bytes per frame, the
    file's real one), ``data`` and ``metadata`` (set by :meth:`readpff`).
    """

    def __init__(self, fn: str | os.PathLike[str]) -> None:
        self.fn = fn
        name = parse_pff_name(fn)
        self._product = name.product
        self.startdt = None if name.start is None else name.start.replace(tzinfo=None)
        self.dp = name.data_product
        self.bpp = name.bpp
        self.module = name.module
        self.seqno = name.seqno
        self.dtype = _pixel_dtype(self.dp)
        self._pixels = int(np.prod(self._product.image_shape))
        self.metadata: dict[str, Any] = {}
        self.data: np.ndarray
        self._file: PFFFile | None = None

    def _open(self) -> PFFFile:
        if self._file is None:
            self._file = PFFFile(self.fn, self._product)
        return self._file

    @property
    def datasize(self) -> int:
        """Bytes per frame (header + ``*`` + pixels) of this file."""
        f = self._open()
        if f.frame_size is not None:
            return f.frame_size
        return (f.layout.header_size if f.layout else 0) + 1 + self._product.image_bytes

    def readpff(
        self,
        samples: int = -1,
        skip: int = 0,
        pixel: int = -1,
        ver: str = "qfb",
        metadata: bool = False,
        mode: str = "mmap",
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """``(data, metadata)`` of frames ``[skip, skip + samples)`` (``samples=-1``: to the end).

        ``data``: ``(frames, pixels)`` of the product's dtype (256 pixels for
        ph256, 1024 otherwise), or ``(frames,)`` for one ``pixel``. ``metadata``
        (when asked): uint64 arrays, ``{field: array}`` for single-quabo headers
        and ``{"quabo_<n>": {field: array}}`` for module headers, keys in the
        order of the file's first header. ``ver`` is accepted and unused, as in pypff.
        """
        if mode not in ("mmap", "read"):
            raise ValueError(f"mode({mode} is not supported.)")
        f = self._open()
        n = f.n_frames
        start = min(max(int(skip), 0), n)
        stop = n if samples is None or samples < 0 else min(n, start + int(samples))
        count = stop - start
        images = (
            f.images(start, count)
            if f.contiguous
            else f.gather_images(np.arange(start, stop, dtype=np.int64))
        )
        data = images.reshape(count, self._pixels)
        if mode == "read":
            data = np.array(data)
        self.data = data if pixel == -1 else data[:, pixel]
        self.metadata = self._metadata(f, start, count) if metadata and count else {}
        return self.data, self.metadata

    def _metadata(self, f: PFFFile, start: int, count: int) -> dict[str, Any]:
        first = f.header(start)
        keys = list(f.product.header_fields)
        values = f.decode(keys, start, count)
        if f.product.header_kind == "module":
            out: dict[str, Any] = {}
            for q, fields in first.items():
                if isinstance(fields, dict):
                    out[q] = {
                        k: values[f"{q}.{k}"].astype(np.uint64)
                        for k in fields
                        if f"{q}.{k}" in values
                    }
            return out
        return {k: values[k].astype(np.uint64) for k in first if k in values}


class qconfig:
    """Config files matching a glob: ``.config[stem]`` is the parsed JSON.

    ``quabo_config*`` values are converted as pypff does: ``"a,b,c,d"`` -> a
    list of 4 ints, ``"0x.."`` -> int (hex), other strings -> int.
    """

    def __init__(self, fn: str) -> None:
        self.config: dict[str, Any] = {}
        files = glob(fn)
        if not files:
            raise Exception(f"The config file({fn}) can not be found!")
        for file in files:
            key = Path(file).name[:-5]
            with open(file, "rb") as fh:
                config = json.load(fh)
            if key.startswith("quabo_config"):
                self.config[key] = {k: _register(v) for k, v in config.items()}
            else:
                self.config[key] = config


def _register(v: Any) -> Any:
    if not isinstance(v, str):
        return v
    parts = v.split(",")
    if len(parts) == 4:
        return [int(p, 16) if p.startswith("0x") else int(p, 10) for p in parts]
    return int(v, 16) if v.startswith("0x") else int(v, 10)


__all__ = ["MOBO_DIM", "QUABO_DIM", "datapff", "hkpff", "md_loc", "qconfig"]
