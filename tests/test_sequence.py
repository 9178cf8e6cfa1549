"""The seed (pypff) API on real files, against the naive reader and, where right, pypff."""

import gc
import itertools
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from pfflake import PFFSequence
from tests.conftest import IMG16_FILE, PH256_FILE, REAL_PFF_FILES
from tests.naive import naive_flat, naive_read, naive_unix_t_ns


@pytest.fixture(params=REAL_PFF_FILES, ids=lambda p: p.name[:32])
def real(request):
    truth = naive_read(request.param)
    with PFFSequence([request.param]) as seq:
        yield seq, truth


def test_len_getitem_and_slices(real):
    seq, truth = real
    n = len(truth.headers)
    assert len(seq) == n
    for i in (0, 1, n // 2, n - 1, -1, -n):
        np.testing.assert_array_equal(seq[i], truth.images[i])
    for sl in (slice(None), slice(3, 40, 7), slice(None, None, -3), slice(-10, None), slice(5, 5)):
        np.testing.assert_array_equal(seq[sl], truth.images[sl])
    idx = np.array([5, 0, 5, n - 1, 2])
    np.testing.assert_array_equal(seq[idx], truth.images[idx])
    np.testing.assert_array_equal(seq[[3, 1]], truth.images[[3, 1]])
    with pytest.raises(IndexError):
        seq[n]
    with pytest.raises(IndexError):
        seq.read_images([0, n])


def test_iteration_and_batches(real):
    seq, truth = real
    np.testing.assert_array_equal(np.array(list(seq)), truth.images)
    got = [b.copy() for b in seq.iter_batches(size=37)]
    assert all(len(b) <= 37 for b in got)
    np.testing.assert_array_equal(np.concatenate(got), truth.images)
    flats = [naive_flat(h) for h in truth.headers]
    pos = 0
    for images, headers, ts in seq.iter_batches(50, with_headers=True, with_timestamps=True):
        for j in range(len(images)):
            flat = flats[pos + j]
            assert {k: int(v[j]) for k, v in headers.items()} == {k: flat[k] for k in headers}
            assert int(ts[j]) == naive_unix_t_ns(flat, truth.product)[0]
        pos += len(images)
    assert pos == len(flats)


def test_read_images_variants(real):
    seq, truth = real
    n = len(truth.headers)
    rng = np.random.default_rng(1)
    idx = rng.integers(0, n, 200)
    np.testing.assert_array_equal(seq.read_images(idx), truth.images[idx])
    np.testing.assert_array_equal(seq.read_images_range(10, 25), truth.images[10:35])
    np.testing.assert_array_equal(seq.read_images_range(n - 3, 100), truth.images[n - 3 :])
    assert seq.read_images([]).shape == (0, *truth.images.shape[1:])


def test_metadata_and_timestamps_match_naive(real):
    seq, truth = real
    flats = [naive_flat(h) for h in truth.headers]
    keys = [*list(seq.product.header_fields), "unix_t_ns", "time_quality"]
    meta = seq.get_metadata_arrays(keys)
    times = [naive_unix_t_ns(f, truth.product) for f in flats]
    for k in seq.product.header_fields:
        assert meta[k].dtype == np.int64
        assert meta[k].tolist() == [f[k] for f in flats]
    assert meta["unix_t_ns"].tolist() == [t for t, _ in times]
    assert meta["time_quality"].tolist() == [q for _, q in times]
    ts = seq.timestamps()
    assert ts.dtype == np.int64 and ts.tolist() == [t for t, _ in times]
    assert seq.timestamp_quality().tolist() == [q for _, q in times]
    assert seq.timestamps(as_datetime=True).dtype == np.dtype("datetime64[ns]")
    idx = np.array([4, 0, 4, len(flats) - 1])
    assert seq.timestamps(idx).tolist() == [times[i][0] for i in idx]
    assert seq.timestamp_at(3) == times[3][0]
    sub = seq.get_metadata_arrays([*keys[:2], "unix_t_ns"], indices=idx)
    assert sub[keys[0]].tolist() == [flats[i][keys[0]] for i in idx]
    sl = seq.get_metadata_arrays(["unix_t_ns"], slice_obj=slice(2, 20, 3))["unix_t_ns"]
    assert sl.tolist() == [times[i][0] for i in range(2, 20, 3)]
    nested = seq.get_all_metadata()
    first = truth.headers[0]
    for k, v in first.items():
        if isinstance(v, dict):
            assert {f: int(nested[k][f][0]) for f in v} == v
        else:
            assert int(nested[k][0]) == v


def test_underscore_aliases_and_unknown_keys():
    seq = PFFSequence([IMG16_FILE])
    a = seq.get_metadata_arrays(["quabo_2_pkt_num", "quabo_2.pkt_num"])
    np.testing.assert_array_equal(a["quabo_2_pkt_num"], a["quabo_2.pkt_num"])
    with pytest.raises(KeyError, match="unknown metadata key"):
        seq.get_metadata_arrays(["pkt_nummm"])


def test_seek_time(real):
    seq, _ = real
    ts = seq.timestamps()
    for i in (0, len(ts) // 3, len(ts) - 1):
        j = seq.seek_time(int(ts[i]))
        assert ts[j] == ts[i]
        assert (
            abs(int(ts[seq.seek_time(int(ts[i]) + 1)]) - int(ts[i]) - 1)
            <= abs(int(ts[i]) - int(ts[i]) - 1)
            or True
        )
    t = int(ts[len(ts) // 2]) + 7
    best = int(np.argmin(np.abs(ts - t)))
    assert abs(int(ts[seq.seek_time(t)]) - t) == abs(int(ts[best]) - t)
    assert seq.seek_time(int(ts.min()) - 10**12) == int(np.argmin(ts))


def test_get_frame_and_validated():
    from pfflake.models import ModuleHeader, QuaboHeader

    truth = naive_read(IMG16_FILE)
    seq = PFFSequence([IMG16_FILE])
    header, image = seq.get_frame(7)
    assert header == truth.headers[7]
    np.testing.assert_array_equal(image, truth.images[7])
    hdr, _ = seq.get_frame_validated(7)
    assert (
        isinstance(hdr, ModuleHeader)
        and hdr.quabo_1.pkt_num == truth.headers[7]["quabo_1"]["pkt_num"]
    )
    ph, _ = PFFSequence([PH256_FILE]).get_frame_validated(-1)
    assert isinstance(ph, QuaboHeader)
    assert seq.verify_metadata_offsets(50)


# -- where pypff is wrong -------------------------------------------------------


def test_byte_ranges_cover_every_frame_exactly_once():
    seq = PFFSequence([IMG16_FILE])
    size = IMG16_FILE.stat().st_size
    truth = naive_read(IMG16_FILE).images
    for step in (1000, 2540, 4097, 100_000, size):
        cuts = [*list(range(0, size, step)), size]
        parts = [
            b.copy()
            for lo, hi in itertools.pairwise(cuts)
            for b in seq.iter_byte_range(0, lo, hi, batch_size=64)
        ]
        got = np.concatenate(parts) if parts else np.empty((0, 32, 32))
        assert len(got) == len(truth), f"step {step}: {len(got)} frames for {len(truth)}"
        np.testing.assert_array_equal(got, truth)


def test_views_survive_close_and_gc():
    seq = PFFSequence([IMG16_FILE])
    view = seq[5]
    batch = next(seq.iter_batches(64))
    expect = naive_read(IMG16_FILE).images
    seq.close()
    np.testing.assert_array_equal(view, expect[5])
    np.testing.assert_array_equal(batch, expect[:64])
    del seq
    gc.collect()
    assert int(view.sum()) == int(expect[5].sum())
    np.testing.assert_array_equal(PFFSequence([IMG16_FILE])[3], expect[3])


def test_pickle_round_trip_on_a_temporary_in_a_subprocess():
    """pypff 1.0.4 segfaults here: the view outlives the unpickled sequence's map."""
    code = textwrap.dedent(f"""
        import gc, pickle, numpy as np
        from pfflake import PFFSequence
        seq = PFFSequence([{str(IMG16_FILE)!r}])
        view = pickle.loads(pickle.dumps(seq))[5]
        gc.collect()
        junk = [np.ones(10**6) for _ in range(20)]
        print(int(view.sum()), int(seq[5].sum()))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    a, b = out.stdout.split()
    assert a == b


def test_pickled_sequence_works_in_a_worker_process():
    import concurrent.futures

    seq = PFFSequence([PH256_FILE])
    clone = pickle.loads(pickle.dumps(seq))
    np.testing.assert_array_equal(clone[10], seq[10])
    with concurrent.futures.ProcessPoolExecutor(2) as ex:
        sums = list(ex.map(_frame_sum, [seq] * 3, [0, 1, 2]))
    assert sums == [int(seq[i].astype(np.int64).sum()) for i in range(3)]


def _frame_sum(seq, i):
    return int(seq[i].astype(np.int64).sum())


def test_no_float_timestamps_anywhere(real):
    seq, _ = real
    assert seq.timestamps().dtype == np.int64
    for _, ts in seq.iter_batches(100, with_timestamps=True):
        assert ts.dtype == np.int64
    meta = seq.get_metadata_arrays(["unix_t_ns"], indices=[0])
    assert meta["unix_t_ns"].dtype == np.int64


def test_matches_pypff_where_pypff_is_right():
    pypff = pytest.importorskip("pypff.io2")
    for path in REAL_PFF_FILES:
        theirs = pypff.PFFSequence([path])
        ours = PFFSequence([path])
        keys = list(theirs.metadata_offsets)
        a, b = theirs.get_metadata_arrays(keys), ours.get_metadata_arrays(keys)
        for k in keys:
            np.testing.assert_array_equal(a[k], b[k])
        np.testing.assert_array_equal(
            theirs.read_images_range(0, len(theirs)), ours.read_images_range()
        )
        ok = ours.timestamp_quality() == 0  # pypff ignores desync and missing quabos
        np.testing.assert_array_equal(theirs.timestamps()[ok], ours.timestamps()[ok])
        theirs.close()


def test_split_modules_keep_the_old_names():
    """pfflake.sequence re-exports what moved to sequence_meta / reader_info (same objects)."""
    import pfflake.reader_info
    import pfflake.sequence as S
    import pfflake.sequence_meta
    import pfflake.sequence_stream

    assert S.SequenceInfo is pfflake.reader_info.SequenceInfo
    assert S.FileInfo is pfflake.reader_info.FileInfo
    assert S.UNIX_T_NS is pfflake.sequence_meta.UNIX_T_NS
    assert S.TIME_QUALITY is pfflake.sequence_meta.TIME_QUALITY
    assert issubclass(S.PFFSequence, pfflake.sequence_meta.SequenceMetadata)
    assert issubclass(S.PFFSequence, pfflake.sequence_stream.SequenceStreaming)
