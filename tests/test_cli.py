"""The pfflake command, run as a new user runs it: a real subprocess, exit code and output.

Exit codes: 0 ok, 1 error or problems found, 2 usage error (usage line and reason on stderr).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pfflake import query as Q
from tests.conftest import EXAMPLE_RUN, IMG16_FILE, LEGACY_RUN

EXAMPLES = sorted(Q.examples_dir().glob("*.sql"))


def pfflake(*args, check=True, stdin=None, env=None):
    cmd = [sys.executable, "-m", "pfflake", *map(str, args)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, input=stdin,
                         env={**os.environ, "COLUMNS": "80", **(env or {})})
    if check:
        assert out.returncode == 0, out.stderr
    return out


def test_info_lists_streams_and_desync():
    out = pfflake("info", EXAMPLE_RUN, LEGACY_RUN)
    assert "dp_img16.bpp_2.module_1" in out.stdout and "clock_desync=207" in out.stdout
    assert out.stderr == ""  # info reports damage itself: no warning lines on top
    assert max(len(line) for line in out.stdout.splitlines()) <= 80


def test_errors_are_one_line_without_traceback():
    out = pfflake("info", "/no/such/run", check=False)
    assert out.returncode == 1
    assert out.stderr.strip().startswith("pfflake: error:") and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    debug = pfflake("--debug", "info", "/no/such/run", check=False)
    assert "Traceback" in debug.stderr


def test_ingest_of_a_file_says_it_is_not_a_run_directory(tmp_path):
    target = Path(__file__)  # a file, not a run directory
    out = pfflake("ingest", target, "--lake", tmp_path / "lake", check=False)
    assert out.returncode == 1
    assert out.stderr.strip() == (f"pfflake: error: {target}: not a run directory (ingest "
                                  "takes run directories, *.pffd)")
    assert not (tmp_path / "lake").exists()


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["ingest", "RUN"], "Missing option '--lake'"),
        (["info"], "Missing argument"),
        (["bogus"], "No such command 'bogus'"),
        (["info", "--nope", "x"], "No such option: --nope"),
        (["sql", "LAKE", "--format", "xml", "SELECT 1"], "'xml' is not one of"),
        (["sql", "LAKE"], "either as QUERY or with --file"),
        (["images", "LAKE", "--sql", "SELECT 1", "--out", "x.npy", "--png"], "--out DIR"),
        (["ingest", "RUN", "--lake", "L", "--time-chunk", "0"], "greater than or equal to 1"),
    ],
)
def test_usage_errors_print_usage_and_reason_exit_2(args, reason):
    out = pfflake(*args, check=False)
    assert out.returncode == 2, out
    assert out.stdout == ""
    assert "Usage: pfflake" in out.stderr and reason in out.stderr, out.stderr


def test_no_arguments_prints_help_exit_2():
    out = pfflake(check=False)
    assert out.returncode == 2 and "Commands" in out.stdout + out.stderr


def test_version_and_console_script():
    from importlib.metadata import version

    out = pfflake("--version")
    assert out.stdout.strip() == f"pfflake {version('pfflake')}"
    script = Path(sys.executable).with_name("pfflake")
    if script.exists():
        same = subprocess.run([str(script), "--version"], capture_output=True, text=True)
        assert same.returncode == 0 and same.stdout == out.stdout


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "lake"
    out = pfflake("ingest", EXAMPLE_RUN, LEGACY_RUN, "--lake", path, "--workers", "1",
                  "--threshold", "1000")
    assert "2 run(s)" in out.stdout and "2,107 frames" in out.stdout
    return path


def test_sql_formats(lake, tmp_path):
    csv = pfflake("sql", lake, "SELECT module, count(*) AS n FROM frames GROUP BY 1 ORDER BY 1",
                  "--format", "csv").stdout
    assert csv.splitlines() == ['"module","n"', "1,400", "254,1707"]
    js = pfflake("sql", lake, "SELECT count(*) AS n FROM frames", "--format", "json").stdout
    assert js.strip() == '{"n": 2107}'
    pq_out = tmp_path / "x.parquet"
    pfflake("sql", lake, "SELECT frame FROM frames", "--format", "parquet", "--out", pq_out)
    import pyarrow.parquet as pq

    assert pq.read_table(pq_out).num_rows == 2107
    bad = pfflake("sql", lake, "SELECT nope FROM frames", check=False)
    assert bad.returncode == 1 and bad.stderr.startswith("pfflake: error:")


def test_wide_table_stays_readable_at_80_columns(lake):
    out = pfflake("sql", lake, "SELECT * FROM run_quality ORDER BY ALL").stdout
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "clock_desync_frames" in out and "207" in out  # every column still shown
    narrow = pfflake("sql", lake, "SELECT module, count(*) AS n FROM frames GROUP BY 1 "
                     "ORDER BY 1").stdout
    assert "┃ module ┃" in narrow.replace("┃  ", "┃ ").replace("  ┃", " ┃") or "module" in narrow


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_sql_example_runs_from_the_shell(lake, path):
    """Each example starts with a ``--`` comment: --file, stdin and the text itself all work."""
    assert path.read_text().startswith("--")
    by_file = pfflake("sql", lake, "--file", path, "--format", "csv")
    by_stdin = pfflake("sql", lake, "--file", "-", "--format", "csv", stdin=path.read_text())
    as_text = pfflake("sql", lake, path.read_text(), "--format", "csv")
    assert by_file.stdout == by_stdin.stdout == as_text.stdout
    assert by_file.stdout.splitlines()[0].startswith('"')  # a CSV header line


def test_fsck_exit_codes(lake, tmp_path):
    ok = pfflake("fsck", lake)
    assert "OK" in ok.stdout and ok.returncode == 0
    again = pfflake("ingest", EXAMPLE_RUN, LEGACY_RUN, "--lake", lake, "--workers", "1").stdout
    assert "no new data in 2 run(s); the lake is unchanged at version 1" in again
    broken = tmp_path / "broken"
    shutil.copytree(lake, broken)
    (broken / "frames" / "stray.parquet").write_bytes(b"x")
    left = pfflake("fsck", broken, check=False)
    assert left.returncode == 1 and "leftover uncommitted file" in left.stdout
    repaired = pfflake("fsck", broken, "--repair")
    assert "repaired" in repaired.stdout
    victim = next((broken / "files").glob("*.parquet"))
    victim.write_bytes(victim.read_bytes()[:-10])
    damaged = pfflake("fsck", broken, "--repair", check=False)
    assert damaged.returncode == 1 and "ERROR" in damaged.stdout


def test_fsck_sources_finds_a_changed_byte(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(EXAMPLE_RUN, run)
    lake = tmp_path / "lake"
    pfflake("ingest", run, "--lake", lake, "--workers", "1")
    clean = pfflake("fsck", lake, "--sources")
    assert "3 byte range" not in clean.stdout and "2 byte range(s)" in clean.stdout
    assert "1.97 MB" not in clean.stdout and clean.returncode == 0
    target = run / IMG16_FILE.name
    data = bytearray(target.read_bytes())
    mid = len(data) // 2 + 500  # a pixel byte in the middle: the fast check does not look there
    data[mid] ^= 0xFF
    target.write_bytes(bytes(data))
    fast = pfflake("ingest", run, "--lake", lake, "--workers", "1")
    assert "no new data" in fast.stdout  # first 64 KiB and the last frame are unchanged
    full = pfflake("fsck", lake, "--sources", check=False)
    assert full.returncode == 1
    assert f"source {target.resolve()} bytes 0-1015999" in full.stdout
    assert "content changed since it was ingested" in full.stdout


def test_lake_paths_are_checked(lake, tmp_path):
    typo = pfflake("sql", tmp_path / "lakee", "SELECT 1", check=False)
    assert typo.returncode == 1 and "no such directory" in typo.stderr
    for cmd in (["sql", tmp_path, "SELECT 1"], ["images", tmp_path, "--sql", "SELECT 1",
                                                "--out", tmp_path / "o"], ["fsck", tmp_path]):
        out = pfflake(*cmd, check=False)
        assert out.returncode == 1 and "no pfflake lake here" in out.stderr, (cmd, out.stderr)
    run = tmp_path / "run"
    shutil.copytree(LEGACY_RUN, run)
    into_run = pfflake("ingest", EXAMPLE_RUN, "--lake", run, check=False)
    assert into_run.returncode == 1 and "is a run directory" in into_run.stderr
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in LEGACY_RUN.iterdir())
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "todo.txt").write_text("x")
    out = pfflake("ingest", EXAMPLE_RUN, "--lake", foreign, check=False)
    assert out.returncode == 1 and "not empty and not a pfflake lake" in out.stderr
    empty_run = tmp_path / "empty_run"
    empty_run.mkdir()
    out = pfflake("ingest", empty_run, "--lake", tmp_path / "new", check=False)
    assert out.returncode == 1 and "no PFF data files" in out.stderr
    assert not (tmp_path / "new").exists()


def test_info_on_non_pff_and_tiny_files(tmp_path):
    rnd = tmp_path / IMG16_FILE.name.replace("module_1", "module_2")
    rnd.write_bytes(np.random.default_rng(0).bytes(5000))
    out = pfflake("info", rnd, check=False)
    assert out.returncode == 1 and "not a PFF file" in out.stdout + out.stderr
    assert "clock ok" not in out.stdout
    tiny = tmp_path / IMG16_FILE.name
    tiny.write_bytes(IMG16_FILE.read_bytes()[:300])
    out = pfflake("info", tmp_path, check=False)
    assert "holds no whole frame: 300 bytes" in out.stdout
    assert "not a PFF file" in out.stdout


def test_zarr_says_pass_overwrite(tmp_path):
    pfflake("zarr", LEGACY_RUN, tmp_path / "z", "--time-chunk", "64", "--shard-factor", "2")
    again = pfflake("zarr", LEGACY_RUN, tmp_path / "z", check=False)
    assert again.returncode == 1 and "pass --overwrite" in again.stderr
    assert "overwrite=True" not in again.stderr
    meta = json.loads(next((tmp_path / "z").glob("*.zarr")).joinpath(
        "images", "zarr.json").read_text())
    assert meta["chunk_grid"]["configuration"]["chunk_shape"][0] == 128  # 2 x 64 per shard


def test_ingest_layout_options(tmp_path):
    lake = tmp_path / "lake"
    pfflake("ingest", LEGACY_RUN, "--lake", lake, "--workers", "1", "--time-chunk", "32",
            "--image-shard", "128")
    meta = json.loads(next((lake / "zarr").glob("*/*.zarr")).joinpath(
        "images", "zarr.json").read_text())
    assert meta["chunk_grid"]["configuration"]["chunk_shape"][0] == 128
    inner = meta["codecs"][0]["configuration"]["chunk_shape"]
    assert inner[0] == 32


def test_warnings_once_as_one_line(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(LEGACY_RUN, run)
    pff = next(run.glob("*.pff"))
    if pff.name == "hk.pff":
        pff = next(p for p in run.glob("*.pff") if p.name != "hk.pff")
    with open(pff, "ab") as f:
        f.write(b'{ "quabo_num": 0 ')  # a cut-short last frame
    out = pfflake("ingest", run, "--lake", tmp_path / "lake", "--workers", "1")
    lines = [line for line in out.stderr.splitlines() if line]
    assert lines and all(line.startswith("pfflake: warning: ") for line in lines), lines
    assert len(lines) == len(set(lines))
    assert not any("warnings.warn" in line or "self._index" in line for line in lines)


def test_images_npy_and_png(lake, tmp_path):
    from tests.naive import naive_read

    truth = naive_read(next(EXAMPLE_RUN.glob("*img16*.pff"))).images
    out = tmp_path / "imgs"
    pfflake("images", lake, "--sql",
            "SELECT run, data_product, module, frame FROM frames WHERE module = 1 "
            "ORDER BY pixel_sum DESC LIMIT 3", "--out", out, "--png")
    stack = np.load(out / "images.npy")
    order = np.argsort(-truth.reshape(400, -1).astype(np.int64).sum(axis=1), kind="stable")
    sums = stack.reshape(3, -1).astype(np.int64).sum(axis=1)
    assert sums.tolist() == truth[order[:3]].reshape(3, -1).astype(np.int64).sum(axis=1).tolist()
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 3
    import matplotlib.image as mpimg

    pixels = mpimg.imread(pngs[0])
    assert pixels.shape[0] > 300 and pixels.shape[1] > 300  # a figure, not a 32x32 dot
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 50  # colour bar


def test_images_empty_result_keeps_shape_and_dtype(lake, tmp_path):
    out = tmp_path / "none.npy"
    pfflake("images", lake, "--sql", "SELECT run, data_product, module, frame FROM frames "
            "WHERE data_product = 'img16' AND pixel_max < 0", "--out", out,
            "--data-product", "img16")
    empty = np.load(out)
    assert empty.shape == (0, 32, 32) and empty.dtype == np.uint16


def test_strict_ingest_refuses_what_info_and_lenient_call_damaged(tmp_path):
    """A key name corrupted in frame 5 (not among the frames a strict open samples)."""
    run = tmp_path / "run"
    shutil.copytree(EXAMPLE_RUN, run)
    target = run / IMG16_FILE.name
    data = bytearray(target.read_bytes())
    at = data.index(b'"pkt_num"', 5 * 2540)
    data[at : at + 9] = b'"pkt_nuX"'
    target.write_bytes(bytes(data))
    info = pfflake("info", run).stdout
    assert "1 damaged stretch(es), first at byte 12700" in info
    strict = pfflake("ingest", run, "--lake", tmp_path / "strict", "--workers", "1",
                     check=False)
    assert strict.returncode == 1 and "frame 5" in strict.stderr, strict.stderr
    lenient = pfflake("ingest", run, "--lake", tmp_path / "lenient", "--workers", "1",
                      "--lenient")
    assert "1,899 frames" in lenient.stdout
