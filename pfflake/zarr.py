"""Zarr v3 stores in pypff's layout ("spec 1.1"): write them fast, read them back.

One store per stream, ``<run_dir_name>.<stream>.zarr``, with every array at
the root so ``xarray.open_zarr`` sees them all::

    images          (T, H, W)  pixel dtype       time-chunked, ~8 MB per chunk
    unix_t_ns       (T,)       int64             ns since the UNIX epoch
    time_quality    (T,)       uint8             pfflake only: timestamp flags
    pkt_num ...     (T,)       uint32 ...        ph256 header fields
    quabo_0_pkt_num (T,)       uint32 ...        module header fields (quabo_<i>_<field>)

plus a ``<run_dir_name>.panoseti-meta/`` sidecar (configs, logs, manifests,
sentinels, hk.pff). pypff's ``PanosetiZarrRun`` reads pfflake's stores and
:class:`PanosetiZarrRun` here reads pypff's.

Differences from pypff's ``convert_run``, on purpose:

* ``unix_t_ns`` follows :mod:`pfflake.timestamps` (first quabo that sent a
  packet; desync never guessed) and ``time_quality`` carries its flags;
* configs embedded in ``run_configs`` and copied to the sidecar are redacted
  with :func:`pfflake.redact.redact`; logs and other copies have URL
  passwords, ``secret=value`` pairs and the configs' secret values scrubbed;
* chunks are encoded with numcodecs in threads and written straight to disk
  (byte-identical to zarr-python's chunks for the same codec); chunks holding
  only zeros are not stored, as zarr-python does by default;
* the 1-D chunk is a multiple of the image chunk (identical to pypff for its
  default sizes), so the store splits into *write units* (:func:`write_unit`
  frames) that share no chunk or shard file: :func:`create_store` once, then
  :class:`FrameWriter` / :func:`write_frames` per unit, from any process;
* an existing output is refused unless ``overwrite=True``; a conversion is
  written under a temporary name and renamed into place when complete;
* ``codec="none"`` stores raw chunks (pypff silently got zarr's default zstd).

Parallel writers (e.g. one process per unit)::

    create_store(path, seq)                      # all metadata, once
    for start, stop in unit_ranges(path):        # in any process, any order
        write_sequence_range(path, seq, start, stop)
    # or FrameWriter(path, start).append(images, headers, unix_t_ns, time_quality)
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import math
import os
import shutil
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ZarrLayoutError
from .faults import fault
from .products import FIELD_DTYPES, DataProduct
from .redact import (
    Redacted,
    find_secrets,
    redact,
    redact_free_text,
    removed_strings,
    scrub_bytes,
)
from .sequence import PFFSequence
from .timestamps import QUALITY_NAMES, frame_unix_t_ns

if TYPE_CHECKING:
    from .run import PanosetiRun

logger = logging.getLogger(__name__)

SPEC_VERSION = "1.1"
UNIX_T_NS = "unix_t_ns"
TIME_QUALITY = "time_quality"
IMAGES = "images"

#: Header field dtypes; spec 1.1 (pypff's ``_HEADER_DTYPES``) and products.FIELD_DTYPES agree.
HEADER_DTYPES: dict[str, np.dtype] = {k: np.dtype(v) for k, v in FIELD_DTYPES.items()}
CODECS = ("zstd", "blosc", "blosc-lz4", "blosc-zstd", "blosc-lz4-bitshuffle", "gzip", "none")
_IMAGE_CHUNK_BYTES = 8 * 1024 * 1024
_MAX_1D_CHUNK = 65536
_INDEX_CODECS = [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}]
_EMPTY = np.uint64(2**64 - 1)
#: Secret values shorter than this are only removed where a rule finds them (URL, key=value):
#: scrubbing ``1234`` from every log line would corrupt numbers.


_UNIX_T_NS_ATTRS = {
    "ns_since_epoch": "1970-01-01T00:00:00Z",
    "long_name": "UNIX timestamp in nanoseconds",
}
_TIME_QUALITY_ATTRS = {  # CF flag conventions
    "long_name": "unix_t_ns quality flags (0 = ok)",
    "flag_masks": sorted(QUALITY_NAMES),
    "flag_meanings": " ".join(QUALITY_NAMES[b] for b in sorted(QUALITY_NAMES)),
}


# -----------------------------------------------------------------------------
# Layout: names, dtypes, chunk sizes, zarr.json documents
# -----------------------------------------------------------------------------


def zarr_name(field: str) -> str:
    """Array name of a pypff header key: ``quabo_0.pkt_num`` -> ``quabo_0_pkt_num``."""
    return field.replace(".", "_")


def header_dtype(field: str) -> np.dtype:
    return HEADER_DTYPES.get(field.rpartition(".")[2], np.dtype("int64"))


def default_time_chunk(product: DataProduct) -> int:
    """pypff's rule: ~8 MB of pixels per chunk, between 256 and 32768 frames."""
    return max(256, min(32768, _IMAGE_CHUNK_BYTES // max(product.image_bytes, 1)))


def default_ts_chunk(time_chunk: int) -> int:
    """1-D chunk: the smallest multiple of ``time_chunk`` >= 65536 (pypff: ``max(C, 65536)``).

    Equal to pypff's for power-of-two chunks; a multiple in every case, so
    image and 1-D chunk boundaries line up.
    """
    return time_chunk * max(1, -(-_MAX_1D_CHUNK // time_chunk))


def _codec_chain(codec: str, level: int, itemsize: int) -> list[dict[str, Any]]:
    if itemsize > 1:
        chain: list[dict[str, Any]] = [{"name": "bytes", "configuration": {"endian": "little"}}]
    else:
        chain = [{"name": "bytes"}]
    if codec == "zstd":
        chain.append({"name": "zstd", "configuration": {"level": level, "checksum": False}})
    elif codec in ("blosc", "blosc-lz4", "blosc-zstd", "blosc-lz4-bitshuffle"):
        cname = "zstd" if codec == "blosc-zstd" else "lz4"
        shuffle = "shuffle" if codec in ("blosc", "blosc-lz4") else "bitshuffle"
        cfg = {
            "typesize": itemsize,
            "cname": cname,
            "clevel": level,
            "shuffle": shuffle,
            "blocksize": 0,
        }
        chain.append({"name": "blosc", "configuration": cfg})
    elif codec == "gzip":
        chain.append({"name": "gzip", "configuration": {"level": level}})
    elif codec != "none":
        raise ValueError(f"unknown codec {codec!r}; expected one of {', '.join(CODECS)}")
    return chain


def _array_document(
    shape: tuple[int, ...],
    dtype: np.dtype,
    chunk_frames: int,
    shard_frames: int | None,
    codec: str,
    level: int,
    attributes: dict[str, Any],
) -> dict[str, Any]:
    """The ``zarr.json`` of one array, key for key as zarr-python writes it."""
    dims = ["time", "y", "x"][: len(shape)]
    chain = _codec_chain(codec, level, dtype.itemsize)
    chunk = [chunk_frames, *shape[1:]]
    if shard_frames:
        grid = [shard_frames, *shape[1:]]
        chain = [
            {
                "name": "sharding_indexed",
                "configuration": {
                    "chunk_shape": chunk,
                    "codecs": chain,
                    "index_codecs": _INDEX_CODECS,
                    "index_location": "end",
                },
            }
        ]
    else:
        grid = chunk
    return {
        "shape": list(shape),
        "data_type": dtype.name,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": grid}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0,
        "codecs": chain,
        "attributes": {"_ARRAY_DIMENSIONS": dims, **attributes},
        "dimension_names": dims,
        "zarr_format": 3,
        "node_type": "array",
        "storage_transformers": [],
    }


def _write_json(path: Path, doc: dict[str, Any], *, indent: int | None = 2) -> None:
    """Write a ``zarr.json``; ``indent=None`` uses json's C encoder (large root attributes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=indent))


def _frame_config(product: DataProduct, seq: PFFSequence | None) -> dict[str, Any]:
    conf = seq.frame_config if seq is not None else None
    return {
        "header_size": conf.header_size if conf else None,
        "payload_size": product.image_bytes,
        "frame_size": conf.frame_size if conf else None,
        "image_shape": list(product.image_shape),
        "dtype_str": product.dtype.name,
        "bytes_per_pixel": product.bytes_per_pixel,
        "format_name": product.name,  # pypff spells it without "dp_"
    }


def create_store(
    path: str | os.PathLike[str],
    product: DataProduct | PFFSequence,
    n_frames: int | None = None,
    *,
    module: int | str | None = None,
    source_pff_files: Iterable[str] = (),
    run_configs: Mapping[str, Any] | None = None,
    codec: str = "zstd",
    level: int = 3,
    time_chunk: int | None = None,
    ts_chunk: int | None = None,
    shard_factor: int = 0,
    image_shard: int = 0,
    with_time_quality: bool = True,
    overwrite: bool = False,
    _pool: ThreadPoolExecutor | None = None,
) -> Path:
    """Create an empty store with every array's metadata (no chunks yet).

    ``product`` is a :class:`DataProduct`, or a :class:`PFFSequence` whose
    length, module and file names fill the defaults. ``run_configs`` are
    redacted before they are stored. ``ts_chunk`` (frames per 1-D chunk) must
    be a multiple of ``time_chunk``. ``shard_factor`` > 0 shards every array
    (that many chunks per shard file); ``image_shard`` > 0 sets the images'
    shards to that many frames (a multiple of ``time_chunk``) whatever
    ``shard_factor`` says: small image chunks make a scattered frame cheap to
    read while the header arrays keep their long, well-compressing chunks.
    Fill the store with :class:`FrameWriter` in ranges aligned to
    :func:`write_unit` frames (one process per range is safe). Raises
    ``FileExistsError`` if ``path`` exists, unless ``overwrite`` (which only
    deletes an existing Zarr store or an empty directory).
    """
    seq = product if isinstance(product, PFFSequence) else None
    if seq is not None:
        product = seq.product
        n_frames = len(seq) if n_frames is None else n_frames
        module = seq.module if module is None else module
        source_pff_files = source_pff_files or [p.name for p in seq.file_paths]
    assert isinstance(product, DataProduct)
    if n_frames is None or n_frames < 0:
        raise ValueError(f"n_frames must be a non-negative int, got {n_frames!r}")
    chunk = default_time_chunk(product) if time_chunk is None else int(time_chunk)
    if chunk < 1 or shard_factor < 0:
        raise ValueError(
            f"time_chunk must be >= 1 and shard_factor >= 0, got {chunk}, {shard_factor}"
        )
    _codec_chain(codec, level, 1)  # validates the codec name up front
    ts_chunk = default_ts_chunk(chunk) if ts_chunk is None else int(ts_chunk)
    if ts_chunk < 1 or ts_chunk % chunk:
        raise ValueError(f"ts_chunk ({ts_chunk}) must be a multiple of time_chunk ({chunk})")
    if image_shard and (image_shard < 0 or image_shard % chunk):
        raise ValueError(f"image_shard ({image_shard}) must be a multiple of time_chunk ({chunk})")
    path = Path(path)
    _clear_target(path, overwrite)

    fields = list(product.header_fields)
    quabo = [zarr_name(f) for f in fields if "." in f]
    flat = [zarr_name(f) for f in fields if "." not in f]
    sf = shard_factor or None
    image_object = image_shard or (chunk * sf if sf else chunk)
    unit = math.lcm(ts_chunk * sf if sf else ts_chunk, image_object)
    attrs: dict[str, Any] = {
        "panoseti_pff_zarr_version": SPEC_VERSION,
        "data_product": product.name,
        "bytes_per_pixel": product.bytes_per_pixel,
        "module": "unknown" if module is None else str(module),
        "source_pff_files": list(source_pff_files),
        "total_frames": int(n_frames),
        "header_format": "module" if quabo else "single",
        "header_fields": sorted(flat),
        "quabo_fields": sorted(quabo),
        "frame_config": _frame_config(product, seq),
    }
    if run_configs:
        safe = isinstance(run_configs, Redacted)
        attrs["run_configs"] = dict(run_configs) if safe else redact(dict(run_configs))
    if shard_factor:
        attrs["shard_factor"] = shard_factor
    attrs["pfflake"] = {
        "version": _version(),
        "time_rule": "pfflake.timestamps: WR/host reconciliation, first quabo with "
        "tv_sec != 0; desync flagged in time_quality, never guessed",
        "write_unit_frames": unit,
    }
    root = {"attributes": attrs, "zarr_format": 3, "node_type": "group"}
    _write_json(path / "zarr.json", root, indent=None)

    def doc(
        frame_shape: tuple[int, ...],
        dtype: Any,
        chunk_frames: int,
        shard: int | None,
        attributes: dict[str, Any],
    ) -> dict[str, Any]:
        shape = (n_frames, *frame_shape)
        return _array_document(
            shape, np.dtype(dtype), chunk_frames, shard, codec, level, attributes
        )

    one_d = (ts_chunk, unit if sf else None)
    image_attrs = {"data_product": product.name, "module": attrs["module"]}
    docs = {
        IMAGES: doc(
            product.image_shape,
            product.dtype,
            chunk,
            image_shard or (chunk * sf if sf else None),
            image_attrs,
        ),
        UNIX_T_NS: doc((), "int64", *one_d, _UNIX_T_NS_ATTRS),
    }
    if with_time_quality:
        docs[TIME_QUALITY] = doc((), "uint8", *one_d, _TIME_QUALITY_ATTRS)
    for field in fields:
        docs[zarr_name(field)] = doc((), header_dtype(field), *one_d, {"pff_header_field": field})

    # File creation dominates small stores: write the array documents concurrently.
    def write(item: tuple[str, dict[str, Any]]) -> None:
        _write_json(path / item[0] / "zarr.json", item[1])

    if _pool is None:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(write, docs.items()))
    else:
        list(_pool.map(write, docs.items()))
    return path


def _version() -> str:
    from . import __version__

    return __version__


def _looks_like_store(path: Path) -> bool:
    return (path / "zarr.json").is_file() or (path / "manifest.json").is_file()


def _check_target(path: Path, overwrite: bool) -> bool:
    """Whether ``path`` exists; raises if it does and may not be replaced."""
    if not path.exists():
        return False
    if not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    if not (path.is_dir() and (_looks_like_store(path) or not any(path.iterdir()))):
        raise FileExistsError(
            f"{path} exists and is not a Zarr store or sidecar; refusing to delete it"
        )
    return True


def _clear_target(path: Path, overwrite: bool) -> None:
    if _check_target(path, overwrite):
        shutil.rmtree(path)


# -----------------------------------------------------------------------------
# Writing chunks: numcodecs in threads, straight to files
# -----------------------------------------------------------------------------


def _bytes_codec(doc: dict[str, Any]) -> Any:
    import numcodecs

    name, cfg = doc["name"], doc.get("configuration", {})
    if name == "zstd":
        return numcodecs.Zstd(level=cfg.get("level", 0), checksum=cfg.get("checksum", False))
    if name == "blosc":
        shuffle = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}[cfg["shuffle"]]
        return numcodecs.Blosc(
            cname=cfg["cname"],
            clevel=cfg["clevel"],
            shuffle=shuffle,
            blocksize=cfg.get("blocksize", 0),
            typesize=cfg["typesize"],
        )
    if name == "gzip":
        return numcodecs.GZip(level=cfg["level"])
    raise ZarrLayoutError(f"codec {name!r} is not supported by pfflake's chunk writer")


class _ArrayFiles:
    """Encoding and file naming of one array, from its ``zarr.json``."""

    def __init__(self, path: Path) -> None:
        doc = json.loads((path / "zarr.json").read_text())
        self.path = path
        self.name = path.name
        self.shape = tuple(doc["shape"])
        self.dtype = np.dtype(doc["data_type"]).newbyteorder("<")
        self.attributes = doc.get("attributes", {})
        grid = doc["chunk_grid"]["configuration"]["chunk_shape"]
        codecs = doc["codecs"]
        self.shard_frames: int | None = None
        if codecs and codecs[0]["name"] == "sharding_indexed":
            cfg = codecs[0]["configuration"]
            if cfg.get("index_location", "end") != "end" or cfg["index_codecs"] != _INDEX_CODECS:
                raise ZarrLayoutError(f"{path}: unsupported shard index layout")
            self.shard_frames, grid, codecs = grid[0], cfg["chunk_shape"], cfg["codecs"]
        if list(grid[1:]) != list(self.shape[1:]):
            raise ZarrLayoutError(f"{path}: chunks must hold whole frames, got {grid}")
        if self.shard_frames and self.shard_frames % grid[0]:
            raise ZarrLayoutError(f"{path}: shard is not a whole number of chunks")
        self.chunk_frames = int(grid[0])
        if (
            codecs[0]["name"] != "bytes"
            or codecs[0].get("configuration", {}).get("endian", "little") != "little"
        ):
            raise ZarrLayoutError(f"{path}: expected little-endian 'bytes' as the first codec")
        self.compressors = [_bytes_codec(c) for c in codecs[1:]]
        self.chunk_shape = (self.chunk_frames, *self.shape[1:])
        self.raw_chunk_bytes = math.prod(self.chunk_shape) * self.dtype.itemsize
        self._dirs: set[Path] = set()

    @property
    def n_frames(self) -> int:
        return int(self.shape[0])

    @property
    def object_frames(self) -> int:
        """Frames per stored file (a shard, or a chunk when unsharded)."""
        return self.shard_frames or self.chunk_frames

    def encode(self, chunk: np.ndarray) -> bytes | None:
        """Encoded chunk, or ``None`` when it holds only zeros (not stored)."""
        data: Any = chunk
        for c in self.compressors:
            data = c.encode(data)
        data = bytes(data) if self.compressors else chunk.tobytes()
        # Only chunks that compress extremely well can be all zeros: test just those.
        if (len(data) * 64 < self.raw_chunk_bytes or not self.compressors) and not chunk.any():
            return None
        return data

    def key_path(self, index: int) -> Path:
        return self.path.joinpath("c", str(index), *["0"] * (len(self.shape) - 1))

    def put(self, index: int, payload: bytes | None, atomic: bool = True) -> None:
        """Write one chunk/shard file, atomically by default (``None`` removes it)."""
        target = self.key_path(index)
        if payload is None:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
            return
        if target.parent not in self._dirs:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._dirs.add(target.parent)
        tmp = target
        if atomic:
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
        try:
            tmp.write_bytes(payload)
        except OSError as e:  # a failed write() names no file: say which (disk full, EFBIG)
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise OSError(e.errno, e.strerror, str(target)) from None
        if atomic:
            os.replace(tmp, target)
        fault("zarr_file")

    def assemble_shard(self, parts: list[bytes | None]) -> bytes | None:
        """Shard file: inner chunks then the index (offset, nbytes) and its crc32c."""
        import google_crc32c

        n_inner = self.shard_frames // self.chunk_frames  # type: ignore[operator]
        index = np.full((n_inner, 2), _EMPTY, dtype="<u8")
        pieces, offset = [], 0
        for i, part in enumerate(parts):
            if part is not None:
                index[i] = (offset, len(part))
                pieces.append(part)
                offset += len(part)
        if not pieces:
            return None
        raw = index.tobytes()
        crc = np.array([google_crc32c.value(raw)], dtype="<u4").tobytes()
        return b"".join([*pieces, raw, crc])


class _ArrayStream:
    """Rows of one array arriving in order; emits full chunks (and shards) to the pool."""

    def __init__(self, files: _ArrayFiles, start: int, writer: FrameWriter) -> None:
        self.files = files
        self.pos = start
        self.writer = writer
        self.buf: np.ndarray | None = None
        self.shard_parts: list[Future[bytes | None]] = []

    def push(self, rows: np.ndarray) -> None:
        f = self.files
        n, i = len(rows), 0
        if self.pos + n > f.n_frames:
            raise ZarrLayoutError(
                f"{f.name}: frames {self.pos}..{self.pos + n} beyond the store's {f.n_frames}"
            )
        while i < n:
            off = self.pos % f.chunk_frames
            if self.buf is None:
                self.buf = np.empty(f.chunk_shape, dtype=f.dtype)
            k = min(f.chunk_frames - off, n - i)
            self.buf[off : off + k] = rows[i : i + k]
            self.pos += k
            i += k
            if off + k == f.chunk_frames or self.pos == f.n_frames:
                self._emit(off + k)

    def _emit(self, filled: int) -> None:
        f, buf = self.files, self.buf
        assert buf is not None
        self.buf = None
        if filled < f.chunk_frames:
            buf[filled:] = 0
        chunk_index = (self.pos - 1) // f.chunk_frames
        if not f.shard_frames:
            atomic = self.writer.atomic
            self.writer._submit(lambda: f.put(chunk_index, f.encode(buf), atomic))
            return
        self.shard_parts.append(self.writer._submit(f.encode, buf))
        per_shard = f.shard_frames // f.chunk_frames
        if len(self.shard_parts) == per_shard or self.pos == f.n_frames:
            parts, self.shard_parts = self.shard_parts, []
            shard_index = chunk_index // per_shard
            # The inner encodes were queued first, so waiting on them here cannot deadlock.
            atomic = self.writer.atomic
            self.writer._submit(
                lambda: f.put(shard_index, f.assemble_shard([p.result() for p in parts]), atomic)
            )

    def finish(self) -> None:
        if self.buf is not None or self.shard_parts:
            raise ZarrLayoutError(
                f"{self.files.name}: frame range ends at {self.pos}, inside a chunk/shard; "
                f"ranges must end on a multiple of {self.writer.unit} frames or at "
                f"{self.files.n_frames}"
            )


def write_unit(store_path: str | os.PathLike[str]) -> int:
    """Frames per write unit: no chunk or shard file spans two units of a store."""
    arrays = _store_arrays(Path(store_path))
    return math.lcm(*(a.object_frames for a in arrays.values()))


def unit_ranges(store_path: str | os.PathLike[str]) -> list[tuple[int, int]]:
    """``(start, stop)`` frame ranges of a store's write units, for parallel writers."""
    arrays = _store_arrays(Path(store_path))
    n = arrays[IMAGES].n_frames
    unit = math.lcm(*(a.object_frames for a in arrays.values()))
    return [(s, min(s + unit, n)) for s in range(0, n, unit)]


def _store_arrays(path: Path) -> dict[str, _ArrayFiles]:
    if not (path / "zarr.json").is_file():
        raise FileNotFoundError(f"not a Zarr store (no zarr.json): {path}")
    arrays = {}
    for sub in sorted(path.iterdir()):
        meta = sub / "zarr.json"
        if meta.is_file() and json.loads(meta.read_text()).get("node_type") == "array":
            arrays[sub.name] = _ArrayFiles(sub)
    if IMAGES not in arrays:
        raise ZarrLayoutError(f"{path}: no 'images' array")
    return arrays


class FrameWriter:
    """Write consecutive frames into a store made by :func:`create_store` (or pypff).

    Starts at ``start_frame``, a multiple of :func:`write_unit`; the frames
    given to :meth:`append` must end, at :meth:`close`, on a unit boundary or
    at the end of the store. Two writers on disjoint unit ranges touch
    disjoint files, so they can run in different processes. Chunks are
    encoded on ``workers`` threads (default: CPU count); memory stays around
    one chunk per array plus the chunks in flight. Each file is written under
    a temporary name and renamed (``atomic=False`` skips that, for stores
    nobody reads yet).
    """

    def __init__(
        self,
        store_path: str | os.PathLike[str],
        start_frame: int = 0,
        *,
        workers: int | None = None,
        atomic: bool = True,
        _pool: ThreadPoolExecutor | None = None,
    ) -> None:
        self.path = Path(store_path)
        self.atomic = atomic
        self.arrays = _store_arrays(self.path)
        attrs = json.loads((self.path / "zarr.json").read_text()).get("attributes", {})
        self.header_kind = "module" if attrs.get("header_format") == "module" else "quabo"
        self.unit = math.lcm(*(a.object_frames for a in self.arrays.values()))
        self.n_frames = self.arrays[IMAGES].n_frames
        if start_frame % self.unit or not 0 <= start_frame <= self.n_frames:
            raise ZarrLayoutError(
                f"start_frame {start_frame} is not a multiple of the write unit ({self.unit} "
                f"frames) within [0, {self.n_frames}]"
            )
        self.start = self.pos = start_frame
        self.fields = {
            n: a.attributes["pff_header_field"]
            for n, a in self.arrays.items()
            if "pff_header_field" in a.attributes
        }
        self.streams = {n: _ArrayStream(a, start_frame, self) for n, a in self.arrays.items()}
        n_workers = workers or os.cpu_count() or 1
        self._own_pool = _pool is None
        self._pool = _pool or ThreadPoolExecutor(n_workers, thread_name_prefix="pfflake-zarr")
        self._slots = threading.BoundedSemaphore(4 * n_workers + 8)
        self._futures: list[Future[Any]] = []

    def _submit(self, fn: Any, *args: Any) -> Future[Any]:
        self._slots.acquire()
        fut = self._pool.submit(fn, *args)
        fut.add_done_callback(lambda _: self._slots.release())
        self._futures.append(fut)
        if len(self._futures) > 256:
            for done in [f for f in self._futures if f.done()]:
                done.result()  # re-raise worker errors early
            self._futures = [f for f in self._futures if not f.done()]
        return fut

    def append(
        self,
        images: np.ndarray,
        headers: Mapping[str, np.ndarray],
        unix_t_ns: np.ndarray | None = None,
        time_quality: np.ndarray | None = None,
    ) -> None:
        """Add frames. ``headers`` keyed by pypff names (``quabo_0.pkt_num``) or array
        names (``quabo_0_pkt_num``); timestamps and flags are computed from the headers
        when not given. Header values that do not fit the array dtype raise."""
        n = len(images)
        by_name = {zarr_name(k): np.asarray(v) for k, v in headers.items()}
        if unix_t_ns is None or (time_quality is None and TIME_QUALITY in self.arrays):
            dotted = {self.fields[k]: v for k, v in by_name.items() if k in self.fields}
            ns, flags = frame_unix_t_ns(dotted, self.header_kind)
            unix_t_ns = ns if unix_t_ns is None else unix_t_ns
            time_quality = flags if time_quality is None else time_quality
        by_name[UNIX_T_NS] = np.asarray(unix_t_ns)
        by_name[TIME_QUALITY] = np.asarray(time_quality)
        by_name[IMAGES] = np.asarray(images)
        for name, stream in self.streams.items():
            if name not in by_name:
                raise KeyError(f"no values for array {name!r} of {self.path.name}")
            values = by_name[name]
            if values.shape != (n, *stream.files.shape[1:]):
                raise ValueError(
                    f"{name}: shape {values.shape} for {n} frames of {stream.files.shape[1:]}"
                )
            stream.push(_checked_cast(values, stream.files.dtype, name, self.pos))
        self.pos += n

    def close(self) -> None:
        """Flush the last chunks, wait for every file, check the range ended on a boundary."""
        try:
            for stream in self.streams.values():
                stream.finish()
        finally:
            self._wait()

    def _wait(self) -> None:
        try:
            for fut in self._futures:
                fut.result()
        finally:
            self._futures = []
            if self._own_pool:
                self._pool.shutdown(wait=True)

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            with contextlib.suppress(Exception):
                self._wait()


def _checked_cast(values: np.ndarray, dtype: np.dtype, name: str, first: int) -> np.ndarray:
    """``values`` as ``dtype``; raises instead of wrapping or truncating."""
    if values.dtype == dtype or not len(values):
        return values
    integer = np.issubdtype(dtype, np.integer)
    if (values.dtype.kind not in "iub") if integer else not np.can_cast(values.dtype, dtype):
        raise TypeError(f"{name}: cannot store {values.dtype} values as {dtype.name}")
    if integer and values.dtype.kind != "b":
        info = np.iinfo(dtype)
        lo, hi = values.min(), values.max()
        if lo < info.min or hi > info.max:
            bad = int(np.flatnonzero((values < info.min) | (values > info.max))[0])
            raise ValueError(
                f"{name}: value {int(values[bad])} at frame {first + bad} does not fit {dtype.name}"
            )
    return values.astype(dtype)


def write_frames(
    store_path: str | os.PathLike[str],
    start_frame: int,
    images: np.ndarray,
    headers: Mapping[str, np.ndarray],
    unix_t_ns: np.ndarray | None = None,
    time_quality: np.ndarray | None = None,
    *,
    workers: int | None = None,
) -> None:
    """Write frames ``[start_frame, start_frame + len(images))`` in one call (see
    :class:`FrameWriter` for the alignment rule and for streaming large ranges)."""
    with FrameWriter(store_path, start_frame, workers=workers) as writer:
        writer.append(images, headers, unix_t_ns, time_quality)


def write_sequence_range(
    store_path: str | os.PathLike[str],
    seq: PFFSequence,
    start: int,
    stop: int,
    *,
    workers: int | None = None,
) -> None:
    """Copy frames ``[start, stop)`` of ``seq`` into its store (one write unit or more)."""
    with FrameWriter(store_path, start, workers=workers) as writer:
        step = writer.arrays[IMAGES].chunk_frames
        fields = list(seq.product.header_fields)
        for a in range(start, stop, step):
            b = min(a + step, stop)
            meta = seq.get_metadata_arrays(
                [*fields, UNIX_T_NS, TIME_QUALITY], slice_obj=slice(a, b)
            )
            writer.append(
                seq.read_images_range(a, b - a),
                {k: meta[k] for k in fields},
                meta[UNIX_T_NS],
                meta[TIME_QUALITY],
            )


# -----------------------------------------------------------------------------
# convert_run
# -----------------------------------------------------------------------------


def convert_sequence(
    seq: PFFSequence,
    out_path: str | os.PathLike[str],
    *,
    codec: str = "zstd",
    level: int = 3,
    time_chunk: int | None = None,
    shard_factor: int = 0,
    run_configs: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    workers: int | None = None,
    _pool: ThreadPoolExecutor | None = None,
) -> Path:
    """Convert one stream; written under a temporary name, renamed into place when done."""
    out_path = Path(out_path)
    if out_path.exists() and not overwrite:
        raise FileExistsError(f"{out_path} exists; pass overwrite=True to replace it")
    staging = _staging(out_path)
    try:
        create_store(
            staging,
            seq,
            codec=codec,
            level=level,
            time_chunk=time_chunk,
            shard_factor=shard_factor,
            run_configs=run_configs,
            _pool=_pool,
        )
        with FrameWriter(staging, 0, workers=workers, atomic=False, _pool=_pool) as writer:
            size = writer.arrays[IMAGES].chunk_frames
            for images, headers in seq.iter_batches(size, with_headers=True):
                writer.append(images, headers)
        _replace(staging, out_path, overwrite)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return out_path


def _replace(new: Path, target: Path, overwrite: bool) -> None:
    if target.exists():
        _clear_target(target, overwrite)
    os.replace(new, target)


def _run_configs(run: PanosetiRun) -> dict[str, Any]:
    """The run's configs as JSON-safe dicts, redacted with :func:`pfflake.redact.redact`."""
    out = Redacted()
    for name, model in run.configs.items():
        try:
            # reveal() dumps without redacting, so redact() is the one (and only) pass
            raw = model.reveal(mode="json") if hasattr(model, "reveal") else model
            out[name] = redact(raw)
        except Exception as e:  # one odd config must not stop a conversion
            logger.warning("config %s not embedded: %s", name, type(e).__name__)
    return out


def convert_run(
    run: PanosetiRun | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    codec: str = "zstd",
    level: int = 3,
    time_chunk: int | None = None,
    shard_factor: int = 0,
    writer: Any = None,
    write_sidecars: bool = True,
    embed_configs: bool = True,
    overwrite: bool = False,
    workers: int | None = None,
) -> list[Path]:
    """Convert every stream of a run to a Zarr v3 store; pypff's signature and layout.

    Writes ``<run_dir_name>.<stream>.zarr`` per stream and, with
    ``write_sidecars``, ``<run_dir_name>.panoseti-meta/``. ``codec``:
    ``zstd`` (default), ``blosc``/``blosc-lz4``, ``blosc-lz4-bitshuffle`` (the
    lake's: fastest to write and read), ``blosc-zstd`` (bitshuffle;
    smaller and faster on noisy data), ``gzip`` or ``none``. ``shard_factor``
    > 0 stores that many chunks per shard file. ``writer`` is a pypff
    ``ZarrWriter`` backend (slow generic path); ``None`` uses pfflake's
    threaded writer with ``workers`` threads. Existing outputs raise
    ``FileExistsError`` (checked before anything is written) unless
    ``overwrite``. Returns the store paths, sorted by stream name.
    """
    from .run import PanosetiRun

    owned = not isinstance(run, PanosetiRun)
    # a path, or another library's run object (pypff's) by its directory
    run_obj = PanosetiRun(getattr(run, "run_dir", run)) if owned else run
    try:
        out = Path(out_dir)
        base = run_obj.run_dir.resolve().name
        names = run_obj.list_products()
        targets = [out / f"{base}.{name}.zarr" for name in names]
        meta_dir = out / f"{base}.panoseti-meta"
        for t in [*targets, *([meta_dir] if write_sidecars else [])]:
            _check_target(t, overwrite)  # before anything is written
        out.mkdir(parents=True, exist_ok=True)
        side = _staging(meta_dir)
        with ThreadPoolExecutor(1) as side_pool:
            # the sidecar is I/O: build it while the stores are written, commit it after
            side_job = (
                side_pool.submit(_build_sidecar, run_obj, side, [t.name for t in targets])
                if write_sidecars
                else None
            )
            try:
                configs = _run_configs(run_obj) if embed_configs else {}
                opts = {
                    "codec": codec,
                    "level": level,
                    "time_chunk": time_chunk,
                    "shard_factor": shard_factor,
                    "run_configs": configs,
                    "overwrite": overwrite,
                }
                with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
                    for name, target in zip(names, targets, strict=True):
                        seq = run_obj.get_product(name)
                        if writer is not None:
                            _convert_with_writer(seq, target, writer, **opts)
                        else:
                            convert_sequence(seq, target, _pool=pool, **opts)
                if side_job is not None:
                    side_job.result()
                    _replace(side, meta_dir, overwrite)
            finally:
                if side_job is not None:
                    side_job.exception()  # wait for it before cleaning up
                shutil.rmtree(side, ignore_errors=True)
        return targets
    finally:
        if owned:
            run_obj.close()


def _convert_with_writer(seq: PFFSequence, target: Path, writer: Any, **kw: Any) -> None:
    """pypff ``ZarrWriter`` protocol path: same arrays and attributes, the backend writes."""
    if target.exists():
        _clear_target(target, kw["overwrite"])
    template = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.layout")
    try:
        create_store(
            template,
            seq,
            codec=kw["codec"],
            level=kw["level"],
            time_chunk=kw["time_chunk"],
            shard_factor=kw["shard_factor"],
            run_configs=kw["run_configs"],
        )
        root_attrs = json.loads((template / "zarr.json").read_text())["attributes"]
        arrays = _store_arrays(template)
    finally:
        shutil.rmtree(template, ignore_errors=True)
    root = writer.create_store(target)
    writer.set_attrs(root, root_attrs)
    handles = {}
    for name, a in arrays.items():
        attrs = dict(a.attributes)
        dims = attrs.get("_ARRAY_DIMENSIONS")
        shards = (a.shard_frames, *a.shape[1:]) if a.shard_frames else None
        handles[name] = writer.create_array(
            root, name, a.shape, a.chunk_shape, a.dtype, dimension_names=dims, shards=shards
        )
        writer.set_attrs(handles[name], attrs)
    pos = 0
    for images, headers in seq.iter_batches(arrays[IMAGES].chunk_frames, with_headers=True):
        n = len(images)
        ns, flags = frame_unix_t_ns(headers, seq.product.header_kind)
        values = {zarr_name(k): v for k, v in headers.items()}
        values.update({IMAGES: np.asarray(images), UNIX_T_NS: ns, TIME_QUALITY: flags})
        for name, handle in handles.items():
            data = _checked_cast(values[name], arrays[name].dtype, name, pos)
            sl = (slice(pos, pos + n),) + (slice(None),) * (data.ndim - 1)
            writer.write_slice(handle, sl, data)
        pos += n
    writer.finalize(target)


# -----------------------------------------------------------------------------
# Sidecar bundle (redacted copies)
# -----------------------------------------------------------------------------

_SIDECAR_GLOBS = (
    ("*.json", "configs"),
    ("*.toml", "configs"),
    ("*.log", "logs"),
    ("*.txt", "logs"),
    ("hp_stdout_*", "logs"),
    ("dp_manifest*", "manifests"),
)
_SENTINELS = ("collect_complete", "run_complete", "recording_ended")


def _config_copy(path: Path, secrets: set[str]) -> bytes | None:
    """A config file with its secrets replaced (raw bytes when it holds none); adds the
    removed values to ``secrets``. ``None`` when the result cannot be shown to be clean."""
    import tomllib

    raw = path.read_bytes()
    text = raw.decode("utf-8", errors="surrogateescape")
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except ValueError:  # unparseable: rule-based text redaction only
        return redact_free_text(text, secrets).encode("utf-8", errors="surrogateescape")
    if not find_secrets(data):
        return raw
    removed_strings(data, redact(data), secrets)
    if path.suffix == ".json":
        return (json.dumps(redact(data), indent=4) + "\n").encode()
    out = redact_free_text(text, secrets)
    try:
        if not find_secrets(tomllib.loads(out)):
            return out.encode("utf-8", errors="surrogateescape")
    except ValueError:
        pass
    return None


def _copy_scrubbed(src: Path, dst: Path, secrets: set[str], *, text: bool = True) -> None:
    data = src.read_bytes()
    if text:
        s = redact_free_text(data.decode("utf-8", errors="surrogateescape"), secrets)
        data = s.encode("utf-8", errors="surrogateescape")
    else:  # hk.pff is data: only the configs' known secret values are removed
        data = scrub_bytes(data, secrets)
    dst.write_bytes(data)
    shutil.copystat(src, dst)


def write_sidecar(
    run: PanosetiRun,
    meta_dir: str | os.PathLike[str],
    zarr_stores: Iterable[Path] = (),
    *,
    overwrite: bool = False,
) -> Path:
    """``<run>.panoseti-meta/``: pypff's bundle, with every credential removed.

    JSON configs that hold secrets are rewritten redacted (others are copied
    byte for byte); logs, manifests, sentinels and TOML get URL passwords and
    ``secret=value`` pairs replaced, plus every secret value (>= 6 chars)
    found in the configs; hk.pff gets only the latter. Built under a
    temporary name and renamed into place.
    """
    meta_dir = Path(meta_dir)
    if meta_dir.exists() and not overwrite:
        raise FileExistsError(f"{meta_dir} exists; pass overwrite=True to replace it")
    staging = _staging(meta_dir)
    try:
        _build_sidecar(run, staging, [Path(s).name for s in zarr_stores])
        _replace(staging, meta_dir, overwrite)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return meta_dir


def _staging(target: Path) -> Path:
    return target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")


def _build_sidecar(run: PanosetiRun, staging: Path, store_names: list[str]) -> None:
    run_dir = run.run_dir
    secrets: set[str] = set()
    configs: dict[str, bytes | None] = {}
    for f in sorted(run_dir.glob("*.json")) + sorted(run_dir.glob("*.toml")):
        if f.is_file():
            configs[f.name] = _config_copy(f, secrets)
    skipped = sorted(name for name, data in configs.items() if data is None)
    for name in skipped:
        logger.warning("%s: secrets could not be removed reliably; not copied", name)
    for pattern, sub in _SIDECAR_GLOBS:
        (staging / sub).mkdir(parents=True, exist_ok=True)
        for f in sorted(run_dir.glob(pattern)):
            if not f.is_file():
                continue
            dst = staging / sub / f.name
            if sub == "configs" and f.name in configs:
                data = configs[f.name]
                if data is not None:
                    dst.write_bytes(data)
                    shutil.copystat(f, dst)
            else:
                _copy_scrubbed(f, dst, secrets)
    (staging / "sentinels").mkdir(exist_ok=True)
    for name in _SENTINELS:
        if (run_dir / name).is_file():
            _copy_scrubbed(run_dir / name, staging / "sentinels" / name, secrets)
    if run.hk_path.is_file():
        _copy_scrubbed(run.hk_path, staging / "hk.pff", secrets, text=False)
    manifest = {
        "panoseti_meta_version": "1.0",
        "created_utc": datetime.datetime.now(datetime.UTC).isoformat(),
        "source_run_dir": str(run_dir),
        "zarr_stores": store_names,
        "created_by": f"pfflake {_version()}",
        "redacted": True,
        "not_copied": skipped,
    }
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2))


# -----------------------------------------------------------------------------
# Reading: pypff's PanosetiZarrRun / PanosetiZarrStore API
# -----------------------------------------------------------------------------


class PanosetiZarrStore:
    """One converted stream (pfflake's or pypff's store), read with zarr-python.

    Like pypff's, except that :attr:`images` is a lazy ``zarr.Array`` (slice
    it for numpy) rather than an xarray DataArray; :meth:`to_dataset` gives
    the xarray view (xarray imported on demand).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"Zarr store not found: {self.path}")

    @cached_property
    def _group(self) -> Any:
        import zarr

        return zarr.open_group(str(self.path), mode="r", zarr_format=3)

    @cached_property
    def _attrs(self) -> dict[str, Any]:
        return dict(self._group.attrs)

    def _attr(self, key: str, default: Any) -> Any:
        return self._attrs.get(key, default)

    data_product = property(lambda self: str(self._attr("data_product", "unknown")))
    module = property(lambda self: str(self._attr("module", "unknown")))
    bytes_per_pixel = property(lambda self: int(self._attr("bytes_per_pixel", 0)))
    total_frames = property(lambda self: int(self._attr("total_frames", 0)))
    header_format = property(lambda self: str(self._attr("header_format", "single")))
    header_fields = property(lambda self: list(self._attr("header_fields", [])))
    quabo_fields = property(lambda self: list(self._attr("quabo_fields", [])))
    source_pff_files = property(lambda self: list(self._attr("source_pff_files", [])))
    frame_config = property(lambda self: dict(self._attr("frame_config", {})))
    run_configs = property(lambda self: dict(self._attr("run_configs", {})))

    @property
    def written_by(self) -> str:
        """``"pfflake"`` or ``"pypff"``: which timestamp rule ``unix_t_ns`` follows."""
        return "pfflake" if "pfflake" in self._attrs else "pypff"

    @property
    def images(self) -> Any:
        """``(T, H, W)`` pixels as a lazy ``zarr.Array``; ``store.images[a:b]`` is numpy."""
        return self._group[IMAGES]

    def __getitem__(self, key: Any) -> np.ndarray:
        """Images of frames ``key`` (int, slice or index array) as numpy."""
        arr = self.images
        if isinstance(key, list | np.ndarray):
            return arr.get_orthogonal_selection((np.asarray(key),))
        return arr[key]

    def array(self, name: str) -> np.ndarray:
        """One whole 1-D array by array name or pypff key (``quabo_0.pkt_num``)."""
        return self._group[zarr_name(name)][:]

    def timestamps(self, *, as_datetime: bool = False) -> np.ndarray:
        """Stored ``unix_t_ns`` (int64 ns), or a ``datetime64[ns]`` view."""
        ts = self.array(UNIX_T_NS)
        return ts.view("datetime64[ns]") if as_datetime else ts

    def time_quality(self) -> np.ndarray:
        """uint8 flags of :mod:`pfflake.timestamps`; computed from the headers for pypff
        stores (which lack the array). They describe pfflake's rule, see :attr:`written_by`."""
        if TIME_QUALITY in self._group:
            return self.array(TIME_QUALITY)
        kind = "module" if self.header_format == "module" else "quabo"
        names = self.quabo_fields if kind == "module" else self.header_fields
        meta = {self._group[n].attrs.get("pff_header_field", n): self.array(n) for n in names}
        return frame_unix_t_ns(meta, kind)[1]

    def get_metadata_arrays(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """Whole arrays by pypff key or array name, in the request order."""
        return {k: self.time_quality() if k == TIME_QUALITY else self.array(k) for k in keys}

    def list_arrays(self) -> list[str]:
        return sorted(name for name, _ in self._group.arrays())

    def to_dataset(self) -> Any:
        """``xarray.Dataset`` of every array (needs xarray)."""
        import xarray as xr

        return xr.open_zarr(str(self.path), consolidated=False)

    def __len__(self) -> int:
        """Frames stored (the arrays' length; ``total_frames`` is the attribute)."""
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        return (
            f"PanosetiZarrStore(dp={self.data_product!r}, module={self.module!r}, "
            f"T={self.total_frames:,}, path={self.path.name!r})"
        )


class PanosetiZarrRun:
    """A ``convert_run`` output directory: its stores and ``.panoseti-meta/`` sidecar."""

    def __init__(self, out_dir: str | os.PathLike[str]) -> None:
        self.out_dir = Path(out_dir)
        if not self.out_dir.exists():
            raise FileNotFoundError(f"Output directory not found: {self.out_dir}")

    @cached_property
    def _store_map(self) -> dict[str, PanosetiZarrStore]:
        stores = {}
        for path in sorted(self.out_dir.glob("*.zarr")):
            if path.is_dir():
                s = PanosetiZarrStore(path)
                stores[f"dp_{s.data_product}.bpp_{s.bytes_per_pixel}.module_{s.module}"] = s
        return stores

    @cached_property
    def _meta_dir(self) -> Path | None:
        found = sorted(self.out_dir.glob("*.panoseti-meta"))
        return found[0] if found else None

    def list_products(self) -> list[str]:
        return sorted(self._store_map)

    def get_product(self, name: str) -> PanosetiZarrStore:
        if name not in self._store_map:
            raise KeyError(f"Product {name!r} not found. Available: {self.list_products()}")
        return self._store_map[name]

    def __iter__(self) -> Iterator[PanosetiZarrStore]:
        return iter(self._store_map[k] for k in self.list_products())

    @cached_property
    def configs(self) -> dict[str, Any]:
        """Sidecar ``configs/*.json`` by stem, else the first store's ``run_configs``."""
        if self._meta_dir is not None and (self._meta_dir / "configs").is_dir():
            result = {}
            for f in sorted((self._meta_dir / "configs").glob("*.json")):
                try:
                    result[f.stem] = json.loads(f.read_text())
                except ValueError:
                    logger.warning("sidecar config %s is not valid JSON", f.name)
            if result:
                return result
        for store in self._store_map.values():
            if store.run_configs:
                return store.run_configs
        return {}

    def list_sidecars(self) -> list[Path]:
        if self._meta_dir is None:
            return []
        return sorted(f for f in self._meta_dir.rglob("*") if f.is_file())

    def get_log(self, name: str) -> str:
        if self._meta_dir is None:
            raise FileNotFoundError("No .panoseti-meta/ sidecar directory found.")
        path = self._meta_dir / "logs" / Path(name).name
        if not path.is_file():
            raise FileNotFoundError(f"Log file not found: {name}")
        return path.read_text(errors="replace")

    def __repr__(self) -> str:
        return f"PanosetiZarrRun(out_dir={self.out_dir.name!r}, {len(self._store_map)} product(s))"


def open_zarr_run(path: str | os.PathLike[str]) -> PanosetiZarrRun:
    return PanosetiZarrRun(path)


__all__ = [
    "CODECS",
    "HEADER_DTYPES",
    "SPEC_VERSION",
    "FrameWriter",
    "PanosetiZarrRun",
    "PanosetiZarrStore",
    "ZarrLayoutError",
    "convert_run",
    "convert_sequence",
    "create_store",
    "open_zarr_run",
    "unit_ranges",
    "write_frames",
    "write_sequence_range",
    "write_sidecar",
    "write_unit",
    "zarr_name",
]
