"""The pfflake command: one-line errors, real runs of info / ingest / sql / fsck / images."""

import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

from tests.conftest import EXAMPLE_RUN, LEGACY_RUN


def pfflake(*args, check=True):
    cmd = [sys.executable, "-c", "from pfflake.cli import main; main()", *map(str, args)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def test_info_lists_streams_and_desync():
    out = pfflake("info", EXAMPLE_RUN, LEGACY_RUN).stdout
    assert "dp_img16.bpp_2.module_1" in out and "clock_desync=207" in out


def test_errors_are_one_line_without_traceback():
    out = pfflake("info", "/no/such/run", check=False)
    assert out.returncode == 1
    assert out.stderr.strip().startswith("pfflake: error:") and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    debug = pfflake("--debug", "info", "/no/such/run", check=False)
    assert "Traceback" in debug.stderr


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "lake"
    out = pfflake("ingest", EXAMPLE_RUN, LEGACY_RUN, "--lake", path, "--workers", "1")
    assert "2 run(s)" in out.stdout and "2,107 frames" in out.stdout
    return path


def test_sql_formats(lake, tmp_path):
    csv = pfflake("sql", lake, "SELECT module, count(*) AS n FROM frames GROUP BY 1 ORDER BY 1",
                  "--format", "csv").stdout
    assert csv.splitlines() == ['"module","n"', "1,400", "254,1707"]
    js = pfflake("sql", lake, "SELECT count(*) AS n FROM frames", "--format", "json").stdout
    assert js.strip() == '{"n": 2107}'
    pq_out = tmp_path / "x.parquet"
    pfflake("sql", lake, "SELECT frame FROM frames", "--format", "parquet", "--out", pq_out)
    import pyarrow.parquet as pq

    assert pq.read_table(pq_out).num_rows == 2107
    bad = pfflake("sql", lake, "SELECT nope FROM frames", check=False)
    assert bad.returncode == 1 and bad.stderr.startswith("pfflake: error:")


def test_fsck_ok_and_reingest_noop(lake):
    assert "OK" in pfflake("fsck", lake).stdout
    again = pfflake("ingest", EXAMPLE_RUN, LEGACY_RUN, "--lake", lake, "--workers", "1").stdout
    assert "no new data" in again


def test_images_npy_and_png(lake, tmp_path):
    from tests.naive import naive_read

    truth = naive_read(next(EXAMPLE_RUN.glob("*img16*.pff"))).images
    out = tmp_path / "imgs"
    pfflake("images", lake, "--sql",
            "SELECT run, data_product, module, frame FROM frames WHERE module = 1 "
            "ORDER BY pixel_sum DESC LIMIT 3", "--out", out, "--png")
    stack = np.load(out / "images.npy")
    order = np.argsort(-truth.reshape(400, -1).astype(np.int64).sum(axis=1), kind="stable")
    sums = stack.reshape(3, -1).astype(np.int64).sum(axis=1)
    assert sums.tolist() == truth[order[:3]].reshape(3, -1).astype(np.int64).sum(axis=1).tolist()
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 3
    data = pngs[0].read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", data[16:24])
    assert (w, h) == (256, 256)
    idat = data[data.index(b"IDAT") + 4 : data.index(b"IEND") - 8]
    assert len(zlib.decompress(idat)) == h * (w + 1)
