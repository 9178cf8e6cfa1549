"""The clock rule, checked against hand-computed cases and the naive reference."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from pfflake.timestamps import (
    QUALITY_DESYNC,
    QUALITY_NO_WR,
    QUALITY_OK,
    QUALITY_QUABO_MISSING,
    module_unix_t_ns,
    unix_t_ns,
    unix_t_ns_scalar,
)
from tests.naive import naive_unix_t_ns

T = 1_700_000_000  # a UNIX second


def tai_low(second: int) -> int:
    return (second + 37) % 1024


def test_wr_cases_by_hand():
    # d = 0: host second is right.
    assert unix_t_ns_scalar(T, 1000, 999, tai_low(T)) == (T * 10**9 + 999, QUALITY_OK)
    # d = 1: the packet left in the previous second, arrived after the tick.
    assert unix_t_ns_scalar(T, 2000, 999_999_000, tai_low(T - 1)) == (
        (T - 1) * 10**9 + 999_999_000,
        QUALITY_OK,
    )
    # d = 1023: host clock behind.
    assert unix_t_ns_scalar(T, 999_000, 5, tai_low(T + 1)) == ((T + 1) * 10**9 + 5, QUALITY_OK)
    # anything else: desync, host second kept and flagged.
    ns, flags = unix_t_ns_scalar(T, 0, 5, tai_low(T - 5))
    assert (ns, flags) == (T * 10**9 + 5, QUALITY_DESYNC)


def test_no_wr_cases_by_hand():
    assert unix_t_ns_scalar(T, 1, 999_999_999, 0) == ((T - 1) * 10**9 + 999_999_999, QUALITY_NO_WR)
    assert unix_t_ns_scalar(T, 999_999, 1, 0) == ((T + 1) * 10**9 + 1, QUALITY_NO_WR)
    assert unix_t_ns_scalar(T, 500_000, 400_000_000, 0) == (T * 10**9 + 400_000_000, QUALITY_NO_WR)


def test_int64_exact_beyond_float_precision():
    ns, _ = unix_t_ns(np.array([T]), np.array([0]), np.array([123_456_789]), np.array([tai_low(T)]))
    assert ns.dtype == np.int64 and int(ns[0]) == T * 10**9 + 123_456_789
    assert float(T * 10**9 + 123_456_789) != T * 10**9 + 123_456_789  # floats would lose it


packets = st.tuples(
    st.integers(1_600_000_000, 1_900_000_000),  # tv_sec
    st.integers(0, 999_999),  # tv_usec
    st.integers(0, 999_999_999),  # pkt_nsec
    st.integers(0, 1023),  # pkt_tai
)


@given(st.lists(packets, min_size=1, max_size=50))
def test_vectorised_matches_naive(rows):
    arr = np.array(rows, dtype=np.int64)
    ns, flags = unix_t_ns(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3])
    for i, (s, us, nsec, tai) in enumerate(rows):
        truth = naive_unix_t_ns(
            {"tv_sec": s, "tv_usec": us, "pkt_nsec": nsec, "pkt_tai": tai}, "quabo"
        )
        assert (int(ns[i]), int(flags[i])) == truth
        assert (int(ns[i]), int(flags[i])) == unix_t_ns_scalar(s, us, nsec, tai)


@given(
    st.lists(
        st.tuples(packets, st.lists(st.booleans(), min_size=4, max_size=4)), min_size=1, max_size=30
    )
)
def test_module_uses_first_present_quabo(frames):
    meta = {
        f"quabo_{q}.{f}": [] for q in range(4) for f in ("tv_sec", "tv_usec", "pkt_nsec", "pkt_tai")
    }
    flats = []
    for (s, us, nsec, tai), present in frames:
        flat = {}
        for q in range(4):
            vals = (s, us + 0, nsec, tai) if present[q] else (0, 0, 0, 0)
            for f, v in zip(("tv_sec", "tv_usec", "pkt_nsec", "pkt_tai"), vals, strict=True):
                meta[f"quabo_{q}.{f}"].append(v)
                flat[f"quabo_{q}.{f}"] = v
        flats.append(flat)
    ns, flags = module_unix_t_ns({k: np.array(v, dtype=np.int64) for k, v in meta.items()})
    for i, flat in enumerate(flats):
        assert (int(ns[i]), int(flags[i])) == naive_unix_t_ns(flat, "module")


def test_missing_quabo_0_uses_quabo_1():
    meta = {
        f"quabo_{q}.{f}": np.array([0 if q == 0 else v])
        for q in range(4)
        for f, v in (("tv_sec", T), ("tv_usec", 10), ("pkt_nsec", 7), ("pkt_tai", tai_low(T)))
    }
    ns, flags = module_unix_t_ns(meta)
    assert int(ns[0]) == T * 10**9 + 7
    assert int(flags[0]) == QUALITY_QUABO_MISSING
