"""Zarr v3 stores in pypff's layout ("spec 1.1"): the compatibility face of
:mod:`pfflake.store`.

The code lives in :mod:`pfflake.store` (layout, write, read, convert, sidecar); this
module keeps every name it always had, so ``from pfflake.zarr import convert_run`` and
``pfflake.zarr.PanosetiZarrRun`` keep working. See :mod:`pfflake.store` for the layout
and the differences from pypff.
"""

from .errors import ZarrLayoutError
from .store.convert import convert_run, convert_sequence, convert_with_writer
from .store.layout import (
    CODECS,
    HEADER_DTYPES,
    IMAGES,
    SPEC_VERSION,
    TIME_QUALITY,
    UNIX_T_NS,
    ArrayLayout,
    create_store,
    default_time_chunk,
    default_ts_chunk,
    header_dtype,
    unit_ranges,
    write_unit,
    zarr_name,
)
from .store.read import PanosetiZarrRun, PanosetiZarrStore, open_zarr_run
from .store.sidecar import write_sidecar
from .store.write import FrameWriter, write_frames, write_sequence_range

__all__ = [
    "CODECS",
    "HEADER_DTYPES",
    "IMAGES",
    "SPEC_VERSION",
    "TIME_QUALITY",
    "UNIX_T_NS",
    "ArrayLayout",
    "FrameWriter",
    "PanosetiZarrRun",
    "PanosetiZarrStore",
    "ZarrLayoutError",
    "convert_run",
    "convert_sequence",
    "convert_with_writer",
    "create_store",
    "default_time_chunk",
    "default_ts_chunk",
    "header_dtype",
    "open_zarr_run",
    "unit_ranges",
    "write_frames",
    "write_sequence_range",
    "write_sidecar",
    "write_unit",
    "zarr_name",
]
