"""Housekeeping: pypff-compatible arrays, exact long table, damaged blocks."""

import json
import warnings
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from pfflake.errors import CorruptHeaderError
from pfflake.file import PFFWarning
from pfflake.hk import HK_SCHEMA, SkippedBlock, hk_table, iter_hk_records, parse_utc_ns, read_hk
from tests.conftest import EXAMPLE_RUN, LEGACY_RUN
from tests.naive import naive_hk

HK_FILES = [EXAMPLE_RUN / "hk.pff", LEGACY_RUN / "hk.pff"]
RENAMED = {"TEMP1": "DET_TEMP", "TEMP2": "FPGA_TEMP"}


def quiet_table(path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        return hk_table(path, **kwargs)


@pytest.mark.parametrize("path", HK_FILES, ids=lambda p: p.parent.name)
def test_read_hk_matches_pypff(path):
    io2 = pytest.importorskip("pypff.io2")
    theirs = io2._parse_hk_file(Path(path))
    ours = read_hk(path)
    assert list(ours) == list(theirs)
    for device, fields in theirs.items():
        assert list(ours[device]) == list(fields)
        for name, array in fields.items():
            assert ours[device][name].dtype == array.dtype, (device, name)
            np.testing.assert_array_equal(ours[device][name], array)
    assert "DET_TEMP" in ours["QUABO_1019"] and "TEMP1" not in ours["QUABO_1019"]


def naive_rows(path):
    """The table hk_table should build, from the naive block reader and Decimal."""
    rows = []
    for device, fields in naive_hk(path):
        utc = fields.get("Computer_UTC")
        t_ns = None if utc is None else int(Decimal(utc) * 10**9)
        for name, text in fields.items():
            if name == "Computer_UTC":
                continue
            try:
                value = float(text) if text.strip() else None
            except ValueError:
                value = None
            if RENAMED.get(name, name) == "DET_TEMP" and text == "511.75":
                value = None  # raw 2047: the quabo's "no reading", not 511.75 deg C
            rows.append((t_ns, device, RENAMED.get(name, name), value, text))
    return rows


def test_det_temp_sentinel_is_no_reading_on_the_real_sample():
    """legacy-run's hk.pff holds DET_TEMP 511.75 (raw 2047): a null value, text kept;
    every real temperature stays, and pypff's read_hk arrays are unchanged."""
    rows = quiet_table(LEGACY_RUN / "hk.pff").to_pylist()
    det = [r for r in rows if r["field"] == "DET_TEMP"]
    sentinel = [r for r in det if r["text"] == "511.75"]
    assert sentinel and all(r["value"] is None for r in sentinel)
    real = [r["value"] for r in det if r["text"] != "511.75"]
    assert real and all(30 < v < 60 for v in real)
    assert 511.75 in read_hk(LEGACY_RUN / "hk.pff")["QUABO_1018"]["DET_TEMP"]


@pytest.mark.parametrize("path", HK_FILES, ids=lambda p: p.parent.name)
def test_hk_table_matches_naive(path):
    skipped = []
    with pytest.warns(PFFWarning, match="cut short"):
        table = hk_table(path, skipped=skipped)
    assert table.schema == HK_SCHEMA
    got = [tuple(r.values()) for r in table.to_pylist()]
    assert got == naive_rows(path)
    # both samples end with a block cut off mid-write
    assert len(skipped) == 1 and skipped[0].reason.startswith("cut short")
    data = path.read_bytes()
    assert data[skipped[0].offset : skipped[0].offset + 2] == b'{"'
    assert b"\n\n" not in data[skipped[0].offset :]


def test_hk_table_types_and_values():
    table = quiet_table(LEGACY_RUN / "hk.pff")
    assert table.column("unix_t_ns").type == pa.int64()
    assert table.column("value").type == pa.float64()
    first = table.slice(0, 1).to_pylist()[0]
    assert first == {
        "unix_t_ns": 1754975261080837000,
        "device": "WPS",
        "field": "POWER",
        "value": None,
        "text": "ON",
    }
    rows = table.to_pylist()
    uid = next(r for r in rows if r["field"] == "UID")
    assert uid["value"] is None and uid["text"].startswith("0x")
    fields = set(table.column("field").to_pylist())
    assert {"DET_TEMP", "FPGA_TEMP"} <= fields
    assert not fields & {"TEMP1", "TEMP2", "Computer_UTC"}
    assert table.column("unix_t_ns").null_count == 0


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("1754975261.080837", 1754975261080837000),
        ("1687995222.5777988", 1687995222577798800),
        ("1754975299.30683", 1754975299306830000),
        ("1690936804.123456789", 1690936804123456789),
        ("1.0000000019", 1000000001),  # past ns: truncated
        ("17", 17_000_000_000),
        ("17.", 17_000_000_000),
        ("-1.5", -1_500_000_000),
        (1690936804, 1690936804_000_000_000),
    ],
)
def test_parse_utc_ns_exact(text, ns):
    assert parse_utc_ns(text) == ns


def test_float_would_have_been_wrong():
    # The reason for integer parsing: float64 cannot hold this to the ns.
    assert int(float("1754975261.080837") * 1e9) != 1754975261080837000


@pytest.mark.parametrize("text", ["", "abc", "1e9", "1.2.3", "0x10", True])
def test_parse_utc_ns_rejects(text):
    with pytest.raises(ValueError):
        parse_utc_ns(text)


GOOD_1 = b'{"WPS": {"Computer_UTC": "1754975261.080837", "POWER": "ON"}}'
BAD_JSON = b'{"QUABO_1": {"Computer_UTC": "1754975262.5", "PASS": "hunter2", }'
GOOD_2 = b'{"QUABO_1": {"TEMP1": "43.0", "TEMP2": "1e-3", "HV": 5}}'
BAD_LIST = b'[{"QUABO_1": {}}]'
BAD_DEVICE = b'{"QUABO_1": "hunter2"}'
BAD_UTC = b'{"QUABO_1": {"Computer_UTC": "yesterday", "X": "1"}}'
GOOD_3 = b'{"GPS": {"Computer_UTC": "1754975263.000000001", "TIMEFLAG": "GPS"}}'
BLOCKS = [GOOD_1, BAD_JSON, GOOD_2, BAD_LIST, BAD_DEVICE, BAD_UTC, GOOD_3]


@pytest.fixture
def damaged(tmp_path):
    path = tmp_path / "hk.pff"
    path.write_bytes(b"\n\n".join(BLOCKS) + b"\n\n\n\n")
    return path


def offset_of(path, block):
    return path.read_bytes().index(block)


def test_strict_raises_on_first_malformed_block(damaged):
    with pytest.raises(CorruptHeaderError) as info:
        hk_table(damaged)
    err = info.value
    assert isinstance(err, ValueError)
    assert (err.path, err.frame, err.offset) == (damaged, 1, offset_of(damaged, BAD_JSON))
    assert str(damaged) in str(err) and f"byte offset {err.offset}" in str(err)
    assert "hunter2" not in str(err)


def test_lenient_skips_and_reports(damaged, caplog):
    skipped = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no cut-short tail here: no warning expected
        table = hk_table(damaged, strict=False, skipped=skipped)
    assert [(s.index, s.offset) for s in skipped] == [
        (i, offset_of(damaged, BLOCKS[i])) for i in (1, 3, 4, 5)
    ]
    assert all(isinstance(s, SkippedBlock) and "hunter2" not in s.reason for s in skipped)
    assert "hunter2" not in caplog.text and "4 malformed" in caplog.text
    assert table.to_pylist() == [
        {
            "unix_t_ns": 1754975261080837000,
            "device": "WPS",
            "field": "POWER",
            "value": None,
            "text": "ON",
        },
        {
            "unix_t_ns": None,
            "device": "QUABO_1",
            "field": "DET_TEMP",
            "value": 43.0,
            "text": "43.0",
        },
        {
            "unix_t_ns": None,
            "device": "QUABO_1",
            "field": "FPGA_TEMP",
            "value": 0.001,
            "text": "1e-3",
        },
        {"unix_t_ns": None, "device": "QUABO_1", "field": "HV", "value": 5.0, "text": "5"},
        {
            "unix_t_ns": 1754975263000000001,
            "device": "GPS",
            "field": "TIMEFLAG",
            "value": None,
            "text": "GPS",
        },
    ]
    records = list(iter_hk_records(damaged, strict=False))
    assert [tuple(r) for r in records] == [tuple(r.values()) for r in table.to_pylist()]


def test_read_hk_is_lenient(damaged):
    hk = read_hk(damaged)
    assert list(hk) == ["WPS", "QUABO_1", "GPS"]
    assert hk["QUABO_1"]["DET_TEMP"].tolist() == [43.0]
    assert hk["QUABO_1"]["FPGA_TEMP"].tolist() == ["1e-3"]  # pypff: no '.' -> int() fails
    assert hk["QUABO_1"]["HV"].tolist() == [5]
    # like pypff, a bad Computer_UTC does not drop the block here (it stays text)
    assert hk["QUABO_1"]["Computer_UTC"].tolist() == ["yesterday"]
    io2 = pytest.importorskip("pypff.io2")
    theirs = io2._parse_hk_file(damaged)
    assert {d: {k: v.tolist() for k, v in f.items()} for d, f in hk.items()} == {
        d: {k: v.tolist() for k, v in f.items()} for d, f in theirs.items()
    }


def test_cut_short_tail_warns_even_when_strict(tmp_path):
    path = tmp_path / "hk.pff"
    path.write_bytes(GOOD_1 + b"\n\n" + GOOD_3[:30])
    skipped = []
    with pytest.warns(PFFWarning, match=f"byte offset {len(GOOD_1) + 2}"):
        table = hk_table(path, skipped=skipped)
    assert table.num_rows == 1
    assert skipped == [SkippedBlock(1, len(GOOD_1) + 2, skipped[0].reason)]


def test_last_block_without_blank_line_is_kept(tmp_path):
    path = tmp_path / "hk.pff"
    path.write_bytes(GOOD_1 + b"\n\n" + GOOD_3 + b"\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = hk_table(path)
    assert table.column("device").to_pylist() == ["WPS", "GPS"]


def test_empty_and_missing(tmp_path):
    empty = tmp_path / "hk.pff"
    empty.write_bytes(b"")
    assert hk_table(empty).num_rows == 0 and hk_table(empty).schema == HK_SCHEMA
    assert read_hk(empty) == {}
    assert read_hk(tmp_path / "nope.pff") == {}
    with pytest.raises(FileNotFoundError):
        hk_table(tmp_path / "nope.pff")


def test_non_string_values(tmp_path):
    path = tmp_path / "hk.pff"
    block = {"DEV": {"Computer_UTC": "5.5", "N": 2.5, "B": True, "L": [1], "S": "  7 "}}
    path.write_text(json.dumps(block) + "\n\n")
    rows = hk_table(path).to_pylist()
    assert [(r["field"], r["value"], r["text"]) for r in rows] == [
        ("N", 2.5, "2.5"),
        ("B", None, "true"),
        ("L", None, "[1]"),
        ("S", 7.0, "  7 "),
    ]
    assert {r["unix_t_ns"] for r in rows} == {5_500_000_000}


@pytest.mark.parametrize("path", HK_FILES, ids=lambda p: p.parent.name)
def test_iter_hk_blocks_is_the_file_as_written(path):
    """The public block iterator (pfflake.pypff.io's hkpff reads through it): raw names
    (TEMP1, not DET_TEMP) and raw string values, block by block, as a naive parse."""
    from pfflake.hk import iter_hk_blocks

    with pytest.warns(PFFWarning, match="cut short"):  # both samples end mid-block
        blocks = list(iter_hk_blocks(path))
    got = [(dev, fields) for block in blocks for dev, fields in block.items()]
    assert got == naive_hk(path)


def test_iter_hk_blocks_damage_policy(damaged):
    from pfflake.hk import iter_hk_blocks

    with pytest.raises(CorruptHeaderError):
        list(iter_hk_blocks(damaged))
    skipped: list[SkippedBlock] = []
    lenient = list(iter_hk_blocks(damaged, strict=False, skipped=skipped))
    assert lenient == [json.loads(b) for b in (GOOD_1, GOOD_2, GOOD_3)]
    assert [s.index for s in skipped] == [1, 3, 4, 5]
    # pypff's way: a Computer_UTC that is not a number is not a reason to drop the block
    legacy = list(iter_hk_blocks(damaged, strict=False, check_time=False))
    assert legacy == [json.loads(b) for b in (GOOD_1, GOOD_2, BAD_UTC, GOOD_3)]
