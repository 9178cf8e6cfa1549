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
nanoseconds at ~1.7e9 s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

NS_PER_S = 1_000_000_000
TAI_MINUS_UTC_S = 37

QUALITY_OK = 0
QUALITY_NO_WR = 1
QUALITY_DESYNC = 2
QUALITY_QUABO_MISSING = 4

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


def unix_t_ns(
    tv_sec: np.ndarray, tv_usec: np.ndarray, pkt_nsec: np.ndarray, pkt_tai: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`unix_t_ns_scalar`: ``(int64 ns, uint8 flags)`` arrays (new arrays)."""
    tv_sec = np.asarray(tv_sec, dtype=np.int64)
    pkt_tai = np.asarray(pkt_tai, dtype=np.int64)
    pkt_nsec = np.asarray(pkt_nsec, dtype=np.int64)
    has_wr = pkt_tai != 0
    d = (tv_sec - pkt_tai + TAI_MINUS_UTC_S) & 1023  # == % 1024, also for negatives
    step = (d == 1023).view(np.int8).astype(np.int64)
    step -= d == 1
    flags = ((d + 1) & 1023) > 2  # d not in {1023, 0, 1}: clocks disagree
    flags = flags.view(np.uint8) * np.uint8(QUALITY_DESYNC)
    if not has_wr.all():
        no_wr = ~has_wr
        diff = np.asarray(tv_usec, dtype=np.int64)[no_wr] * 1000 - pkt_nsec[no_wr]
        step[no_wr] = (diff > NS_PER_S // 2).view(np.int8) - (diff < -(NS_PER_S // 2)).view(
            np.int8
        )
        flags[no_wr] = QUALITY_NO_WR
    ns = tv_sec + step
    ns *= NS_PER_S
    ns += pkt_nsec
    return ns, flags


def module_unix_t_ns(
    meta: Mapping[str, np.ndarray], n_quabos: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """Frame time of module products from pypff-style keys ``quabo_<i>.<field>``.

    Uses, per frame, the first quabo with ``tv_sec != 0`` (quabo_0 if none did).
    """
    tv_sec = np.stack([np.asarray(meta[f"quabo_{q}.tv_sec"]) for q in range(n_quabos)])
    present = tv_sec != 0
    first = np.where(present.any(axis=0), present.argmax(axis=0), 0)
    rows = np.arange(tv_sec.shape[1])

    def pick(field: str) -> np.ndarray:
        stacked = np.stack([np.asarray(meta[f"quabo_{q}.{field}"]) for q in range(n_quabos)])
        return stacked[first, rows]

    ns, flags = unix_t_ns(tv_sec[first, rows], pick("tv_usec"), pick("pkt_nsec"), pick("pkt_tai"))
    flags |= (~present.all(axis=0)).astype(np.uint8) * QUALITY_QUABO_MISSING
    return ns, flags


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
    """
    if header_kind != "module":
        return frame_unix_t_ns(meta, header_kind)
    ns, flags = unix_t_ns(
        meta["quabo_0.tv_sec"], meta["quabo_0.tv_usec"], meta["quabo_0.pkt_nsec"],
        meta["quabo_0.pkt_tai"],
    )
    present = [np.asarray(meta[f"quabo_{q}.tv_sec"]) != 0 for q in range(4)]
    all_present = present[0] & present[1] & present[2] & present[3]
    if all_present.all():
        return ns, flags
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
        ns[rows], flags[rows] = module_unix_t_ns(sub)
    return ns, flags
