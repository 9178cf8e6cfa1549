"""The header kind (module / single quabo) comes from the file's first header, not the product."""

from __future__ import annotations

import numpy as np
import pytest

from pfflake import PanosetiRun, PFFSequence
from pfflake.file import header_kind_of
from pfflake.pypff.io import datapff
from tests.conftest import IMG16_FILE, PH256_FILE
from tests.naive import naive_read


def _swap(src, dst, shape, dtype, n=20, seed=0):
    """Headers of ``src`` with images of another geometry: a product/header mismatch."""
    nf = naive_read(src)
    raw = src.read_bytes()
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 200, (n, *shape)).astype(dtype)
    out = bytearray()
    for k in range(n):
        start = nf.offsets[k]
        end = raw.index(b"\n\n", start) + 2
        out += raw[start:end] + b"*" + images[k].tobytes()
    dst.write_bytes(bytes(out))
    return nf.headers[:n], images


@pytest.mark.parametrize(
    "src, name, shape, dtype, kind",
    [
        (
            PH256_FILE,
            "start_2024-01-01T00:00:00Z.dp_img16.bpp_2.module_1.seqno_0.pff",
            (32, 32),
            "<u2",
            "quabo",
        ),
        (
            IMG16_FILE,
            "start_2024-01-01T00:00:00Z.dp_ph256.bpp_2.module_1.seqno_0.pff",
            (16, 16),
            "<i2",
            "module",
        ),
    ],
)
def test_mismatch_reads_as_the_file_has_it(tmp_path, src, name, shape, dtype, kind):
    path = tmp_path / name
    headers, images = _swap(src, path, shape, dtype)
    assert header_kind_of(path) == kind
    seq = PFFSequence([path])
    assert seq.product.header_kind == kind
    np.testing.assert_array_equal(seq.read_images_range(0), images)
    assert seq.get_frame(3)[0] == headers[3]
    key = "pkt_num" if kind == "quabo" else "quabo_1.pkt_num"
    got = seq.get_metadata_arrays([key])[key].tolist()
    want = [h["pkt_num"] if kind == "quabo" else h["quabo_1"]["pkt_num"] for h in headers]
    assert got == want
    info = seq.info()
    assert info.ok and info.error is None
    assert "holds" in info.files[0].header_note and kind in info.files[0].header_note
    data, meta = datapff(str(path)).readpff(metadata=True)
    np.testing.assert_array_equal(data, images.reshape(len(images), -1))
    assert ("pkt_num" in meta) == (kind == "quabo")
    run = PanosetiRun(tmp_path)
    assert len(run.list_products()) == 1 and run.info().ok


def test_matching_files_have_no_note():
    for path, kind in ((IMG16_FILE, "module"), (PH256_FILE, "quabo")):
        assert header_kind_of(path) == kind
        assert PFFSequence([path]).info().files[0].header_note is None


def test_unreadable_first_header_gives_none(tmp_path):
    p = tmp_path / "x.pff"
    p.write_bytes(b"not a header")
    assert header_kind_of(p) is None
    assert header_kind_of(tmp_path / "missing.pff") is None
