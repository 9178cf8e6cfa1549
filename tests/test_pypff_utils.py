"""``pfflake.pypff.utils`` against the naive time rule, real headers and pypff."""

from __future__ import annotations

from pathlib import Path

import pytest

from pfflake.pypff import utils
from tests.conftest import PH256_FILE, REAL_PFF_FILES
from tests.naive import DESYNC, naive_flat, naive_read, naive_unix_t_ns


def test_precise_time_matches_naive_on_real_frames():
    for path in REAL_PFF_FILES:
        nf = naive_read(path)
        for header in nf.headers[:200]:
            flat = naive_flat(header)
            want, flags = naive_unix_t_ns(flat, nf.product)
            pkt = (
                flat
                if "tv_sec" in flat
                else {k.split(".")[1]: v for k, v in flat.items() if k.startswith("quabo_0.")}
            )
            if flags & DESYNC or pkt["tv_sec"] == 0:
                continue
            got = utils.get_precise_time_ns(
                pkt["tv_sec"], pkt["tv_usec"], pkt["pkt_nsec"], pkt["pkt_tai"]
            )
            assert got == want


CASES = [
    (1_700_000_000, 999_999, 1_000, 0),  # host just before the second, WR just after
    (1_700_000_000, 1, 999_999_000, 0),
    (1_700_000_000, 500_000, 0, 0),
    (1_700_000_000, 0, 5, (1_700_000_000 + 37 - 1) % 1024),
    (1_700_000_000, 0, 5, (1_700_000_000 + 37 + 1) % 1024),
    (1_700_000_000, 0, 5, (1_700_000_000 + 37) % 1024),
    (0, 0, 0, 0),
]


@pytest.mark.parametrize("args", CASES)
def test_times_as_pypff(args):
    theirs = pytest.importorskip("pypff.utils")
    assert utils.get_precise_time_ns(*args) == theirs.get_precise_time_ns(*args)
    assert utils.get_coarse_time_ns(*args[:2]) == theirs.get_coarse_time_ns(*args[:2])
    assert utils.get_coarse_time_ns(3, 4) == 3_000_004_000


NAMES = [
    PH256_FILE.name,
    "test.dp_ph256.module_1.seqno_7.pff",
    "start_2024.dp_img16.bpp_2.module_1.seqno_x.pff",
    "start_2025-08-02T04-31-52Z.dp_ph256.bpp_2.module_254.seqno_0.debug_TRUNCATED.pff",
    "hk.pff",
    "noseqno.pff",
]


@pytest.mark.parametrize("name", NAMES)
def test_names_as_pypff(name):
    theirs = pytest.importorskip("pypff.utils")
    assert utils.parse_filename(name) == theirs.parse_filename(name)
    assert utils.extract_seqno(Path(name)) == theirs.extract_seqno(Path(name))


def test_parse_filename_fields():
    meta = utils.parse_filename(PH256_FILE.name)
    assert meta == {
        "start": "2023-08-02T00:39:53Z",
        "dp": "ph256",
        "bpp": 2,
        "module": 254,
        "seqno": 0,
    }
    assert utils.extract_seqno(Path("a.dp_img16.module_1.seqno_12.pff")) == 12
    assert utils.extract_seqno(Path("a.dp_img16.module_1.pff")) == 0
