"""The reader on simulated runs of every product, against the naive parser and the truth."""

import warnings

import numpy as np
import pytest

from pfflake import PanosetiRun, PFFSequence, PFFWarning
from pfflake.simulate import simulate_run, write_stream
from tests.naive import naive_flat, naive_read, naive_unix_t_ns

PRODUCTS = ["img16", "img8", "ph1024", "ph256"]


@pytest.fixture(scope="module")
def messy_run(tmp_path_factory):
    """Every product, two modules, three seqno files, desync, missing quabos, cut tail."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        return simulate_run(
            tmp_path_factory.mktemp("sim"),
            products=PRODUCTS,
            modules=(1, 3),
            n_frames=600,
            frames_per_file=250,
            desync_frames=[5, 300, 599],
            missing_quabo_frames={0: [0], 7: [0, 2], 251: [0], 400: [2]},
            truncate_tail_bytes=333,
            bright_events=[100, 450],
        )


def naive_stream(paths):
    headers, images = [], []
    for p in paths:
        f = naive_read(p)
        headers += f.headers
        images.append(f.images)
    return headers, np.concatenate(images)


@pytest.mark.parametrize("product", PRODUCTS)
def test_every_accessor_matches_naive(messy_run, product, decode_kernel):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        run = PanosetiRun(messy_run.path)
    for module in (1, 3):
        stream = messy_run.streams[
            next(k for k in messy_run.streams if f"dp_{product}." in k and f"module_{module}" in k)
        ]
        seq = run.get_product(
            next(
                k
                for k in run.list_products()
                if f"dp_{product}." in k and k.endswith(f"module_{module}")
            )
        )
        headers, images = naive_stream(stream.files)
        flats = [naive_flat(h) for h in headers]
        times = [naive_unix_t_ns(f, product) for f in flats]
        assert len(seq) == len(headers) == 600  # plus a cut-short frame, dropped
        np.testing.assert_array_equal(seq.read_images_range(), images)
        np.testing.assert_array_equal(
            np.concatenate([b.copy() for b in seq.iter_batches(128)]), images
        )
        meta = seq.get_metadata_arrays([*seq.product.header_fields, "unix_t_ns", "time_quality"])
        for k in seq.product.header_fields:
            assert meta[k].tolist() == [f[k] for f in flats], k
        assert meta["unix_t_ns"].tolist() == [t for t, _ in times]
        assert seq.timestamps().tolist() == [t for t, _ in times]
        assert seq.timestamp_quality().tolist() == [q for _, q in times]
        # The simulator's own truth agrees with the naive rule:
        np.testing.assert_array_equal(seq.timestamps(), stream.expected_unix_t_ns[: len(seq)])
        np.testing.assert_array_equal(seq.timestamp_quality(), stream.expected_flags[: len(seq)])
        idx = np.array([598, 0, 250, 251, 7, 7])
        np.testing.assert_array_equal(seq.read_images(idx), images[idx])
        assert seq.timestamps(idx).tolist() == [times[i][0] for i in idx]
        for _, ts in seq.iter_batches(100, with_timestamps=True):
            assert ts.dtype == np.int64
        assert sum(len(b) for b in seq.iter_batches(100)) == 600


def test_quabo_0_missing_uses_next_quabo(messy_run):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        run = PanosetiRun(messy_run.path)
    seq = run.get_product("dp_img16.bpp_2.module_1")
    meta = seq.get_metadata_arrays(["quabo_0.tv_sec", "quabo_1.pkt_nsec", "unix_t_ns"])
    assert meta["quabo_0.tv_sec"][7] == 0
    assert meta["unix_t_ns"][7] % 1_000_000_000 == meta["quabo_1.pkt_nsec"][7]
    assert seq.timestamp_quality()[7] & 4


def test_compact_json_streams_match_fixed(tmp_path):
    """Another writer's unpadded headers give the same answers as the DAQ layout."""
    fixed = write_stream(tmp_path / "a", "ph256", 9, 300, seed=3, missing_quabo_frames=[])
    compact = write_stream(tmp_path / "b", "ph256", 9, 300, seed=3, fixed_width=False)
    a, b = PFFSequence(fixed.files), PFFSequence(compact.files)
    np.testing.assert_array_equal(a.timestamps(), b.timestamps())
    np.testing.assert_array_equal(a.read_images_range(), b.read_images_range())
    assert all(f.layout is None for f in b.files) or len(b.files[0].path.read_bytes()) != len(
        a.files[0].path.read_bytes()
    )
