"""Compatibility face: ``pfflake fsck`` lives in :mod:`pfflake.lake.fsck`."""

from .lake.fsck import FsckReport, check_sources, fsck

__all__ = ["FsckReport", "check_sources", "fsck"]
