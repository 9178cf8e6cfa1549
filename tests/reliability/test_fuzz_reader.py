"""Hypothesis fuzzing of the reader: valid files from the writer, then damage.

Every example builds a small valid PFF file with :func:`pfflake.writer.write_pff`
(img16 / img8 / ph1024 / ph256, 1-4 frames, fixed-width or compact JSON) and
applies one damage chosen by hypothesis: truncation at any byte, bit flips
(header or pixels), garbage overwrites, an empty file, a pure-garbage file, or
a raw-text rewrite of one frame's header (huge/negative/float/bool numbers,
non-UTF-8 or non-ASCII bytes, duplicated keys, deeply nested values).

Then, for ``PFFSequence([path])`` (strict) and ``PFFSequence([path],
strict=False)`` (lenient), every access pattern (``len``,
``read_images_range()``, ``get_metadata_arrays(all fields + unix_t_ns)``,
``timestamps()``, ``iter_batches(3)``, ``get_frame(i)``) is checked:

* nothing but a :class:`~pfflake.errors.PFFError` (or a ``PFFWarning`` for a
  cut-short tail) ever escapes, in either mode;
* strict: results equal the naive parser's (``tests/naive.py``) when the
  reference accepts the file, else a ``PFFError`` naming the file, with
  ``.frame``/``.offset`` set (pixel-only accesses may still return the pixels
  at the frame positions: pixels are opaque and cannot be "damaged");
* lenient: never raises; returns exactly the *intact* frames (definition in
  :func:`intact_frames`), in order, with their pixels, header values and times.

A frame whose time does not fit int64 ns (e.g. ``tv_sec = 9999999999``) is a
corrupt header: strict time accesses raise, lenient mode skips the frame.

Run time: the default 2 x 500 examples take ~15 s; ``-m slow`` runs 2 x 5000.
Bugs found are pinned by regression tests at the end of this file; one known
bug remains as ``xfail(strict=True)`` (strict ``timestamps()`` validates only
the timing fields), which the fuzz's strict check tolerates explicitly.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pfflake import PFFSequence
from pfflake.errors import CorruptHeaderError, PFFError
from pfflake.file import PFFWarning
from pfflake.products import get_product
from pfflake.writer import FIELD_MAX, write_pff
from tests.naive import NAIVE_PRODUCTS, naive_flat, naive_read, naive_unix_t_ns

PRODUCTS = ["img16", "img8", "ph1024", "ph256"]
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
FAST = settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
SLOW = settings(
    max_examples=5000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


def pff_name(product: str) -> str:
    bpp = get_product(product).bytes_per_pixel
    return f"start_2024-01-01T00:00:00Z.dp_{product}.bpp_{bpp}.module_1.seqno_0.pff"


# ----------------------------------------------------------------------------- building


@dataclass
class Slot:
    """Where one frame of the original file sits in the damaged file."""

    offset: int
    header_len: int  # header text through its blank line ("\n\n"); '*' is at offset+header_len
    image_bytes: int

    @property
    def end(self) -> int:
        return self.offset + self.header_len + 1 + self.image_bytes


def build_valid(product: str, n: int, fixed: bool, seed: int, realistic: bool, path: Path):
    """Write a valid file; return (bytes, slots)."""
    p = get_product(product)
    rng = np.random.default_rng(seed)
    cols = {}
    for key in p.header_fields:
        name = key.rpartition(".")[2]
        hi = FIELD_MAX[name]
        if realistic and name == "tv_sec":
            cols[key] = rng.integers(1_600_000_000, 1_800_000_000, n)
        elif realistic and name == "pkt_tai":
            cols[key] = rng.integers(0, 1024, n)
        elif realistic and name == "tv_usec":
            cols[key] = rng.integers(0, 1_000_000, n)
        elif realistic and name == "pkt_nsec":
            cols[key] = rng.integers(0, 1_000_000_000, n)
        else:
            cols[key] = rng.integers(0, hi + 1, n, dtype=np.int64)
    info = np.iinfo(p.dtype)
    images = rng.integers(info.min, info.max + 1, (n, *p.image_shape), dtype=np.int64)
    write_pff(path, cols, images.astype(p.dtype), fixed_width=fixed)
    data = path.read_bytes()
    slots, pos = [], 0
    for _ in range(n):
        end = data.index(b"\n\n", pos) + 2
        slots.append(Slot(pos, end - pos, p.image_bytes))
        pos = end + 1 + p.image_bytes
    assert pos == len(data)
    return data, slots


# ----------------------------------------------------------------------------- damage

HEADER_VALUES = [
    b"-1",
    b"-9223372036854775808",
    b"-9223372036854775809",
    b"9223372036854775807",
    b"9223372036854775808",
    b"99999999999999999999999999999999",
    b"1" + b"0" * 400,
    b"1e3",
    b"1.5",
    b"null",
    b"true",
    b'"12"',
    b"0",
    b"00",
    b"4294967296",
    b"9999999999",  # fits the 10-digit tv_sec field; as tv_sec, the time overflows int64
    b"-999999999",
]


def rewrite_header(header: bytes, kind: str, choice: int, arg: int, product: str) -> bytes:
    """One raw-text mutation of a header (``header`` ends with the blank line)."""
    body = header[:-2]
    fields = [m for m in re.finditer(rb'"(\w+)":( *)(-?\d+)', body)]
    if kind == "value":
        m = fields[arg % len(fields)]
        value = HEADER_VALUES[choice % len(HEADER_VALUES)]
        body = body[: m.start(3)] + value + body[m.end(3) :]
    elif kind == "bytes":  # non-UTF-8 / non-ASCII text in a key, a string, or between tokens
        junk = [b"\xff", b"\xc3\x28", b"\x80", "\u00e9".encode(), b"\xed\xa0\x80", b"\x00"][
            choice % 6
        ]
        where = [b'{"x\xff": 1, ', b'{"x": "' + junk + b'", ', b"{" + junk + b" "][arg % 3]
        where = where.replace(b"\xff", junk)
        body = where + body[1:]
    elif kind == "dup":
        m = fields[arg % len(fields)]
        dup = b'"' + m[1] + b'": ' + str(choice % 1000).encode() + b", "
        # insert right after the '{' that opens the object holding this field
        brace = body.rfind(b"{", 0, m.start())
        body = body[: brace + 1] + dup + body[brace + 1 :]
    elif kind == "nest":
        depth = [1, 2, 10, 100, 900, 1200, 5000, 20000, 60000][choice % 9]
        opener, closer = [(b"[", b"]"), (b'{"a":', b"}")][arg % 2]
        inner = opener * depth + b"1" + closer * depth
        if arg % 4 >= 2:  # nest the value of a required field itself
            m = fields[arg % len(fields)]
            body = body[: m.start(3)] + inner + body[m.end(3) :]
        else:
            body = b'{"deep": ' + inner + b", " + body[1:]
    return body + b"\n\n"


@st.composite
def damaged_files(draw):
    product = draw(st.sampled_from(PRODUCTS))
    n = draw(st.integers(1, 4))
    fixed = draw(st.booleans())
    seed = draw(st.integers(0, 2**32 - 1))
    realistic = draw(st.booleans())
    kind = draw(
        st.sampled_from(
            [
                "none",
                "truncate",
                "flip_header",
                "flip_pixel",
                "flip_any",
                "garbage",
                "empty",
                "pure_garbage",
                "rewrite",
            ]
        )
    )
    params = {
        "kind": kind,
        "k": draw(st.integers(0, 2**31)),
        "many": draw(st.integers(1, 4)),
        "bits": draw(st.lists(st.integers(0, 2**31), min_size=1, max_size=4)),
        "garbage": draw(st.binary(min_size=1, max_size=64)),
        "rewrite": draw(st.sampled_from(["value", "bytes", "dup", "nest"])),
        "choice": draw(st.integers(0, 100)),
        "arg": draw(st.integers(0, 100)),
    }
    return product, n, fixed, seed, realistic, params


def apply_damage(data: bytes, slots: list[Slot], p: dict, product: str):
    """Return (damaged bytes, slots in the damaged file, changed byte positions)."""
    buf = bytearray(data)
    kind = p["kind"]
    changed: list[int] = []
    if kind == "truncate":
        cut = p["k"] % (len(data) + 1)
        return bytes(buf[:cut]), slots, [cut] if cut < len(data) else []
    if kind == "empty":
        return b"", slots, []
    if kind == "pure_garbage":
        return (p["garbage"] * (1 + p["k"] % 300))[:20000], slots, [0]
    if kind.startswith("flip"):
        for b in p["bits"]:
            s = slots[b % len(slots)]
            if kind == "flip_header":
                pos = s.offset + (b // 7) % (s.header_len + 1)
            elif kind == "flip_pixel":
                pos = s.offset + s.header_len + 1 + (b // 7) % s.image_bytes
            else:
                pos = (b // 7) % len(buf)
            buf[pos] ^= 1 << (b % 8)
            changed.append(pos)
        return bytes(buf), slots, changed
    if kind == "garbage":
        pos = p["k"] % len(buf)
        g = p["garbage"][: len(buf) - pos]
        buf[pos : pos + len(g)] = g
        return bytes(buf), slots, list(range(pos, pos + len(g)))
    if kind == "rewrite":
        i = p["arg"] % len(slots)
        s = slots[i]
        old = data[s.offset : s.offset + s.header_len]
        new = rewrite_header(old, p["rewrite"], p["choice"], p["k"], product)
        delta = len(new) - len(old)
        out = data[: s.offset] + new + data[s.offset + s.header_len :]
        new_slots = []
        for j, t in enumerate(slots):
            if j < i:
                new_slots.append(t)
            elif j == i:
                new_slots.append(Slot(t.offset, len(new), t.image_bytes))
            else:
                new_slots.append(Slot(t.offset + delta, t.header_len, t.image_bytes))
        return out, new_slots, list(range(s.offset, s.offset + max(len(new), 1)))
    return data, slots, []


# ----------------------------------------------------------------------------- reference


def ref_header(raw: bytes, product: str, *, time: bool = True) -> dict | None:
    """The reference verdict on one header's bytes: its flat fields, or None if invalid.

    Valid = ASCII text (the DAQ writes ASCII), a JSON object without duplicate
    keys, every field of the product present as an integer (not bool) that
    fits int64, and (``time=True``) a frame time (naive rule, exact Python
    integers) that fits int64 ns. Extra keys are allowed.
    """
    try:
        text = raw.decode("ascii")

        def no_dup(pairs):
            keys = [k for k, _ in pairs]
            if len(set(keys)) != len(keys):
                raise ValueError("dup")
            return dict(pairs)

        header = json.loads(text, object_pairs_hook=no_dup)
    except (ValueError, RecursionError):
        return None
    if not isinstance(header, dict):
        return None
    flat = naive_flat(header)
    p = get_product(product)
    out = {}
    for key in p.header_fields:
        v = flat.get(key)
        if type(v) is not int or not INT64_MIN <= v <= INT64_MAX:
            return None
        out[key] = v
    if time and not time_fits(out, product):
        return None
    return out


def time_fits(flat: dict, product: str) -> bool:
    return INT64_MIN <= naive_unix_t_ns(flat, product)[0] <= INT64_MAX


def intact_frames(data: bytes, slots: list[Slot], product: str):
    """The frames lenient mode must return: list of (flat header, image, raw header).

    A frame is *intact* when, at the position the (possibly shifted) original
    frame occupies in the damaged file, the bytes still form a whole frame by
    the naive rules: it lies entirely inside the file, starts with ``{``, the
    first blank line after that ``{`` is where the original's was (so the
    damage did not move its boundaries), a ``*`` follows, and the header
    passes :func:`ref_header`. Bit flips that keep the header valid therefore
    still count as intact, with the *new* values; damage that moves or breaks
    a boundary makes the frame not intact. Positions come from construction
    (truncation/flips/overwrites keep offsets; a header rewrite shifts later
    frames by the length change), never from re-parsing the damaged bytes.
    """
    shape, dtype, _ = NAIVE_PRODUCTS[product]
    out = []
    for s in slots:
        if s.end > len(data) or data[s.offset : s.offset + 1] != b"{":
            continue
        if data.find(b"\n\n", s.offset) != s.offset + s.header_len - 2:
            continue
        if data[s.offset + s.header_len : s.offset + s.header_len + 1] != b"*":
            continue
        raw = data[s.offset : s.offset + s.header_len]
        flat = ref_header(raw, product)
        if flat is None:
            continue
        start = s.offset + s.header_len + 1
        img = np.frombuffer(data, dtype, shape[0] * shape[1], start).reshape(shape)
        out.append((flat, img, raw))
    return out


def reference(data: bytes, product: str):
    """Strict reference: the walk of ``tests/naive.naive_read`` on bytes, plus
    :func:`ref_header` on every frame; ``None`` if the file is rejected.

    A frame whose time does not fit int64 ns still counts here (its header is
    valid JSON): :func:`check_strict` requires the time accesses to raise."""
    shape, dtype, _ = NAIVE_PRODUCTS[product]
    image_bytes = shape[0] * shape[1] * np.dtype(dtype).itemsize
    frames, pos = [], 0
    while pos < len(data):
        if data[pos : pos + 1] != b"{":
            return None
        end = data.find(b"\n\n", pos)
        if end < 0 or end + 3 + image_bytes > len(data):
            break  # cut-short tail, dropped
        if data[end + 2 : end + 3] != b"*":
            return None
        flat = ref_header(data[pos : end + 2], product, time=False)
        if flat is None:
            return None
        img = np.frombuffer(data, dtype, shape[0] * shape[1], end + 3).reshape(shape)
        frames.append((flat, img, data[pos : end + 2]))
        pos = end + 3 + image_bytes
    return frames


def expected_times(frames, product):
    return [naive_unix_t_ns(flat, product)[0] for flat, _, _ in frames]


# ----------------------------------------------------------------------------- checks

ACCESSES = ["len", "read_images_range", "metadata", "timestamps", "iter_batches", "get_frame"]


def run_access(seq: PFFSequence, name: str, product: str):
    fields = list(get_product(product).header_fields)
    if name == "len":
        return len(seq)
    if name == "read_images_range":
        return seq.read_images_range()
    if name == "metadata":
        return seq.get_metadata_arrays([*fields, "unix_t_ns"])
    if name == "timestamps":
        return seq.timestamps()
    if name == "iter_batches":
        batches = [np.array(b) for b in seq.iter_batches(3)]
        assert all(len(b) <= 3 for b in batches)
        return batches
    if name == "get_frame":
        return [seq.get_frame(i) for i in range(len(seq))]
    raise AssertionError(name)


def check_result(name: str, got, frames, product: str, *, seq_len: int):
    """Assert one access's result equals the expected frames."""
    fields = list(get_product(product).header_fields)
    p = get_product(product)
    n = len(frames)
    images = np.array([f[1] for f in frames]) if n else np.empty((0, *p.image_shape), p.dtype)
    if name == "len":
        assert got == n, f"len {got} != expected {n}"
    elif name == "read_images_range":
        assert got.shape == images.shape
        np.testing.assert_array_equal(got, images)
    elif name == "iter_batches":
        cat = np.concatenate(got) if got else np.empty((0, *p.image_shape), p.dtype)
        np.testing.assert_array_equal(cat, images)
    elif name == "metadata":
        for key in fields:
            assert got[key].tolist() == [f[0][key] for f in frames], f"field {key}"
        want = expected_times(frames, product)
        assert got["unix_t_ns"].tolist() == want, "unix_t_ns"
    elif name == "timestamps":
        assert got.tolist() == expected_times(frames, product), "timestamps"
    elif name == "get_frame":
        assert len(got) == n
        for (header, img), (_flat, want_img, raw) in zip(got, frames, strict=True):
            assert header == json.loads(raw), "get_frame header"
            np.testing.assert_array_equal(img, want_img)


def times_fit_int64(frames, product) -> bool:
    """Every frame's time fits int64 ns (else the reader must raise, never wrap)."""
    return all(time_fits(flat, product) for flat, _, _ in frames)


def open_seq(path: Path, strict: bool) -> PFFSequence:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        return PFFSequence([path], strict=strict)


def check_error(err: PFFError, path: Path, size: int):
    assert str(path) in str(err), f"message does not name the file: {err}"
    if size:
        assert err.frame is not None and err.offset is not None, f"no frame/offset: {err!r}"
        assert 0 <= err.offset < size, f"offset {err.offset} outside file of {size}"


def lazy_fields(data: bytes, slots: list[Slot], product: str):
    """Per whole frame, the integer fields read by regex (no JSON validation), or None."""
    out = []
    for s in slots:
        if s.end > len(data):
            continue
        header = data[s.offset : s.offset + s.header_len]
        flat: dict[str, int] = {}
        if product == "ph256":
            groups = [(b"", header)]
        else:
            groups = re.findall(rb'"(quabo_\d)"\s*:\s*\{([^}]*)\}', header)
        for quabo, body in groups:
            prefix = quabo.decode() + "." if quabo else ""
            for key, value in re.findall(rb'"(\w+)":\s*(-?\d+)\s*[,}]', body + b"}"):
                flat[prefix + key.decode()] = int(value)
        if any(k not in flat for k in get_product(product).header_fields):
            return None
        out.append((flat, None, header))
    return out


def check_strict(path: Path, data: bytes, slots: list[Slot], product: str):
    ref = reference(data, product)
    try:
        seq = open_seq(path, strict=True)
    except PFFError as err:
        check_error(err, path, len(data))
        event(f"strict: {type(err).__name__} at open")
        return
    with seq:
        for name in ACCESSES:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", PFFWarning)
                    got = run_access(seq, name, product)
            except PFFError as err:
                check_error(err, path, len(data))
                continue
            if ref is not None:
                if name in ("metadata", "timestamps") and not times_fit_int64(ref, product):
                    raise AssertionError(f"strict {name} returned times that do not fit int64")
                check_result(name, got, ref, product, seq_len=len(seq))
            elif name in ("len", "read_images_range", "iter_batches"):
                # Reference rejects the file; pixels may still be served, but only
                # the bytes at the frames' true positions.
                pos = [s for s in slots if s.end <= len(data)]
                shape, dtype, _ = NAIVE_PRODUCTS[product]
                want = [
                    (
                        None,
                        np.frombuffer(
                            data, dtype, shape[0] * shape[1], s.offset + s.header_len + 1
                        ).reshape(shape),
                        b"",
                    )
                    for s in pos
                ]
                check_result(name, got, want, product, seq_len=len(seq))
            elif name == "timestamps":
                # Known violation (test_strict_timestamps_ignore_corrupt_other_field): strict
                # validates only the fields it decodes. The times must still be the ones
                # the (possibly flipped) timing fields in the file say.
                lazy = lazy_fields(data, slots, product)
                if lazy is not None:
                    assert times_fit_int64(lazy, product), "timestamps wrapped int64"
                    assert len(got) == len(seq) == len(lazy)
                    assert got.tolist() == expected_times(lazy, product)
            else:
                raise AssertionError(
                    f"strict {name} returned a result for a file the reference rejects"
                )


def check_lenient(path: Path, data: bytes, slots: list[Slot], product: str):
    intact = intact_frames(data, slots, product)
    seq = open_seq(path, strict=False)  # must not raise
    with seq:
        for name in ACCESSES:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PFFWarning)
                got = run_access(seq, name, product)
            check_result(name, got, intact, product, seq_len=len(seq))


def one_example(tmp_path: Path, example, mode: str):
    product, n, fixed, seed, realistic, params = example
    path = tmp_path / pff_name(product)
    data, slots = build_valid(product, n, fixed, seed, realistic, path)
    damaged, new_slots, _changed = apply_damage(data, slots, params, product)
    path.write_bytes(damaged)
    rewrite = f":{params['rewrite']}" if params["kind"] == "rewrite" else ""
    event(f"damage={params['kind']}{rewrite}")
    if mode == "lenient":
        intact = len(intact_frames(damaged, new_slots, product))
        event(f"intact {'all' if intact == n else 'none' if intact == 0 else 'some'} of n")
    if mode == "strict":
        check_strict(path, damaged, new_slots, product)
    else:
        check_lenient(path, damaged, new_slots, product)


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize("mode", ["strict", "lenient"])
@FAST
@given(example=damaged_files())
def test_fuzz_reader(tmp_path, mode, decode_kernel, example):
    """Each decode kernel (pfflake.header.KERNEL) takes the whole fuzz."""
    one_example(tmp_path, example, mode)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["strict", "lenient"])
@SLOW
@given(example=damaged_files())
def test_fuzz_reader_many(tmp_path, mode, decode_kernel, example):
    one_example(tmp_path, example, mode)


@pytest.mark.parametrize("strict", [True, False])
def test_compact_first_frame_longest_drops_frames(tmp_path, strict):
    p = get_product("img16")
    path = tmp_path / pff_name("img16")
    cols = {k: np.array([1000, 1]) for k in p.header_fields}
    write_pff(path, cols, np.zeros((2, 32, 32), "<u2"), fixed_width=False)
    # frame 0 (2563 bytes) is 3*20 bytes longer than frame 1: size // 2563 == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        seq = PFFSequence([path], strict=strict)
    assert len(seq) == 2


def _two_frames(path: Path, fixed: bool, **bad: int) -> tuple[int, int]:
    """ph256 file: frame 0 sane, frame 1 with the ``bad`` values; (frame 1 offset, t0).

    Fixed width goes through the DAQ-format writer; compact is plain
    ``json.dumps`` (any integer, e.g. a negative ``tv_sec`` the DAQ cannot print).
    """
    p = get_product("ph256")
    rows = [{k: 0 for k in p.header_fields} for _ in range(2)]
    rows[0].update(tv_sec=1_700_000_000, tv_usec=500_000, pkt_nsec=500_000_123)
    rows[1].update(bad)
    if fixed:
        cols = {k: np.array([r[k] for r in rows]) for k in p.header_fields}
        write_pff(path, cols, np.zeros((2, 16, 16), "<i2"), fixed_width=True)
    else:
        path.write_bytes(b"".join(json.dumps(r).encode() + b"\n\n*" + bytes(512) for r in rows))
    data = path.read_bytes()
    return data.index(b"{", 1), 1_700_000_000_500_000_123


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize(
    ("fixed", "bad"),
    [
        (True, {"tv_sec": 9_999_999_999, "pkt_nsec": 5}),  # the DAQ's widest tv_sec: 1e19 ns
        (False, {"tv_sec": 9_999_999_999, "pkt_nsec": 5}),
        (False, {"tv_sec": -(10**10)}),
        (False, {"tv_sec": 1, "pkt_nsec": 2**63 - 1, "pkt_tai": 1}),
        (True, {"tv_sec": 9_223_372_036, "pkt_nsec": 999_999_999, "pkt_tai": 1}),  # 2**63 + ..
    ],
)
def test_unix_t_ns_overflow_is_corrupt_header(tmp_path, strict, fixed, bad):
    """Regression: a time beyond int64 ns used to wrap silently (1e19 ns -> negative)."""
    path = tmp_path / pff_name("ph256")
    offset, t0 = _two_frames(path, fixed, **bad)
    seq = None
    try:
        seq = PFFSequence([path], strict=strict)
        ts = seq.timestamps()
    except CorruptHeaderError as err:
        assert strict
        assert err.path == path and err.frame == 1 and err.offset == offset, repr(err)
        assert str(path) in str(err) and "int64" in str(err)
        if seq is not None:  # opened (fixed layout): every time access raises
            with pytest.raises(CorruptHeaderError):
                seq.get_metadata_arrays(["unix_t_ns"])
            with pytest.raises(CorruptHeaderError):
                list(seq.iter_batches(1, with_timestamps=True))
        return
    assert not strict, f"strict returned {ts.tolist()}"
    assert len(seq) == 1 and ts.tolist() == [t0]  # lenient: the frame is skipped as damage
    assert [d.frame for d in seq.files[0].damage] == [1]


def test_unix_t_ns_time_just_inside_int64(tmp_path):
    """The last representable second still works (no false alarm at the edge)."""
    path = tmp_path / pff_name("ph256")
    _two_frames(path, True, tv_sec=9_223_372_035, pkt_nsec=999_999_999, pkt_tai=1)
    # pkt_tai = 1 -> d = (9223372035 - 1 + 37) % 1024 is 'desync': host second kept
    want = 9_223_372_035 * 10**9 + 999_999_999
    assert PFFSequence([path]).timestamps().tolist()[1] == want


def test_unix_t_ns_intermediate_overflow_negative_nsec(tmp_path):
    """Regression: pkt_nsec = -2**63 overflowed inside the no-WR second choice."""
    p = get_product("ph256")
    path = tmp_path / pff_name("ph256")
    header = {k: 0 for k in p.header_fields}
    header["pkt_nsec"] = -(2**63)
    path.write_bytes(json.dumps(header).encode() + b"\n\n*" + bytes(512))
    want = naive_unix_t_ns(header, "ph256")[0]
    assert want == -(2**63) + 10**9  # the naive rule picks the next second: it fits
    assert PFFSequence([path]).timestamps().tolist() == [want]


def test_vectorised_overflow_rows():
    """``unix_t_ns`` names every overflowing row; module frames judge the quabo used."""
    from pfflake.timestamps import TimeOverflowError, module_unix_t_ns, unix_t_ns

    z = np.zeros(3, dtype=np.int64)
    with pytest.raises(TimeOverflowError) as e:
        unix_t_ns(np.array([0, 10**10, -(10**10)]), z, z, z)
    assert e.value.rows.tolist() == [1, 2]
    meta = {f"quabo_{q}.{f}": np.zeros(2, dtype=np.int64) for q in range(4)
            for f in ("tv_sec", "tv_usec", "pkt_nsec", "pkt_tai")}
    meta["quabo_0.pkt_nsec"][:] = 2**62  # garbage in an absent quabo: ignored
    meta["quabo_1.tv_sec"][:] = [1, 10**10]
    with pytest.raises(TimeOverflowError) as e:
        module_unix_t_ns(meta)
    assert e.value.rows.tolist() == [1]


@pytest.mark.parametrize("strict", [True, False])
def test_deeply_nested_header_recursion_error(tmp_path, strict):
    p = get_product("ph256")
    path = tmp_path / pff_name("ph256")
    good = json.dumps({k: 1 for k in p.header_fields}).encode() + b"\n\n*" + bytes(512)
    deep = b'{"deep": ' + b"[" * 5000 + b"]" * 5000 + b", " + good[1:]
    path.write_bytes(deep + good)
    try:
        seq = PFFSequence([path], strict=strict)
        assert len(seq) == 1  # lenient: frame 0 skipped, frame 1 kept
    except PFFError as err:
        assert strict and err.frame == 0 and err.offset == 0


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 10**30])
@pytest.mark.parametrize("strict", [True, False])
def test_header_value_outside_int64(tmp_path, strict, value):
    p = get_product("ph256")
    path = tmp_path / pff_name("ph256")
    frame = json.dumps({k: 1 for k in p.header_fields}).encode() + b"\n\n*" + bytes(512)
    bad = frame.replace(b'"pkt_num": 1', b'"pkt_num": ' + str(value).encode())
    path.write_bytes(bad + frame)
    try:
        seq = PFFSequence([path], strict=strict)
        assert not strict and len(seq) == 1  # lenient: frame 0 skipped
    except PFFError as err:
        assert strict and err.frame == 0


def test_strict_reads_validate_what_they_read(tmp_path):
    """Strict mode checks the bytes a call decodes; verify="full" checks every header.

    A corrupt byte in a field timestamps() does not need leaves its times right
    (they are decoded and checked from intact bytes); reading that field raises,
    and so does opening the file with verify="full".
    """
    p = get_product("ph256")
    path = tmp_path / pff_name("ph256")
    cols = {k: np.array([1, 1]) for k in p.header_fields}
    cols["tv_sec"] = np.array([1_700_000_000, 1_700_000_001])
    write_pff(path, cols, np.zeros((2, 16, 16), "<i2"), fixed_width=True)
    clean = naive_read(path)
    truth = [naive_unix_t_ns(naive_flat(h), p.header_kind)[0] for h in clean.headers]
    data = bytearray(path.read_bytes())
    pos = 636 + data[:636].index(b'"quabo_num": ') + len(b'"quabo_num": ')
    assert data[pos : pos + 1] == b"1"
    data[pos] = ord("x")  # frame 1: '"quabo_num": x' is not JSON
    path.write_bytes(bytes(data))
    seq = PFFSequence([path])
    with pytest.raises(CorruptHeaderError) as err:
        seq.get_metadata_arrays(["quabo_num"])
    assert err.value.frame == 1 and err.value.offset == 636
    assert seq.timestamps().tolist() == truth
    with pytest.raises(CorruptHeaderError) as err:
        PFFSequence([path], verify="full")
    assert err.value.frame == 1


@pytest.mark.parametrize("strict", [True, False])
def test_leading_zero_decoded_silently(tmp_path, strict):
    p = get_product("ph256")
    path = tmp_path / pff_name("ph256")
    cols = {k: np.array([8, 6]) for k in p.header_fields}
    write_pff(path, cols, np.zeros((2, 16, 16), "<i2"), fixed_width=True)
    data = bytearray(path.read_bytes())
    assert data[14:16] == b" 8"
    data[14] ^= 0x10  # single bit flip: ' ' (0x20) -> '0' (0x30), frame 0 reads '"quabo_num":08'
    path.write_bytes(bytes(data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        seq = PFFSequence([path], strict=strict)
    if strict:
        with pytest.raises(PFFError):
            seq.get_metadata_arrays(["quabo_num"])
    else:
        assert len(seq) == 1 and seq.get_metadata_arrays(["quabo_num"])["quabo_num"].tolist() == [6]


@pytest.mark.parametrize("strict", [True, False])
def test_inner_space_decoded_as_zero(tmp_path, strict):
    p = get_product("ph256")
    path = tmp_path / pff_name("ph256")
    cols = {k: np.array([7, 7]) for k in p.header_fields}
    cols["tv_usec"] = np.array([614, 614])
    write_pff(path, cols, np.zeros((2, 16, 16), "<i2"), fixed_width=True)
    data = bytearray(path.read_bytes())
    i = data.index(b"   614")  # frame 0
    data[i + 4] = ord(" ")  # '"tv_usec":    6 4}'
    path.write_bytes(bytes(data))
    seq = PFFSequence([path], strict=strict)
    try:
        got = seq.get_metadata_arrays(["tv_usec"])["tv_usec"].tolist()
    except PFFError:
        assert strict
        return
    assert got == [614]  # lenient: frame 0 skipped; never 604


@pytest.mark.parametrize("strict", [True, False])
def test_strict_get_frame_checks_required_fields(tmp_path, strict):
    """Regression (found by the 2 x 5000 fuzz): a fixed-width frame whose pkt_tai digits
    became ``[1]`` (same length, valid JSON) was returned by strict ``get_frame``."""
    p = get_product("img16")
    path = tmp_path / pff_name("img16")
    cols = {k: np.array([523, 7]) for k in p.header_fields}
    write_pff(path, cols, np.zeros((2, 32, 32), "<u2"), fixed_width=True)
    data = path.read_bytes()
    i = data.index(b'"pkt_tai":') + len(b'"pkt_tai":')
    j = data.index(b"523", i)
    path.write_bytes(data[:j] + b"[1]" + data[j + 3 :])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        seq = PFFSequence([path], strict=strict)
    if strict:
        with pytest.raises(CorruptHeaderError) as err:
            seq.get_frame(0)
        assert err.value.frame == 0 and err.value.offset == 0
    else:
        assert len(seq) == 1 and seq.get_frame(0)[0]["quabo_0"]["pkt_tai"] == 7


@pytest.mark.parametrize("strict", [True, False])
def test_leading_zero_and_inner_space_together(tmp_path, strict):
    """Regression: ``" 0818 95232"`` holds 9 digits and, read with the space as 0, a
    9-digit number, so a decoder that checks only the digit count accepted it as
    818095232. JSON rejects it: the frame is corrupt (strict) or skipped (lenient)."""
    p = get_product("ph256")
    path = tmp_path / pff_name("ph256")
    cols = {k: np.array([7, 7]) for k in p.header_fields}
    write_pff(path, cols, np.zeros((2, 16, 16), "<i2"), fixed_width=True)
    data = bytearray(path.read_bytes())
    at = data.index(b'"pkt_num":') + len(b'"pkt_num":')
    end = data.index(b",", at)
    assert end - at == 11 and data[at:end].strip() == b"7"
    data[at:end] = b" 0818 95232"  # frame 0
    path.write_bytes(bytes(data))
    seq = PFFSequence([path], strict=strict)
    try:
        got = seq.get_metadata_arrays(["pkt_num"])["pkt_num"].tolist()
    except PFFError as e:
        assert strict and e.frame == 0
        return
    assert not strict and got == [7]
