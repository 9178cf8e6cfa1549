"""Follow runs while the DAQ records them: one ingest commit every ``interval`` seconds.

Each tick is an ordinary :func:`~pfflake.lake.ingest.ingest` of the run directories,
so everything an ingest promises holds for every commit: readers see whole commits
only, a partial last frame waits for the next tick (the reader stops at the last whole
frame, and the fingerprint of a file covers only what the lake holds of it, so a file
that grew is growth, not a changed source), new seqno files are picked up, and each
frame lands exactly once. A tick whose run directories did not change (the same file
names, sizes and modification times) is skipped without opening anything.

The follow stops by itself once every run has its end sentinel (``run_complete`` or
``recording_ended``), after a final commit that also marks the runs complete; or when
``stop`` is set (the command line sets it on SIGINT/SIGTERM), after a final commit.
A follow killed outright (SIGKILL, power loss) leaves the lake at its last commit;
following again, or a plain ingest, continues from there.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from ..errors import LakeError
from ..file import PFFWarning
from ..models import FrameConfig
from ..paths import HK_FILE_NAME
from .ingest import IngestOptions, IngestResult, check_run_dir, ingest
from .layout import is_lake
from .maintain import DEFAULT_TARGET_BYTES, compact
from .sources import SENTINELS, recording_finished

if TYPE_CHECKING:
    from .lake import Lake

logger = logging.getLogger(__name__)


#: A follow compacts every this many commits (``follow(compact_every=)``).
COMPACT_EVERY = 32
#: Files a tier-1 compaction makes: about ``COMPACT_EVERY`` ticks of one stream (10^4
#: img16 frames/s, 1 s ticks: 0.85 MB per tick file); every :data:`TIER_2_EVERY`-th
#: compaction merges those into files of up to ``DEFAULT_TARGET_BYTES`` (128 MiB).
TIER_1_BYTES = 32 * 2**20
TIER_2_EVERY = 8


@dataclass
class FollowResult:
    """What a follow did: its commits (in order) and why it stopped."""

    commits: list[IngestResult] = field(default_factory=list)
    reason: str = ""  # "complete" (sentinels), "stopped" (stop event / signal)
    ticks: int = 0  # ingests run (ticks skipped because nothing changed are not counted)
    seconds: float = 0.0
    compactions: int = 0  # compaction commits made while following (not the one at the end)

    @property
    def frames(self) -> int:
        return sum(c.frames for c in self.commits)

    @property
    def version(self) -> int | None:
        """The last version this follow committed (None: it committed nothing)."""
        return self.commits[-1].version if self.commits else None

    def summary(self) -> str:
        why = {"complete": "the recording ended", "stopped": "stopped"}.get(self.reason,
                                                                          self.reason)
        at = f"; lake at version {self.version}" if self.commits else ""
        merged = f", {self.compactions} compaction(s) meanwhile" if self.compactions else ""
        return (f"followed for {self.seconds:.1f} s ({why}): {len(self.commits)} commit(s), "
                f"{self.frames:,} frames{merged}{at}")


def follow(
    lake: Lake,
    run_dirs: Iterable[str | Path],
    options: IngestOptions | None = None,
    *,
    interval: float = 1.0,
    stop: threading.Event | None = None,
    on_commit: Callable[[IngestResult], None] | None = None,
    compact_every: int = COMPACT_EVERY,
) -> FollowResult:
    """Ingest ``run_dirs`` every ``interval`` seconds until their recordings end.

    ``options``: as for :func:`ingest` (default: one worker; a follow commits a few
    seconds of data at a time, which one process keeps up with). No progress bar; new
    stores get the ``growing`` layout (:func:`~pfflake.lake.layout.lake_zarr_layout`)
    and are grown ahead of their data (:func:`~pfflake.lake.layout.grown_length`); the
    final commit gives them their exact length.
    ``stop``: set it (from another thread, or a signal handler) to end the follow after
    a final commit. Without one, SIGINT and SIGTERM do that while the follow runs in the
    main thread (the previous handlers are restored after; a second signal interrupts
    the final commit, which leaves the lake at its last whole commit). ``on_commit`` is
    called with each commit's :class:`IngestResult`.

    ``compact_every``: while following, every that many commits the small files they
    left are merged (tiered: see :func:`compact_while_following`), so readers of a
    long night query tens of files, not one per tick; 0 only compacts at the end.

    A run directory must exist; until it holds a PFF data file the follow waits.
    """
    if not interval > 0:
        raise ValueError(f"interval must be > 0 s, not {interval}")
    options = replace(options or IngestOptions(workers=1), progress=False, growing=True)
    dirs = [Path(d) for d in run_dirs]
    for d in dirs:
        if not d.is_dir():
            raise LakeError(f"{d}: run directory not found")
        if is_lake(d):
            raise LakeError(f"{d}: is a pfflake lake, not a run directory")
    _warm_up()
    result = FollowResult()
    t0 = time.monotonic()
    own = stop is None
    stop = stop or threading.Event()
    with _signals_set(stop) if own else nullcontext():
        seen = None
        next_tick = time.monotonic()
        while True:
            t_scan = time.perf_counter()
            finished = all(recording_finished(d) for d in dirs)  # before reading the data
            stopping = stop.is_set()
            state = _dir_state(dirs)
            changed = state != seen or finished or stopping
            if changed and (finished or all(_has_data(d) for d in dirs)):
                scan = time.perf_counter() - t_scan
                last = finished or stopping  # stores get their exact length back
                with _quiet_tails(not finished):
                    r = ingest(lake, dirs, replace(options, growing=False) if last else options)
                r.phases.add("scan", scan)
                result.ticks += 1
                seen = state
                if r.version is not None:
                    result.commits.append(r)
                    if on_commit is not None:
                        on_commit(r)
                    if compact_every and not last and len(result.commits) % compact_every == 0:
                        result.compactions += compact_while_following(
                            lake, len(result.commits) // compact_every, compact_every)
            if finished or stopping:
                result.reason = "complete" if finished else "stopped"
                break
            next_tick += interval
            now = time.monotonic()
            if next_tick < now:  # a tick took longer than the interval: no catching up
                next_tick = now
            stop.wait(next_tick - now)
    result.seconds = time.monotonic() - t0
    _after_follow(lake, result)
    return result


def compact_while_following(lake: Lake, n: int, every: int = COMPACT_EVERY) -> int:
    """The ``n``-th compaction of a follow that compacts ``every`` commits; returns the
    compaction commits it made (0, 1 or 2).

    Tier 1 merges runs of consecutive files under :data:`TIER_1_BYTES` (the ticks since
    the last compaction, ~27 MB at 10^4 img16 frames/s); every :data:`TIER_2_EVERY`-th
    time, tier 2 merges those into files of up to 128 MiB. A tick's file is so rewritten
    about twice, and a compaction rewrites at most 128 MiB, so no tick waits long for
    one. It is one commit of its own, like any ``compact``: failing (a conflict with
    another writer, a full disk) leaves the follow's commits as they are and is
    reported as a warning; the next compaction or the one at the end retries."""
    made = 0
    tiers = [(TIER_1_BYTES, max(2, every // 2))]
    if n % TIER_2_EVERY == 0:
        tiers.append((DEFAULT_TARGET_BYTES, 2))
    for target, min_files in tiers:
        try:
            made += compact(lake, target_bytes=target, min_files=min_files) is not None
        except Exception as e:  # the follow's own commits stand
            logger.warning("compaction while following failed: %s", e)
    return made


def _warm_up() -> None:
    """Load now, before the first tick, what an ingest loads on first use: the first
    ``pa.array`` probes for pandas (importing it when installed), a new store's
    ``FrameConfig`` loads the pydantic models. In a fresh process they cost the first
    commit 2.2 s on the benchmark machine (``PYTHONDONTWRITEBYTECODE``; less with
    cached bytecode); a follow usually starts before its first frames, so here it is free."""
    pa.array([0])
    assert FrameConfig.model_fields


def _has_data(run_dir: Path) -> bool:
    try:
        check_run_dir(run_dir)
    except LakeError:
        return False
    return True


def _dir_state(dirs: list[Path]) -> list[tuple[str, int, int]]:
    """Names, sizes and modification times of what an ingest reads in ``dirs``."""
    out = []
    for d in dirs:
        for p in sorted(d.iterdir()):
            if p.suffix in (".pff", ".json") or p.name in SENTINELS or p.name == HK_FILE_NAME:
                try:
                    st = p.stat()
                except FileNotFoundError:  # removed between listing and stat
                    continue
                out.append((str(p), st.st_size, st.st_mtime_ns))
    return out


class _TailFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return _TAIL not in record.getMessage()


_TAIL = "last frame cut short"


@contextmanager
def _quiet_tails(quiet: bool) -> Iterator[None]:
    """While a run records, its files' last frame is cut short at almost every tick:
    expected, so not reported (a frame cut short in a finished run still is)."""
    if not quiet:
        yield
        return
    log = logging.getLogger("pfflake.file")  # the reader's logger, where the record starts
    filt = _TailFilter()
    log.addFilter(filt)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=f".*{_TAIL}", category=PFFWarning)
            yield
    finally:
        log.removeFilter(filt)


@contextmanager
def _signals_set(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set ``stop`` (a second one raises KeyboardInterrupt); restored after.
    Outside the main thread signals cannot be caught: nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        logger.warning("%s: final commit, then stop (again to interrupt)",
                       signal.Signals(signum).name)
        stop.set()

    saved = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


def _after_follow(lake: Lake, result: FollowResult) -> None:
    """Automatic compaction at the end of a follow.

    A follow leaves many small frames files (one per stream per commit);
    :func:`pfflake.lake.maintain.compact` rewrites them into large ones in one commit.
    Compaction failing leaves the follow's commits as they are (it is one commit of its
    own), so it is reported as a warning, not an error.
    """
    if len(result.commits) < 2:
        return
    try:
        compact(lake)
    except Exception as e:  # the follow's own commits stand
        logger.warning("compaction after the follow failed: %s", e)


__all__ = ["COMPACT_EVERY", "FollowResult", "compact_while_following", "follow"]
