"""pypff's ``zarr`` module over :mod:`pfflake.zarr` (same store layout, spec 1.1).

``convert_run``, ``PFFToZarrConverter``, the ``ZarrWriter`` protocol and its
default backend ``ZarrPythonWriter``, and the read side
(``PanosetiZarrRun``, ``PanosetiZarrStore``, ``open_zarr_run``) with pypff's
return types: ``store.images`` is an xarray ``DataArray`` (needs the
``xarray`` extra), ``store.to_dataset()`` an xarray ``Dataset``.

Differences from pypff, on purpose (see :mod:`pfflake.zarr`): timestamps by
pfflake's rule plus a ``time_quality`` array; configs embedded and copied to
the sidecar are redacted; ``codec="none"`` really stores raw chunks. As in
pypff, converting onto an existing store replaces it (``overwrite=True`` by
default here; pfflake's own :func:`pfflake.zarr.convert_run` refuses unless
asked). Without a custom ``writer`` pfflake's threaded writer does the work
(byte-identical chunks to zarr-python's); a custom ``writer`` gets exactly
the protocol calls pypff makes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .. import zarr as _z
from ..sequence import PFFSequence


@runtime_checkable
class ZarrWriter(Protocol):
    """A pluggable Zarr write backend (pypff's protocol).

    Handles (``root_group``, ``array``, ``obj``) are opaque: the converter
    only passes them back into the same writer.
    """

    def create_store(self, path: Path) -> Any:
        """Create (or overwrite) a Zarr v3 root group at ``path``."""
        ...

    def create_array(
        self,
        root_group: Any,
        name: str,
        shape: tuple[int, ...],
        chunks: tuple[int, ...],
        dtype: np.dtype,
        dimension_names: list[str] | None = None,
        shards: tuple[int, ...] | None = None,
    ) -> Any:
        """Create an array in ``root_group``; ``shards`` (if not None) enables sharding."""
        ...

    def write_slice(self, array: Any, slices: tuple[slice, ...], data: np.ndarray) -> None:
        """Write ``data`` into ``array`` at ``slices``."""
        ...

    def set_attrs(self, obj: Any, attrs: dict[str, Any]) -> None:
        """Attach attributes to a group or array."""
        ...

    def finalize(self, path: Path) -> None:
        """Flush and close the store."""
        ...


class ZarrPythonWriter:
    """The zarr-python backend: ``codec`` ``zstd`` / ``blosc`` (= ``blosc-lz4``) / ``gzip`` /
    ``none`` at ``level``. ``consolidate=True`` writes consolidated metadata at the end."""

    def __init__(self, codec: str = "zstd", level: int = 3, *, consolidate: bool = False) -> None:
        if codec not in ("zstd", "blosc", "blosc-lz4", "gzip", "none"):
            raise ValueError(f"unknown codec {codec!r}")
        self.codec, self.level, self.consolidate = codec, level, consolidate

    def _compressors(self) -> list[Any] | None:
        import zarr.codecs as zc

        if self.codec == "zstd":
            return [zc.ZstdCodec(level=self.level)]
        if self.codec in ("blosc", "blosc-lz4"):
            return [zc.BloscCodec(cname="lz4", clevel=self.level, shuffle="shuffle")]
        if self.codec == "gzip":
            return [zc.GzipCodec(level=self.level)]
        return None  # "none": raw chunks

    def create_store(self, path: Path) -> Any:
        import zarr

        path = Path(path)
        if path.exists():
            shutil.rmtree(path)
        return zarr.open_group(str(path), mode="w", zarr_format=3)

    def create_array(
        self,
        root_group: Any,
        name: str,
        shape: tuple[int, ...],
        chunks: tuple[int, ...],
        dtype: np.dtype,
        dimension_names: list[str] | None = None,
        shards: tuple[int, ...] | None = None,
    ) -> Any:
        group = root_group
        parent, _, leaf = name.rpartition("/")
        if parent:
            group = group.require_group(parent)
        kwargs: dict[str, Any] = {"shape": shape, "chunks": chunks, "dtype": dtype}
        if shards is not None:
            kwargs["shards"] = shards
        kwargs["compressors"] = self._compressors()
        if dimension_names is not None:
            kwargs["dimension_names"] = dimension_names
        return group.create_array(leaf, **kwargs)

    def write_slice(self, array: Any, slices: tuple[slice, ...], data: np.ndarray) -> None:
        array[slices] = data

    def set_attrs(self, obj: Any, attrs: dict[str, Any]) -> None:
        obj.attrs.update(attrs)

    def finalize(self, path: Path) -> None:
        if self.consolidate:
            import zarr

            with contextlib.suppress(Exception):
                zarr.consolidate_metadata(str(path))


class PFFToZarrConverter:
    """Convert one :class:`PFFSequence` to a Zarr v3 store (pypff's class).

    ``writer=None``: pfflake's threaded writer with ``codec``/``level``.
    ``time_chunk=None``: ~8 MB of pixels per chunk, as pypff.
    """

    def __init__(
        self,
        seq: PFFSequence,
        writer: ZarrWriter | None = None,
        *,
        time_chunk: int | None = None,
        codec: str = "zstd",
        level: int = 3,
        run_configs: dict[str, Any] | None = None,
        shard_factor: int = 0,
    ) -> None:
        if not isinstance(seq, PFFSequence):
            raise ValueError("seq must be a fully configured PFFSequence.")
        self.seq = seq
        self.writer = writer
        self.codec, self.level = codec, level
        self.run_configs = run_configs or {}
        self.time_chunk = time_chunk or _z.default_time_chunk(seq.product)
        self.shard_factor = shard_factor

    def convert(self, out_path: str | os.PathLike[str]) -> Path:
        """Write the store at ``out_path`` (replacing a store already there); returns the path."""
        out = Path(out_path)
        opts = {
            "codec": self.codec,
            "level": self.level,
            "time_chunk": self.time_chunk,
            "shard_factor": self.shard_factor,
            "run_configs": self.run_configs,
            "overwrite": True,
        }
        if self.writer is None:
            return _z.convert_sequence(self.seq, out, **opts)
        _z.convert_with_writer(self.seq, out, self.writer, **opts)
        return out


def convert_run(
    run: Any,
    out_dir: str | os.PathLike[str],
    *,
    codec: str = "zstd",
    level: int = 3,
    time_chunk: int | None = None,
    shard_factor: int = 0,
    writer: ZarrWriter | None = None,
    write_sidecars: bool = True,
    embed_configs: bool = True,
    overwrite: bool = True,
    workers: int | None = None,
) -> list[Path]:
    """pypff's ``convert_run``: one ``<run>.<stream>.zarr`` per stream (+ the sidecar).

    Existing outputs are replaced, as in pypff (``overwrite=False`` refuses).
    """
    return _z.convert_run(
        run,
        out_dir,
        codec=codec,
        level=level,
        time_chunk=time_chunk,
        shard_factor=shard_factor,
        writer=writer,
        write_sidecars=write_sidecars,
        embed_configs=embed_configs,
        overwrite=overwrite,
        workers=workers,
    )


class PanosetiZarrStore(_z.PanosetiZarrStore):
    """One converted stream; ``images`` is an xarray ``DataArray`` as in pypff."""

    @property
    def images(self) -> Any:
        """``(T, H, W)`` pixels as a lazy (dask-backed) xarray ``DataArray``."""
        return self._dataset["images"]

    @property
    def _dataset(self) -> Any:
        ds = self.__dict__.get("_ds")
        if ds is None:
            ds = self.__dict__["_ds"] = self.to_dataset()
        return ds

    def __getitem__(self, key: Any) -> np.ndarray:
        """Images of frames ``key`` as numpy (read through zarr, not xarray)."""
        return _z.PanosetiZarrStore(self.path)[key]

    def __len__(self) -> int:
        return int(self._group[_z.IMAGES].shape[0])


class PanosetiZarrRun(_z.PanosetiZarrRun):
    """A ``convert_run`` output directory, with pypff-typed stores."""

    @property
    def _store_map(self) -> dict[str, PanosetiZarrStore]:  # type: ignore[override]
        stores = self.__dict__.get("_stores")
        if stores is None:
            stores = {}
            for path in sorted(self.out_dir.glob("*.zarr")):
                if path.is_dir():
                    s = PanosetiZarrStore(path)
                    stores[f"dp_{s.data_product}.bpp_{s.bytes_per_pixel}.module_{s.module}"] = s
            self.__dict__["_stores"] = stores
        return stores


def open_zarr_run(path: str | os.PathLike[str]) -> PanosetiZarrRun:
    """Open a ``convert_run`` output directory."""
    return PanosetiZarrRun(path)


__all__ = [
    "PFFToZarrConverter",
    "PanosetiZarrRun",
    "PanosetiZarrStore",
    "ZarrPythonWriter",
    "ZarrWriter",
    "convert_run",
    "open_zarr_run",
]
