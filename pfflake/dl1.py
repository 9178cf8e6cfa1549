"""Compatibility face: the module moved to :mod:`pfflake.lake.dl1` (issue 13: the
lake-side analysis that commits through the log lives in the lake package). Same objects."""

from .lake.dl1 import (
    DL1_SCHEMA,
    Dl1Recipe,
    Dl1Result,
    compute_dl1,
)

__all__ = [
    "DL1_SCHEMA",
    "Dl1Recipe",
    "Dl1Result",
    "compute_dl1",
]
