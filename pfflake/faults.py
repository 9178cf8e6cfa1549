"""Fault injection for the crash-consistency harness (``tests/reliability/test_crash.py``).

Ingest code calls :func:`fault` at named points of every phase (reading
batches, writing Zarr files, staging Parquet, moving files into place,
publishing the commit). With no environment variable set the call is one
global lookup, so the hooks stay in production code at no cost.

``PFFLAKE_CRASH_AT=<point>`` kills the process with SIGKILL the first time it
reaches ``point``; ``PFFLAKE_CRASH_AT=<point>:<n>`` the ``n``-th time (1-based).
``PFFLAKE_CRASH_TRACE=<file>`` appends one line per point reached
(``<pid> <point> <n>``), which is how the harness enumerates the kill points
of a real ingest instead of guessing them.

Counts are per process: spawned ingest workers inherit the environment and
count their own hits from 1 (a worker that reaches ``point:n`` dies, and the
parent sees a broken pool). Counting is thread-safe (Zarr files are written
from a thread pool).
"""

from __future__ import annotations

import os
import signal
import threading

_ENV_AT = "PFFLAKE_CRASH_AT"
_ENV_TRACE = "PFFLAKE_CRASH_TRACE"

_armed: bool | None = None  # None: environment not read yet
_target: tuple[str, int] | None = None
_trace: str | None = None
_counts: dict[str, int] = {}
_lock = threading.Lock()


def _load() -> None:
    global _armed, _target, _trace
    at = os.environ.get(_ENV_AT)
    if at:
        point, _, n = at.partition(":")
        _target = (point, int(n) if n else 1)
    _trace = os.environ.get(_ENV_TRACE) or None
    _armed = _target is not None or _trace is not None


def fault(point: str) -> None:
    """Crash here (SIGKILL) if the environment asks for it; else record or do nothing."""
    if _armed is False:
        return
    if _armed is None:
        _load()
        if not _armed:
            return
    with _lock:
        n = _counts[point] = _counts.get(point, 0) + 1
        if _trace is not None:
            with open(_trace, "a") as f:
                f.write(f"{os.getpid()} {point} {n}\n")
    if _target == (point, n):
        os.kill(os.getpid(), signal.SIGKILL)


def reset() -> None:
    """Forget the environment and the counts (tests that change the variables in-process)."""
    global _armed, _target, _trace
    with _lock:
        _armed, _target, _trace = None, None, None
        _counts.clear()
