"""Which run a directory holds, and what a run's frames were computed with.

A lake refers to a run by its directory name, but two nights can share a
directory name. :func:`run_identity` gives the identity that cannot collide
(observatory + start time); :func:`checked_identity` refuses a second, different
run under a name the lake already holds. :func:`run_threshold` keeps the
``pixels_above`` threshold of a run fixed across its ingests. Each raises
:class:`pfflake.lake.LakeError` with what to do.
"""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import LakeError
from .paths import parse_pff_name, parse_run_name

if TYPE_CHECKING:
    from .log import Snapshot


def _error(message: str) -> Exception:
    return LakeError(message)


def run_identity(run) -> dict[str, str]:
    """Which run this is: observatory and start time, never just a directory name.

    The observatory comes from the run name (``obs_<observatory>.start_...``) or
    else ``obs_config.json``'s ``name``; the start time from the run name or else
    the earliest ``start_<time>`` of its data file names (the DAQ writes them at
    run start). Raises :class:`LakeError` when either cannot be found: such a
    run could not be told from another run of the same directory name.
    """
    rn = parse_run_name(run.run_dir)
    observatory = rn.observatory
    if observatory is None:
        try:
            obs = json.loads((run.run_dir / "obs_config.json").read_text())
            observatory = obs.get("name") if isinstance(obs, dict) else None
        except (OSError, ValueError):
            observatory = None
    start = rn.start
    if start is None:
        starts = []
        for p in run.run_dir.glob("*.pff"):
            try:
                starts.append(parse_pff_name(p).start)
            except (ValueError, KeyError):
                continue
        start = min(starts, default=None)
    if not observatory or start is None:
        missing = " and ".join(
            w for w, v in (("observatory", observatory), ("start time", start)) if not v
        )
        raise _error(
            f"{run.run_dir}: cannot tell which run this is (no {missing}): name it "
            "obs_<observatory>.start_<YYYY-MM-DDTHH:MM:SS>Z.runtype_<type>.pffd, or give it an "
            "obs_config.json with a \"name\" and data files named start_<time>Z...."
        )
    stamp = start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"observatory": str(observatory), "start": stamp}


def checked_identity(run, run_dir: Path, snap: Snapshot) -> dict[str, str]:
    """The run's identity; refuse a different run under a name the lake already holds."""
    ident = run_identity(run)
    ident["source_path"] = str(Path(run_dir).resolve())
    name = run.run_dir.name
    known = snap.run_ids.get(name)
    if known and (known["observatory"], known["start"]) != (ident["observatory"],
                                                            ident["start"]):
        raise _error(
            f"{run_dir}: the lake already holds a different run named {name!r} "
            f"({known['observatory']}, started {known['start']}, from {known['source_path']}); "
            f"this one is {ident['observatory']}, started {ident['start']}. Rename this "
            "directory (e.g. obs_<observatory>.start_<time>Z.runtype_<type>.pffd) and ingest it "
            "again, or use another lake"
        )
    return ident


def run_threshold(name: str, threshold: float | None, snap: Snapshot) -> float | None:
    """The pixels_above threshold for ``name``: fixed by its first ingest, then inherited."""
    threshold = None if threshold is None else float(threshold)
    if name not in snap.thresholds:
        return threshold
    recorded = snap.thresholds[name]
    if threshold is None or threshold == recorded:
        return recorded
    raise _error(
        f"run {name!r} was ingested with threshold {recorded}; ingesting more of it with "
        f"{threshold} would mix two meanings of pixels_above (omit --threshold to keep "
        f"{recorded}, or use another lake)"
    )


__all__ = ["checked_identity", "run_identity", "run_threshold"]
