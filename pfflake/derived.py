"""Compatibility face: the module moved to :mod:`pfflake.lake.derived` (issue 13: the
lake-side analysis that commits through the log lives in the lake package). Same objects."""

from .lake.derived import (
    UnitOutput,
    cleanup,
    commit_outputs,
    new_staging,
    run_tasks,
    write_staged,
)

__all__ = [
    "UnitOutput",
    "cleanup",
    "commit_outputs",
    "new_staging",
    "run_tasks",
    "write_staged",
]
