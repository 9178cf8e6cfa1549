"""The fixed-width decoder across its windows and both decode threads, against json.loads.

The real sample files are smaller than one decode window per thread, so these
files are long enough that each thread's half spans several windows of the
plans ``get_metadata_arrays`` and ``timestamps()`` use; damage sits on the
first frame of a window and of the worker thread's half.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from pfflake import PFFSequence
from pfflake.errors import PFFError
from pfflake.file_index import sample_frames
from pfflake.header import KERNELS, DecodePlan
from pfflake.products import get_product
from pfflake.timestamps import primary_timing_fields
from pfflake.writer import write_pff
from tests.conftest import IMG16_FILE, PH256_FILE
from tests.naive import naive_flat, naive_read, naive_unix_t_ns


def _write(tmp_path, product: str, n: int, seed: int = 7):
    p = get_product(product)
    rng = np.random.default_rng(seed)
    ranges = {
        "tv_sec": (1_600_000_000, 1_800_000_000),
        "tv_usec": (0, 1_000_000),
        "pkt_nsec": (0, 1_000_000_000),
        "pkt_tai": (0, 1024),
        "pkt_num": (0, 65536),
        "quabo_num": (0, 4),
    }
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
    return (
        DecodePlan(layout, list(layout.spans)).window,
        DecodePlan(layout, primary_timing_fields(kind)).window,
    )


@pytest.mark.parametrize("product, n", [("img16", 4700), ("ph256", 8300)])
def test_many_windows_match_naive(tmp_path, product, n, decode_kernel):
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
def test_damage_on_window_and_thread_boundaries(tmp_path, product, n, decode_kernel):
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
    data[at:end] = b',"tv_sec": ' + b" " * (end - at - 11)  # the key one byte left
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


# --- the two decode kernels, against a regex, on every kind of value text -------------

_PRINTED = re.compile(rb" *(0|[1-9][0-9]*)")  # what "%Nd" prints for a value >= 0


def _value_text(rng: np.random.Generator, width: int) -> bytes:
    """A value span's bytes: valid "%Nd" text, or one of the ways it can be wrong."""
    digits = int(rng.integers(1, width + 1))
    number = str(int(rng.integers(10 ** (digits - 1), 10**digits))).encode()
    kind = int(rng.integers(200))  # 0-6: special (each ~0.5%), else plain digits
    if kind == 0:
        text = b"0"
    elif kind == 1 and digits < width:  # a leading zero
        text = b"0" + number[: width - 1]
    elif kind == 2 and digits >= 2:  # a space inside the digits
        i = int(rng.integers(1, digits))
        text = number[:i] + b" " + number[i + 1 :]
    elif kind == 3 and digits < width:  # a space after the digits
        text = number + b" "
    elif kind == 4:
        text = b""  # spaces only
    elif kind == 5 and digits < width:
        text = bytes([b"-+"[int(rng.integers(2))]]) + number[: width - 1]
    elif kind == 6:  # any byte anywhere
        text = bytearray(number.rjust(width))
        text[int(rng.integers(width))] = int(rng.choice(list(b'}",:x./\x00\x7f\x80\xff9 ')))
        return bytes(text)
    else:
        text = number
    return text.rjust(width)[-width:]


def _damaged_copies(path, n: int, seed: int):
    """``n`` frames: frame 0 of ``path`` with random value texts, some template bytes
    changed; and, per frame, the texts written and whether the template still holds."""
    with PFFSequence([path]) as seq:
        layout, fs = seq.files[0].layout, seq.files[0].frame_size
        frame0 = bytes(seq.files[0].buffer[:fs])
    rng = np.random.default_rng(seed)
    data = bytearray(frame0 * n)
    fixed = np.flatnonzero(~layout.value_mask)
    texts, template_ok = [], np.ones(n, dtype=bool)
    for i in range(n):
        base = i * fs
        mine = {}
        for key, (start, end) in layout.spans.items():
            text = _value_text(rng, end - start)
            data[base + start : base + end] = text
            mine[key] = text
        texts.append(mine)
        if rng.random() < 0.05:  # a key letter, a quote, a brace or the '*' marker
            at = int(rng.choice([*fixed, layout.header_size]))
            data[base + at] ^= 1 << int(rng.integers(8))
            template_ok[i] = False
    return layout, fs, np.frombuffer(bytes(data), dtype=np.uint8), texts, template_ok


@pytest.mark.parametrize("which", ["img16", "ph256"])
@pytest.mark.parametrize("subset", ["all", "timestamps"])
def test_kernel_matches_regex(decode_kernel, which, subset):
    """Both kernels flag exactly the frames a regex rejects (or whose template bytes
    changed), and decode every other frame's values as int() does: 6,000 frames, over
    several windows of both threads."""
    path = IMG16_FILE if which == "img16" else PH256_FILE
    layout, fs, buf, texts, template_ok = _damaged_copies(path, 6000, seed=len(which))
    kind = "module" if which == "img16" else "quabo"
    keys = list(layout.spans) if subset == "all" else primary_timing_fields(kind)
    values, bad = DecodePlan(layout, keys).decode(buf, 0, len(texts), fs)
    want_bad = [
        not ok or not all(_PRINTED.fullmatch(t[k]) for k in keys)
        for t, ok in zip(texts, template_ok, strict=True)
    ]
    assert bad.tolist() == want_bad
    assert 0.05 < np.mean(want_bad) < 0.95  # both outcomes are well represented
    for key in keys:
        got = values[key][~bad].tolist()
        assert got == [int(t[key]) for t, b in zip(texts, want_bad, strict=True) if not b], key


def test_c_kernel_refuses_out_of_range_arguments():
    """The C entry point checks every size before it reads: a bad call raises, it never
    reads past a buffer."""
    if "c" not in KERNELS:
        pytest.skip("the C kernel is not built")
    from pfflake import _header

    with PFFSequence([PH256_FILE]) as seq:
        layout, fs = seq.files[0].layout, seq.files[0].frame_size
        buf = np.array(seq.files[0].buffer)
    plan = DecodePlan(layout, list(layout.spans))
    k, m, n = len(plan.order), plan.n_wide, len(buf) // fs

    def call(buf=buf, base=0, n=n, out_n=n, offsets=plan.offsets_i64, row=plan.row):
        out = np.empty((k, out_n), dtype=np.int64)
        bad = np.empty(out_n, dtype=bool)
        _header.decode(
            buf,
            base,
            n,
            fs,
            offsets,
            plan.keep,
            plan.flip,
            k,
            m,
            plan.chunk_at,
            plan.chunk_expect,
            plan.chunk_mask,
            row,
            out,
            0,
            bad,
        )
        return bad

    assert not call().any()
    with pytest.raises(ValueError, match="buf"):
        call(base=fs)  # the last frame's row would end past the buffer
    with pytest.raises(ValueError, match="sizes"):
        call(out_n=n - 1)
    with pytest.raises(ValueError, match="outside the header row"):
        call(offsets=plan.offsets_i64 + 10_000)
    with pytest.raises(ValueError, match="sizes"):
        call(row=8)
    with pytest.raises(TypeError):
        call(buf=list(range(10)))


def test_environment_selects_the_numpy_kernel():
    """``PFFLAKE_KERNEL=numpy`` makes a process decode with numpy (the way to compare, or to
    run where the extension is broken)."""
    import os
    import subprocess
    import sys

    code = "import pfflake.header as h; print(h.KERNEL, ' '.join(h.KERNELS))"
    env = {**os.environ, "PFFLAKE_KERNEL": "numpy"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.split()[0] == "numpy", out.stderr
    env.pop("PFFLAKE_KERNEL")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.split()[0] == "c", "the C kernel is the default where it is built"


def test_c_kernel_uses_sse41_where_the_cpu_has_it():
    """On x86-64 with SSE4.1 (every x86-64 CPU since ~2008) the vector path runs."""
    import platform
    from pathlib import Path

    if "c" not in KERNELS or platform.machine() != "x86_64":
        pytest.skip("the C kernel's SSE4.1 path is for x86-64")
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists() or " sse4_1" not in cpuinfo.read_text():
        pytest.skip("this CPU has no SSE4.1")
    import pfflake._header as c_kernel

    assert c_kernel.simd()


def test_plans_are_shared_per_layout_and_keys_only():
    """Plans built for equal layouts share their (read-only) arrays; a layout that differs
    in one template byte, or other keys, gets its own."""
    from dataclasses import replace

    with PFFSequence([PH256_FILE]) as seq:
        layout = seq.files[0].layout
    keys = list(layout.spans)
    a, b = DecodePlan(layout, keys), DecodePlan(replace(layout), keys)
    assert a.chunk_expect is b.chunk_expect
    assert not a.chunk_expect.flags.writeable and not a.keep.flags.writeable
    other = replace(layout, template=layout.template.replace(b'"tv_sec"', b'"tv_sek"'))
    c = DecodePlan(other, keys)
    assert c.chunk_expect is not a.chunk_expect
    assert bytes(c.chunk_expect) != bytes(a.chunk_expect)
    assert DecodePlan(layout, keys[:2]).order == [k for k in a.order if k in keys[:2]]
