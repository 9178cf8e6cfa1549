"""White Rabbit / DAQ-host clock reconciliation -> int64 ns since the UNIX epoch.

Rule (see PFF-FORMAT.md): ``pkt_tai`` holds the low 10 bits of WR TAI seconds
and ``pkt_nsec`` the nanoseconds within that second; ``tv_sec``/``tv_usec``
are the DAQ host's UNIX clock on arrival.

* WR present (``pkt_tai != 0``): ``d = (tv_sec - pkt_tai + 37) % 1024``;
  d=0 -> second = tv_sec, d=1 -> tv_sec-1, d=1023 -> tv_sec+1. Any other d
  means the clocks disagree by more than a second: the frame is flagged
  :data:`QUALITY_DESYNC` and keeps the host second (never a silent guess).
* No WR (``pkt_tai == 0``): the second whose ``pkt_nsec`` lies within 0.5 s
  of ``tv_usec * 1000``; flagged :data:`QUALITY_NO_WR`.
* Module frames use the first quabo that sent a packet (``tv_sec != 0``);
  any absent quabo sets :data:`QUALITY_QUABO_MISSING`.

Everything is integer arithmetic in int64: a float64 second count loses
nanoseconds at ~1.7e9 s. A frame whose time does not fit int64 ns (``tv_sec``
beyond ~9.22e9 s, or absurd ``pkt_nsec``/``tv_usec`` values from a damaged
header) is never wrapped silently: the vectorised functions raise
:class:`TimeOverflowError` listing the rows, which the reader turns into a
:class:`~pfflake.errors.CorruptHeaderError` naming file, frame and offset.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

# Defined in the one error tree (pfflake.errors); the reader modules import it from here.
from .errors import TimeOverflowError as TimeOverflowError

NS_PER_S = 1_000_000_000
TAI_MINUS_UTC_S = 37

QUALITY_OK = 0
QUALITY_NO_WR = 1
QUALITY_DESYNC = 2
QUALITY_QUABO_MISSING = 4

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Inside these bounds every step of the int64 rule is exact and the result fits:
# |usec*1000 - nsec| <= 1.1e18 and (|sec| + 1) * 1e9 + |nsec| <= 9.1e18 < 2**63.
_SAFE_SEC = 9_000_000_000
_SAFE_USEC = 10**15
_SAFE_NSEC = 10**17


QUALITY_NAMES: dict[int, str] = {
    QUALITY_NO_WR: "no_wr",
    QUALITY_DESYNC: "clock_desync",
    QUALITY_QUABO_MISSING: "quabo_missing",
}


def quality_names(flags: int) -> list[str]:
    """Names of the bits set in one quality flag value (``[]`` means ok)."""
    return [name for bit, name in QUALITY_NAMES.items() if flags & bit]


def unix_t_ns_scalar(tv_sec: int, tv_usec: int, pkt_nsec: int, pkt_tai: int) -> tuple[int, int]:
    """One packet's time: ``(unix ns, quality flags)``; plain Python ints."""
    flags = QUALITY_OK
    second = tv_sec
    if pkt_tai != 0:
        d = (tv_sec - pkt_tai + TAI_MINUS_UTC_S) % 1024
        if d == 1:
            second -= 1
        elif d == 1023:
            second += 1
        elif d != 0:
            flags |= QUALITY_DESYNC
    else:
        flags |= QUALITY_NO_WR
        diff = tv_usec * 1000 - pkt_nsec
        if diff > NS_PER_S // 2:
            second += 1
        elif diff < -(NS_PER_S // 2):
            second -= 1
    return second * NS_PER_S + pkt_nsec, flags


def frame_time_fits(flat: Mapping[str, int], header_kind: str) -> bool:
    """Does one frame's time (flat header of Python ints) fit int64 ns? Exact, scalar.

    The reader calls this on every header it parses as JSON, so a frame whose
    time would wrap is damage like any other corrupt header value.
    """
    prefix = ""
    if header_kind == "module":
        q = next((q for q in range(4) if flat[f"quabo_{q}.tv_sec"] != 0), 0)
        prefix = f"quabo_{q}."
    t, _ = unix_t_ns_scalar(
        flat[prefix + "tv_sec"], flat[prefix + "tv_usec"], flat[prefix + "pkt_nsec"],
        flat[prefix + "pkt_tai"],
    )
    return INT64_MIN <= t <= INT64_MAX


def unix_t_ns(
    tv_sec: np.ndarray, tv_usec: np.ndarray, pkt_nsec: np.ndarray, pkt_tai: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`unix_t_ns_scalar`: ``(int64 ns, uint8 flags)`` arrays (new arrays).

    Raises :class:`TimeOverflowError` if a time does not fit int64 ns.
    """
    ns, flags, bad = _unix_t_ns(tv_sec, tv_usec, pkt_nsec, pkt_tai)
    _raise_bad(bad, tv_sec, pkt_nsec)
    return ns, flags


def _raise_bad(bad: np.ndarray | None, tv_sec=None, pkt_nsec=None) -> None:
    if bad is not None and bad.any():
        rows = np.flatnonzero(bad)
        j = int(rows[0])
        if tv_sec is None:
            detail = "timing fields of the first quabo that sent a packet are out of range"
        else:
            detail = f"tv_sec={int(np.asarray(tv_sec)[j])}, pkt_nsec={int(np.asarray(pkt_nsec)[j])}"
        raise TimeOverflowError(rows, detail)


# Per d = (tv_sec - pkt_tai + 37) mod 1024: the step from the host second to the White
# Rabbit second (d == 1: the host is one second ahead; 1023: behind) and the quality flag
# (any other d but 0: the clocks disagree, the host second is kept).
_STEP_BY_D = np.zeros(1024, dtype=np.int64)
_STEP_BY_D[1], _STEP_BY_D[1023] = -1, 1
_FLAGS_BY_D = np.full(1024, QUALITY_DESYNC, dtype=np.uint8)
_FLAGS_BY_D[[0, 1, 1023]] = QUALITY_OK


def _unix_t_ns(
    tv_sec: np.ndarray, tv_usec: np.ndarray, pkt_nsec: np.ndarray, pkt_tai: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """:func:`unix_t_ns` plus a bool mask of rows whose time does not fit (None: all fit).

    Rows outside the safe bounds (never real data) are redone in exact Python
    integers, so int64 wrap-around can neither corrupt a time nor hide.
    """
    tv_sec = np.asarray(tv_sec, dtype=np.int64)
    tv_usec = np.asarray(tv_usec, dtype=np.int64)
    pkt_tai = np.asarray(pkt_tai, dtype=np.int64)
    pkt_nsec = np.asarray(pkt_nsec, dtype=np.int64)
    # d = (tv_sec - pkt_tai + 37) mod 1024; & 1023 is that also for negatives and wraps.
    d = tv_sec - pkt_tai
    d += TAI_MINUS_UTC_S
    d &= 1023
    step = _STEP_BY_D[d]  # one table lookup each instead of ~8 array passes
    flags = _FLAGS_BY_D[d]
    if not pkt_tai.all():
        no_wr = pkt_tai == 0
        diff = tv_usec[no_wr] * 1000 - pkt_nsec[no_wr]
        step[no_wr] = (diff > NS_PER_S // 2).view(np.int8) - (diff < -(NS_PER_S // 2)).view(
            np.int8
        )
        flags[no_wr] = QUALITY_NO_WR
    ns = tv_sec + step
    ns *= NS_PER_S
    ns += pkt_nsec
    bad = None
    if len(ns) and not (
        tv_sec.min() >= -_SAFE_SEC
        and tv_sec.max() <= _SAFE_SEC
        and pkt_nsec.min() >= -_SAFE_NSEC
        and pkt_nsec.max() <= _SAFE_NSEC
        and tv_usec.min() >= -_SAFE_USEC
        and tv_usec.max() <= _SAFE_USEC
    ):
        suspect = (
            (tv_sec > _SAFE_SEC)
            | (tv_sec < -_SAFE_SEC)
            | (pkt_nsec > _SAFE_NSEC)
            | (pkt_nsec < -_SAFE_NSEC)
            | (tv_usec > _SAFE_USEC)
            | (tv_usec < -_SAFE_USEC)
        )
        bad = np.zeros(len(ns), dtype=bool)
        for j in np.flatnonzero(suspect):
            t, f = unix_t_ns_scalar(
                int(tv_sec[j]), int(tv_usec[j]), int(pkt_nsec[j]), int(pkt_tai[j])
            )
            flags[j] = f
            if INT64_MIN <= t <= INT64_MAX:
                ns[j] = t
            else:
                ns[j] = 0
                bad[j] = True
    return ns, flags, bad


def module_unix_t_ns(
    meta: Mapping[str, np.ndarray], n_quabos: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """Frame time of module products from pypff-style keys ``quabo_<i>.<field>``.

    Uses, per frame, the first quabo with ``tv_sec != 0`` (quabo_0 if none did).
    Raises :class:`TimeOverflowError` if a time does not fit int64 ns.
    """
    ns, flags, bad = _module_unix_t_ns(meta, n_quabos)
    _raise_bad(bad)
    return ns, flags


def _module_unix_t_ns(
    meta: Mapping[str, np.ndarray], n_quabos: int = 4
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    tv_sec = np.stack([np.asarray(meta[f"quabo_{q}.tv_sec"]) for q in range(n_quabos)])
    present = tv_sec != 0
    first = np.where(present.any(axis=0), present.argmax(axis=0), 0)
    rows = np.arange(tv_sec.shape[1])

    def pick(field: str) -> np.ndarray:
        stacked = np.stack([np.asarray(meta[f"quabo_{q}.{field}"]) for q in range(n_quabos)])
        return stacked[first, rows]

    ns, flags, bad = _unix_t_ns(
        tv_sec[first, rows], pick("tv_usec"), pick("pkt_nsec"), pick("pkt_tai")
    )
    flags |= (~present.all(axis=0)).astype(np.uint8) * QUALITY_QUABO_MISSING
    return ns, flags, bad


def frame_unix_t_ns(
    meta: Mapping[str, np.ndarray], header_kind: str
) -> tuple[np.ndarray, np.ndarray]:
    """Dispatch on header kind: module products use :func:`module_unix_t_ns`."""
    if header_kind == "module":
        return module_unix_t_ns(meta)
    return unix_t_ns(meta["tv_sec"], meta["tv_usec"], meta["pkt_nsec"], meta["pkt_tai"])


def timing_fields(header_kind: str) -> list[str]:
    """Header fields the frame time is computed from."""
    base = ("tv_sec", "tv_usec", "pkt_nsec", "pkt_tai")
    if header_kind == "module":
        return [f"quabo_{q}.{f}" for q in range(4) for f in base]
    return list(base)


def primary_timing_fields(header_kind: str) -> list[str]:
    """The fields needed for frame times when quabo_0 sent a packet (the common case).

    Module frames need every quabo's ``tv_sec`` (to see which are present)
    but the other timing fields of quabo_0 only; see :func:`frame_times`.
    """
    if header_kind != "module":
        return timing_fields(header_kind)
    return [f"quabo_{q}.tv_sec" for q in range(4)] + [
        f"quabo_0.{f}" for f in ("tv_usec", "pkt_nsec", "pkt_tai")
    ]


def frame_times(
    meta: Mapping[str, np.ndarray],
    header_kind: str,
    fetch_rows: Callable[[list[str], np.ndarray], Mapping[str, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    """Frame times from :func:`primary_timing_fields`, fetching more only where needed.

    ``fetch_rows(keys, rows)`` must return the named fields for the given row
    positions of ``meta``; it is called only for module frames whose quabo_0
    sent nothing, so the common case decodes 7 fields instead of 16.
    Raises :class:`TimeOverflowError` (rows = positions in ``meta``) if a time
    does not fit int64 ns.
    """
    ns, flags, bad = _frame_times(meta, header_kind, fetch_rows)
    if header_kind == "module":
        _raise_bad(bad)
    else:
        _raise_bad(bad, meta["tv_sec"], meta["pkt_nsec"])
    return ns, flags


def overflowing_frames(meta: Mapping[str, np.ndarray], header_kind: str) -> np.ndarray:
    """Bool per frame: its time does not fit int64 ns (``meta`` holds every timing field)."""
    def fetch(keys: list[str], rows: np.ndarray) -> dict[str, np.ndarray]:
        return {k: np.asarray(meta[k])[rows] for k in keys}

    _, _, bad = _frame_times(meta, header_kind, fetch)
    n = len(np.asarray(meta["quabo_0.tv_sec" if header_kind == "module" else "tv_sec"]))
    return np.zeros(n, dtype=bool) if bad is None else bad


def _frame_times(
    meta: Mapping[str, np.ndarray],
    header_kind: str,
    fetch_rows: Callable[[list[str], np.ndarray], Mapping[str, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    if header_kind != "module":
        return _unix_t_ns(meta["tv_sec"], meta["tv_usec"], meta["pkt_nsec"], meta["pkt_tai"])
    ns, flags, bad = _unix_t_ns(
        meta["quabo_0.tv_sec"], meta["quabo_0.tv_usec"], meta["quabo_0.pkt_nsec"],
        meta["quabo_0.pkt_tai"],
    )
    present = [np.asarray(meta[f"quabo_{q}.tv_sec"]) != 0 for q in range(4)]
    all_present = present[0] & present[1] & present[2] & present[3]
    if all_present.all():
        return ns, flags, bad
    flags |= (~all_present).view(np.uint8) * np.uint8(QUALITY_QUABO_MISSING)
    rows = np.flatnonzero(~present[0])
    if rows.size:
        rest = [f"quabo_{q}.{f}" for q in (1, 2, 3) for f in ("tv_usec", "pkt_nsec", "pkt_tai")]
        have = {k: np.asarray(meta[k])[rows] for k in rest if k in meta}
        need = [k for k in rest if k not in meta]
        if need:
            have.update(fetch_rows(need, rows))
        sub = {f"quabo_{q}.tv_sec": np.asarray(meta[f"quabo_{q}.tv_sec"])[rows] for q in range(4)}
        for f in ("tv_usec", "pkt_nsec", "pkt_tai"):
            sub[f"quabo_0.{f}"] = np.asarray(meta[f"quabo_0.{f}"])[rows]
        sub.update(have)
        ns[rows], flags[rows], sub_bad = _module_unix_t_ns(sub)
        if bad is not None:  # quabo_0 sent nothing: its garbage timing fields do not count
            bad[rows] = False
        if sub_bad is not None:
            if bad is None:
                bad = np.zeros(len(ns), dtype=bool)
            bad[rows] = sub_bad
    return ns, flags, bad


def host_times(
    meta: Mapping[str, np.ndarray], header_kind: str
) -> tuple[np.ndarray, np.ndarray]:
    """``(host_unix_t_ns, packet_loss)`` per frame: the high-energy pipeline's frame time.

    ``host_unix_t_ns`` (int64, new array) is the DAQ host clock at arrival,
    ``tv_sec * 1e9 + tv_usec * 1e3``, the minimum over the quabos that sent a
    packet (``tv_sec != 0``) for module frames; 0 when no quabo sent one. It
    does not depend on White Rabbit, which is why analysts use it when WR is
    out of sync; it carries the network latency (a few ms) and the host
    clock's own error. ``packet_loss`` (bool) is the pipeline's cut rule: any
    quabo's ``pkt_num == 0`` (so an absent quabo counts, and so does the 16-bit
    counter's rare genuine wrap to 0). ``meta`` holds pypff keys
    (``quabo_<i>.tv_sec`` ... or ``tv_sec`` ... for ph256). Raises
    :class:`TimeOverflowError` when a time does not fit int64 ns.
    """
    quabos = [f"quabo_{q}." for q in range(4)] if header_kind == "module" else [""]
    host = None
    loss = None
    for prefix in quabos:
        sec = np.asarray(meta[prefix + "tv_sec"], dtype=np.int64)
        usec = np.asarray(meta[prefix + "tv_usec"], dtype=np.int64)
        sent = sec != 0
        if len(sec) and not (
            sec.min() >= -_SAFE_SEC and sec.max() <= _SAFE_SEC
            and usec.min() >= -_SAFE_USEC and usec.max() <= _SAFE_USEC
        ):
            wild = sent & ((np.abs(sec) > _SAFE_SEC) | (np.abs(usec) > _SAFE_USEC))
            if wild.any():
                j = int(np.flatnonzero(wild)[0])
                raise TimeOverflowError(
                    np.flatnonzero(wild),
                    f"host clock {prefix}tv_sec={int(sec[j])}, tv_usec={int(usec[j])}",
                )
        t = sec * NS_PER_S
        t += usec * 1000
        if header_kind == "module":
            t[~sent] = INT64_MAX
        host = t if host is None else np.minimum(host, t, out=host)
        lost = np.asarray(meta[prefix + "pkt_num"]) == 0
        loss = lost if loss is None else (loss | lost)
    host[host == INT64_MAX] = 0
    return host, loss
