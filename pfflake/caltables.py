"""Compatibility face: the module moved to :mod:`pfflake.lake.caltables` (issue 13: the
lake-side analysis that commits through the log lives in the lake package). Same objects."""

from .lake.caltables import (
    CALIBRATION_SCHEMA,
    KINDS,
    Calibration,
    CalibrationNotFoundError,
    CalibrationResult,
    calibrated_images,
    calibration_rows,
    compute_gain,
    compute_pedestals,
    lookup,
)

__all__ = [
    "CALIBRATION_SCHEMA",
    "KINDS",
    "Calibration",
    "CalibrationNotFoundError",
    "CalibrationResult",
    "calibrated_images",
    "calibration_rows",
    "compute_gain",
    "compute_pedestals",
    "lookup",
]
