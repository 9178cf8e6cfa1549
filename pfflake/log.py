"""Compatibility face: the commit log lives in :mod:`pfflake.lake.log`."""

from .errors import CommitConflict
from .lake.log import (
    LOG_DIR,
    FileState,
    Snapshot,
    StreamState,
    apply_commit,
    load_snapshot,
    log_versions,
    publish_commit,
    read_commit,
)

__all__ = [
    "LOG_DIR",
    "CommitConflict",
    "FileState",
    "Snapshot",
    "StreamState",
    "apply_commit",
    "load_snapshot",
    "log_versions",
    "publish_commit",
    "read_commit",
]
