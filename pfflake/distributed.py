"""Compatibility face: Dask for the lake lives in :mod:`pfflake.lake.cluster`."""

from .lake.cluster import (
    FAULT_ENV,
    TASK_RETRIES,
    connect,
    images_dask,
    require_dask,
    run_units,
    to_dask,
)

__all__ = [
    "FAULT_ENV",
    "TASK_RETRIES",
    "connect",
    "images_dask",
    "require_dask",
    "run_units",
    "to_dask",
]
