"""The store layout: array names, dtypes, chunk rules, ``zarr.json`` documents.

Everything pfflake knows about how a store is laid out on disk lives here:
:func:`create_store` writes the documents, :class:`ArrayLayout` parses them back (the
writer, the fast reader and ``fsck`` all go through it), :func:`write_unit` and
:func:`unit_ranges` say how a store splits into files no two writers share, and the
target helpers say when an existing path may be replaced.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .._version import __version__
from ..errors import ZarrLayoutError
from ..products import FIELD_DTYPES, DataProduct
from ..redact import Redacted, redact
from ..sequence import PFFSequence
from ..timestamps import QUALITY_NAMES

SPEC_VERSION = "1.1"
UNIX_T_NS = "unix_t_ns"
TIME_QUALITY = "time_quality"
IMAGES = "images"

#: Header field dtypes; spec 1.1 (pypff's ``_HEADER_DTYPES``) and products.FIELD_DTYPES agree.
HEADER_DTYPES: dict[str, np.dtype] = {k: np.dtype(v) for k, v in FIELD_DTYPES.items()}
CODECS = ("zstd", "blosc", "blosc-lz4", "blosc-zstd", "blosc-lz4-bitshuffle", "gzip", "none")
_IMAGE_CHUNK_BYTES = 8 * 1024 * 1024
_MAX_1D_CHUNK = 65536
INDEX_CODECS = [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}]
EMPTY_OFFSET = np.uint64(2**64 - 1)
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


def codec_chain(codec: str, level: int, itemsize: int) -> list[dict[str, Any]]:
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


def array_document(
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
    chain = codec_chain(codec, level, dtype.itemsize)
    chunk = [chunk_frames, *shape[1:]]
    if shard_frames:
        grid = [shard_frames, *shape[1:]]
        chain = [
            {
                "name": "sharding_indexed",
                "configuration": {
                    "chunk_shape": chunk,
                    "codecs": chain,
                    "index_codecs": INDEX_CODECS,
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


def write_json(path: Path, doc: dict[str, Any], *, indent: int | None = 2) -> None:
    """Write a ``zarr.json`` atomically (a temporary name, then renamed): a concurrent
    ingest of the same run may read the store while this one creates it, and must see a
    whole document or none. ``indent=None`` uses json's C encoder (large root attributes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(json.dumps(doc, indent=indent))
    os.replace(tmp, path)


def frame_config(product: DataProduct, seq: PFFSequence | None) -> dict[str, Any]:
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
    codec_chain(codec, level, 1)  # validates the codec name up front
    ts_chunk = default_ts_chunk(chunk) if ts_chunk is None else int(ts_chunk)
    if ts_chunk < 1 or ts_chunk % chunk:
        raise ValueError(f"ts_chunk ({ts_chunk}) must be a multiple of time_chunk ({chunk})")
    if image_shard and (image_shard < 0 or image_shard % chunk):
        raise ValueError(f"image_shard ({image_shard}) must be a multiple of time_chunk ({chunk})")
    path = Path(path)
    clear_target(path, overwrite)

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
        "frame_config": frame_config(product, seq),
    }
    if run_configs:
        safe = isinstance(run_configs, Redacted)
        attrs["run_configs"] = dict(run_configs) if safe else redact(dict(run_configs))
    if shard_factor:
        attrs["shard_factor"] = shard_factor
    attrs["pfflake"] = {
        "version": __version__,
        "time_rule": "pfflake.timestamps: WR/host reconciliation, first quabo with "
        "tv_sec != 0; desync flagged in time_quality, never guessed",
        "write_unit_frames": unit,
    }
    root = {"attributes": attrs, "zarr_format": 3, "node_type": "group"}
    write_json(path / "zarr.json", root, indent=None)

    def doc(
        frame_shape: tuple[int, ...],
        dtype: Any,
        chunk_frames: int,
        shard: int | None,
        attributes: dict[str, Any],
    ) -> dict[str, Any]:
        shape = (n_frames, *frame_shape)
        return array_document(
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
        write_json(path / item[0] / "zarr.json", item[1])

    if _pool is None:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(write, docs.items()))
    else:
        list(_pool.map(write, docs.items()))
    return path


def looks_like_store(path: Path) -> bool:
    return (path / "zarr.json").is_file() or (path / "manifest.json").is_file()


def check_target(path: Path, overwrite: bool) -> bool:
    """Whether ``path`` exists; raises if it does and may not be replaced."""
    if not path.exists():
        return False
    if not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    if not (path.is_dir() and (looks_like_store(path) or not any(path.iterdir()))):
        raise FileExistsError(
            f"{path} exists and is not a Zarr store or sidecar; refusing to delete it"
        )
    return True


def clear_target(path: Path, overwrite: bool) -> None:
    if check_target(path, overwrite):
        shutil.rmtree(path)

def replace_target(new: Path, target: Path, overwrite: bool) -> None:
    """Rename a finished ``new`` store/sidecar over ``target`` (cleared first if allowed)."""
    if target.exists():
        clear_target(target, overwrite)
    os.replace(new, target)


# -----------------------------------------------------------------------------
# Writing chunks: numcodecs in threads, straight to files
# -----------------------------------------------------------------------------


def codec_from_doc(doc: dict[str, Any]) -> Any:
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


class ArrayLayout:
    """What one array's ``zarr.json`` says about its files: shape, dtype, chunk and
    shard sizes, codecs, file names. Only layouts pfflake can read and write without
    zarr-python pass (little-endian ``bytes`` first, whole-frame chunks, shard index at
    the end with ``bytes`` + ``crc32c``); anything else raises :class:`ZarrLayoutError`,
    and readers fall back to zarr-python."""

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
            if cfg.get("index_location", "end") != "end" or cfg["index_codecs"] != INDEX_CODECS:
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
        self.compressors = [codec_from_doc(c) for c in codecs[1:]]
        self.chunk_shape = (self.chunk_frames, *self.shape[1:])
        self.raw_chunk_bytes = math.prod(self.chunk_shape) * self.dtype.itemsize

    @property
    def n_frames(self) -> int:
        return int(self.shape[0])

    @property
    def object_frames(self) -> int:
        """Frames per stored file (a shard, or a chunk when unsharded)."""
        return self.shard_frames or self.chunk_frames

    def key_path(self, index: int) -> Path:
        return self.path.joinpath("c", str(index), *["0"] * (len(self.shape) - 1))


A = TypeVar("A", bound=ArrayLayout)


def write_unit(store_path: str | os.PathLike[str]) -> int:
    """Frames per write unit: no chunk or shard file spans two units of a store."""
    arrays = store_arrays(Path(store_path))
    return math.lcm(*(a.object_frames for a in arrays.values()))


def unit_ranges(store_path: str | os.PathLike[str]) -> list[tuple[int, int]]:
    """``(start, stop)`` frame ranges of a store's write units, for parallel writers."""
    arrays = store_arrays(Path(store_path))
    n = arrays[IMAGES].n_frames
    unit = math.lcm(*(a.object_frames for a in arrays.values()))
    return [(s, min(s + unit, n)) for s in range(0, n, unit)]


def store_arrays(path: Path, cls: type[A] = ArrayLayout) -> dict[str, A]:
    """Every array of a store, parsed as ``cls`` (:class:`ArrayLayout`, or the writer's
    :class:`pfflake.store.write.ArrayFiles`)."""
    if not (path / "zarr.json").is_file():
        raise FileNotFoundError(f"not a Zarr store (no zarr.json): {path}")
    arrays = {}
    for sub in sorted(path.iterdir()):
        meta = sub / "zarr.json"
        if meta.is_file() and json.loads(meta.read_text()).get("node_type") == "array":
            arrays[sub.name] = cls(sub)
    if IMAGES not in arrays:
        raise ZarrLayoutError(f"{path}: no 'images' array")
    return arrays


#: Threads :func:`fsync_paths` syncs with at most.
SYNC_THREADS = 16


def fsync_paths(paths: Iterable[Path]) -> int:
    """fsync each of ``paths`` (files or directories), concurrently; returns how many.

    Concurrent fsyncs on one filesystem share journal commits (ext4's jbd2 and xfs batch
    the waiters of a transaction) and queue their data writes together, so N files cost
    about one commit plus their writes instead of N commits one after the other.
    Measured on the benchmark machine (ext4, 77 files of 150 kB, as a follow tick
    writes): 31 ms serial vs 20 ms concurrent on a quiet disk, and 182 ms (p95 1.2 s)
    vs 97 ms (p95 0.14 s) while another process writes 3 GB."""
    todo = list(dict.fromkeys(paths))
    if len(todo) <= 1:
        for path in todo:
            fsync_path(path)
        return len(todo)
    with ThreadPoolExecutor(min(SYNC_THREADS, len(todo)), thread_name_prefix="fsync") as pool:
        for _ in pool.map(fsync_path, todo):
            pass
    return len(todo)


def fsync_path(path: Path) -> None:
    """fsync one file or directory, by path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def staging_path(target: Path) -> Path:
    """A hidden sibling of ``target`` to build it in (renamed over it when complete)."""
    return target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")


__all__ = [
    "CODECS",
    "EMPTY_OFFSET",
    "HEADER_DTYPES",
    "IMAGES",
    "INDEX_CODECS",
    "SPEC_VERSION",
    "TIME_QUALITY",
    "UNIX_T_NS",
    "ArrayLayout",
    "check_target",
    "clear_target",
    "codec_from_doc",
    "create_store",
    "default_time_chunk",
    "default_ts_chunk",
    "fsync_path",
    "fsync_paths",
    "header_dtype",
    "looks_like_store",
    "replace_target",
    "staging_path",
    "store_arrays",
    "unit_ranges",
    "write_unit",
    "zarr_name",
]
