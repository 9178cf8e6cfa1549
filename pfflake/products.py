"""PANOSETI data products: name -> image shape, pixel dtype, header kind.

The PFF format is not self-describing: the image geometry comes from the data
product named in the file name (``dp_img16``), so this table is the one place
that knows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np

from .errors import UnknownProductError

HeaderKind = Literal["module", "quabo"]

QUABO_FIELDS: tuple[str, ...] = ("pkt_num", "pkt_tai", "pkt_nsec", "tv_sec", "tv_usec")
"""Fields of one quabo packet header, in DAQ print order."""

#: DAQ printf widths of each numeric header field (values are right-aligned, space padded).
FIELD_WIDTHS: dict[str, int] = {
    "quabo_num": 1,
    "pkt_num": 10,
    "pkt_tai": 4,
    "pkt_nsec": 9,
    "tv_sec": 10,
    "tv_usec": 6,
}

#: Natural on-disk (Zarr/Arrow) dtype of each header field, as in pypff's Zarr spec.
FIELD_DTYPES: dict[str, str] = {
    "quabo_num": "uint8",
    "pkt_num": "uint32",
    "pkt_tai": "uint16",
    "pkt_nsec": "uint32",
    "tv_sec": "int64",
    "tv_usec": "uint32",
}


@dataclass(frozen=True)
class DataProduct:
    """Geometry of one data product.

    ``header_kind`` is ``"module"`` for products whose header holds one
    sub-object per quabo (``quabo_0``..``quabo_3``) and ``"quabo"`` for
    single-packet products (``ph256``).
    """

    name: str
    image_shape: tuple[int, int]
    dtype: np.dtype
    header_kind: HeaderKind

    @property
    def bytes_per_pixel(self) -> int:
        return self.dtype.itemsize

    @property
    def image_bytes(self) -> int:
        return self.image_shape[0] * self.image_shape[1] * self.dtype.itemsize

    @cached_property  # per-call hot path (every strict header check); frozen: safe to cache
    def header_fields(self) -> tuple[str, ...]:
        """Flat header field names in pypff's dotted form (``quabo_0.pkt_num`` / ``pkt_num``)."""
        if self.header_kind == "module":
            return tuple(f"quabo_{q}.{f}" for q in range(4) for f in QUABO_FIELDS)
        return ("quabo_num", *QUABO_FIELDS)


PRODUCTS: dict[str, DataProduct] = {
    p.name: p
    for p in (
        DataProduct("img16", (32, 32), np.dtype("<u2"), "module"),
        DataProduct("img8", (32, 32), np.dtype("u1"), "module"),
        DataProduct("ph1024", (32, 32), np.dtype("<i2"), "module"),
        DataProduct("ph256", (16, 16), np.dtype("<i2"), "quabo"),
    )
}


def get_product(name: str) -> DataProduct:
    """Look up a data product by name (``img16``, ``dp_img16`` and case variants accepted)."""
    key = name.lower().removeprefix("dp_")
    try:
        return PRODUCTS[key]
    except KeyError:
        raise UnknownProductError(
            f"unknown data product {name!r}; known: {', '.join(sorted(PRODUCTS))}"
        ) from None
