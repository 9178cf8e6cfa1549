"""The PFF writer: byte-exact DAQ layout, round trips through the naive reader, loud errors."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pfflake.paths import format_pff_name
from pfflake.products import PRODUCTS, get_product
from pfflake.writer import (
    FIELD_MAX,
    PFFWriter,
    ascii_right_aligned,
    fixed_layout,
    write_hk,
    write_pff,
)
from tests.conftest import DATA, IMG16_FILE, PH256_FILE, REAL_PFF_FILES
from tests.naive import naive_flat, naive_hk, naive_read

START = datetime(2024, 7, 1, 5, 0, 0, tzinfo=UTC)


def pff_name(product: str, module: int = 1, seqno: int = 0) -> str:
    return format_pff_name(START, product, module, seqno)


def columns_of(headers: list[dict]) -> dict[str, np.ndarray]:
    flats = [naive_flat(h) for h in headers]
    return {key: np.array([f[key] for f in flats], dtype=np.int64) for key in flats[0]}


def whole_frames(path: Path) -> bytes:
    truth = naive_read(path)
    data = path.read_bytes()
    return data[: len(data) - truth.truncated_tail_bytes]


# ---------------------------------------------------------------------------- real files


@pytest.mark.parametrize("real", REAL_PFF_FILES, ids=lambda p: p.parent.name + "/" + p.name[:40])
def test_frame_by_frame_reproduces_real_file(real, tmp_path):
    truth = naive_read(real)
    out = tmp_path / real.name
    with PFFWriter(out) as writer:
        for header, image in zip(truth.headers, truth.images, strict=True):
            writer.write_frame(header, image)
    assert out.read_bytes() == whole_frames(real)
    assert writer.frames_written == len(truth.headers)


@pytest.mark.parametrize("real", REAL_PFF_FILES, ids=lambda p: p.parent.name + "/" + p.name[:40])
def test_bulk_reproduces_real_file(real, tmp_path):
    truth = naive_read(real)
    out = tmp_path / real.name
    with PFFWriter(out, chunk_frames=97) as writer:  # odd block size: block edges mid-file
        writer.write_frames(columns_of(truth.headers), truth.images)
    assert out.read_bytes() == whole_frames(real)


def test_layout_matches_real_frame_sizes():
    assert fixed_layout("img16").header_bytes == 492  # 491 + '*'
    assert fixed_layout("img16").frame_bytes == 2540
    assert fixed_layout("ph256").frame_bytes == 636
    data = IMG16_FILE.read_bytes()
    layout = fixed_layout("img16")
    for key, (offset, width) in layout.spans.items():
        assert (
            int(data[offset : offset + width]) == naive_flat(naive_read(IMG16_FILE).headers[0])[key]
        )
    assert layout.printf.count("%10li") == 4 and layout.printf.count("%6li") == 4


def test_real_hk_blocks_rewrite_byte_for_byte(tmp_path):
    for real in (DATA / "example-data" / "hk.pff", DATA / "legacy-run" / "hk.pff"):
        records = naive_hk(real)
        out = write_hk(tmp_path / "hk.pff", records)
        data = real.read_bytes()
        assert out.read_bytes() == data[: data.rindex(b"\n\n") + 2]  # the real tail is cut short
        assert naive_hk(out) == records


# ---------------------------------------------------------------------------- round trips


def header_strategy(product: str):
    fields = get_product(product).header_fields
    return st.fixed_dictionaries(
        {key: st.integers(0, FIELD_MAX[key.rpartition(".")[2]]) for key in fields}
    )


def frames_strategy(product: str):
    p = get_product(product)
    return st.lists(
        st.tuples(header_strategy(product), arrays(p.dtype, p.image_shape)),
        min_size=1,
        max_size=4,
    )


def nested(flat: dict[str, int]) -> dict:
    """pypff's nested module header (what naive_read returns) from dotted keys."""
    out: dict = {}
    for key, value in flat.items():
        if "." in key:
            quabo, _, name = key.partition(".")
            out.setdefault(quabo, {})[name] = value
        else:
            out[key] = value
    return out


@pytest.mark.parametrize("fixed_width", [True, False], ids=["fixed", "compact"])
@pytest.mark.parametrize("product", sorted(PRODUCTS))
def test_random_frames_round_trip(product, fixed_width):
    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(frames=frames_strategy(product))
    def check(frames):
        with tempfile.TemporaryDirectory() as tmp:
            one, bulk = Path(tmp) / pff_name(product, 1), Path(tmp) / pff_name(product, 2)
            with PFFWriter(one, fixed_width=fixed_width) as writer:
                for header, image in frames:
                    writer.write_frame(header, image)
            headers = [h for h, _ in frames]
            images = np.stack([im for _, im in frames])
            write_pff(bulk, columns_of(headers), images, fixed_width=fixed_width)
            assert one.read_bytes() == bulk.read_bytes()
            truth = naive_read(one)
            assert truth.headers == [nested(h) for h in headers]
            np.testing.assert_array_equal(truth.images, images)
            assert truth.truncated_tail_bytes == 0
            sizes = np.diff([*truth.offsets, one.stat().st_size])
            if fixed_width:
                assert set(sizes) == {fixed_layout(product).frame_bytes}

    check()


@pytest.mark.parametrize("product", sorted(PRODUCTS))
def test_extreme_values_round_trip(product, tmp_path):
    p = get_product(product)
    lo = {key: 0 for key in p.header_fields}
    hi = {key: FIELD_MAX[key.rpartition(".")[2]] for key in p.header_fields}
    info = np.iinfo(p.dtype)
    images = np.stack(
        [np.full(p.image_shape, info.min, p.dtype), np.full(p.image_shape, info.max, p.dtype)]
    )
    for fixed_width in (True, False):
        path = tmp_path / pff_name(product, seqno=int(fixed_width))
        with PFFWriter(path, fixed_width=fixed_width) as writer:
            writer.write_frame(lo, images[0])
            writer.write_frame(hi, images[1])
        truth = naive_read(path)
        assert [naive_flat(h) for h in truth.headers] == [lo, hi]
        np.testing.assert_array_equal(truth.images, images)
        sizes = np.diff([*truth.offsets, path.stat().st_size])
        assert (sizes[0] == sizes[1]) == fixed_width  # compact: "0" vs "4294967295"


def test_compact_headers_are_unpadded(tmp_path):
    truth = naive_read(PH256_FILE)
    out = tmp_path / PH256_FILE.name
    with PFFWriter(out, fixed_width=False) as writer:
        writer.write_frames(columns_of(truth.headers[:3]), truth.images[:3])
    assert out.read_bytes().startswith(b'{"quabo_num": 0, "pkt_num": 35609, "pkt_tai": 516, ')
    assert naive_read(out).headers == truth.headers[:3]


def test_ascii_right_aligned_matches_printf():
    for width in range(1, 13):
        values = np.unique(
            np.clip(
                np.concatenate(
                    [
                        np.arange(30),
                        10 ** np.arange(width),
                        10 ** np.arange(width) - 1,
                        [10**width - 1],
                    ]
                ),
                0,
                10**width - 1,
            )
        )
        got = ascii_right_aligned(values, width)
        assert [bytes(row).decode() for row in got] == [f"{v:{width}d}" for v in values]


def test_partial_frame_is_a_truncated_tail(tmp_path):
    truth = naive_read(IMG16_FILE)
    out = tmp_path / IMG16_FILE.name
    with PFFWriter(out) as writer:
        writer.write_frames(columns_of(truth.headers[:2]), truth.images[:2])
        writer.write_partial_frame(truth.headers[2], truth.images[2], 700)
    back = naive_read(out)
    assert len(back.headers) == 2 and back.truncated_tail_bytes == 700
    assert out.stat().st_size == 2 * 2540 + 700


def test_append_continues_a_file(tmp_path):
    truth = naive_read(PH256_FILE)
    out = tmp_path / PH256_FILE.name
    with PFFWriter(out) as writer:
        writer.write_frames(columns_of(truth.headers[:5]), truth.images[:5])
    with PFFWriter(out, append=True) as writer:
        writer.write_frames(columns_of(truth.headers[5:9]), truth.images[5:9])
    assert out.read_bytes() == PH256_FILE.read_bytes()[: 9 * 636]


# ---------------------------------------------------------------------------- errors


def img16_header(**changes) -> dict:
    header = naive_read(IMG16_FILE).headers[0]
    for key, value in changes.items():
        quabo, _, name = key.partition("__")
        header[quabo][name] = value
    return header


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"quabo_0__pkt_num": 2**32}, r"quabo_0.pkt_num = 4294967296 does not fit .*%10u"),
        ({"quabo_1__tv_usec": 1_000_000}, r"quabo_1.tv_usec = 1000000 .*%6li"),
        ({"quabo_2__pkt_tai": 10_000}, r"%4u"),
        ({"quabo_3__pkt_nsec": 1_000_000_000}, r"%9u"),
        ({"quabo_0__tv_sec": 10**10}, r"%10li"),
        ({"quabo_0__tv_sec": -1}, r"quabo_0.tv_sec = -1"),
    ],
)
def test_value_too_wide_raises(tmp_path, change, message):
    with PFFWriter(tmp_path / IMG16_FILE.name) as writer, pytest.raises(ValueError, match=message):
        writer.write_frame(img16_header(**change), np.zeros((32, 32), "<u2"))
    assert (tmp_path / IMG16_FILE.name).stat().st_size == 0  # nothing half-written


def test_errors_name_file_and_frame(tmp_path):
    truth = naive_read(IMG16_FILE)
    path = tmp_path / IMG16_FILE.name
    with PFFWriter(path) as writer:
        writer.write_frames(columns_of(truth.headers[:3]), truth.images[:3])
        with pytest.raises(ValueError, match=rf"file {path}, frame 3: .*quabo_2.pkt_tai = 10000"):
            writer.write_frame(img16_header(quabo_2__pkt_tai=10_000), truth.images[3])


def test_bulk_value_too_wide_raises(tmp_path):
    truth = naive_read(PH256_FILE)
    columns = columns_of(truth.headers[:4])
    columns["quabo_num"] = np.array([0, 1, 10, 3])
    with PFFWriter(tmp_path / PH256_FILE.name) as writer:
        with pytest.raises(ValueError, match=r"frame 2: header field quabo_num = 10 .*%1u"):
            writer.write_frames(columns, truth.images[:4])
        columns["quabo_num"] = np.array([0, 1, 2, 3], dtype=np.float64)
        with pytest.raises(TypeError, match="integer dtype"):
            writer.write_frames(columns, truth.images[:4])
        columns["quabo_num"] = np.array([0, 1, 2])
        with pytest.raises(ValueError, match=r"shape \(3,\), expected \(4,\)"):
            writer.write_frames(columns, truth.images[:4])


def test_non_integer_and_missing_fields_raise(tmp_path):
    image = np.zeros((16, 16), "<i2")
    good = naive_read(PH256_FILE).headers[0]
    with PFFWriter(tmp_path / PH256_FILE.name) as writer:
        with pytest.raises(TypeError, match="pkt_nsec must be an integer"):
            writer.write_frame({**good, "pkt_nsec": 1.5}, image)
        with pytest.raises(TypeError, match="tv_sec must be an integer"):
            writer.write_frame({**good, "tv_sec": True}, image)
        with pytest.raises(ValueError, match=r"missing \['tv_usec'\]"):
            writer.write_frame({k: v for k, v in good.items() if k != "tv_usec"}, image)
        with pytest.raises(ValueError, match=r"unexpected \['extra'\]"):
            writer.write_frame({**good, "extra": 1}, image)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((32, 32), np.uint8), r"must be uint16 \(<u2\), got uint8"),
        (np.zeros((32, 32), np.int64), r"got int64"),
        (np.zeros((32, 32), ">u2"), r"got >u2|got uint16 \(>u2\)"),
        (np.zeros((16, 16), "<u2"), r"shape 32x32, got \(16, 16\)"),
        (np.zeros(1024, "<u2"), r"shape 32x32, got \(1024,\)"),
    ],
)
def test_wrong_image_raises(tmp_path, image, message):
    with PFFWriter(tmp_path / IMG16_FILE.name) as writer, pytest.raises(ValueError, match=message):
        writer.write_frame(img16_header(), image)


def test_wrong_bulk_images_raise(tmp_path):
    truth = naive_read(IMG16_FILE)
    columns = columns_of(truth.headers[:3])
    with PFFWriter(tmp_path / IMG16_FILE.name) as writer:
        with pytest.raises(ValueError, match=r"shape \(N, 32x32\), got \(3, 32, 16\)"):
            writer.write_frames(columns, truth.images[:3, :, :16].copy())
        with pytest.raises(ValueError, match="got int16"):
            writer.write_frames(columns, truth.images[:3].astype(np.int16))
        with pytest.raises(ValueError, match=r"shape \(2,\), expected \(3,\)|expected \(2,\)"):
            writer.write_frames(columns, truth.images[:2])


def test_product_must_agree_with_name(tmp_path):
    with pytest.raises(ValueError, match="contradicts the file name"):
        PFFWriter(tmp_path / pff_name("img16"), "ph256")
    with pytest.raises(ValueError, match="pass data_product="):
        PFFWriter(tmp_path / "frames.pff")
    with PFFWriter(tmp_path / "frames.pff", "img8") as writer:
        assert writer.product.name == "img8"


def test_closed_writer_raises(tmp_path):
    writer = PFFWriter(tmp_path / IMG16_FILE.name)
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.write_frame(img16_header(), np.zeros((32, 32), "<u2"))


def test_hk_values_become_strings_and_bad_values_raise(tmp_path):
    path = write_hk(
        tmp_path / "hk.pff",
        [("WPS", {"POWER": "ON", "Computer_UTC": 1.5}), {"QUABO_4": {"TEMP1": 40}}],
    )
    assert naive_hk(path) == [
        ("WPS", {"POWER": "ON", "Computer_UTC": "1.5"}),
        ("QUABO_4", {"TEMP1": "40"}),
    ]
    with pytest.raises(TypeError, match=r"WPS\.POWER must be a string or number"):
        write_hk(tmp_path / "bad.pff", [("WPS", {"POWER": None})])
