"""``pfflake.pypff.zarr``: pypff's conversion API and return types, against the naive parser."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr

from pfflake import PanosetiRun
from pfflake.pypff import zarr as face
from tests.conftest import PH256_FILE
from tests.naive import naive_flat, naive_read, naive_unix_t_ns


@pytest.fixture
def run_dir(tmp_path):
    d = tmp_path / "obs_Lick.start_2024-01-01T00:00:00Z.runtype_sci.pffd"
    d.mkdir()
    shutil.copy(PH256_FILE, d / PH256_FILE.name)
    (d / "obs_config.json").write_text('{"name": "x", "password": "hunter2"}')
    return d


def _check_store(path: Path) -> None:
    nf = naive_read(PH256_FILE)
    z = zarr.open_group(str(path), mode="r")
    np.testing.assert_array_equal(z["images"][:], nf.images)
    flats = [naive_flat(h) for h in nf.headers]
    assert z["pkt_num"][:].tolist() == [f["pkt_num"] for f in flats]
    assert z["unix_t_ns"][:].tolist() == [naive_unix_t_ns(f, "ph256")[0] for f in flats]


def test_convert_run_and_read_back_with_pypff_types(run_dir, tmp_path):
    xr = pytest.importorskip("xarray")
    out = tmp_path / "out"
    stores = face.convert_run(PanosetiRun(run_dir), out)
    assert len(stores) == 1
    _check_store(stores[0])
    again = face.convert_run(PanosetiRun(run_dir), out)  # replaces, as pypff does
    assert again == stores
    with pytest.raises(FileExistsError):
        face.convert_run(PanosetiRun(run_dir), out, overwrite=False)
    zrun = face.open_zarr_run(out)
    store = zrun.get_product(zrun.list_products()[0])
    assert isinstance(store, face.PanosetiZarrStore)
    assert isinstance(store.images, xr.DataArray) and store.images.dims == ("time", "y", "x")
    assert isinstance(store.to_dataset(), xr.Dataset)
    np.testing.assert_array_equal(store[3:5], naive_read(PH256_FILE).images[3:5])
    assert len(store) == len(naive_read(PH256_FILE).headers)
    assert "hunter2" not in str(zrun.configs)


class RecordingWriter(face.ZarrPythonWriter):
    """A backend that records the protocol calls and writes through zarr-python."""

    def __init__(self) -> None:
        super().__init__(codec="none")
        self.calls: list[str] = []

    def create_store(self, path):
        self.calls.append("create_store")
        return super().create_store(path)

    def create_array(self, root_group, name, *args, **kwargs):
        self.calls.append(f"create_array:{name}")
        return super().create_array(root_group, name, *args, **kwargs)

    def finalize(self, path):
        self.calls.append("finalize")


def test_converter_with_a_custom_writer(run_dir, tmp_path):
    seq = PanosetiRun(run_dir).get_product("dp_ph256.bpp_2.module_254")
    writer = RecordingWriter()
    assert isinstance(writer, face.ZarrWriter)
    conv = face.PFFToZarrConverter(seq, writer, time_chunk=512)
    out = conv.convert(tmp_path / "one.zarr")
    assert writer.calls[0] == "create_store" and writer.calls[-1] == "finalize"
    assert "create_array:images" in writer.calls and "create_array:unix_t_ns" in writer.calls
    _check_store(out)
    assert zarr.open_array(str(out / "images"), mode="r").chunks[0] == 512


def test_converter_default_writer_and_errors(run_dir, tmp_path):
    seq = PanosetiRun(run_dir).get_product("dp_ph256.bpp_2.module_254")
    conv = face.PFFToZarrConverter(seq)
    assert conv.time_chunk == max(256, min(32768, 8 * 1024 * 1024 // 512))
    _check_store(conv.convert(tmp_path / "two.zarr"))
    with pytest.raises(ValueError, match="PFFSequence"):
        face.PFFToZarrConverter(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="codec"):
        face.ZarrPythonWriter(codec="lzma")
