"""PFFSequence: one stream (data product, module) across its seqno files.

Same public API and semantics as pypff's ``PFFSequence`` (``seq[i]``,
``iter_batches``, ``iter_byte_range``, ``read_images``,
``get_metadata_arrays``, ``timestamps``, ``seek_time``, ...), with these
deliberate differences, each pinned by a test:

* every timestamp is int64 ns by the WR/host rule, module frames take the
  first quabo that sent a packet, and :meth:`PFFSequence.timestamp_quality`
  flags desync / no-WR / missing quabos instead of guessing silently;
* ``iter_byte_range`` gives each frame to the range holding its first byte,
  so adjacent ranges cover every frame exactly once;
* arrays that view the memory map keep it alive: views survive ``close()``,
  pickling round trips and garbage collection of the sequence;
* unknown metadata keys and out-of-range indices raise instead of returning
  zeros or uninitialised memory; damaged frames raise a
  :class:`~pfflake.errors.PFFError` naming file, frame and byte offset
  (``strict=False`` skips them and reports them in :meth:`info`).
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import itertools
import operator
import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import FileNameError, PFFError, PFFFormatError
from .file import PFFFile, file_info
from .header import parse_header
from .paths import PFFName, parse_pff_name
from .products import DataProduct, get_product
from .reader_info import FileInfo, SequenceInfo
from .sequence_meta import TIME_QUALITY, UNIX_T_NS, SequenceMetadata
from .sequence_stream import SequenceStreaming
from .timestamps import QUALITY_NAMES


def _parse_name(path: Path) -> tuple[int, Path, PFFName | PFFError]:
    """``(seqno, path, parsed name)``; a name that does not parse sorts as seqno 0 and
    carries its error (raised later unless the caller named the product)."""
    try:
        name = parse_pff_name(path)
    except PFFError as e:
        return 0, path, e
    return name.seqno, path, name


class PFFSequence(SequenceMetadata, SequenceStreaming):
    """Time-ordered frames of one data product and module, across seqno files.

    Parameters
    ----------
    file_paths:
        The stream's files, any order (sorted by ``seqno``).
    max_open_files:
        Memory maps kept open at once (least recently used are closed; arrays
        already handed out stay valid).
    strict:
        ``True``: damaged frames raise. ``False``: skipped and reported.
    data_product:
        Product name for files whose names do not say it (e.g. renamed files).
    verify:
        ``"sample"`` (default): strict reads validate the frames they decode:
        every byte outside the value spans (key names, delimiters) of each
        frame, and the digits of every field a call returns (``timestamps()``
        does not check the digits of fields it does not need). ``"full"``:
        every header of every file is validated at open
        (about the cost of one ``get_metadata_arrays`` of all fields), so a
        corrupt byte anywhere raises before anything is returned.
    """

    def __init__(
        self,
        file_paths: Sequence[str | os.PathLike],
        max_open_files: int = 16,
        *,
        strict: bool = True,
        data_product: str | None = None,
        verify: str = "sample",
    ) -> None:
        paths = [p if isinstance(p, Path) else Path(p) for p in file_paths]  # no re-parse
        if not paths:
            raise ValueError("No files provided.")
        if len(paths) == 1:  # the common script's open: nothing to sort
            parsed = [_parse_name(paths[0])]
        else:
            parsed = sorted((_parse_name(p) for p in paths), key=operator.itemgetter(0))
        self.file_paths = [p for _, p, _ in parsed]
        self.strict = strict
        self.max_open_files = max_open_files
        names = []
        for _, _, name in parsed:  # each name parsed once: for the seqno order and here
            if isinstance(name, Exception):
                if data_product is None or not isinstance(name, FileNameError):
                    raise name
                name = None
            names.append(name)
        streams = {n.stream for n in names if n is not None} if len(names) > 1 else ()
        if len(streams) > 1:
            raise FileNameError(
                f"files of different streams in one sequence: {sorted(streams)}",
                path=self.file_paths[0],
            )
        first = names[0]
        self.product: DataProduct = (
            get_product(data_product) if data_product else first.product  # type: ignore[union-attr]
        )
        self.name = self.file_paths[0].name.split(".seqno")[0]
        self.meta: dict[str, Any] = first.as_meta() if first else {"dp": self.product.name}
        self.module: int | None = first.module if first else None
        if verify not in ("sample", "full"):
            raise ValueError(f"verify must be 'sample' or 'full', got {verify!r}")
        self._files = [
            PFFFile(p, self.product, strict=strict, verify=verify) for p in self.file_paths
        ]
        # The header kind is each file's own (first header), not the product's.
        kinds = {f.product.header_kind: f for f in self._files if f.n_frames}
        if len(kinds) > 1:
            raise PFFFormatError(
                "files of one stream hold different header kinds (module and single-quabo)",
                path=kinds["quabo"].path,
            )
        if kinds:
            self.product = next(iter(kinds.values())).product
        self._file_frame_counts = [f.n_frames for f in self._files]
        self._cumulative_frames = list(itertools.accumulate(self._file_frame_counts))
        self._total_frames = self._cumulative_frames[-1]
        self._open: OrderedDict[int, None] = OrderedDict()
        self._ts: np.ndarray | None = None
        self._quality: np.ndarray | None = None
        self._is_monotonic: bool | None = None
        # Indexing mapped each file: keep the first max_open_files maps (the LRU's
        # share) instead of unmapping them to map them again on first read.
        for i, f in enumerate(self._files):
            if i < max_open_files and f.size:
                self._open[i] = None
            else:
                f.close()

    # -- pypff-compatible attributes ------------------------------------------

    @property
    def data_product(self) -> str:
        return self.product.name

    @property
    def frame_config(self):
        """pypff's ``FrameConfig`` for the first file with a fixed layout (else ``None``)."""
        from .models import FrameConfig  # lazy: keeps pydantic out of `import pfflake`

        f = next((f for f in self._files if f.layout is not None), None)
        if f is None:
            return None
        return FrameConfig(
            header_size=f.layout.header_size,
            payload_size=self.product.image_bytes,
            frame_size=f.frame_size,
            image_shape=self.product.image_shape,
            dtype_str=self.product.dtype.name,
            bytes_per_pixel=self.product.bytes_per_pixel,
            format_name=self.product.name,
        )

    @property
    def header_size(self) -> int:
        f = next((f for f in self._files if f.layout is not None), None)
        return f.layout.header_size if f else 0

    @property
    def metadata_offsets(self) -> dict[str, tuple[int, int]]:
        """Byte span of each header field within a frame (fixed-layout files)."""
        f = next((f for f in self._files if f.layout is not None), None)
        return dict(f.layout.spans) if f else {}

    @property
    def files(self) -> list[PFFFile]:
        return list(self._files)

    # -- lifetime ---------------------------------------------------------------

    def __enter__(self) -> PFFSequence:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def close(self) -> None:
        """Release every memory map. Arrays already handed out stay valid."""
        for f in getattr(self, "_files", []):
            f.close()
        if hasattr(self, "_open"):
            self._open.clear()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_open"] = OrderedDict()
        return state

    def _file(self, idx: int) -> PFFFile:
        """The file, with its map counted in the LRU of open maps."""
        self._open[idx] = None
        self._open.move_to_end(idx)
        while len(self._open) > self.max_open_files:
            old, _ = self._open.popitem(last=False)
            self._files[old].close()
        return self._files[idx]

    # -- indexing ---------------------------------------------------------------

    def __len__(self) -> int:
        return self._total_frames

    def _normalize(self, indices: Any) -> np.ndarray:
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (self._total_frames,):
                raise IndexError("boolean index must have one entry per frame")
            return np.flatnonzero(idx)
        if idx.size and not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"frame indices must be integers, got {idx.dtype}")
        idx = idx.astype(np.int64, copy=True).reshape(-1)
        idx[idx < 0] += self._total_frames
        if idx.size and (idx.min() < 0 or idx.max() >= self._total_frames):
            raise IndexError(f"frame index out of range [0, {self._total_frames})")
        return idx

    def _locate_one(self, idx: Any) -> tuple[int, int]:
        """``(file, local frame)`` of one frame index (negative counts from the end): the
        per-call path of ``seq[i]`` / ``get_frame``, without numpy temporaries."""
        i = operator.index(idx)
        n = self._total_frames
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"frame {idx} out of range [0, {n})")
        f = bisect.bisect_right(self._cumulative_frames, i)
        return f, i - (self._cumulative_frames[f - 1] if f else 0)

    @functools.cached_property
    def _starts(self) -> np.ndarray:
        """First global frame of each file, and the total (int64): built on first use,
        from the frame counts the open fixed (numpy calls cost on every open)."""
        return np.array([0, *self._cumulative_frames], dtype=np.int64)

    def _locate(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        file_idx = np.searchsorted(self._starts, idx, side="right") - 1
        return file_idx, idx - self._starts[file_idx]

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            fi, local = self._locate_one(key)
            return self._file(fi).image(local)
        if isinstance(key, slice):
            return self.read_images(np.arange(*key.indices(self._total_frames)))
        if isinstance(key, (list, tuple, np.ndarray)):
            return self.read_images(key)
        raise TypeError(f"Invalid index type: {type(key)}")

    def __iter__(self) -> Iterator[np.ndarray]:
        """Each frame's image in order (zero-copy views where the layout allows)."""
        for batch in self.iter_batches(256):
            yield from batch

    # -- images -----------------------------------------------------------------

    def read_images(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Images of the given frames as a new ``(N, H, W)`` array, in request order.

        Duplicates and negative indices are allowed; reads go in file order.
        """
        idx = self._normalize(indices)
        out = np.empty((len(idx), *self.product.image_shape), dtype=self.product.dtype)
        if not len(idx):
            return out
        order = np.argsort(idx, kind="stable")
        fidx, local = self._locate(idx[order])
        for f in np.unique(fidx):
            sel = fidx == f
            pos = order[sel]
            loc = local[sel]
            out[pos] = self._file(int(f)).gather_images(loc)
        return out

    def read_images_range(self, start: int = 0, count: int | None = None) -> np.ndarray:
        """Images of frames [start, start+count) as a new array (clipped at the end)."""
        if start < 0:
            start += self._total_frames
        start = max(0, min(start, self._total_frames))
        stop = self._total_frames if count is None else min(start + count, self._total_frames)
        out = np.empty((max(stop - start, 0), *self.product.image_shape), self.product.dtype)
        pos = 0
        for f, lo, hi in self._file_spans(start, stop):
            out[pos : pos + hi - lo] = self._file(f).images(lo, hi - lo)
            pos += hi - lo
        return out

    def _file_spans(self, start: int, stop: int) -> Iterator[tuple[int, int, int]]:
        """(file index, local start, local stop) covering global frames [start, stop)."""
        for f, n in enumerate(self._file_frame_counts):
            s = int(self._starts[f])
            lo, hi = max(start, s), min(stop, s + n)
            if hi > lo:
                yield f, lo - s, hi - s

    # -- frames -----------------------------------------------------------------

    def get_frame(self, idx: int) -> tuple[dict[str, Any], np.ndarray]:
        """``(header dict, image view)`` of one frame; the header is a fresh parse."""
        fi, local = self._locate_one(idx)
        pf = self._file(fi)
        return pf.header(local), pf.image(local)

    def get_frame_validated(self, idx: int):
        """``(pydantic header, image view)``: ``ModuleHeader`` or ``QuaboHeader``."""
        from .models import ModuleHeader, QuaboHeader  # lazy: pydantic, as above

        header, image = self.get_frame(idx)
        if "quabo_0" in header:
            return ModuleHeader(**header), image
        if "quabo_num" in header:
            return QuaboHeader(**header), image
        return header, image

    def print_metadata_offsets(self) -> None:
        print(f"Metadata Byte Offsets for {self.name}:")
        for key, (start, end) in sorted(self.metadata_offsets.items()):
            print(f"  {key}: bytes {start}-{end} (width {end - start})")

    def verify_metadata_offsets(self, num_frames: int = 100) -> bool:
        """Compare the vectorised decode with a JSON parse of the first ``num_frames``."""
        if self._total_frames == 0:
            raise RuntimeError("Cannot verify: sequence is empty.")
        n = min(num_frames, self._total_frames)
        fields = list(self.product.header_fields)
        fast = self.get_metadata_arrays(fields, indices=np.arange(n))
        for i in range(n):
            header, _ = self.get_frame(i)
            for k in fields:
                parent, _, child = k.rpartition(".")
                value = header[parent][child] if parent else header[k]
                if value != fast[k][i]:
                    return False
        return True

    # -- Arrow ------------------------------------------------------------------

    def to_arrow(self, batch_size: int = 65_536, images: bool = True, stats: bool = True):
        """Frames as a streaming ``pyarrow.RecordBatchReader`` (schema: :mod:`pfflake.schema`).

        Header fields become columns, the image a ``fixed_shape_tensor``
        column; memory is bounded by ``batch_size``.
        """
        from .arrow import to_arrow  # lazy: keeps pyarrow out of `import pfflake`

        return to_arrow(self, batch_size=batch_size, images=images, stats=stats)

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        """Arrow PyCapsule stream: ``polars.from_arrow(seq)``, ``duckdb.sql("... from seq")``."""
        from .arrow import arrow_c_stream  # lazy: pyarrow, as above

        return arrow_c_stream(self, requested_schema)

    # -- reporting --------------------------------------------------------------

    def info(self) -> SequenceInfo:
        """What the sequence holds and what is wrong with it; never raises."""
        info = SequenceInfo(
            self.name,
            self.product.name,
            self.module,
            self._total_frames,
            [f.info() for f in self._files],
        )
        try:
            if self._total_frames:
                ts = self.timestamps()
                info.first_unix_t_ns, info.last_unix_t_ns = int(ts.min()), int(ts.max())
                q = self.timestamp_quality()
                info.quality_counts = {
                    name: int(np.count_nonzero(q & bit)) for bit, name in QUALITY_NAMES.items()
                }
        except (PFFError, OSError, ValueError) as e:
            info.error = str(e)
        return info

    def __repr__(self) -> str:
        return (
            f"PFFSequence({self.name!r}, files={len(self._files)}, "
            f"frames={self._total_frames}, product={self.product.name})"
        )


def sequence_info(paths: Sequence[str | os.PathLike]) -> SequenceInfo:
    """:meth:`PFFSequence.info` for paths that may not even open; never raises."""
    try:
        seq = PFFSequence(paths, strict=False)
    except (PFFError, OSError, ValueError) as e:
        first = Path(paths[0]) if paths else Path("?")
        try:
            product = parse_pff_name(first).product
            files = [file_info(p, product) for p in paths]
        except PFFError:
            files = []
        return SequenceInfo(first.name, None, None, 0, files, error=str(e))
    try:
        return seq.info()
    finally:
        seq.close()


__all__ = [
    "TIME_QUALITY",
    "UNIX_T_NS",
    "FileInfo",
    "PFFSequence",
    "SequenceInfo",
    "parse_header",
    "sequence_info",
]
