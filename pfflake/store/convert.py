"""``convert_run``: a run directory to pypff-layout Zarr stores plus the sidecar.

Each stream is written under a temporary name and renamed into place when complete; an
existing output is refused unless ``overwrite=True``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..redact import Redacted, redact
from ..run import PanosetiRun
from ..sequence import PFFSequence
from ..timestamps import frame_unix_t_ns
from .layout import (
    IMAGES,
    TIME_QUALITY,
    UNIX_T_NS,
    check_target,
    clear_target,
    create_store,
    replace_target,
    staging_path,
    store_arrays,
    zarr_name,
)
from .sidecar import build_sidecar
from .write import FrameWriter, checked_cast

logger = logging.getLogger(__name__)


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
    staging = staging_path(out_path)
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
        replace_target(staging, out_path, overwrite)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return out_path


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
            check_target(t, overwrite)  # before anything is written
        out.mkdir(parents=True, exist_ok=True)
        side = staging_path(meta_dir)
        with ThreadPoolExecutor(1) as side_pool:
            # the sidecar is I/O: build it while the stores are written, commit it after
            side_job = (
                side_pool.submit(build_sidecar, run_obj, side, [t.name for t in targets])
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
                            convert_with_writer(seq, target, writer, **opts)
                        else:
                            convert_sequence(seq, target, _pool=pool, **opts)
                if side_job is not None:
                    side_job.result()
                    replace_target(side, meta_dir, overwrite)
            finally:
                if side_job is not None:
                    side_job.exception()  # wait for it before cleaning up
                shutil.rmtree(side, ignore_errors=True)
        return targets
    finally:
        if owned:
            run_obj.close()


def convert_with_writer(seq: PFFSequence, target: Path, writer: Any, **kw: Any) -> None:
    """pypff ``ZarrWriter`` protocol path: same arrays and attributes, the backend writes."""
    if target.exists():
        clear_target(target, kw["overwrite"])
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
        arrays = store_arrays(template)
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
            data = checked_cast(values[name], arrays[name].dtype, name, pos)
            sl = (slice(pos, pos + n),) + (slice(None),) * (data.ndim - 1)
            writer.write_slice(handle, sl, data)
        pos += n
    writer.finalize(target)


__all__ = ["convert_run", "convert_sequence", "convert_with_writer"]
