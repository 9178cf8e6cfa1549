"""What every report section shares: the lake, the runs chosen, the output folder, plotting.

Sections read the lake only through its public API (``Lake.sql`` and the
``Lake`` analysis methods), restricted to the chosen runs by ``run_filter``.
Figures are written with :class:`matplotlib.figure.Figure` (no ``pyplot``
state) into ``DIR/figures/`` and linked relatively from ``index.html``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    from ..lake import Lake

NS_PER_S = 1_000_000_000
#: 2000-01-01T00:00:00Z: frames dated before are "no clock" (the pipeline's invalid-time cut).
Y2000_NS = 946_684_800 * NS_PER_S
#: Hour (UTC) at which a night begins: the night of D runs from D 12:00 to D+1 12:00 UTC
#: (local noon to noon in California, where PANOSETI observes: the evening of D and the
#: morning after).
NIGHT_START_HOUR_UTC = 12
#: Nice bin widths for time histograms, ns.
_NICE_NS = [int(x * NS_PER_S) for x in (
    1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600,
    900, 1800, 3600)]


@dataclass(frozen=True)
class ReportOptions:
    """The report's parameters (recorded in ``manifest.json``).

    ``image_event_where``: which frames of fixed-rate imaging products (img16, img8)
    count as events for clock offsets and coincidences (every frame of a triggered
    pulse-height product is one). ``time_base``: the clock the timing sections use
    ("auto": White Rabbit when it is in sync for >= 99 % of every module's frames,
    else the DAQ host clock). ``compute_pedestals``: commit pedestals for runs
    that have none (the report then says it did, and at which lake version).
    """

    gallery_size: int = 8
    coincidence_window_ns: int = 1_000_000
    offset_window_ns: int = 20_000_000
    offset_bin_ns: int = 120 * NS_PER_S
    rate_bin_ns: int | None = None  # None: about 150 bins over the night
    coincidence_bin_ns: int | None = None  # None: 300 s, shorter for short nights
    image_event_where: str = "pixel_max > 1000"
    time_base: str = "auto"  # clock of offsets/coincidences: "auto", "host" or "wr"
    compute_pedestals: bool = True
    #: Pedestals computed by the report use at most this many frames per stream (every
    #: n-th frame; the L1 pipeline's ph pedestal uses every 200th), so a night stays fast.
    pedestal_frames_per_stream: int = 200_000
    max_streams_plotted: int = 16
    dpi: int = 90
    workers: int | None = None  # processes for computing pedestals (None: all cores)

    def parameters(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


@dataclass
class Section:
    """One section of the page: a figure (or several) and a short table, or a plain reason
    why there is no data."""

    id: str
    title: str
    intro: str
    figures: list[tuple[str, str]] = field(default_factory=list)  # (relative path, caption)
    tables: list[tuple[str, pa.Table]] = field(default_factory=list)  # (caption, table)
    empty: str | None = None  # "no data: ..." shown instead of figures and tables
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class Context:
    lake: Lake
    out: Path
    runs: list[str]
    options: ReportOptions
    notes: list[str] = field(default_factory=list)  # for the manifest
    computed: dict[str, Any] = field(default_factory=dict)  # what the report committed
    figures: list[str] = field(default_factory=list)
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def figure_dir(self) -> Path:
        return self.out / "figures"

    @property
    def run_filter(self) -> str:
        """SQL predicate choosing the report's runs (``run IN (...)``)."""
        return self.runs_in()

    def runs_in(self, alias: str | None = None) -> str:
        if not self.runs:
            return "FALSE"
        col = f"{alias}.run" if alias else "run"
        return f"{col} IN (" + ", ".join(sql_str(r) for r in self.runs) + ")"

    def where(self, *parts: str | None, alias: str | None = None) -> str:
        """`` WHERE`` the report's runs and every given predicate."""
        kept = [f"({p})" for p in (self.runs_in(alias), *parts) if p]
        return " WHERE " + " AND ".join(kept)

    def table(self, query: str) -> pa.Table:
        return self.lake.sql(query).to_arrow_table()

    def has_column(self, table: str, column: str) -> bool:
        key = f"columns:{table}"
        if key not in self.cache:
            self.cache[key] = set(self.lake.sql(f"SELECT * FROM {table} LIMIT 0").columns)
        return column in self.cache[key]

    def save(self, fig, name: str) -> str:
        """Write ``fig`` as ``figures/<name>.png``; returns the path relative to the page."""
        self.figure_dir.mkdir(parents=True, exist_ok=True)
        rel = f"figures/{name}.png"
        fig.savefig(self.out / rel, dpi=self.options.dpi)
        self.figures.append(rel)
        return rel


def sql_str(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def nice_bin_ns(span_ns: int, target_bins: int = 150) -> int:
    """A round bin width giving about ``target_bins`` bins over ``span_ns``."""
    want = max(1, span_ns // max(1, target_bins))
    for b in _NICE_NS:
        if b >= want:
            return b
    return int(np.ceil(want / 3600e9)) * 3600 * NS_PER_S


def to_datetime64(ns: np.ndarray) -> np.ndarray:
    return np.asarray(ns, dtype=np.int64).astype("datetime64[ns]")


def utc_axis(ax, label: str = "time (UTC)") -> None:
    """A concise UTC date axis."""
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))
    ax.set_xlabel(label)


def new_figure(width: float = 9.0, height: float = 3.4):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def utc(ns: int | None) -> str:
    if ns is None:
        return "-"
    sec, rem = divmod(int(ns), NS_PER_S)
    return datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%d %H:%M:%S") + f".{rem // 1000:06d}"


def night_window(night: str | date) -> tuple[datetime, datetime]:
    """``[D 12:00 UTC, D+1 12:00 UTC)`` for the night of ``D`` (``YYYY-MM-DD``)."""
    d = night if isinstance(night, date) else date.fromisoformat(str(night))
    start = datetime(d.year, d.month, d.day, NIGHT_START_HOUR_UTC, tzinfo=UTC)
    return start, start + timedelta(days=1)


def choose_runs(lake: Lake, runs: list[str] | None, night: str | None) -> list[str]:
    """The runs a report covers: ``runs`` as given (each must be in the lake), those of
    ``night`` (first frame, else run start, inside :func:`night_window`), or all."""
    known = [r for (r,) in lake.sql("SELECT DISTINCT run FROM runs ORDER BY run").fetchall()]
    if runs:
        missing = [r for r in runs if r not in known]
        if missing:
            raise ValueError(f"run(s) not in the lake: {', '.join(missing)} "
                             f"(the lake holds: {', '.join(known) or 'none'})")
        return list(dict.fromkeys(runs))
    if night is not None:
        lo, hi = night_window(night)
        lo_ns = int(lo.timestamp()) * NS_PER_S
        hi_ns = int(hi.timestamp()) * NS_PER_S
        rows = lake.sql(
            "WITH f AS (SELECT run, min(first_unix_t_ns) AS t FROM run_quality "
            f"WHERE first_unix_t_ns >= {Y2000_NS} GROUP BY run) "
            "SELECT r.run FROM runs AS r LEFT JOIN f USING (run) "
            f"WHERE coalesce(f.t, epoch_ns(r.start)) >= {lo_ns} "
            f"AND coalesce(f.t, epoch_ns(r.start)) < {hi_ns} ORDER BY r.run").fetchall()
        return [r for (r,) in rows]
    return known


class Timer:
    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.t0
