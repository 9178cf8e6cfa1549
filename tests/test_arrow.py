"""PFF -> Arrow (pfflake.arrow) against the naive parser, on real files and simulated runs."""

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from pfflake import CorruptHeaderError, PFFSequence, PFFWarning
from pfflake.arrow import arrow_c_stream, frame_batches, to_arrow
from pfflake.schema import frame_schema
from pfflake.simulate import simulate_run
from tests.conftest import IMG16_FILE, PH256_FILE, REAL_PFF_FILES
from tests.naive import (
    NAIVE_PRODUCTS,
    naive_flat,
    naive_host_t_ns,
    naive_read,
    naive_unix_t_ns,
)

PRODUCTS = ["img16", "img8", "ph1024", "ph256"]
THRESHOLD = 50.0


@pytest.fixture(scope="module")
def messy_run(tmp_path_factory):
    """Every product, three seqno files, desync, missing quabos (one frame with none), cut tail."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        return simulate_run(
            tmp_path_factory.mktemp("sim"),
            products=PRODUCTS,
            modules=(3,),
            n_frames=300,
            frames_per_file=120,
            desync_frames=[5, 130, 299],
            missing_quabo_frames={0: [0], 7: [0, 2], 121: [0], 200: [0, 1, 2, 3], 250: [2]},
            truncate_tail_bytes=333,
            bright_events=[100],
        )


def open_seq(paths):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        return PFFSequence(paths)


def naive_columns(paths, threshold=THRESHOLD):
    """Every column of the frame schema, from the naive parse and plain numpy."""
    cols: dict[str, list] = {}
    images = []
    frame = 0
    for path in paths:
        f = naive_read(path)
        name = re.search(r"\.module_(\d+)\.seqno_(\d+)\.", path.name)
        for i, header in enumerate(f.headers):
            flat = naive_flat(header)
            ns, quality = naive_unix_t_ns(flat, f.product)
            host_ns, lost = naive_host_t_ns(flat, f.product)
            row = {
                "run": path.parent.name,
                "data_product": f.product,
                "module": int(name[1]),
                "seqno": int(name[2]),
                "frame": frame,
                "file_frame": i,
                "byte_offset": f.offsets[i],
                "unix_t_ns": ns,
                "time_quality": quality,
                "host_unix_t_ns": host_ns,
                "packet_loss": lost,
            }
            row.update({k.replace(".", "_"): v for k, v in flat.items()})
            for k, v in row.items():
                cols.setdefault(k, []).append(v)
            frame += 1
        images.append(f.images)
    px = np.concatenate(images)
    flat_px = px.reshape(len(px), -1)
    wide = flat_px.astype(np.float64)
    cols["pixel_sum"] = flat_px.sum(axis=1, dtype=np.int64)
    cols["pixel_min"] = flat_px.min(axis=1)
    cols["pixel_max"] = flat_px.max(axis=1)
    cols["pixel_mean"] = wide.mean(axis=1).astype(np.float32)
    cols["pixel_std"] = wide.std(axis=1).astype(np.float32)
    cols["pixel_argmax"] = flat_px.argmax(axis=1)
    cols["pixels_above"] = (flat_px > threshold).sum(axis=1)
    return cols, px


def assert_matches_naive(table: pa.Table, cols: dict, px: np.ndarray) -> None:
    table.validate(full=True)
    assert table.num_rows == len(px)
    for name in table.column_names:
        got = table.column(name)
        if name == "image":
            np.testing.assert_array_equal(got.combine_chunks().to_numpy_ndarray(), px)
        elif name == "time":
            np.testing.assert_array_equal(got.cast(pa.int64()).to_numpy(), cols["unix_t_ns"])
        elif name == "pixel_std":
            np.testing.assert_allclose(got.to_numpy(), cols[name], rtol=2e-7, err_msg=name)
        elif name in ("run", "data_product"):
            assert got.to_pylist() == cols[name], name
        else:
            np.testing.assert_array_equal(got.to_numpy(), np.asarray(cols[name]), err_msg=name)


def read_table(seq, **kw) -> pa.Table:
    kw.setdefault("images", True)
    batches = [fb.batch for fb in frame_batches(seq, **kw)]
    schema = frame_schema(seq.product, images=kw["images"], stats=kw.get("stats", True))
    return pa.Table.from_batches(batches, schema=schema)


# ---------------------------------------------------------------------------- against the truth


@pytest.mark.parametrize("path", REAL_PFF_FILES, ids=lambda p: p.name[:32])
def test_real_files_match_naive(path):
    cols, px = naive_columns([path])
    with PFFSequence([path]) as seq:
        table = read_table(seq, batch_size=97, threshold=THRESHOLD)
    assert table.schema == frame_schema(seq.product, images=True, stats=True)
    assert_matches_naive(table, cols, px)


@pytest.mark.parametrize("product", PRODUCTS)
def test_simulated_run_matches_naive(messy_run, product):
    stream = messy_run.stream(product, 3)
    cols, px = naive_columns(stream.files)
    seq = open_seq(stream.files)
    assert len(seq.files) == 3 and len(px) == 300
    batches = list(frame_batches(seq, batch_size=64, images=True, threshold=THRESHOLD))
    # Batches are full except the last, and may span seqno files.
    assert [fb.batch.num_rows for fb in batches] == [64] * 4 + [44]
    assert [fb.start for fb in batches] == [0, 64, 128, 192, 256]
    assert len(set(batches[1].batch.column("seqno").to_pylist())) == 2
    table = pa.Table.from_batches([fb.batch for fb in batches])
    assert_matches_naive(table, cols, px)
    # The simulator's own truth agrees with the naive clock rule for the checked columns.
    np.testing.assert_array_equal(cols["unix_t_ns"], stream.expected_unix_t_ns)
    np.testing.assert_array_equal(cols["time_quality"], stream.expected_flags)
    np.testing.assert_array_equal(table.column("unix_t_ns").to_numpy(), seq.timestamps())
    np.testing.assert_array_equal(table.column("time_quality").to_numpy(), seq.timestamp_quality())


def test_lenient_sequence_skips_damaged_frame(tmp_copy):
    """A damaged frame (strict=False) is skipped; offsets and pixels of the rest stay exact."""
    path = tmp_copy(IMG16_FILE)
    truth = naive_read(IMG16_FILE)
    k = 37
    data = bytearray(path.read_bytes())
    colon = data.index(b":", truth.offsets[k])
    data[colon] = ord("#")
    path.write_bytes(bytes(data))
    cols, px = naive_columns([IMG16_FILE])
    keep = np.setdiff1d(np.arange(len(px)), [k])
    cols = {name: np.asarray(v)[keep] for name, v in cols.items()}
    # frame and file_frame count the frames the lenient reader kept (PFFFile's local
    # indices); byte_offset still locates each frame in the file
    cols["frame"] = cols["file_frame"] = np.arange(len(keep))
    cols["run"] = [path.parent.name] * len(keep)
    cols["data_product"] = ["img16"] * len(keep)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seq = PFFSequence([path], strict=False)
    table = read_table(seq, batch_size=50, threshold=THRESHOLD)
    assert_matches_naive(table, cols, px[keep])


# ---------------------------------------------------------------------------- batching and ranges


@pytest.mark.parametrize("product", ["img16", "ph256"])
def test_batch_boundaries_do_not_change_the_table(messy_run, product):
    seq = open_seq(messy_run.stream(product, 3).files)
    tables = [read_table(seq, batch_size=size) for size in (1, 7, 120, 299, 65536)]
    for t in tables[1:]:
        assert t.equals(tables[0])
    assert tables[0].num_rows == 300


def test_start_stop_ranges(messy_run):
    seq = open_seq(messy_run.stream("img8", 3).files)
    full = read_table(seq, batch_size=1000, threshold=THRESHOLD)
    cases = [(0, 10), (115, 245), (119, 121), (-20, None), (250, 10_000), (50, 50), (200, 100)]
    for start, stop in cases:
        lo, hi, _ = slice(start, stop).indices(len(seq))
        expect = full.slice(lo, max(hi - lo, 0))
        for size in (13, 1000):
            kw = dict(start=start, stop=stop, batch_size=size, threshold=THRESHOLD)
            batches = list(frame_batches(seq, images=True, **kw))
            assert [fb.start for fb in batches] == list(range(lo, max(lo, hi), size))
            got = pa.Table.from_batches([fb.batch for fb in batches], schema=full.schema)
            assert got.equals(expect), (start, stop, size)


def test_names_that_do_not_parse_give_null_module_and_seqno(tmp_path):
    renamed = tmp_path / "night-1" / "frames.bin"
    renamed.parent.mkdir()
    renamed.write_bytes(PH256_FILE.read_bytes())
    cols, px = naive_columns([PH256_FILE])
    with PFFSequence([renamed], data_product="ph256") as seq:
        table = read_table(seq, batch_size=400, threshold=THRESHOLD)
    assert table.column("module").null_count == table.column("seqno").null_count == len(px)
    assert set(table.column("run").to_pylist()) == {"night-1"}
    rest = [c for c in table.column_names if c not in ("module", "seqno", "run")]
    assert_matches_naive(table.select(rest), cols, px)


def test_empty_sequence_gives_an_empty_reader(tmp_path):
    path = tmp_path / "start_2024-07-01T05:00:00Z.dp_img16.bpp_2.module_1.seqno_0.pff"
    path.touch()
    with PFFSequence([path]) as seq:
        table = to_arrow(seq).read_all()
    assert table.num_rows == 0 and table.schema == frame_schema(seq.product, images=True)


def test_bad_arguments_raise_before_iterating():
    with PFFSequence([PH256_FILE]) as seq, pytest.raises(ValueError, match="batch_size"):
        frame_batches(seq, batch_size=0)


# ---------------------------------------------------------------------------- schema and pixels


@pytest.mark.parametrize("images", [False, True])
@pytest.mark.parametrize("stats", [False, True])
def test_schema_is_frame_schema(images, stats):
    with PFFSequence([IMG16_FILE]) as seq:
        fb = next(frame_batches(seq, batch_size=100, images=images, stats=stats))
        assert fb.batch.schema == frame_schema(seq.product, images=images, stats=stats)
        assert fb.pixels is None
        reader = to_arrow(seq, batch_size=100, images=images, stats=stats)
        assert reader.schema == frame_schema(seq.product, images=images, stats=stats)
        assert sum(b.num_rows for b in reader) == len(seq)


def test_threshold_none_gives_null_counts_and_run_override():
    with PFFSequence([PH256_FILE]) as seq:
        table = read_table(seq, images=False, run="my-run")
    assert table.column("pixels_above").null_count == table.num_rows
    assert set(table.column("run").to_pylist()) == {"my-run"}


@pytest.mark.parametrize("product", PRODUCTS)
def test_pixels_are_copied_once_and_shared_with_the_image_column(messy_run, product):
    stream = messy_run.stream(product, 3)
    _, px = naive_columns(stream.files)
    seq = open_seq(stream.files)
    got = []
    for fb in frame_batches(seq, batch_size=100, images=True, stats=True, with_pixels=True):
        assert fb.pixels.flags.c_contiguous and fb.pixels.flags.writeable
        tensor = fb.batch.column("image")
        assert isinstance(tensor, pa.FixedShapeTensorArray)
        view = tensor.to_numpy_ndarray()
        assert np.shares_memory(view, fb.pixels)
        got.append(fb.pixels)
    np.testing.assert_array_equal(np.concatenate(got), px)
    # with_pixels without the image column: the same pixels, no tensor column
    fb = next(frame_batches(seq, start=250, batch_size=100, with_pixels=True))
    assert "image" not in fb.batch.schema.names
    np.testing.assert_array_equal(fb.pixels, px[250:])


# ---------------------------------------------------------------------------- narrow header types


def _json_file(path: Path, headers: list[dict], product: str = "ph256") -> Path:
    shape, dtype, _ = NAIVE_PRODUCTS[product]
    with open(path, "wb") as f:
        for h in headers:
            f.write(json.dumps(h).encode() + b"\n\n*")
            f.write(np.zeros(shape, dtype).tobytes())
    return path


def _ph256_header(**overrides) -> dict:
    header = {
        "quabo_num": 1,
        "pkt_num": 7,
        "pkt_tai": 521,
        "pkt_nsec": 5000,
        "tv_sec": 1_720_000_000,
        "tv_usec": 6,
    }
    header.update(overrides)
    return header


@pytest.mark.parametrize(
    ("field", "value"),
    [("pkt_num", 2**32), ("quabo_num", 256), ("tv_usec", -1), ("pkt_tai", 70_000)],
)
def test_value_too_wide_for_its_column_raises(tmp_path, field, value):
    name = "start_2024-07-01T05:00:00Z.dp_ph256.bpp_2.module_1.seqno_0.pff"
    headers = [_ph256_header(pkt_num=i) for i in range(5)]
    headers[3][field] = value
    path = _json_file(tmp_path / name, headers)
    with PFFSequence([path]) as seq:
        assert seq.files[0].layout is None  # generic (JSON) layout
        with pytest.raises(CorruptHeaderError, match=f"{field} = {value}") as err:
            list(frame_batches(seq))
        assert err.value.frame == 3 and err.value.path == path
        assert err.value.offset == naive_read(path).offsets[3]
        with pytest.raises(ValueError, match="does not fit"):
            to_arrow(seq).read_all()


def test_largest_values_that_fit_pass(tmp_path):
    name = "start_2024-07-01T05:00:00Z.dp_ph256.bpp_2.module_1.seqno_0.pff"
    top = _ph256_header(quabo_num=255, pkt_num=2**32 - 1, pkt_tai=65535, tv_usec=2**32 - 1)
    path = _json_file(tmp_path / name, [_ph256_header(), top])
    with PFFSequence([path]) as seq:
        row = read_table(seq, images=False).slice(1).to_pylist()[0]
    assert (row["quabo_num"], row["pkt_num"], row["pkt_tai"]) == (255, 2**32 - 1, 65535)
    assert row["tv_usec"] == 2**32 - 1


def test_overflow_in_fixed_width_file_raises(tmp_copy):
    """The DAQ's %10u pkt_num can hold 5e9: more than its uint32 column."""
    path = tmp_copy(PH256_FILE)
    truth = naive_read(PH256_FILE)
    k = 1234
    data = bytearray(path.read_bytes())
    at = data.index(b'"pkt_num":', truth.offsets[k]) + len(b'"pkt_num":')
    assert data[at : at + 11].strip().isdigit()
    data[at + 1 : at + 11] = b"5000000000"
    path.write_bytes(bytes(data))
    with PFFSequence([path]) as seq:
        assert seq.files[0].layout is not None  # the fast fixed-width decode
        assert list(frame_batches(seq, stop=k, batch_size=500))  # frames before k are fine
        with pytest.raises(CorruptHeaderError, match="pkt_num = 5000000000") as err:
            list(frame_batches(seq, batch_size=500))
    assert (err.value.frame, err.value.offset) == (k, truth.offsets[k])


# ---------------------------------------------------------------------------- consumers


class _Stream:
    """What PFFSequence.__arrow_c_stream__ does, for any keyword arguments."""

    def __init__(self, seq):
        self.seq = seq

    def __arrow_c_stream__(self, requested_schema=None):
        return arrow_c_stream(self.seq, requested_schema)


def test_pycapsule_consumers(messy_run):
    import duckdb
    import polars as pl

    seq = open_seq(messy_run.stream("img16", 3).files)
    schema = frame_schema(seq.product, images=True, stats=True)
    obj = _Stream(seq)

    table = pa.table(obj)
    assert table.schema == schema and table.num_rows == 300
    reader = pa.RecordBatchReader.from_stream(obj)
    assert reader.schema == schema
    assert reader.read_all().equals(table)

    df = pl.DataFrame(obj)  # keeps the tensor as a Polars extension dtype
    assert df.height == 300 and df.columns == schema.names
    assert df["quabo_0_pkt_num"].dtype == pl.UInt32
    assert df["time"].dtype == pl.Datetime("ns", "UTC")
    back = df.to_arrow()
    np.testing.assert_array_equal(
        back.column("unix_t_ns").to_numpy(), table.column("unix_t_ns").to_numpy()
    )
    # pl.from_arrow on a non-pyarrow stream gives one struct Series
    series = pl.from_arrow(obj)
    assert isinstance(series, pl.Series)
    assert series.struct.unnest().columns == schema.names

    count = duckdb.sql("select count(*), sum(pixel_sum) from obj").fetchall()
    assert count == [(300, int(table.column("pixel_sum").to_numpy().sum()))]
    # DuckDB reads the tensor as its storage: a fixed-size array of H*W pixels
    first = duckdb.sql("select image from obj where frame = 0").fetchall()[0][0]
    pixels = table.column("image").combine_chunks().to_numpy_ndarray()
    np.testing.assert_array_equal(np.asarray(first), pixels[0].reshape(-1))


@pytest.mark.skipif(
    not hasattr(PFFSequence, "__arrow_c_stream__"), reason="PFFSequence has no Arrow methods yet"
)
def test_sequence_speaks_the_arrow_protocol():
    import duckdb
    import polars as pl

    with PFFSequence([PH256_FILE]) as seq:
        n = len(seq)
        assert pa.table(seq).num_rows == n
        assert pl.DataFrame(seq).height == n
        assert duckdb.sql("select count(*) from seq").fetchall() == [(n,)]
        assert seq.to_arrow(images=False).schema == frame_schema(seq.product)


def test_to_arrow_is_lazy(tmp_path):
    """The reader builds batches on demand: a damaged later frame raises only when reached."""
    name = "start_2024-07-01T05:00:00Z.dp_ph256.bpp_2.module_1.seqno_0.pff"
    headers = [_ph256_header(pkt_num=i) for i in range(10)]
    headers[8]["pkt_num"] = 2**40
    path = _json_file(tmp_path / name, headers)
    with PFFSequence([path]) as seq:
        reader = to_arrow(seq, batch_size=4)
        assert reader.read_next_batch().num_rows == 4
        assert reader.read_next_batch().num_rows == 4
        with pytest.raises(ValueError):
            reader.read_next_batch()


def test_second_pass_reads_the_same_after_maps_were_closed(messy_run):
    seq = open_seq(messy_run.stream("ph256", 3).files)
    n = sum(fb.batch.num_rows for fb in frame_batches(seq, batch_size=64))
    assert n == 300
    # closed maps reopen lazily: a second pass reads the same
    assert read_table(seq, batch_size=64).equals(read_table(seq, batch_size=300))
