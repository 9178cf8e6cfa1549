"""The fixed-width decoder across its windows and both decode threads, against json.loads.

The real sample files are smaller than one decode window per thread, so these
files are long enough that each thread's half spans several windows of the
plans ``get_metadata_arrays`` and ``timestamps()`` use; damage sits on the
first frame of a window and of the worker thread's half.
"""

from __future__ import annotations

import numpy as np
import pytest

from pfflake import PFFSequence
from pfflake.errors import PFFError
from pfflake.file_index import sample_frames
from pfflake.header import DecodePlan
from pfflake.products import get_product
from pfflake.timestamps import primary_timing_fields
from pfflake.writer import write_pff
from tests.naive import naive_flat, naive_read, naive_unix_t_ns


def _write(tmp_path, product: str, n: int, seed: int = 7):
    p = get_product(product)
    rng = np.random.default_rng(seed)
    ranges = {"tv_sec": (1_600_000_000, 1_800_000_000), "tv_usec": (0, 1_000_000),
              "pkt_nsec": (0, 1_000_000_000), "pkt_tai": (0, 1024), "pkt_num": (0, 65536),
              "quabo_num": (0, 4)}
    cols = {k: rng.integers(*ranges[k.rpartition(".")[2]], n) for k in p.header_fields}
    images = rng.integers(0, 200, (n, *p.image_shape)).astype(p.dtype)
    path = tmp_path / f"start_2024-01-01T00:00:00Z.dp_{product}.bpp_2.module_1.seqno_0.pff"
    return write_pff(path, cols, images, fixed_width=True)


def _frames(path):
    """Naive truth: flat header and (unix_t_ns, quality) per frame."""
    naive = naive_read(path)
    flats = [naive_flat(h) for h in naive.headers]
    kind = "module" if "quabo_0.tv_sec" in flats[0] else "quabo"
    return flats, [naive_unix_t_ns(f, kind)[0] for f in flats], naive.offsets


def _windows(seq):
    layout = seq.files[0].layout
    kind = seq.product.header_kind
    return (DecodePlan(layout, list(layout.spans)).window,
            DecodePlan(layout, primary_timing_fields(kind)).window)


@pytest.mark.parametrize("product, n", [("img16", 4700), ("ph256", 8300)])
def test_many_windows_match_naive(tmp_path, product, n):
    path = _write(tmp_path, product, n)
    flats, times, _ = _frames(path)
    with PFFSequence([path]) as seq:
        w_all, w_ts = _windows(seq)
        assert n // 2 > w_ts and n // 2 > w_all  # each thread decodes two windows or more
        got = seq.get_metadata_arrays(list(seq.product.header_fields))
        for key, values in got.items():
            assert values.tolist() == [f[key] for f in flats], key
        assert seq.timestamps().tolist() == times


def _not_sampled(k: int, n: int) -> int:
    while k in sample_frames(n):
        k += 1
    return k


@pytest.mark.parametrize("product, n", [("img16", 4700), ("ph256", 8300)])
def test_damage_on_window_and_thread_boundaries(tmp_path, product, n):
    """A digit that became ``x`` in a field timestamps() reads, a key letter of a field it
    does not read, and a key moved by one byte (still valid JSON): each on the first frame
    of a window or of the worker thread's half. Strict reads raise at the first damaged
    frame they read; lenient ones skip exactly the two damaged frames; the moved key reads
    right."""
    path = _write(tmp_path, product, n)
    flats, times, offsets = _frames(path)
    with PFFSequence([path]) as seq:
        _, w_ts = _windows(seq)
    half = n // 2
    digit, key, moved = (_not_sampled(k, n) for k in (w_ts, half + w_ts, half))
    data = bytearray(path.read_bytes())
    prefix = "quabo_0." if product == "img16" else ""
    sec = str(flats[digit][prefix + "tv_sec"]).encode()
    at = data.index(sec, offsets[digit])
    data[at + 3] = ord("x")
    at = data.index(b'"pkt_num"', offsets[key])
    data[at + 5] = ord("x")  # '"pkt_xum"': the frame lacks pkt_num
    at = data.index(b', "tv_sec":', offsets[moved])
    end = data.index(b"1", at)  # the value's first digit (every tv_sec starts with 1)
    assert data[end - 2 : end] == b": "
    data[at : end] = b',"tv_sec": ' + b" " * (end - at - 11)  # the key one byte left
    path.write_bytes(bytes(data))

    with PFFSequence([path]) as seq, pytest.raises(PFFError) as err:
        seq.timestamps()
    assert err.value.frame == digit and err.value.offset == offsets[digit]
    with PFFSequence([path]) as seq, pytest.raises(PFFError) as err:
        seq.get_metadata_arrays(["pkt_num" if product == "ph256" else "quabo_0.pkt_num"])
    assert err.value.frame == key  # the damaged tv_sec digits are not this call's to read

    keep = [k for k in range(n) if k not in (digit, key)]
    with PFFSequence([path], strict=False) as seq:
        assert sorted(d.frame for d in seq.info().files[0].damage) == [digit, key]
        assert seq.timestamps().tolist() == [times[k] for k in keep]
        got = seq.get_metadata_arrays(list(seq.product.header_fields))
        for name, values in got.items():
            assert values.tolist() == [flats[k][name] for k in keep], name
