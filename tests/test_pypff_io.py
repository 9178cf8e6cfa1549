"""``pfflake.pypff.io`` (pypff's legacy reader) against the naive parser, real files and pypff."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest

from pfflake.file import PFFWarning
from pfflake.pypff import io
from pfflake.writer import write_pff
from tests.conftest import EXAMPLE_RUN, IMG16_FILE, LEGACY_RUN, PH256_FILE, REAL_PFF_FILES
from tests.naive import naive_flat, naive_hk, naive_read


def _expected(path, start=0, stop=None):
    nf = naive_read(path)
    images = nf.images[start:stop]
    return images.reshape(len(images), -1), nf.headers[start:stop]


@pytest.mark.parametrize("path", REAL_PFF_FILES, ids=lambda p: p.name[:40])
def test_readpff_matches_naive(path):
    data, meta = io.datapff(str(path)).readpff(metadata=True)
    want, headers = _expected(path)
    assert data.dtype == want.dtype and data.shape == want.shape
    np.testing.assert_array_equal(data, want)
    first = headers[0]
    assert list(meta) == list(first)  # key order of the file's first header
    for key, value in first.items():
        if isinstance(value, dict):
            assert list(meta[key]) == list(value)
            for sub in value:
                assert meta[key][sub].dtype == np.uint64
                assert meta[key][sub].tolist() == [h[key][sub] for h in headers]
        else:
            assert meta[key].dtype == np.uint64
            assert meta[key].tolist() == [h[key] for h in headers]


def test_samples_skip_pixel_and_modes():
    d = io.datapff(str(IMG16_FILE))
    want, headers = _expected(IMG16_FILE, 5, 12)
    for mode in ("mmap", "read"):
        data, meta = d.readpff(samples=7, skip=5, metadata=True, mode=mode)
        np.testing.assert_array_equal(data, want)
        assert meta["quabo_2"]["pkt_num"].tolist() == [h["quabo_2"]["pkt_num"] for h in headers]
    pix, meta = d.readpff(pixel=77)
    np.testing.assert_array_equal(pix, naive_read(IMG16_FILE).images.reshape(-1, 1024)[:, 77])
    assert meta == {}  # metadata=False: nothing, not the previous call's dict
    view, _ = d.readpff(mode="mmap")
    copy, _ = d.readpff(mode="read")
    assert not view.flags.writeable and copy.flags.writeable
    with pytest.raises(ValueError, match="not supported"):
        d.readpff(mode="stream")


def test_attributes_from_the_name():
    d = io.datapff(str(PH256_FILE))
    assert (d.dp, d.bpp, d.module, d.seqno) == ("ph256", 2, 254, 0)
    assert d.startdt.isoformat() == "2023-08-02T00:39:53" and d.startdt.tzinfo is None
    assert d.dtype is np.int16
    nf = naive_read(PH256_FILE)
    assert d.datasize == nf.offsets[1] - nf.offsets[0]
    assert io.datapff(str(IMG16_FILE)).dtype is np.uint16
    assert (io.MOBO_DIM, io.QUABO_DIM) == (16, 32)
    assert set(io.md_loc) == {"ph256", "ph1024", "img16", "img8"}


def test_md_loc_positions_hold_the_fields_of_a_daq_header():
    """pypff's hard-coded byte positions, checked on real DAQ headers (where they are right)."""
    for path, loc in ((PH256_FILE, io.md_loc["ph256"]), (IMG16_FILE, io.md_loc["img16"])):
        raw = path.read_bytes()
        flat = naive_flat(json.loads(raw[: raw.find(b"\n\n")]))
        items = (
            loc.items()
            if "quabo_num" in loc
            else [(f"{q}.{k}", span) for q, sub in loc.items() for k, span in sub.items()]
        )
        for key, (a, b) in items:
            assert int(raw[a:b]) == flat[key]


def test_compact_headers_read_right_where_pypff_reads_garbage(tmp_path):
    """Another writer's compact headers: pfflake reads the real layout; pypff's offsets miss."""
    n = 6
    rng = np.random.default_rng(3)
    cols = {k: rng.integers(1, 10**6, n) for k in ("pkt_num", "pkt_nsec", "tv_usec")}
    cols |= {"quabo_num": np.zeros(n, int), "pkt_tai": np.full(n, 500), "tv_sec": np.full(n, 1.7e9)}
    images = rng.integers(-50, 50, (n, 16, 16)).astype("<i2")
    path = write_pff(
        tmp_path / "start_2024-01-01T00:00:00Z.dp_ph256.bpp_2.module_3.seqno_0.pff",
        {k: np.asarray(v, dtype=np.int64) for k, v in cols.items()},
        images,
        fixed_width=False,
    )
    data, meta = io.datapff(str(path)).readpff(metadata=True)
    np.testing.assert_array_equal(data, images.reshape(n, 256))
    assert meta["pkt_num"].tolist() == cols["pkt_num"].tolist()
    legacy = pytest.importorskip("pypff.io")
    try:
        theirs, _ = legacy.datapff(str(path)).readpff()
        assert not np.array_equal(theirs[: len(data)], data)
    except ValueError:
        pass  # or pypff cannot even reshape the file


def test_names_pypff_reads(tmp_path):
    for name in (
        "test.dp_ph256.module_1.seqno_0.pff",
        "start_2024.dp_ph256.bpp_2.module_1.seqno_3.pff",
    ):
        path = shutil.copy(PH256_FILE, tmp_path / name)
        d = io.datapff(str(path))
        assert (d.dp, d.module) == ("ph256", 1)
        np.testing.assert_array_equal(d.readpff()[0], _expected(PH256_FILE)[0])


def test_cut_short_tail_is_dropped_with_a_warning(tmp_path):
    raw = IMG16_FILE.read_bytes()
    path = tmp_path / IMG16_FILE.name
    path.write_bytes(raw[:-700])
    with pytest.warns(PFFWarning, match="cut short"):
        data, _ = io.datapff(str(path)).readpff(metadata=True)
    np.testing.assert_array_equal(data, _expected(IMG16_FILE)[0][:-1])


def test_hkpff_legacy_matches_naive():
    path = LEGACY_RUN / "hk.pff"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        hk = io.hkpff(str(path)).readhk()
    records = naive_hk(path)
    for device in {d for d, _ in records}:
        rows = [f for d, f in records if d == device]
        for raw_key in rows[0]:
            key = {"TEMP1": "DET_TEMP", "TEMP2": "FPGA_TEMP"}.get(raw_key, raw_key)
            got = hk[device][key]
            assert isinstance(got, list) and len(got) == len(rows)
            for value, row in zip(got, rows, strict=True):
                raw = row[raw_key]
                if isinstance(raw, str):
                    try:
                        assert value == int(raw) and isinstance(value, int)
                    except ValueError:
                        try:
                            assert value == float(raw)
                        except ValueError:
                            assert value == raw
                else:
                    assert value == raw and type(value) is type(raw)  # a float stays a float


def test_qconfig_legacy():
    conf = io.qconfig(str(EXAMPLE_RUN / "*.json")).config
    raw = json.loads((EXAMPLE_RUN / "obs_config.json").read_text())
    assert conf["obs_config"] == raw
    q = conf["quabo_config_192.168.3.248"]
    src = json.loads((EXAMPLE_RUN / "quabo_config_192.168.3.248.json").read_text())
    for k, v in src.items():
        parts = v.split(",")
        if len(parts) == 4:
            assert q[k] == [int(p, 16) if p.startswith("0x") else int(p) for p in parts]
        else:
            assert q[k] == (int(v, 16) if v.startswith("0x") else int(v))
    with pytest.raises(Exception, match="can not be found"):
        io.qconfig(str(EXAMPLE_RUN / "nothing_*.json"))


@pytest.mark.parametrize("path", [IMG16_FILE, PH256_FILE], ids=["img16", "ph256"])
def test_same_as_pypff_on_daq_files(path):
    legacy = pytest.importorskip("pypff.io")
    (a, ma), (b, mb) = (m.datapff(str(path)).readpff(metadata=True) for m in (legacy, io))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == b.dtype
    assert json.dumps(
        {k: str(v.dtype) if isinstance(v, np.ndarray) else list(v) for k, v in ma.items()}
    ) == json.dumps(
        {k: str(v.dtype) if isinstance(v, np.ndarray) else list(v) for k, v in mb.items()}
    )
