"""Zarr v3 stores (pypff spec 1.1): pfflake writes what pypff reads and reads what pypff writes.

Truth is the naive parser (tests/naive.py), never pfflake's own reader.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr

from pfflake import PanosetiRun
from pfflake.zarr import (
    FrameWriter,
    PanosetiZarrRun,
    ZarrLayoutError,
    convert_run,
    create_store,
    unit_ranges,
    write_frames,
    write_sequence_range,
    write_unit,
)
from tests.conftest import EXAMPLE_RUN, LEGACY_RUN
from tests.naive import naive_flat, naive_read, naive_unix_t_ns

pypff_zarr = pytest.importorskip("pypff.zarr")
pypff_io2 = pytest.importorskip("pypff.io2")

RUNS = {"example-data": EXAMPLE_RUN, "legacy-run": LEGACY_RUN}
#: Spec 1.1 dtypes, written out again on purpose (pypff's _HEADER_DTYPES).
SPEC_DTYPES = {
    "quabo_num": "uint8",
    "pkt_num": "uint32",
    "pkt_tai": "uint16",
    "pkt_nsec": "uint32",
    "tv_sec": "int64",
    "tv_usec": "uint32",
}
SECRETS = {"legacy-run": b"epowerpanoseti", "example-data": b"admin:1234@"}


class Truth:
    """One stream parsed naively: images, header columns (pypff dotted keys), times, flags."""

    def __init__(self, paths: list[Path]) -> None:
        files = [naive_read(p) for p in paths]
        self.product = files[0].product
        self.images = np.concatenate([f.images for f in files])
        flat = [naive_flat(h) for f in files for h in f.headers]
        self.fields = list(flat[0])
        self.columns = {k: np.array([h[k] for h in flat], dtype=np.int64) for k in self.fields}
        times = [naive_unix_t_ns(h, self.product) for h in flat]
        self.unix_t_ns = np.array([t for t, _ in times], dtype=np.int64)
        self.flags = np.array([q for _, q in times], dtype=np.uint8)


def streams(run_dir: Path) -> dict[str, Truth]:
    groups: dict[str, list[Path]] = {}
    for p in sorted(run_dir.glob("*.pff")):
        if p.name != "hk.pff":
            stream = p.name.split(".", 1)[1].split(".seqno")[0]
            groups.setdefault(stream, []).append(p)
    return {k: Truth(v) for k, v in groups.items()}


@pytest.fixture(scope="module")
def truth() -> dict[str, dict[str, Truth]]:
    return {name: streams(path) for name, path in RUNS.items()}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, dict[str, Path]]:
    """Each sample run converted by pfflake and by pypff, into separate directories."""
    base = tmp_path_factory.mktemp("zarr")
    out = {}
    for name, path in RUNS.items():
        ours, theirs = base / f"pfflake-{name}", base / f"pypff-{name}"
        convert_run(path, ours)
        pypff_zarr.convert_run(pypff_io2.PanosetiRun(path), theirs)
        out[name] = {"pfflake": ours, "pypff": theirs}
    return out


def assert_store_equals_truth(ds, t: Truth, *, time_from_pfflake: bool = True) -> None:
    np.testing.assert_array_equal(np.asarray(ds["images"]), t.images)
    assert np.asarray(ds["images"]).dtype == t.images.dtype
    for field in t.fields:
        arr = np.asarray(ds[field.replace(".", "_")])
        assert arr.dtype == np.dtype(SPEC_DTYPES[field.rpartition(".")[2]]), field
        np.testing.assert_array_equal(arr.astype(np.int64), t.columns[field], err_msg=field)
    if time_from_pfflake:
        np.testing.assert_array_equal(np.asarray(ds["unix_t_ns"]), t.unix_t_ns)
        np.testing.assert_array_equal(np.asarray(ds["time_quality"]), t.flags)


# -- pfflake writes, others read ----------------------------------------------------------


@pytest.mark.parametrize("run", RUNS)
def test_pypff_reader_reads_pfflake_stores(outputs, truth, run):
    zrun = pypff_zarr.PanosetiZarrRun(outputs[run]["pfflake"])
    assert zrun.list_products() == sorted(truth[run])
    for stream, t in truth[run].items():
        store = zrun.get_product(stream)
        assert len(store) == len(t.images)
        assert_store_equals_truth(store.to_dataset().load(), t)
        np.testing.assert_array_equal(store.timestamps(), t.unix_t_ns)
    assert "obs_config" in zrun.configs


@pytest.mark.parametrize("run", RUNS)
def test_plain_zarr_reads_pfflake_stores(outputs, truth, run):
    for stream, t in truth[run].items():
        path = outputs[run]["pfflake"] / f"{run}.{stream}.zarr"
        g = zarr.open_group(str(path), mode="r", zarr_format=3)
        assert_store_equals_truth({k: g[k][:] for k, _ in g.arrays()}, t)
        attrs = dict(g.attrs)
        assert attrs["panoseti_pff_zarr_version"] == "1.1"
        assert attrs["data_product"] == t.product
        assert attrs["total_frames"] == len(t.images)
        assert attrs["header_format"] == ("single" if t.product == "ph256" else "module")
        names = sorted(f.replace(".", "_") for f in t.fields)
        assert sorted(attrs["header_fields"] + attrs["quabo_fields"]) == names
        assert g["images"].metadata.dimension_names == ("time", "y", "x")


@pytest.mark.parametrize("run", RUNS)
def test_layout_matches_pypff(outputs, run):
    """Same arrays (plus time_quality), metadata, root attributes and image chunk bytes."""
    ours, theirs = outputs[run]["pfflake"], outputs[run]["pypff"]
    for store in sorted(p.name for p in theirs.glob("*.zarr")):
        a, b = ours / store, theirs / store
        arrays_a = {p.parent.name for p in a.glob("*/zarr.json")}
        arrays_b = {p.parent.name for p in b.glob("*/zarr.json")}
        assert arrays_a == arrays_b | {"time_quality"}
        for name in arrays_b:
            meta_a = json.loads((a / name / "zarr.json").read_text())
            meta_b = json.loads((b / name / "zarr.json").read_text())
            assert meta_a == meta_b, name  # includes attributes, codecs, chunk grid
        root_a = json.loads((a / "zarr.json").read_text())["attributes"]
        root_b = json.loads((b / "zarr.json").read_text())["attributes"]
        for key in set(root_b) - {"run_configs"}:
            assert root_a[key] == root_b[key], key
        assert set(root_a["run_configs"]) == set(root_b["run_configs"])
        chunk = Path("images/c/0/0/0")
        assert (a / chunk).read_bytes() == (b / chunk).read_bytes()
        # the timestamp rules agree on these runs (they differ on missing quabo_0 only)
        g_a, g_b = zarr.open_group(str(a), mode="r"), zarr.open_group(str(b), mode="r")
        np.testing.assert_array_equal(g_a["unix_t_ns"][:], g_b["unix_t_ns"][:])


def test_compression_at_least_pypffs(outputs):
    for run in RUNS:
        sizes = {
            who: sum(
                f.stat().st_size
                for f in outputs[run][who].rglob("*")
                if f.is_file() and ".zarr" in str(f) and f.name != "zarr.json"
            )
            for who in ("pfflake", "pypff")
        }
        # time_quality adds one tiny chunk; images and headers are byte-identical
        assert sizes["pfflake"] <= sizes["pypff"] + 200, sizes


# -- others write, pfflake reads ---------------------------------------------------------


@pytest.mark.parametrize("run", RUNS)
def test_pfflake_reader_reads_pypff_stores(outputs, truth, run):
    zrun = PanosetiZarrRun(outputs[run]["pypff"])
    assert zrun.list_products() == sorted(truth[run])
    for stream, t in truth[run].items():
        store = zrun.get_product(stream)
        assert store.written_by == "pypff"
        ds = {name: store.array(name) for name in store.list_arrays()}
        ds["images"] = store.images[:]
        assert_store_equals_truth(ds, t, time_from_pfflake=False)
        # pypff stores have no time_quality: computed from the stored headers
        np.testing.assert_array_equal(store.time_quality(), t.flags)
        np.testing.assert_array_equal(store[[0, 5, 2]], t.images[[0, 5, 2]])
    assert zrun.configs["obs_config"]["name"]


def test_pfflake_reader_on_own_stores(outputs, truth):
    zrun = PanosetiZarrRun(outputs["legacy-run"]["pfflake"])
    ((stream, t),) = truth["legacy-run"].items()
    store = zrun.get_product(stream)
    assert store.written_by == "pfflake"
    np.testing.assert_array_equal(store.timestamps(), t.unix_t_ns)
    np.testing.assert_array_equal(store.time_quality(), t.flags)
    assert (t.flags == 2).all()  # this run's WR and host clocks disagree: flagged, not guessed
    meta = store.get_metadata_arrays(["pkt_num", "time_quality"])
    np.testing.assert_array_equal(meta["pkt_num"], t.columns["pkt_num"])
    assert store.to_dataset()["images"].shape == t.images.shape


# -- credentials ---------------------------------------------------------------------


@pytest.mark.parametrize("run", RUNS)
def test_no_credential_anywhere_in_output(outputs, run):
    out = outputs[run]["pfflake"]
    files = [f for f in out.rglob("*") if f.is_file()]
    assert any(f.parent.name == "configs" and f.name == "obs_config.json" for f in files)
    for f in files:
        assert SECRETS[run] not in f.read_bytes(), f
    zrun = PanosetiZarrRun(out)
    assert ":***@" in zrun.configs["obs_config"]["wps"]["url"]
    for store in zrun:
        assert ":***@" in store.run_configs["obs_config"]["wps"]["url"]
    # pypff's own output does leak it: the test would catch that
    leaked = [
        f
        for f in outputs[run]["pypff"].rglob("*")
        if f.is_file() and SECRETS[run] in f.read_bytes()
    ]
    assert leaked


def test_sidecar_redacts_toml_and_logs(tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(LEGACY_RUN, run_dir)
    (run_dir / "extra.toml").write_text('[db]\npassword = "hunter2hunter2"\nhost = "x"\n')
    (run_dir / "log.txt").write_text(
        "connect http://u:logpass99@h/ token=abcdef123 done\n"
        "{'api_key': 'k-123456'} epowerpanoseti\n"
    )
    convert_run(run_dir, tmp_path / "out")
    blob = b"".join(f.read_bytes() for f in (tmp_path / "out").rglob("*") if f.is_file())
    for secret in (b"hunter2hunter2", b"logpass99", b"abcdef123", b"k-123456", b"epowerpanoseti"):
        assert secret not in blob
    meta = tmp_path / "out" / "run.panoseti-meta"
    assert (meta / "configs" / "extra.toml").read_text().count('"***"') == 1
    assert "done" in (meta / "logs" / "log.txt").read_text()


# -- overwrite -------------------------------------------------------------------------


def test_existing_output_refused_unless_overwrite(tmp_path, truth):
    out = tmp_path / "out"
    stores = convert_run(LEGACY_RUN, out)
    before = {f: f.read_bytes() for f in out.rglob("*") if f.is_file() and "meta" not in str(f)}
    with pytest.raises(FileExistsError, match="overwrite=True"):
        convert_run(LEGACY_RUN, out)
    after = {f: f.read_bytes() for f in out.rglob("*") if f.is_file() and "meta" not in str(f)}
    assert before == after
    assert convert_run(LEGACY_RUN, out, overwrite=True) == stores
    (t,) = truth["legacy-run"].values()
    np.testing.assert_array_equal(zarr.open_group(str(stores[0]))["images"][:], t.images)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging left over
    # a target that is not a store is never deleted
    shutil.rmtree(stores[0])
    stores[0].mkdir()
    (stores[0] / "precious.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="not a Zarr store"):
        convert_run(LEGACY_RUN, out, overwrite=True)
    assert (stores[0] / "precious.txt").exists()


# -- shard-aligned parallel writes ------------------------------------------------------


def _write_units(store: str, run_dir: str, stream: str, units: list[tuple[int, int]]) -> None:
    with PanosetiRun(run_dir) as run:
        seq = run.get_product(stream)
        for start, stop in units:
            write_sequence_range(store, seq, start, stop, workers=1)


def _files(path: Path) -> dict[str, bytes]:
    return {str(f.relative_to(path)): f.read_bytes() for f in path.rglob("*") if f.is_file()}


def test_parallel_writers_match_serial_write(tmp_path, truth):
    run = PanosetiRun(EXAMPLE_RUN)
    stream = "dp_ph256.bpp_2.module_254"
    seq = run.get_product(stream)
    kw = {"time_chunk": 128, "ts_chunk": 256, "shard_factor": 2}
    serial, parallel = tmp_path / "serial.zarr", tmp_path / "parallel.zarr"
    for path in (serial, parallel):
        create_store(path, seq, **kw)
    assert write_unit(serial) == 512
    units = unit_ranges(serial)
    assert units == [(0, 512), (512, 1024), (1024, 1500)]
    _write_units(str(serial), str(EXAMPLE_RUN), stream, units)
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(
            target=_write_units, args=(str(parallel), str(EXAMPLE_RUN), stream, units[i::2])
        )
        for i in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert _files(parallel) == _files(serial)
    t = truth["example-data"][stream]
    assert_store_equals_truth(pypff_zarr.PanosetiZarrStore(parallel).to_dataset(), t)


def test_write_frames_alignment_is_enforced(tmp_path, truth):
    t = truth["example-data"]["dp_img16.bpp_2.module_1"]
    run = PanosetiRun(EXAMPLE_RUN)
    path = create_store(
        tmp_path / "s.zarr", run.get_product("dp_img16.bpp_2.module_1"), time_chunk=64, ts_chunk=128
    )
    headers = {k: v for k, v in t.columns.items()}
    with pytest.raises(ZarrLayoutError, match="multiple of the write unit"):
        write_frames(path, 100, t.images[100:228], {k: v[100:228] for k, v in headers.items()})
    with pytest.raises(ZarrLayoutError, match="inside a chunk"):
        write_frames(path, 0, t.images[:200], {k: v[:200] for k, v in headers.items()})
    # the last range may end with the store; ranges in any order
    write_frames(path, 256, t.images[256:], {k: v[256:] for k, v in headers.items()})
    write_frames(path, 0, t.images[:256], {k: v[:256] for k, v in headers.items()})
    assert_store_equals_truth(pypff_zarr.PanosetiZarrStore(path).to_dataset(), t)
    bad = dict(headers, **{"quabo_0.pkt_tai": headers["quabo_0.pkt_tai"] + 70000})
    with pytest.raises(ValueError, match="does not fit uint16"):
        write_frames(path, 0, t.images, bad)
    with pytest.raises(TypeError, match="cannot store float64"):
        write_frames(path, 0, t.images.astype(float), headers)


def test_frame_writer_streams_batches(tmp_path, truth):
    t = truth["example-data"]["dp_img16.bpp_2.module_1"]
    run = PanosetiRun(EXAMPLE_RUN)
    path = create_store(tmp_path / "s.zarr", run.get_product("dp_img16.bpp_2.module_1"))
    with FrameWriter(path, 0, workers=2) as w:
        for a in range(0, 400, 37):  # batches that do not match any chunk boundary
            w.append(t.images[a : a + 37], {k: v[a : a + 37] for k, v in t.columns.items()})
    assert_store_equals_truth(pypff_zarr.PanosetiZarrStore(path).to_dataset(), t)


def test_frame_writer_end_inside_a_grown_store(tmp_path, truth):
    """A store grown ahead of its data (a follow's) is written up to ``end``, mid-chunk
    and mid-shard; the next writer rewrites that unit whole and the frames read back as
    the source, those beyond read as the fill value."""
    t = truth["example-data"]["dp_img16.bpp_2.module_1"]
    seq = PanosetiRun(EXAMPLE_RUN).get_product("dp_img16.bpp_2.module_1")
    path = create_store(tmp_path / "s.zarr", seq, 1000, time_chunk=16, ts_chunk=128,
                        image_shard=64)
    unit = write_unit(path)
    cols = t.columns
    done = 0
    for stop in (37, 150, 290, len(t.images)):  # ends inside chunks and shards
        start = (done // unit) * unit  # as an ingest: from the unit holding the next frame
        with FrameWriter(path, start, workers=2, end=stop) as w:
            w.append(t.images[start:stop], {k: v[start:stop] for k, v in cols.items()})
        done = stop
        g = zarr.open_group(str(path), mode="r")
        np.testing.assert_array_equal(g["images"][:stop], t.images[:stop])
        np.testing.assert_array_equal(g["unix_t_ns"][:stop], t.unix_t_ns[:stop])
        assert not g["images"][stop:].any() and g["images"].shape[0] == 1000
    w = FrameWriter(path, 0, end=10)
    with pytest.raises(ZarrLayoutError, match="beyond the end"):
        w.append(t.images[:11], {k: v[:11] for k, v in cols.items()})
    w.close()
    with pytest.raises(ZarrLayoutError, match="outside"):
        FrameWriter(path, 0, end=1001)


def test_image_only_shards(tmp_path, truth):
    """image_shard shards the images alone; header arrays keep long unsharded chunks."""
    t = truth["example-data"]["dp_img16.bpp_2.module_1"]
    run = PanosetiRun(EXAMPLE_RUN)
    seq = run.get_product("dp_img16.bpp_2.module_1")
    path = create_store(tmp_path / "s.zarr", seq, time_chunk=16, ts_chunk=256, image_shard=128)
    assert write_unit(path) == 256
    with FrameWriter(path, 0, workers=2) as w:
        for a in range(0, len(t.images), 100):
            w.append(t.images[a : a + 100], {k: v[a : a + 100] for k, v in t.columns.items()})
    g = zarr.open_group(str(path), mode="r")
    assert g["images"].chunks[0] == 16 and g["images"].shards[0] == 128
    assert g["unix_t_ns"].chunks[0] == 256 and g["unix_t_ns"].shards is None
    assert_store_equals_truth({k: g[k][:] for k, _ in g.arrays()}, t)
    with pytest.raises(ValueError, match="multiple of time_chunk"):
        create_store(tmp_path / "bad.zarr", seq, time_chunk=16, image_shard=100)
    both = create_store(
        tmp_path / "both.zarr", seq, time_chunk=16, ts_chunk=256, image_shard=128, shard_factor=4
    )
    g = zarr.open_group(str(both), mode="r")
    assert g["images"].shards[0] == 128 and g["unix_t_ns"].shards[0] == 1024
    assert write_unit(both) == 1024


# -- options -------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["blosc-zstd", "blosc", "gzip", "none"])
@pytest.mark.parametrize("shard_factor", [0, 2])
def test_codecs_and_shards_read_back(tmp_path, truth, codec, shard_factor):
    out = tmp_path / "out"
    convert_run(
        EXAMPLE_RUN,
        out,
        codec=codec,
        shard_factor=shard_factor,
        time_chunk=256,
        write_sidecars=False,
    )
    for stream, t in truth["example-data"].items():
        path = out / f"example-data.{stream}.zarr"
        g = zarr.open_group(str(path), mode="r")
        assert_store_equals_truth({k: g[k][:] for k, _ in g.arrays()}, t)
        assert g.attrs.get("shard_factor", 0) == shard_factor
    assert not (out / "example-data.panoseti-meta").exists()


def test_sharded_layout_matches_pypff(tmp_path):
    ours, theirs = tmp_path / "a", tmp_path / "b"
    convert_run(LEGACY_RUN, ours, shard_factor=2, write_sidecars=False)
    pypff_zarr.convert_run(
        pypff_io2.PanosetiRun(LEGACY_RUN), theirs, shard_factor=2, write_sidecars=False
    )
    name = "legacy-run.dp_ph256.bpp_2.module_254.zarr"
    for meta in (theirs / name).glob("*/zarr.json"):
        assert json.loads(meta.read_text()) == json.loads(
            (ours / name / meta.parent.name / "zarr.json").read_text()
        )
    a, b = zarr.open_group(str(ours / name)), zarr.open_group(str(theirs / name))
    for key, arr in b.arrays():
        np.testing.assert_array_equal(a[key][:], arr[:])


def test_accepts_a_pypff_run_object(tmp_path, truth):
    ((stream, t),) = truth["legacy-run"].items()
    convert_run(pypff_io2.PanosetiRun(LEGACY_RUN), tmp_path / "out", write_sidecars=False)
    store = PanosetiZarrRun(tmp_path / "out").get_product(stream)
    np.testing.assert_array_equal(store.images[:], t.images)


def test_pypff_writer_backend_is_accepted(tmp_path, truth):
    out = tmp_path / "out"
    convert_run(LEGACY_RUN, out, writer=pypff_zarr.ZarrPythonWriter(), write_sidecars=False)
    ((stream, t),) = truth["legacy-run"].items()
    ds = pypff_zarr.PanosetiZarrRun(out).get_product(stream).to_dataset()
    assert_store_equals_truth(ds, t)
