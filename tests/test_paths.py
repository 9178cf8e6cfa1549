from datetime import UTC, datetime

import pytest

from pfflake.errors import FileNameError, PFFError, UnknownProductError
from pfflake.paths import format_pff_name, format_run_name, parse_pff_name, parse_run_name


@pytest.mark.parametrize(
    "name, start",
    [
        ("start_2023-06-08T04:30:29Z.dp_img16.bpp_2.module_1.seqno_0.pff", "04:30:29"),
        ("start_2025-08-02T04-31-52Z.dp_ph256.bpp_2.module_254.seqno_0.pff", "04:31:52"),
        ("start_2025-08-02T04_34_46Z.dp_ph256.bpp_2.module_254.seqno_7.pff", "04:34:46"),
    ],
)
def test_time_separator_variants(name, start):
    parsed = parse_pff_name(name)
    assert parsed.start.strftime("%H:%M:%S") == start
    assert parsed.start.tzinfo is not None


def test_fields_and_stream_key():
    p = parse_pff_name(
        "start_2025-08-02T04_34_46Z.dp_ph256.bpp_2.module_254.seqno_3.debug_TRUNCATED.pff"
    )
    assert (p.data_product, p.bpp, p.module, p.seqno) == ("ph256", 2, 254, 3)
    assert p.extra == {"debug": "TRUNCATED"}
    assert p.stream == "dp_ph256.bpp_2.module_254.debug_TRUNCATED"
    img8 = parse_pff_name("start_2024-01-01T00:00:00Z.dp_img8.bpp_1.module_3.seqno_0.pff")
    assert img8.product.dtype.itemsize == 1


@pytest.mark.parametrize(
    "name, error",
    [
        ("start_2023-06-08T04:30:29Z.dp_img99.bpp_2.module_1.seqno_0.pff", UnknownProductError),
        ("start_2023-06-08T04:30:29Z.dp_img16.bpp_1.module_1.seqno_0.pff", FileNameError),
        ("start_2023-06-08T04:30:29Z.dp_img16.bpp_2.seqno_0.pff", FileNameError),
        ("start_2023-06-08T04:30:29Z.dp_img16.bpp_2.module_x.seqno_0.pff", FileNameError),
        ("hk.pff", FileNameError),
        ("random.bin", FileNameError),
    ],
)
def test_bad_names_raise_clear_errors(name, error):
    with pytest.raises(error) as e:
        parse_pff_name(name)
    assert isinstance(e.value, PFFError) and isinstance(e.value, ValueError)


def test_format_round_trip():
    t = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    for sep in ":-_":
        name = format_pff_name(t, "ph1024", 12, 4, separator=sep)
        p = parse_pff_name(name)
        assert (p.start, p.data_product, p.module, p.seqno) == (t, "ph1024", 12, 4)
    run = parse_run_name(format_run_name("Lick", t, "sci-obs"))
    assert (run.observatory, run.start, run.run_type) == ("Lick", t, "sci-obs")
    assert parse_run_name("example-data").observatory is None


@pytest.mark.parametrize(
    "name, stream, seqno, start",
    [
        ("test.dp_ph256.module_1.seqno_0.pff", "dp_ph256.bpp_2.module_1", 0, None),
        ("start_2024.dp_img16.bpp_2.module_1.seqno_3.pff", "dp_img16.bpp_2.module_1", 3, None),
        ("dp_img8.module_5.pff", "dp_img8.bpp_1.module_5", 0, None),
        (
            "start_2024-01-01T00:00:00Z.dp_ph1024.module_2.seqno_1.pff",
            "dp_ph1024.bpp_2.module_2",
            1,
            datetime(2024, 1, 1, tzinfo=UTC),
        ),
    ],
)
def test_names_pypff_reads(name, stream, seqno, start):
    """Only dp_ and module_ are required (as pypff reads names); bpp is implied by the product."""
    p = parse_pff_name(name)
    assert (p.stream, p.seqno, p.start) == (stream, seqno, start)
    assert p.as_meta()["dp"] == p.data_product


@pytest.mark.parametrize(
    "name", ["test.module_1.seqno_0.pff", "start_2024.dp_img16.seqno_0.pff", "notes.pff"]
)
def test_names_without_dp_or_module_are_refused(name):
    with pytest.raises(FileNameError, match="lacks the"):
        parse_pff_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "start_2023-06-08T04:30:29Z.dp_img16.bpp_2.module_1.seqno_0.pff",
        "start_2025-08-02T04-31-52Z.dp_ph256.bpp_2.module_254.seqno_0.pff",
        "start_2025-08-02T04_34_46.123Z.dp_ph256.bpp_2.module_254.seqno_7.pff",
        "start_2025-08-02T04:34_46Z.dp_ph1024.bpp_2.module_00254.seqno_0007.pff",
        "start_2025-13-02T04_34_46Z.dp_ph256.bpp_2.module_254.seqno_7.pff",
        "start_2025-12-02T25:34:46Z.dp_img8.bpp_1.module_254.seqno_7.pff",
        "start_2025-02-30T05:34:46Z.dp_img8.bpp_1.module_254.seqno_7.pff",
        "start_2025-12-02T05:34:46Z.dp_img8.bpp_2.module_254.seqno_7.pff",
        "start_2025-12-02T05:34:46Z.dp_img99.bpp_2.module_254.seqno_7.pff",
    ],
)
def test_daq_names_read_as_the_token_walk_reads_them(name):
    """Names in the DAQ's own form are parsed in one match; the same name with one more
    token (``.x_y``) takes the general token walk: both give the same fields, or the
    same error."""
    import dataclasses

    walked = name.replace(".pff", ".x_y.pff")

    def parse(n):
        try:
            return parse_pff_name(n)
        except PFFError as e:
            return type(e), str(e).replace(".x_y.pff", ".pff")

    fast, slow = parse(name), parse(walked)
    if isinstance(slow, tuple):
        assert fast == slow
        return
    assert slow.extra == {"x": "y"}
    assert fast == dataclasses.replace(slow, extra={})
    assert fast.start.tzinfo is UTC and fast.as_meta() == {
        k: v for k, v in slow.as_meta().items() if k != "x"
    }
