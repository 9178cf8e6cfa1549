"""``pfflake report``: a night at a glance, as a static HTML page built from the lake alone.

:func:`write_report` writes ``DIR/index.html``, its figures (``DIR/figures/*.png``)
and ``DIR/manifest.json`` (lake version, runs, parameters, what each section found).
Every number comes from the lake (tables, views, the calibration and timing
functions); no PFF file is read again. Sections, in order: runs and streams, frame
rate with cut intervals, packet loss and timestamp quality, clock offsets before and
after correction, coincidence rate by multiplicity, pedestal/pedvar maps with hot and
dead pixels, the brightest events, housekeeping trends, and what was left out and why.
A section without data says so in one line instead of drawing an empty plot.

The page is self-contained (inline CSS, relative image links, no script, no network
fetch), opens from ``file://`` and prints (A4, figures kept whole).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .context import Context, ReportOptions, Section, choose_runs, night_window, utc

if TYPE_CHECKING:
    from ..lake import Lake

__all__ = ["SECTION_IDS", "ReportOptions", "ReportResult", "write_report"]

MANIFEST_FORMAT = 1


def _sections() -> list[tuple[str, Callable[[Context], Section]]]:
    from .housekeeping import hk_section
    from .pixels import gallery_section, pedestal_section
    from .quality import damage_section, rate_section, runs_section, timing_quality_section
    from .timing import coincidence_section, offsets_section

    return [("runs", runs_section), ("rate", rate_section), ("quality", timing_quality_section),
            ("offsets", offsets_section), ("coincidences", coincidence_section),
            ("pedestals", pedestal_section), ("gallery", gallery_section),
            ("housekeeping", hk_section), ("damage", damage_section)]


#: Section ids, in page order (the ``id`` of each ``<section>`` and key in the manifest).
SECTION_IDS = ("runs", "rate", "quality", "offsets", "coincidences", "pedestals", "gallery",
               "housekeeping", "damage")


@dataclass
class ReportResult:
    out: Path
    index: Path
    manifest: Path
    runs: list[str]
    figures: list[Path] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def write_report(
    lake: Lake,
    out: str | os.PathLike[str],
    *,
    runs: Sequence[str] | None = None,
    night: str | None = None,
    options: ReportOptions | None = None,
    strict: bool = False,
) -> ReportResult:
    """Write the quality report of ``runs`` (or of the runs of ``night``, ``YYYY-MM-DD``:
    first frame from D 12:00 to D+1 12:00 UTC; or of every run) into directory ``out``.

    ``out`` is created, or replaced if it holds an earlier report (a ``manifest.json``
    written by this function); any other non-empty directory is refused. A section that
    fails shows the error on the page and in ``ReportResult.errors`` (``strict=True``
    raises instead). With ``options.compute_pedestals`` (default) streams without
    pedestals get them committed first (recorded in the manifest under ``computed``).
    """
    if runs and night:
        raise ValueError("give runs or a night, not both")
    t0 = time.perf_counter()
    options = options or ReportOptions()
    out = Path(out)
    _prepare(out)
    version_before = lake.version
    chosen = choose_runs(lake, list(runs) if runs else None, night)
    ctx = Context(lake, out, chosen, options)
    sections: list[Section] = []
    errors: dict[str, str] = {}
    for sid, build in _sections():
        t1 = time.perf_counter()
        try:
            s = build(ctx)
        except Exception as e:  # one broken section must not hide the others
            if strict:
                raise
            errors[sid] = f"{type(e).__name__}: {e}"
            s = Section(sid, sid, "This section failed.", empty=f"section failed: {errors[sid]}")
            s.notes.append(traceback.format_exc(limit=3).splitlines()[-1])
        s.seconds = time.perf_counter() - t1
        sections.append(s)
    from .html import page

    stats = lake.sql("SELECT count(*), sum(frames), min(first_unix_t_ns), max(last_unix_t_ns) "
                     "FROM run_quality" + ctx.where()).fetchall()[0]
    what = (f"night of {night} ({night_window(night)[0]:%Y-%m-%d %H:%M} to "
            f"{night_window(night)[1]:%Y-%m-%d %H:%M} UTC)" if night else
            "runs " + ", ".join(chosen) if runs else "every run in the lake")
    glance = [("runs", f"{len(chosen)}"), ("streams", f"{stats[0] or 0}"),
              ("frames", f"{int(stats[1] or 0):,}"),
              ("first frame (UTC)", utc(stats[2])[:19]), ("last frame (UTC)", utc(stats[3])[:19]),
              ("sections without data", f"{sum(1 for s in sections if s.empty)} of "
                                        f"{len(sections)}")]
    title = "pfflake report: " + (f"night of {night}" if night else
                                  chosen[0] if len(chosen) == 1 else f"{len(chosen)} runs")
    meta = (f"Lake {lake.root} at version {lake.version}; {what}; written "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC by pfflake {_version()}.")
    index = out / "index.html"
    index.write_text(page(title, meta, glance, sections), encoding="utf-8")
    seconds = time.perf_counter() - t0
    manifest = {
        "format": MANIFEST_FORMAT,
        "generator": f"pfflake {_version()}",
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "lake": str(lake.root),
        "lake_version": lake.version,
        "lake_version_before": version_before,
        "selection": {"runs": list(runs) if runs else None, "night": night},
        "runs": chosen,
        "parameters": options.parameters(),
        "computed": ctx.computed,
        "sections": {s.id: {"title": s.title, "empty": s.empty,
                            "figures": [p for p, _ in s.figures],
                            "tables": [c for c, _ in s.tables], "notes": s.notes,
                            "seconds": round(s.seconds, 3)} for s in sections},
        "figures": ctx.figures,
        "errors": errors,
        "seconds": round(seconds, 3),
    }
    man = out / "manifest.json"
    man.write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")
    return ReportResult(out, index, man, chosen, [out / f for f in ctx.figures], sections,
                        errors, seconds)


def _prepare(out: Path) -> None:
    if out.exists():
        if not out.is_dir():
            raise FileExistsError(f"{out} exists and is not a directory")
        if any(out.iterdir()):
            if not _is_report(out / "manifest.json"):
                raise FileExistsError(f"{out} is not empty and holds no pfflake report; "
                                      "not replacing it")
            for name in ("index.html", "manifest.json"):
                (out / name).unlink(missing_ok=True)
            shutil.rmtree(out / "figures", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


def _is_report(path: Path) -> bool:
    try:
        return str(json.loads(path.read_text()).get("generator", "")).startswith("pfflake")
    except (OSError, ValueError, AttributeError):
        return False


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pfflake")
    except PackageNotFoundError:
        return "unknown"


def report_summary(result: ReportResult) -> dict[str, Any]:
    """Counts for a one-line summary: sections with and without data, figures, seconds."""
    return {"sections": len(result.sections),
            "empty": [s.id for s in result.sections if s.empty],
            "figures": len(result.figures), "seconds": round(result.seconds, 1)}
