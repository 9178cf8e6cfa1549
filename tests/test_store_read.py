"""pfflake.store.read: the fast shard reader, against pixels written by our own writer
(independent truth: the array handed to write_frames) and counted at the I/O boundary."""

from __future__ import annotations

import numpy as np
import pytest

from pfflake.errors import QueryError
from pfflake.products import get_product
from pfflake.store import read as R
from pfflake.store.layout import ArrayLayout, create_store
from pfflake.store.write import write_frames


def _store(tmp_path, shard_factor, n=1000):
    product = get_product("ph256")
    rng = np.random.default_rng(5)
    pixels = rng.integers(-300, 3000, (n, 16, 16)).astype(np.int16)
    pixels[128:192] = 0
    store = create_store(
        tmp_path / "s.zarr", product, n, time_chunk=64, ts_chunk=256, shard_factor=shard_factor
    )
    headers = {f: np.zeros(n, np.int64) for f in product.header_fields}
    write_frames(store, 0, pixels, headers, np.arange(n, dtype=np.int64) * 7,
                 np.zeros(n, np.uint8), workers=1)
    return store, pixels


@pytest.mark.parametrize("shard_factor", [0, 4])
def test_read_frames_reads_each_stored_object_once(tmp_path, monkeypatch, shard_factor):
    product = get_product("ph256")
    n = 1000
    rng = np.random.default_rng(5)
    pixels = rng.integers(-300, 3000, (n, 16, 16)).astype(np.int16)
    pixels[128:192] = 0  # one chunk never written (fill value)
    store = create_store(
        tmp_path / "s.zarr", product, n, time_chunk=64, ts_chunk=256, shard_factor=shard_factor
    )
    headers = {f: np.zeros(n, np.int64) for f in product.header_fields}
    write_frames(
        store,
        0,
        pixels,
        headers,
        np.arange(n, dtype=np.int64) * 7,
        np.zeros(n, np.uint8),
        workers=1,
    )
    reads, chunks = [], []
    original = R.fetch_object

    def counted(layout, index, groups):
        reads.append((layout.name, index))
        chunks.extend(g[0] for g in groups)
        return original(layout, index, groups)

    monkeypatch.setattr(R, "fetch_object", counted)
    frames = rng.integers(0, n, 300)
    frames[:20] = rng.integers(128, 192, 20)
    out = np.empty((len(frames), 16, 16), np.int16)
    R.read_frames([(store, frames, np.arange(len(frames)))], "images", out)
    np.testing.assert_array_equal(out, pixels[frames])
    objects = 64 * (shard_factor or 1)
    assert sorted(reads) == sorted({("images", int(f) // objects) for f in frames})
    assert sorted(chunks) == sorted({int(f) // 64 for f in frames})  # each chunk decoded once
    one = np.empty(len(frames), np.int16)
    R.read_frames([(store, frames, np.arange(len(frames)))], "images", one, pixel=(3, 9))
    np.testing.assert_array_equal(one, pixels[frames, 3, 9])
    times = np.empty(len(frames), np.int64)
    R.read_frames([(store, frames, np.arange(len(frames)))], "unix_t_ns", times)
    np.testing.assert_array_equal(times, frames * 7)


def test_layout_is_parsed_once_per_array(tmp_path):
    store, _ = _store(tmp_path, 4)
    layout = ArrayLayout(store / "images")
    assert (layout.chunk_frames, layout.shard_frames, layout.object_frames) == (64, 256, 256)
    assert layout.n_frames == 1000 and layout.chunk_shape == (64, 16, 16)
    assert layout.key_path(2) == store / "images" / "c" / "2" / "0" / "0"


def test_damaged_shard_index_is_refused(tmp_path):
    store, _ = _store(tmp_path, 4)
    shard = ArrayLayout(store / "images").key_path(0)
    data = bytearray(shard.read_bytes())
    data[-10] ^= 0xFF  # inside the shard index
    shard.write_bytes(bytes(data))
    out = np.empty((3, 16, 16), np.int16)
    with pytest.raises(QueryError, match="checksum mismatch"):
        R.read_frames([(store, np.array([0, 1, 2]), np.arange(3))], "images", out)


def test_read_frames_falls_back_to_zarr_for_foreign_layouts(tmp_path):
    zarr = pytest.importorskip("zarr")
    arr = zarr.create_array(tmp_path / "f.zarr" / "images", shape=(50, 4, 4), chunks=(10, 2, 4),
                            dtype="uint16")
    data = np.arange(50 * 16, dtype=np.uint16).reshape(50, 4, 4)
    arr[:] = data
    frames = np.array([49, 3, 3, 20])
    out = np.empty((4, 4, 4), np.uint16)
    R.read_frames([(tmp_path / "f.zarr", frames, np.arange(4))], "images", out)
    np.testing.assert_array_equal(out, data[frames])


def test_batch_stop_cuts_on_a_2_16_boundary():
    frames = np.arange(100_000, 400_000)  # sorted, distinct: what light_curve passes
    stop = R.batch_stop(frames, 0, 2**17)
    assert stop == 196_608 - 100_000 and frames[stop] % 2**16 == 0
    lo = stop
    stop = R.batch_stop(frames, lo, 2**17)
    assert frames[stop] % 2**16 == 0 and lo < stop <= lo + 2**17
    assert R.batch_stop(frames, 250_000, 2**17) == len(frames)
