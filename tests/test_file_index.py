"""The open's sampled check (pfflake.file_index): the same 32 rows' bytes, the same answers.

The check compares every header byte of the sampled frames outside the value spans,
and the ``*`` marker, with the layout's template. Each test pins it to a plain byte
by byte comparison written here, or to the naive reader, on real files with one
byte changed at a time: in frame 0 (whose row comes from the map), in a middle
sampled frame and in the last frame (rows read with ``pread``).
"""

import mmap
import os

import numpy as np
import pytest

from pfflake import PFFSequence
from pfflake.errors import CorruptFrameError, CorruptHeaderError, PFFWarning
from pfflake.file import PFFFile, sample_frames, sampled_rows_differ
from pfflake.products import get_product
from tests.conftest import IMG16_FILE, PH256_FILE
from tests.naive import naive_read

FILES = {"ph256": (PH256_FILE, 636), "img16": (IMG16_FILE, 2540)}


def _naive_differs(data: bytes, frame: int, fs: int, layout) -> bool:
    """A sampled frame differs if any byte outside the value spans (or the '*') does."""
    in_value = set()
    for start, end in layout.spans.values():
        in_value.update(range(start, end))
    want = layout.template + b"*"
    row = data[frame * fs : frame * fs + len(want)]
    return any(row[i] != want[i] for i in range(len(want)) if i not in in_value)


def _open_layout(path):
    f = PFFFile(path, get_product("ph256" if "ph256" in path.name else "img16"))
    layout, fs, n = f.layout, f.frame_size, f.n_frames
    f.close()
    return layout, fs, n


@pytest.mark.parametrize("product", ["ph256", "img16"])
def test_sampled_rows_match_a_bytewise_compare(tmp_path, product):
    src, fs = FILES[product]
    layout, got_fs, n = _open_layout(src)
    assert got_fs == fs
    frames = sample_frames(n)
    spans = sorted(layout.spans.values())
    value_byte = spans[1][1] - 1  # a digit inside a value span: not the check's to compare
    fixed_byte = spans[1][0] - 3  # inside a key name (before its '":')
    cases = {
        "clean": [],
        "key letter, frame 0": [(0, fixed_byte, b"X")],
        "key letter, middle": [(frames[13], fixed_byte, b"X")],
        "star, last frame": [(frames[-1], layout.header_size, b"#")],
        "brace, middle": [(frames[7], 0, b"[")],
        "value digit, middle": [(frames[9], value_byte, b"x")],
        "first pixel byte": [(frames[5], layout.header_size + 1, b"\xff")],
        "blank line, frame 0": [(0, layout.header_size - 1, b" ")],
    }
    data = bytearray(src.read_bytes())
    for label, edits in cases.items():
        changed = bytearray(data)
        for frame, at, new in edits:
            changed[frame * fs + at] = new[0]
        path = tmp_path / f"{label.replace(' ', '_').replace(',', '')}.pff"
        path.write_bytes(bytes(changed))
        fd = os.open(path, os.O_RDONLY)
        try:
            with open(path, "rb") as fh:
                mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            for mapped in (mm, None):
                got = sampled_rows_differ(fd, frames, fs, layout, mapped)
                want = [_naive_differs(bytes(changed), k, fs, layout) for k in frames]
                assert list(got) == want, (label, mapped is None)
            mm.close()
        finally:
            os.close(fd)
        expected_bad = {f for f, at, _ in edits if at not in (value_byte, layout.header_size + 1)}
        assert {k for k, b in zip(frames, want, strict=True) if b} == expected_bad, label


def test_a_short_read_differs(tmp_path):
    """A row cut short (the file shrank after it was sized) compares as zero-padded."""
    layout, fs, n = _open_layout(PH256_FILE)
    frames = sample_frames(n)
    path = tmp_path / PH256_FILE.name
    path.write_bytes(PH256_FILE.read_bytes()[: frames[-1] * fs + 50])
    fd = os.open(path, os.O_RDONLY)
    try:
        got = sampled_rows_differ(fd, frames, fs, layout)
    finally:
        os.close(fd)
    assert got == [False] * (len(frames) - 1) + [True]


def _corrupt(path, offset: int, new: bytes) -> None:
    data = bytearray(path.read_bytes())
    data[offset : offset + len(new)] = new
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("which", [0, 13, -1], ids=["frame0", "middle", "last"])
def test_damaged_key_in_a_sampled_frame_is_reported_at_open(tmp_copy, which):
    """A sampled frame whose key no longer names a field: strict opens raise naming the
    file, frame and offset; lenient opens skip exactly that frame (naive truth)."""
    path = tmp_copy(PH256_FILE)
    fs = 636
    truth = naive_read(PH256_FILE)
    n = len(truth.headers)
    frame = sample_frames(n)[which]
    _corrupt(path, frame * fs + 60, b"x")  # inside the key "pkt_nsec"
    with pytest.raises(CorruptHeaderError) as e:
        PFFSequence([path])
    assert (e.value.path, e.value.frame, e.value.offset) == (path, frame, frame * fs)
    seq = PFFSequence([path], strict=False)
    keep = [k for k in range(n) if k != frame]
    assert len(seq) == n - 1
    np.testing.assert_array_equal(seq.read_images_range(), truth.images[keep])
    assert [(d.frame, d.offset) for d in seq.info().files[0].damage] == [(frame, frame * fs)]


@pytest.mark.parametrize("which", [13, -1], ids=["middle", "last"])
def test_moved_delimiter_in_a_sampled_frame_gives_the_generic_walk(tmp_copy, which):
    """A sampled frame whose '*' is gone: the layout is not fixed; the strict walk names
    the frame, the lenient walk keeps every other frame (naive truth)."""
    path = tmp_copy(PH256_FILE)
    fs, h = 636, 123
    truth = naive_read(PH256_FILE)
    n = len(truth.headers)
    frame = sample_frames(n)[which]
    _corrupt(path, frame * fs + h, b"#")
    with pytest.raises(CorruptFrameError) as e:
        PFFSequence([path])
    assert (e.value.frame, e.value.offset) == (frame, frame * fs)
    seq = PFFSequence([path], strict=False)
    assert seq.files[0].layout is None  # the walk, not the fixed layout
    keep = [k for k in range(n) if k != frame]
    assert len(seq) == n - 1
    np.testing.assert_array_equal(seq.read_images_range(), truth.images[keep])


def test_unsampled_damage_keeps_len_and_is_caught_on_read(tmp_copy):
    """Damage outside the sample does not change len(); the strict read of that frame
    raises where it is (frame 5 is not sampled in a 1500-frame file)."""
    path = tmp_copy(PH256_FILE)
    assert 5 not in sample_frames(1500)
    _corrupt(path, 5 * 636 + 60, b"x")
    seq = PFFSequence([path])
    assert len(seq) == 1500
    with pytest.raises(CorruptHeaderError) as e:
        seq.get_metadata_arrays(["pkt_nsec"])
    assert (e.value.frame, e.value.offset) == (5, 5 * 636)


def test_truncated_and_uneven_files_keep_their_answers(tmp_copy, tmp_path):
    """A cut-short last frame is dropped with a warning; frames of uneven size are
    walked one by one: len() and pixels as the naive reader has them."""
    path = tmp_copy(PH256_FILE)
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.warns(PFFWarning, match="cut short"):
        seq = PFFSequence([path])
    truth = naive_read(path)
    assert len(seq) == len(truth.headers) == 1499
    np.testing.assert_array_equal(seq.read_images_range(), truth.images)
    # one frame 3 bytes longer (more padding before a value), between sampled frames
    uneven = tmp_path / "uneven" / PH256_FILE.name
    uneven.parent.mkdir()
    at = data.index(b'"pkt_tai":', 700 * 636) + len(b'"pkt_tai":')
    uneven.write_bytes(data[:at] + b"   " + data[at:])
    truth = naive_read(uneven)
    seq = PFFSequence([uneven])
    assert seq.files[0].layout is None and len(seq) == len(truth.headers) == 1500
    np.testing.assert_array_equal(seq.read_images_range(), truth.images)
    got = seq.get_metadata_arrays(["pkt_tai"])["pkt_tai"]
    assert got.tolist() == [h["pkt_tai"] for h in truth.headers]


def test_a_directory_raises_as_open_does(tmp_path):
    d = tmp_path / PH256_FILE.name
    d.mkdir()
    with pytest.raises(IsADirectoryError) as e:
        PFFFile(d, get_product("ph256"))
    with pytest.raises(IsADirectoryError) as ref:
        open(d, "rb")  # noqa: SIM115
    assert str(e.value) == str(ref.value)
