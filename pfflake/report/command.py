"""The body of ``pfflake report`` (the command's options live in :mod:`pfflake.cli`)."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

from ..lake import Lake
from . import ReportOptions, write_report


def check_night(night: str | None) -> str | None:
    """``YYYY-MM-DD`` or a ValueError saying what is wrong."""
    if night is None:
        return None
    try:
        return date.fromisoformat(night).isoformat()
    except ValueError:
        raise ValueError(f"--night {night!r} is not a date YYYY-MM-DD") from None


def report_command(lake_path: Path, runs: list[str] | None, night: str | None, out: Path, *,
                   compute_pedestals: bool = True, gallery: int = 8) -> int:
    """Write the report and print where it is; returns the exit code (1 if a section
    failed: the page is written and shows which)."""

    options = ReportOptions(compute_pedestals=compute_pedestals, gallery_size=gallery)
    result = write_report(Lake(lake_path), out, runs=runs or None, night=night,
                          options=options)
    empty = [s.id for s in result.sections if s.empty and s.id not in result.errors]
    print(f"report of {len(result.runs)} run(s): {result.index} "
          f"({len(result.figures)} figures, {result.seconds:.1f} s)")
    if not result.runs:
        print("pfflake: warning: no run matched; the report is empty", file=sys.stderr)
    if empty:
        print("  sections without data: " + ", ".join(empty))
    for sid, err in result.errors.items():
        print(f"pfflake: error: section {sid} failed: {err}", file=sys.stderr)
    return 1 if result.errors else 0
