"""One file: layout, damage and its reporting, checked against the naive reader."""

import warnings

import numpy as np
import pytest

from pfflake import PFFSequence
from pfflake.errors import CorruptFrameError, CorruptHeaderError, PFFError
from pfflake.file import PFFFile, PFFWarning, file_info
from pfflake.products import get_product
from tests.conftest import IMG16_FILE, PH256_FILE, REAL_PFF_FILES
from tests.naive import naive_flat, naive_read


@pytest.mark.parametrize("path", REAL_PFF_FILES, ids=lambda p: p.name[:30])
def test_real_files_decode_like_naive(path):
    truth = naive_read(path)
    f = PFFFile(path, get_product(truth.product))
    assert f.layout is not None and f.n_frames == len(truth.headers)
    fields = list(f.product.header_fields)
    values = f.decode(fields, 0, f.n_frames)
    for k, header in enumerate(truth.headers):
        flat = naive_flat(header)
        assert {key: int(values[key][k]) for key in fields} == {key: flat[key] for key in fields}
    np.testing.assert_array_equal(f.images(0, f.n_frames), truth.images)
    assert [f.frame_offset(i) for i in range(f.n_frames)] == truth.offsets


def test_truncated_tail_dropped_with_warning(tmp_copy):
    path = tmp_copy(IMG16_FILE)
    data = path.read_bytes()
    path.write_bytes(data[:-700])
    with pytest.warns(PFFWarning, match="cut short"):
        f = PFFFile(path, get_product("img16"))
    truth = naive_read(path)
    assert f.n_frames == len(truth.headers) == 399
    assert f.truncated_tail_bytes == truth.truncated_tail_bytes == 2540 - 700
    info = f.info()
    assert info.truncated_tail_bytes == 1840 and not info.ok


def corrupt(path, offset, new: bytes):
    data = bytearray(path.read_bytes())
    data[offset : offset + len(new)] = new
    path.write_bytes(bytes(data))


def test_corrupt_header_strict_names_file_frame_offset(tmp_copy):
    path = tmp_copy(PH256_FILE)
    frame, fs = 700, 636
    # Inside pkt_nsec's digits: a byte that is neither digit nor space.
    corrupt(path, frame * fs + 72, b"x")
    seq = PFFSequence([path])
    with pytest.raises(CorruptHeaderError) as e:
        seq.get_metadata_arrays(["pkt_nsec"])
    err = e.value
    assert isinstance(err, PFFError) and isinstance(err, ValueError)
    assert (err.path, err.frame, err.offset) == (path, frame, frame * fs)
    assert str(path) in str(err) and "frame 700" in str(err) and f"offset {frame * fs}" in str(err)


def test_corrupt_header_lenient_keeps_every_intact_frame(tmp_copy):
    path = tmp_copy(PH256_FILE)
    fs = 636
    for frame in (0, 10, 1499):
        corrupt(path, frame * fs + 72, b"?")
    seq = PFFSequence([path], strict=False)
    truth = naive_read(PH256_FILE)
    keep = [k for k in range(1500) if k not in (0, 10, 1499)]
    assert len(seq) == 1497
    np.testing.assert_array_equal(seq.read_images_range(), truth.images[keep])
    got = seq.get_metadata_arrays(["pkt_num"])["pkt_num"]
    assert got.tolist() == [truth.headers[k]["pkt_num"] for k in keep]
    damage = seq.info().files[0].damage
    assert [(d.frame, d.offset) for d in damage] == [(0, 0), (10, 10 * fs), (1499, 1499 * fs)]


def test_digit_flip_to_colon_is_caught_not_decoded(tmp_copy):
    # ':' is 0x3A: '& 0x0F' would read it as the digit 10 -> a silent wrong value.
    path = tmp_copy(PH256_FILE)
    corrupt(path, 5 * 636 + 72, b":")
    with pytest.raises(CorruptHeaderError):
        PFFSequence([path]).timestamps()


def test_inserted_bytes_fall_back_to_walk(tmp_copy):
    """Bytes inserted mid-file break the fixed layout: strict names the spot, lenient resyncs."""
    path = tmp_copy(PH256_FILE)
    data = path.read_bytes()
    bad_at = 300 * 636
    path.write_bytes(data[:bad_at] + b"GARBAGE" + data[bad_at:])
    with pytest.raises(CorruptFrameError) as e:
        PFFSequence([path])
    assert e.value.offset == bad_at and e.value.frame == 300
    seq = PFFSequence([path], strict=False)
    assert len(seq) == 1500
    np.testing.assert_array_equal(seq.read_images_range(), naive_read(PH256_FILE).images)
    assert seq.info().files[0].damage[0].offset == bad_at


def test_variable_width_headers_read_exactly(tmp_path):
    """Another writer's compact JSON (no padding): frames differ in length."""
    import json

    truth = naive_read(PH256_FILE)
    out = tmp_path / PH256_FILE.name
    with open(out, "wb") as f:
        for header, image in zip(truth.headers, truth.images, strict=True):
            f.write(json.dumps(header, separators=(",", ":")).encode() + b"\n\n*")
            f.write(image.astype("<i2").tobytes())
    seq = PFFSequence([out])
    assert len(seq) == 1500
    assert seq.files[0].layout is None or seq.files[0].layout.header_size > 0
    meta = seq.get_metadata_arrays(["pkt_num", "tv_usec"])
    assert meta["pkt_num"].tolist() == [h["pkt_num"] for h in truth.headers]
    assert meta["tv_usec"].tolist() == [h["tv_usec"] for h in truth.headers]
    np.testing.assert_array_equal(seq[::7], truth.images[::7])


def test_info_never_raises(tmp_path):
    junk = tmp_path / "start_2024-01-01T00:00:00Z.dp_img16.bpp_2.module_1.seqno_0.pff"
    junk.write_bytes(b"\x00\xff" * 5000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = file_info(junk, get_product("img16"))
    assert not info.ok
    assert info.frames == 0


def test_damaged_key_name_in_frame_0(tmp_copy):
    """Frame 0 is the layout template: if it is the damaged one, learn from frame 1."""
    path = tmp_copy(PH256_FILE)
    corrupt(path, 60, b"x")  # inside the key "pkt_nsec" of frame 0
    with pytest.raises(CorruptHeaderError) as e:
        PFFSequence([path])
    assert (e.value.frame, e.value.offset) == (0, 0)
    seq = PFFSequence([path], strict=False)
    assert len(seq) == 1499
    np.testing.assert_array_equal(seq.read_images_range(), naive_read(PH256_FILE).images[1:])


def _corrupt(path, frame: int, old: bytes, new: bytes) -> None:
    """Replace ``old`` by ``new`` (same length) inside one frame's header of a real img16 file."""
    data = bytearray(path.read_bytes())
    fs = 2540
    at = data.index(old, frame * fs)
    assert at < frame * fs + 400 and len(old) == len(new)
    data[at : at + len(old)] = new
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("old", "new"),
    [(b'"pkt_num"', b'"pkt_nuX"'),  # a key name
     (b'"pkt_tai":', b'"pkt_tai";')],  # a delimiter
    ids=["key_name", "delimiter"],
)
def test_strict_and_lenient_agree_on_a_damaged_header(tmp_copy, old, new):
    """Frame 5 is not among the frames a strict open samples: strict reads of its header
    must still refuse it, exactly where lenient, info() and get_frame call it damaged."""
    path = tmp_copy(IMG16_FILE)
    _corrupt(path, 5, old, new)
    lenient = PFFSequence([path], strict=False)
    assert len(lenient) == 399 and [d.frame for d in lenient.files[0].damage] == [5]
    assert file_info(path, get_product("img16")).damage[0].frame == 5
    strict = PFFSequence([path])
    with pytest.raises(CorruptHeaderError, match="frame 5"):
        strict.get_frame(5)
    with pytest.raises(CorruptHeaderError, match="frame 5"):
        strict.get_metadata_arrays(["quabo_0.pkt_num"])
    with pytest.raises(CorruptHeaderError, match="frame 5"):
        strict.timestamps()
    # frames before the damage still read in strict mode
    assert strict.get_frame(4)[0]["quabo_0"]["pkt_num"] == naive_read(IMG16_FILE).headers[4][
        "quabo_0"]["pkt_num"]


def test_tiny_random_and_empty_files_say_why(tmp_path):
    from pfflake import PanosetiRun
    from pfflake.run import EmptyProductError

    (tmp_path / IMG16_FILE.name).write_bytes(IMG16_FILE.read_bytes()[:300])
    rnd = IMG16_FILE.name.replace("module_1", "module_2")
    (tmp_path / rnd).write_bytes(np.random.default_rng(1).bytes(4000))
    (tmp_path / IMG16_FILE.name.replace("module_1", "module_3")).write_bytes(b"")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        run = PanosetiRun(tmp_path, strict=False)
        info = run.info()
    assert [p.frames for p in info.products] == [0, 0, 0]
    reasons = {p.name.split("Z.", 1)[-1]: file_info(p.files[0].path, get_product("img16")).error
               for p in info.products if p.files}
    assert "holds no whole frame: 300 bytes" in reasons["dp_img16.bpp_2.module_1"]
    assert reasons["dp_img16.bpp_2.module_2"].startswith("not a PFF file")
    for stream, why in [("dp_img16.bpp_2.module_1", "no whole frame"),
                        ("dp_img16.bpp_2.module_2", "not a PFF file"),
                        ("dp_img16.bpp_2.module_3", "empty file")]:
        with pytest.raises(EmptyProductError, match=why) as err:
            run.get_product(stream)
        assert isinstance(err.value, KeyError) and isinstance(err.value, PFFError)
        assert str(tmp_path) in str(err.value)


def test_split_modules_keep_the_old_names():
    """pfflake.file re-exports what moved to file_index / reader_info / errors (same objects)."""
    import pfflake.errors
    import pfflake.file as F
    import pfflake.file_index
    import pfflake.reader_info

    assert F.PFFWarning is pfflake.errors.PFFWarning
    for name in ("Damage", "FileInfo", "no_frames_reason"):
        assert getattr(F, name) is getattr(pfflake.reader_info, name)
    for name in ("header_kind_of", "with_header_kind", "WINDOW_FRAMES"):
        assert getattr(F, name) is getattr(pfflake.file_index, name)
    assert issubclass(F.PFFFile, pfflake.file_index.FileIndexer)


def test_sample_frames_are_linspace_picks():
    import numpy as np

    from pfflake.file import sample_frames

    for n in (1, 2, 31, 32, 33, 100, 10_002, 15_059, 787_000):
        ref = np.unique(np.linspace(0, n - 1, min(n, 32)).astype(np.int64))
        got = sample_frames(n)
        assert got == sorted(set(got)) and got[0] == 0 and got[-1] == n - 1
        assert len(got) == len(ref)
        assert np.abs(np.asarray(got) - ref).max() <= 1  # exact ints vs float rounding


@pytest.mark.parametrize("at", [0, 120, 121, 122, 123, 1], ids=["brace", "close", "nl1", "nl2",
                                                                 "star", "not_a_delimiter"])
def test_batch_delimiter_check_is_check_delimiters(tmp_copy, at):
    """iter_batches checks each batch's frames as header.check_delimiters does ('{' and
    the four bytes '}\\n\\n*' ending the header, nothing else): a changed delimiter of an
    unsampled frame raises at that frame after the batches before it; any other byte
    leaves every batch as the naive reader's pixels."""
    from pfflake.file import sample_frames
    from pfflake.header import check_delimiters

    path = tmp_copy(PH256_FILE)
    fs, frame = 636, 1000
    assert frame not in sample_frames(1500)
    corrupt(path, frame * fs + at, b"#")
    truth = naive_read(PH256_FILE).images
    seq = PFFSequence([path])
    f = seq.files[0]
    flagged = np.flatnonzero(check_delimiters(f.buffer, 0, 1500, fs, f.layout)).tolist()
    got = []
    if at == 1:
        assert flagged == []
        for batch in seq.iter_batches(256):
            got.append(batch.copy())
        np.testing.assert_array_equal(np.concatenate(got), truth)
        return
    assert flagged == [frame]
    with pytest.raises(CorruptFrameError) as e:
        for batch in seq.iter_batches(256):
            got.append(batch.copy())
    assert (e.value.path, e.value.frame, e.value.offset) == (path, frame, frame * fs)
    assert len(got) == frame // 256
    np.testing.assert_array_equal(np.concatenate(got), truth[: frame // 256 * 256])
    # the last, shorter batch and a batch size the check has not seen yet agree too
    with pytest.raises(CorruptFrameError, match="frame 1000"):
        seq.read_images_range(999, 501)
    np.testing.assert_array_equal(seq.read_images_range(1001, 499), truth[1001:])
