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

Modules: :mod:`~pfflake.store.layout` (names, documents, :class:`ArrayLayout`),
:mod:`~pfflake.store.write` (:class:`FrameWriter`), :mod:`~pfflake.store.read`
(:class:`PanosetiZarrRun`), :mod:`~pfflake.store.convert` (:func:`convert_run`),
:mod:`~pfflake.store.sidecar` (:func:`write_sidecar`). :mod:`pfflake.zarr` is the
pypff-compatible face over these.
"""

from .convert import convert_run, convert_sequence, convert_with_writer
from .layout import (
    CODECS,
    HEADER_DTYPES,
    SPEC_VERSION,
    ArrayLayout,
    create_store,
    unit_ranges,
    write_unit,
    zarr_name,
)
from .read import PanosetiZarrRun, PanosetiZarrStore, open_zarr_run
from .sidecar import write_sidecar
from .write import FrameWriter, write_frames, write_sequence_range

__all__ = [
    "CODECS",
    "HEADER_DTYPES",
    "SPEC_VERSION",
    "ArrayLayout",
    "FrameWriter",
    "PanosetiZarrRun",
    "PanosetiZarrStore",
    "convert_run",
    "convert_sequence",
    "convert_with_writer",
    "create_store",
    "open_zarr_run",
    "unit_ranges",
    "write_frames",
    "write_sequence_range",
    "write_sidecar",
    "write_unit",
    "zarr_name",
]
