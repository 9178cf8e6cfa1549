"""Column names, Arrow types and partition keys of the lake: the one source of truth.

The Arrow stream of a sequence, the Parquet ``frames`` table, the DuckDB
views and the Polars scans all derive from these definitions. Header columns
use pypff's Zarr names (``pkt_num``, ``quabo_0_pkt_num``) and natural widths.
"""

from __future__ import annotations

import pyarrow as pa

from .products import FIELD_DTYPES, DataProduct

# -- identity of a frame -------------------------------------------------------
RUN = "run"  # run directory name
DATA_PRODUCT = "data_product"  # img16, img8, ph1024, ph256
MODULE = "module"
SEQNO = "seqno"  # file sequence number within the stream
FRAME = "frame"  # index within the stream (all seqno files), as PFFSequence counts
FILE_FRAME = "file_frame"  # index within its file
BYTE_OFFSET = "byte_offset"  # of the frame's '{' within its file
# -- time ----------------------------------------------------------------------
UNIX_T_NS = "unix_t_ns"  # int64 ns since the UNIX epoch: authoritative
TIME = "time"  # the same instant as a UTC timestamp, for humans and plots
TIME_QUALITY = "time_quality"  # uint8 bit flags, see pfflake.timestamps
HOST_UNIX_T_NS = "host_unix_t_ns"  # int64 ns, DAQ host clock (earliest quabo), 0 if none sent
PACKET_LOSS = "packet_loss"  # bool: some quabo's pkt_num == 0 (the pipeline's cut rule)
# -- pixels ----------------------------------------------------------------------
IMAGE = "image"  # fixed_shape_tensor (H, W)
PIXEL_SUM = "pixel_sum"
PIXEL_MIN = "pixel_min"
PIXEL_MAX = "pixel_max"
PIXEL_MEAN = "pixel_mean"
PIXEL_STD = "pixel_std"
PIXEL_ARGMAX = "pixel_argmax"  # flat index (row * W + col) of the brightest pixel
PIXELS_ABOVE = "pixels_above"  # pixels above the ingest threshold

#: Hive partition keys of the frames table, in path order, with pinned types.
PARTITION_KEYS: tuple[tuple[str, pa.DataType], ...] = (
    (DATA_PRODUCT, pa.string()),
    (MODULE, pa.int32()),
)

_ARROW_INT = {
    "uint8": pa.uint8(),
    "uint16": pa.uint16(),
    "uint32": pa.uint32(),
    "int32": pa.int32(),
    "int64": pa.int64(),
}


def header_column(field: str) -> str:
    """Column name of a pypff header key: ``quabo_0.pkt_num`` -> ``quabo_0_pkt_num``."""
    return field.replace(".", "_")


def header_type(field: str) -> pa.DataType:
    return _ARROW_INT[FIELD_DTYPES[field.rsplit(".", 1)[-1]]]


def image_type(product: DataProduct) -> pa.DataType:
    """Arrow ``fixed_shape_tensor`` of one frame's pixels (row-major H x W)."""
    return pa.fixed_shape_tensor(pa.from_numpy_dtype(product.dtype), list(product.image_shape))


def stats_fields(product: DataProduct) -> list[pa.Field]:
    """Per-frame pixel statistics stored with the metadata (no pixel reads for searches)."""
    return [
        pa.field(PIXEL_SUM, pa.int64()),
        pa.field(PIXEL_MIN, pa.int32()),
        pa.field(PIXEL_MAX, pa.int32()),
        pa.field(PIXEL_MEAN, pa.float32()),
        pa.field(PIXEL_STD, pa.float32()),
        pa.field(PIXEL_ARGMAX, pa.int16()),
        pa.field(PIXELS_ABOVE, pa.int16()),
    ]


def frame_schema(product: DataProduct, *, images: bool = False, stats: bool = True) -> pa.Schema:
    """Schema of one frame row for ``product``.

    Order: identity, time, header fields (pypff Zarr names), pixel stats,
    and the image tensor when ``images``.
    """
    fields = [
        pa.field(RUN, pa.string()),
        pa.field(DATA_PRODUCT, pa.string()),
        pa.field(MODULE, pa.int32()),
        pa.field(SEQNO, pa.int32()),
        pa.field(FRAME, pa.int64()),
        pa.field(FILE_FRAME, pa.int64()),
        pa.field(BYTE_OFFSET, pa.int64()),
        pa.field(UNIX_T_NS, pa.int64()),
        pa.field(TIME, pa.timestamp("ns", tz="UTC")),
        pa.field(TIME_QUALITY, pa.uint8()),
        pa.field(HOST_UNIX_T_NS, pa.int64()),
        pa.field(PACKET_LOSS, pa.bool_()),
    ]
    fields += [pa.field(header_column(f), header_type(f)) for f in product.header_fields]
    if stats:
        fields += stats_fields(product)
    if images:
        fields.append(pa.field(IMAGE, image_type(product)))
    return pa.schema(fields)
