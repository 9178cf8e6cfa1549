"""The simulator: its files read back (naive reader) to exactly the truth it reports."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from datetime import UTC, datetime

import numpy as np
import pytest

from pfflake.paths import parse_pff_name, parse_run_name
from pfflake.simulate import (
    QUALITY_DESYNC,
    QUALITY_NO_WR,
    QUALITY_OK,
    QUALITY_QUABO_MISSING,
    BrightEvent,
    SimulatedStream,
    make_big_stream,
    simulate_run,
    write_stream,
)
from pfflake.writer import fixed_layout
from tests.naive import naive_flat, naive_hk, naive_read, naive_unix_t_ns

START = datetime(2024, 7, 1, 5, 0, 0, tzinfo=UTC)
DESYNC = [5, 700, 1999]
MISSING = {3: [0], 10: [1, 2], 11: [0, 1, 2, 3], 12: [3], 1500: [0, 1]}


def read_stream(stream: SimulatedStream):
    """Naive parse of every file of a stream: flat headers, images, (ns, flags), tail bytes."""
    flats, images, tails = [], [], []
    for path in stream.files:
        truth = naive_read(path)
        flats += [naive_flat(h) for h in truth.headers]
        images.append(truth.images)
        tails.append(truth.truncated_tail_bytes)
    times = [naive_unix_t_ns(f, stream.data_product) for f in flats]
    ns = np.array([t for t, _ in times], dtype=np.int64)
    flags = np.array([f for _, f in times], dtype=np.uint8)
    return flats, np.concatenate(images), ns, flags, tails


def clock_d(flat: dict, prefix: str = "") -> int:
    return (flat[prefix + "tv_sec"] - flat[prefix + "pkt_tai"] + 37) % 1024


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return simulate_run(
        tmp_path_factory.mktemp("sim"),
        products=("img16", "img8", "ph1024", "ph256"),
        modules=(1, 254),
        n_frames=2000,
        start=START,
        desync_frames=DESYNC,
        missing_quabo_frames=MISSING,
        truncate_tail_bytes=300,
        bright_events=[BrightEvent(50), BrightEvent(60, modules=(254,), products=("img16",))],
    )


def test_run_layout_and_names(run):
    name = parse_run_name(run.path)
    assert (name.observatory, name.start, name.run_type) == ("Lick", START, "sci-obs")
    assert set(run.streams) == {
        f"dp_{p}.bpp_{b}.module_{m}"
        for p, b in (("img16", 2), ("img8", 1), ("ph1024", 2), ("ph256", 2))
        for m in (1, 254)
    }
    for key, stream in run.streams.items():
        names = [parse_pff_name(p) for p in stream.files]
        assert [n.seqno for n in names] == [0, 1, 2]  # default: several seqno files
        assert {n.stream for n in names} == {key}
        assert all(p.parent == run.path for p in stream.files)


def test_timestamps_and_flags_match_naive(run):
    for stream in run.streams.values():
        flats, _, ns, flags, tails = read_stream(stream)
        assert len(flats) == stream.n_frames == 2000
        np.testing.assert_array_equal(ns, stream.expected_unix_t_ns)
        np.testing.assert_array_equal(flags, stream.expected_flags)
        assert tails == [0, 0, 300]


def test_expected_equals_physical_truth_except_where_rule_cannot_know(run):
    stream = run.stream("img16", 1)
    differs = np.flatnonzero(stream.expected_unix_t_ns != stream.true_unix_t_ns)
    assert set(differs) == {*DESYNC, 11}  # desync frames and the frame with no quabo at all
    assert stream.expected_unix_t_ns[11] == 0
    step = np.diff(stream.true_unix_t_ns)
    assert step.min() > 990_000 and step.max() < 1_010_000  # 1 kHz grid, a few ns of jitter


def test_expected_flags(run):
    img = run.stream("img16", 254).expected_flags
    assert set(np.flatnonzero(img & QUALITY_DESYNC)) == set(DESYNC)
    assert set(np.flatnonzero(img & QUALITY_QUABO_MISSING)) == set(MISSING)
    assert img[11] == QUALITY_NO_WR | QUALITY_QUABO_MISSING  # nothing arrived: all zero
    assert Counter(img.tolist())[QUALITY_OK] == 2000 - len(DESYNC) - len(MISSING)
    ph = run.stream("ph256", 1).expected_flags
    assert set(np.flatnonzero(ph)) == set(DESYNC)  # no missing quabos in single-packet frames


def test_missing_quabo_fields_are_zero_and_first_present_is_used(run):
    flats, *_ = read_stream(run.stream("img16", 1))
    for frame, quabos in MISSING.items():
        for q in range(4):
            values = [flats[frame][f"quabo_{q}.{f}"] for f in ("pkt_num", "tv_sec", "pkt_nsec")]
            assert (values == [0, 0, 0]) == (q in quabos)
    truth = run.stream("img16", 1).true_unix_t_ns
    frame = 3  # quabo_0 missing: the time is quabo_1's (a few ns of jitter apart)
    assert truth[frame] % 10**9 == flats[frame]["quabo_1.pkt_nsec"]


def test_second_boundary_cases_occur(run):
    seen = Counter()
    for key, stream in run.streams.items():
        flats, *_ = read_stream(stream)
        prefix = "" if "ph256" in key else "quabo_0."
        seen.update(clock_d(f, prefix) for f in flats if f[prefix + "tv_sec"])
    assert seen[0] > 0 and seen[1] > 0 and seen[1023] > 0
    assert all(d in (0, 1, 1023) or 2 <= d <= 10 or 1014 <= d <= 1022 for d in seen)


def test_packet_counters_run_per_quabo(run):
    flats, *_ = read_stream(run.stream("img16", 1))
    for q in range(4):
        nums = np.array([f[f"quabo_{q}.pkt_num"] for f in flats])
        ok = np.array([f[f"quabo_{q}.tv_sec"] != 0 for f in flats])
        steps = np.diff(np.flatnonzero(ok)), np.diff(nums[ok]) % 65536
        np.testing.assert_array_equal(steps[0], steps[1])
    flats, *_ = read_stream(run.stream("ph256", 254))
    by_quabo: dict[int, list[int]] = {}
    for f in flats:
        by_quabo.setdefault(f["quabo_num"], []).append(f["pkt_num"])
    assert set(by_quabo) == {0, 1, 2, 3}
    for nums in by_quabo.values():
        assert set(np.diff(nums) % 65536) == {1}


def test_images_levels_and_bright_events(run):
    for key, stream in run.streams.items():
        _, images, *_ = read_stream(stream)
        assert images.dtype == stream.product.dtype
        med = float(np.median(images))
        expected_level = {"img16": 40, "img8": 6, "ph1024": 40, "ph256": 40}[stream.data_product]
        assert abs(med - expected_level) < 0.25 * expected_level + 2, (key, med)
        if stream.data_product.startswith("img"):
            peaks = images.reshape(len(images), -1).max(axis=1)
            quiet = np.delete(peaks, stream.event_frames)
            assert peaks[stream.event_frames].min() > 2 * quiet.max(), key
    assert list(run.stream("img16", 254).event_frames) == [50, 60]
    assert list(run.stream("img16", 1).event_frames) == [50]
    assert list(run.stream("img8", 254).event_frames) == [50]
    coincident = {s.expected_unix_t_ns[50] for s in run.streams.values()}
    assert max(coincident) - min(coincident) < 10  # same true time across modules and products


def test_configs_hk_and_sentinels(run):
    for stem in ("obs_config", "data_config", "daq_config", "sw_info", "quabo_uids"):
        json.loads((run.path / f"{stem}.json").read_text())
    for ip in ("192.168.0.4", "192.168.3.251"):  # modules 1 and 254
        assert (run.path / f"quabo_config_{ip}.json").exists()
    obs_text = (run.path / "obs_config.json").read_text()
    assert "http://admin:s3cr3t-sim@" in obs_text and '"password"' in obs_text
    assert all(secret in obs_text for secret in run.secrets)
    data_config = json.loads((run.path / "data_config.json").read_text())
    assert data_config["run_type"] == "sci-obs"
    assert data_config["image"]["integration_time_usec"] == 1000
    for sentinel in ("collect_complete", "run_complete", "recording_ended"):
        assert (run.path / sentinel).read_text().startswith("2024-07-01T05:00:")
    records = naive_hk(run.hk_path)
    assert records == run.hk_records
    devices = {device for device, _ in records}
    assert {"WPS", "WRSWITCH", "QUABO_4", "QUABO_1019"} <= devices
    assert all(isinstance(v, str) for _, fields in records for v in fields.values())


def test_no_wr_run(tmp_path):
    run = simulate_run(tmp_path, products=("img16", "ph256"), n_frames=1500, no_wr=True, hk=False)
    for stream in run.streams.values():
        flats, _, ns, flags, _ = read_stream(stream)
        assert all(f.get("pkt_tai", f.get("quabo_0.pkt_tai")) == 0 for f in flats)
        np.testing.assert_array_equal(ns, stream.true_unix_t_ns)
        assert set(flags.tolist()) == {QUALITY_NO_WR}
    assert not (run.path / "hk.pff").exists()


def test_compact_run_reads_back(tmp_path):
    run = simulate_run(
        tmp_path,
        products=("ph1024", "ph256"),
        n_frames=300,
        frame_rate_hz=100,
        fixed_width=False,
        desync_frames=[7],
        truncate_tail_bytes=40,
        configs=False,
        name_separator="-",
    )
    for stream in run.streams.values():
        assert "T05-00-00Z" in stream.files[0].name
        _, _, ns, flags, tails = read_stream(stream)
        np.testing.assert_array_equal(ns, stream.expected_unix_t_ns)
        np.testing.assert_array_equal(flags, stream.expected_flags)
        assert tails[-1] == 40
        offsets = naive_read(stream.files[0]).offsets
        assert len({b - a for a, b in itertools.pairwise(offsets)}) > 1  # unpadded JSON
    assert not (run.path / "obs_config.json").exists()


def test_write_stream_small_chunks_and_one_file(tmp_path):
    stream = write_stream(
        tmp_path,
        "ph256",
        7,
        n_frames=1000,
        chunk_frames=33,
        desync_frames=[40],
        bright_events=[3, 500],
        frame_rate_hz=250,
    )
    assert len(stream.files) == 1
    assert stream.files[0].stat().st_size == 1000 * fixed_layout("ph256").frame_bytes
    flats, _, ns, flags, _ = read_stream(stream)
    np.testing.assert_array_equal(ns, stream.expected_unix_t_ns)
    np.testing.assert_array_equal(flags, stream.expected_flags)
    assert list(stream.event_frames) == [3, 500]
    by_quabo: dict[int, list[int]] = {}
    for f in flats:
        by_quabo.setdefault(f["quabo_num"], []).append(f["pkt_num"])
    assert all(set(np.diff(nums) % 65536) == {1} for nums in by_quabo.values())


def test_bad_arguments_raise(tmp_path):
    with pytest.raises(ValueError, match="module products only"):
        write_stream(tmp_path, "ph256", 1, 10, missing_quabo_frames=[1])
    with pytest.raises(ValueError, match="n_frames must be >= 1"):
        write_stream(tmp_path, "img16", 1, 0)
    with pytest.raises(ValueError, match=r"keep_bytes must be in 1\.\.2539"):
        write_stream(tmp_path, "img16", 2, 10, truncate_tail_bytes=2540)
    simulate_run(tmp_path, n_frames=10, hk=False, configs=False)
    with pytest.raises(FileExistsError):
        simulate_run(tmp_path, n_frames=10, hk=False, configs=False)


def test_seed_reproducible(tmp_path):
    a = write_stream(tmp_path / "a", "img8", 1, 200, seed=3)
    b = write_stream(tmp_path / "b", "img8", 1, 200, seed=3)
    c = write_stream(tmp_path / "c", "img8", 1, 200, seed=4)
    assert a.files[0].read_bytes() == b.files[0].read_bytes() != c.files[0].read_bytes()


@pytest.mark.slow
def test_big_stream_gigabyte(tmp_path):
    stream = make_big_stream(tmp_path, "img16", 1.0)
    frame = fixed_layout("img16").frame_bytes
    assert stream.nbytes == stream.n_frames * frame > 0.999e9
    with open(stream.files[0], "rb") as f:
        f.seek((stream.n_frames - 1) * frame)
        last = f.read()
    assert len(last) == frame and last.startswith(b'{\n   "quabo_0": { "pkt_num": ')
    assert np.diff(stream.expected_unix_t_ns).min() > 0
    # a WR second whose low 10 TAI bits are 0 reads as "no WR" (once every 1024 s)
    flagged = stream.expected_flags != 0
    assert set(stream.expected_flags[flagged].tolist()) <= {QUALITY_NO_WR}
    tai_low = (stream.expected_unix_t_ns // 10**9 + 37) % 1024
    np.testing.assert_array_equal(flagged, tai_low == 0)


def test_simulated_configs_validate(tmp_path):
    """The simulator's configs pass the same models real configs do (no skipped config)."""
    import logging

    from pfflake.models import load_configs

    run = simulate_run(tmp_path, products=("img16", "ph256"), n_frames=20)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("pfflake").addHandler(handler)
    try:
        configs = load_configs(run.path)
    finally:
        logging.getLogger("pfflake").removeHandler(handler)
    assert {"data_config", "obs_config", "daq_config"} <= set(configs)
    assert not [r for r in records if r.levelno >= logging.WARNING]


def test_the_simulate_package_keeps_every_old_name():
    """pfflake.simulate was one module until issue 13; what it showed is still there, the
    same objects (tests import QUALITY_* from it, docs/SCALING.md fixed_layout)."""
    import importlib

    import pfflake.simulate as sim
    from pfflake import paths, products, timestamps, writer

    old = {
        "DEFAULT_START": "truth", "SIM_SECRETS": "truth", "BrightEvent": "truth",
        "SimulatedStream": "truth", "SimulatedRun": "truth", "write_stream": "write",
        "simulate_run": "write", "make_big_stream": "write",
    }
    for name, home in old.items():
        defined = importlib.import_module(f"pfflake.simulate.{home}")
        assert getattr(sim, name) is getattr(defined, name), name
    for module, names in [
        (paths, ["HK_FILE_NAME", "format_pff_name", "format_run_name"]),
        (products, ["DataProduct", "get_product"]),
        (timestamps, ["NS_PER_S", "QUALITY_DESYNC", "QUALITY_NO_WR", "QUALITY_OK",
                      "QUALITY_QUABO_MISSING"]),
        (writer, ["PFFWriter", "fixed_layout", "write_hk"]),
    ]:
        for name in names:
            assert getattr(sim, name) is getattr(module, name), name
    assert callable(sim.main)


def test_python_dash_m_simulate_writes_a_stream(tmp_path):
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "pfflake.simulate", str(tmp_path), "--size-gb", "0.0001"],
        capture_output=True, text=True, check=True, timeout=120,
    )
    files = list(tmp_path.glob("*.pff"))
    assert len(files) == 1 and files[0].stat().st_size > 90_000
    assert str(files[0]) in out.stdout and "frames" in out.stdout
