"""Every path under a lake root, and the lake's default store layout.

Layout under the lake root::

    _pfflake_log/<version>.json          commits (see pfflake.lake.log)
    _staging/<txn>/...                   data files being written (owner.json: host, pid)
    frames/data_product=<dp>/module=<m>/<run>.<first>-<last>.<txn>.parquet
    runs/<txn>.parquet  files/<txn>.parquet  hk/<run>.<txn>.parquet
    calibration/...  dl1/...             derived tables (pfflake.derived)
    zarr/<run>/<run>.<stream>.zarr       pypff-compatible stores (convert_run layout)

Names in paths come from run directories and file names, which the lake does not
control: :func:`safe_name` makes every one of them a single harmless path component.
Of the lake it imports only the log directory's name (:mod:`pfflake.lake.log`).
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
import uuid
from pathlib import Path

from ..errors import LakeError
from .log import LOG_DIR

STAGING = "_staging"
#: Lake stores keep images in chunks of about this many bytes, in shards of
#: IMAGE_SHARD_FRAMES frames: a scattered query hit costs one small chunk's
#: decode (not pypff's 8 MB), and the shard keeps the file count of a 4096-chunk store.
IMAGE_CHUNK_BYTES = 65_536
IMAGE_SHARD_FRAMES = 4096
#: Blosc LZ4 after bit-shuffling: on photon-count pixels it compresses better than
#: zstd level 3 (2.5:1 vs 2.35:1 on simulated img16), encodes ~10x and decodes ~5x faster.
LAKE_CODEC = "blosc-lz4-bitshuffle"


def safe_name(name: str) -> str:
    """A file-name-safe token: no path separators, no ``..``, no ``:``.

    Names come from run directories and file names, which the lake does not
    control; nothing derived from them may point outside the lake root.
    """
    token = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    token = re.sub(r"\.{2,}", "_", token).strip(".")
    return token or "_"


def store_path(run: str, stream: str) -> Path:
    """A stream's Zarr store, relative to the lake root."""
    return Path("zarr") / safe_name(run) / f"{safe_name(run)}.{safe_name(stream)}.zarr"


def is_lake(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` holds a pfflake lake (its commit log directory exists)."""
    return (Path(path) / LOG_DIR).is_dir()


def check_lake_target(path: str | os.PathLike[str]) -> None:
    """Refuse to create a lake where one does not belong.

    A lake may be created in a missing or empty directory; an existing lake is
    reused. A run directory (it holds ``.pff`` files) or any other non-empty
    directory is refused with :class:`LakeError`, so a mistyped ``--lake`` never
    scatters lake files among raw data.
    """
    root = Path(path)
    if is_lake(root):
        return
    if root.exists() and not root.is_dir():
        raise LakeError(f"{root}: is a file, not a lake directory")
    if not root.is_dir():
        return
    entries = sorted(p.name for p in root.iterdir())
    if not entries or is_lake(root):  # (again: another ingest may have just created it)
        return
    if any(name.endswith(".pff") for name in entries):
        raise LakeError(
            f"{root}: is a run directory (it holds .pff files), not a lake; "
            "give --lake a new or empty directory"
        )
    shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
    raise LakeError(
        f"{root}: not empty and not a pfflake lake (holds {shown}); "
        "give --lake a new or empty directory, or an existing lake"
    )


def create_lake(path: str | os.PathLike[str]) -> None:
    """Make ``path`` a lake (an empty one at version 0) unless it is one; refuses what
    :func:`check_lake_target` refuses."""
    check_lake_target(path)
    (Path(path) / LOG_DIR).mkdir(parents=True, exist_ok=True)


def new_staging(root: Path) -> tuple[str, Path]:
    """A fresh staging area ``_staging/<txn>`` with the ``owner.json`` (host, pid) that
    fsck reads to tell a live writer's area from a dead one's. ``txn`` (unix seconds and
    a random tag) also names the data files the transaction adds."""
    txn = f"{int(time.time())}-{uuid.uuid4().hex[:12]}"
    staging = root / STAGING / txn
    staging.mkdir(parents=True)
    (staging / "owner.json").write_text(
        json.dumps({"host": socket.gethostname(), "pid": os.getpid()})
    )
    return txn, staging


def lake_zarr_layout(product, *, growing: bool = False) -> dict[str, int]:
    """The lake's default store layout for ``product``: image chunks of a power of two
    frames near :data:`IMAGE_CHUNK_BYTES` (16..4096 frames), image shards of
    :data:`IMAGE_SHARD_FRAMES`, header arrays in pypff's 65536-frame chunks, all
    compressed with :data:`LAKE_CODEC`.

    ``growing=True`` (stores a follow creates): header arrays in chunks of
    :data:`IMAGE_SHARD_FRAMES` too. A commit rewrites the store from the start of the
    write unit (the chunks and shards) holding its first new frame; with 65536-frame
    header chunks every commit of a run recorded at 10^4 frames/s would re-read and
    rewrite up to 6.5 s of frames, with these at most 0.4 s."""
    frames = max(1, IMAGE_CHUNK_BYTES // max(product.image_bytes, 1))
    chunk = min(IMAGE_SHARD_FRAMES, max(16, 1 << (frames.bit_length() - 1)))
    layout = {"time_chunk": chunk, "image_shard": IMAGE_SHARD_FRAMES, "codec": LAKE_CODEC}
    if growing:
        layout["ts_chunk"] = IMAGE_SHARD_FRAMES
    return layout


#: A followed run's store is grown ahead of its data, to a multiple of this many frames.
GROW_FRAMES = 65_536


def grown_length(frames: int) -> int:
    """The length a growing store (``IngestOptions.growing``: a follow's) is given when
    ``frames`` no longer fit: the next multiple of :data:`GROW_FRAMES` above ``frames``.

    Resizing rewrites every array's ``zarr.json`` (24 for img16), each replacing the
    old file by a rename; under background writeback those renames stalled a follow
    tick by up to 1 s (``benchmarks/bench_follow.py --dirty-gb``), so a follow resizes
    once per 6.5 s of a 10^4 frames/s run instead of at every tick. The frames beyond
    the committed count are invisible to the lake (``fsck`` lists them as uncommitted
    frames); an ingest that is not growing, such as a follow's final tick, resizes the
    store to its exact length again."""
    return (frames // GROW_FRAMES + 1) * GROW_FRAMES


__all__ = [
    "GROW_FRAMES",
    "IMAGE_CHUNK_BYTES",
    "IMAGE_SHARD_FRAMES",
    "LAKE_CODEC",
    "LOG_DIR",
    "STAGING",
    "check_lake_target",
    "create_lake",
    "grown_length",
    "is_lake",
    "lake_zarr_layout",
    "new_staging",
    "safe_name",
    "store_path",
]
