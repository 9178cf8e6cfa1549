"""``pfflake.pypff`` top level, ``io2`` and ``models``: pypff's names, right answers.

Also the public behaviour behind the pypff-suite tests that only fail on
pypff's private attributes (``_lru``, ``_locate_frame``, ...): open-file cap,
context manager, frame location across files, sparse ``timestamps_at``.
"""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest

import pfflake
import pfflake.pypff as face
from pfflake.file import PFFWarning
from pfflake.pypff import io2
from tests.conftest import EXAMPLE_RUN, LEGACY_RUN, PH256_FILE
from tests.naive import naive_hk, naive_read


def _public(module):
    return {n for n in dir(module) if not n.startswith("_")}


def test_every_public_name_of_pypff():
    pypff = pytest.importorskip("pypff")
    import importlib

    for sub in ("io", "io2", "models", "utils", "pixelmap", "zarr"):
        theirs = importlib.import_module(f"pypff.{sub}")
        ours = importlib.import_module(f"pfflake.pypff.{sub}")
        # pypff's own names (not the modules it happens to import, e.g. ``np``)
        names = {
            n
            for n in _public(theirs) - {"TYPE_CHECKING"}
            if getattr(getattr(theirs, n), "__module__", "pypff").startswith("pypff")
            and not isinstance(getattr(theirs, n), type(importlib))
        }
        assert names <= _public(ours), (sub, names - _public(ours))
    top = {n for n in _public(pypff) if not isinstance(getattr(pypff, n), type(importlib))}
    assert top <= set(dir(face))
    for name in top:
        getattr(face, name)


def test_faces_are_pfflakes_classes():
    assert face.PanosetiRun is pfflake.PanosetiRun and io2.PFFSequence is pfflake.PFFSequence
    assert face.ModuleHeader is pfflake.models.ModuleHeader


def test_io2_hkpff_matches_naive():
    path = LEGACY_RUN / "hk.pff"
    hk = io2.hkpff(path).readhk()
    records = naive_hk(path)
    device = records[0][0]
    n = sum(d == device for d, _ in records)
    assert isinstance(hk[device]["Computer_UTC"], np.ndarray)
    assert len(hk[device]["Computer_UTC"]) == n
    assert "DET_TEMP" in hk["QUABO_1019"] and "TEMP1" not in hk["QUABO_1019"]


def test_io2_qconfig_equals_legacy_where_both_parse():
    pattern = str(EXAMPLE_RUN / "*.json")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        modern = io2.qconfig(pattern).config
    legacy = face.io.qconfig(pattern).config
    for key in ("obs_config", "daq_config", "quabo_config_192.168.3.248"):
        assert modern[key] == legacy[key]
    assert modern["obs_config"] == json.loads((EXAMPLE_RUN / "obs_config.json").read_text())
    with pytest.raises(FileNotFoundError):
        io2.qconfig(str(EXAMPLE_RUN / "none_*.json"))


@pytest.fixture
def two_files(tmp_path):
    names = [f"test.dp_ph256.module_1.seqno_{i}.pff" for i in (1, 0)]
    for name in names:
        shutil.copy(PH256_FILE, tmp_path / name)
    return [tmp_path / n for n in names]


def test_pypff_names_read_in_seqno_order(two_files):
    seq = io2.PFFSequence(two_files)
    nf = naive_read(PH256_FILE)
    n = len(nf.headers)
    assert len(seq) == 2 * n
    assert seq.file_paths[0].name.endswith("seqno_0.pff")
    np.testing.assert_array_equal(
        seq.read_images([0, n - 1, n, 2 * n - 1]), nf.images[[0, n - 1, 0, n - 1]]
    )
    assert seq.get_frame(n)[0] == nf.headers[0]  # the first frame of the second file


def test_open_file_cap_and_context_manager(two_files):
    seq = io2.PFFSequence(two_files, max_open_files=1)
    n = len(seq) // 2
    seq.read_images([0, n])  # touches both files
    assert sum(f._view is not None for f in seq.files) <= 1
    with seq:
        seq[0]
    assert all(f._view is None for f in seq.files)  # closed on exit
    np.testing.assert_array_equal(seq[n], naive_read(PH256_FILE).images[0])  # reopens lazily


def test_sparse_and_dense_timestamps_at_agree():
    seq = io2.PFFSequence([PH256_FILE])
    full = seq.timestamps()
    for idx in (np.arange(50), np.array([0, 500, 1000, len(seq) - 1])):
        np.testing.assert_array_equal(seq.timestamps_at(idx), full[idx])


def test_run_reads_names_without_start_or_bpp(tmp_path):
    shutil.copy(PH256_FILE, tmp_path / "test.dp_ph256.module_7.seqno_0.pff")
    shutil.copy(PH256_FILE, tmp_path / "start_2024.dp_ph256.bpp_2.module_8.seqno_0.pff")
    (tmp_path / "notes.pff").write_bytes(b"x")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        run = io2.PanosetiRun(tmp_path)
    assert run.list_products() == ["dp_ph256.bpp_2.module_7", "dp_ph256.bpp_2.module_8"]
    assert "notes.pff" in run.info().skipped_files
