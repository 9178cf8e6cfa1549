"""pypff's ``utils``: timestamp arithmetic and file-name parsing.

``get_coarse_time_ns`` and ``get_precise_time_ns`` are pypff's formulas
(integer ns; the precise one reconciles the host second with the White
Rabbit TAI counter). pfflake's own frame times (:mod:`pfflake.timestamps`)
agree with ``get_precise_time_ns`` when WR is locked and flag what this
function silently guesses (clock desync, no WR).

``parse_filename`` and ``extract_seqno`` keep pypff's lenient semantics
(every ``key_value`` token, digits become ints; a missing or odd seqno is 0)
so code that feeds them any name runs unchanged; the reader itself uses the
strict :func:`pfflake.paths.parse_pff_name`.
"""

from __future__ import annotations

from pathlib import Path

_NS = 1_000_000_000
_TAI_MINUS_UTC = 37


def get_coarse_time_ns(tv_sec: int, tv_usec: int) -> int:
    """Host clock only: ``tv_sec`` s + ``tv_usec`` µs, in ns."""
    return tv_sec * _NS + tv_usec * 1_000


def get_precise_time_ns(tv_sec: int, tv_usec: int, pkt_nsec: int, pkt_tai: int = 0) -> int:
    """WR nanoseconds on the second chosen by the TAI counter (or by the host µs if 0).

    ``pkt_tai`` is the 10-bit TAI second counter: a host second one ahead of
    (behind) it is moved back (forward). Without it, a host sub-second more
    than half a second from ``pkt_nsec`` moves the second.
    """
    sec = tv_sec
    if pkt_tai:
        lag = (tv_sec - pkt_tai + _TAI_MINUS_UTC) % 1024
        sec += {1: -1, 1023: 1}.get(lag, 0)
    else:
        diff = tv_usec * 1_000 - pkt_nsec
        if diff > _NS // 2:
            sec += 1
        elif diff < -_NS // 2:
            sec -= 1
    return sec * _NS + pkt_nsec


def parse_filename(fname: str) -> dict[str, str | int]:
    """Every ``key_value`` token of a name (up to ``.pff``); all-digit values become ints."""
    meta: dict[str, str | int] = {}
    for part in fname.split(".pff")[0].split("."):
        key, sep, value = part.partition("_")
        if sep:
            meta[key] = int(value) if value.isdigit() else value
    return meta


def extract_seqno(filepath: Path) -> int:
    """The ``seqno_<n>`` of a path's name; 0 when absent or not an integer."""
    for part in Path(filepath).name.split("."):
        if part.startswith("seqno_"):
            try:
                return int(part.split("_")[1])
            except ValueError:
                pass
    return 0


__all__ = ["extract_seqno", "get_coarse_time_ns", "get_precise_time_ns", "parse_filename"]
