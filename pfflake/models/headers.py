"""PFF frame headers (one quabo packet, a module's four) and frame geometry.

Strict and frozen: a header with an unknown or missing field is an error.
``timestamp_ns`` follows :mod:`pfflake.timestamps` in integer arithmetic.
"""

from __future__ import annotations

import functools

import numpy as np

from ..timestamps import QUALITY_QUABO_MISSING, unix_t_ns_scalar
from .base import BaseStrictModel


class PFFHeader(BaseStrictModel):
    """One quabo packet's timing fields from a PFF frame header."""

    pkt_num: int
    pkt_tai: int
    pkt_nsec: int
    tv_sec: int
    tv_usec: int

    def _time(self) -> tuple[int, int]:
        return unix_t_ns_scalar(self.tv_sec, self.tv_usec, self.pkt_nsec, self.pkt_tai)

    @property
    def timestamp_ns(self) -> int:
        """UNIX time in ns (int): WR second reconciled with the host clock.

        On a clock desync the host second is kept and :attr:`timestamp_quality`
        has ``QUALITY_DESYNC`` set; check it before trusting the second.
        """
        return self._time()[0]

    @property
    def timestamp_quality(self) -> int:
        """Bit flags of :mod:`pfflake.timestamps` (``QUALITY_OK == 0`` means sound)."""
        return self._time()[1]

    time_quality = timestamp_quality


class QuaboHeader(PFFHeader):
    """Header of a single-quabo product (ph256)."""

    quabo_num: int


class ModuleHeader(BaseStrictModel):
    """Header of a module product (img16, img8, ph1024): one entry per quabo."""

    quabo_0: PFFHeader
    quabo_1: PFFHeader
    quabo_2: PFFHeader
    quabo_3: PFFHeader

    def _time(self) -> tuple[int, int]:
        quabos = (self.quabo_0, self.quabo_1, self.quabo_2, self.quabo_3)
        first = next((q for q in quabos if q.tv_sec != 0), self.quabo_0)
        ns, flags = first._time()
        if any(q.tv_sec == 0 for q in quabos):
            flags |= QUALITY_QUABO_MISSING
        return ns, flags

    @property
    def timestamp_ns(self) -> int:
        """Time of the first quabo that sent a packet (``tv_sec != 0``), else quabo_0."""
        return self._time()[0]

    @property
    def timestamp_quality(self) -> int:
        """That quabo's flags, plus ``QUALITY_QUABO_MISSING`` if any quabo sent nothing."""
        return self._time()[1]

    time_quality = timestamp_quality


class FrameConfig(BaseStrictModel):
    """Byte geometry of one data product's frames."""

    header_size: int
    payload_size: int
    frame_size: int
    image_shape: tuple[int, int]
    dtype_str: str
    bytes_per_pixel: int
    format_name: str

    @functools.cached_property
    def dtype(self) -> np.dtype:
        return np.dtype(self.dtype_str)
