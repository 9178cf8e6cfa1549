"""Every query of ``sql/examples`` runs on a sample lake and gives the answer numpy gives.

Truth comes from the naive parse of the simulated PFF files and hk.pff and
from the simulator's injected bright events (see ``tests/test_query.py`` for
the sample lake). Each example file needs a checker here: a new example
without one fails.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from pfflake import query as Q
from pfflake.lake import Lake
from tests.test_query import DROPPED, EVENTS, build_sample, naive_intervals

EXAMPLES = sorted(Q.examples_dir().glob("*.sql"))


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    s = build_sample(tmp_path_factory.mktemp("examples"))
    s.lake.compute_pedestals(workers=1)  # for dl1_width_size
    s.lake.compute_dl1(where="pixel_max > 1000", workers=1)
    return s


def run_example(lake: Lake, name: str) -> pl.DataFrame:
    return lake.sql((Q.examples_dir() / f"{name}.sql").read_text()).pl()


def check_brightest_events(sample, got):
    rows = []
    for (run, product, module), s in sample.streams.items():
        if product not in ("img16", "img8"):
            continue
        flat = s.images.reshape(len(s.images), -1)
        for frame in range(len(flat)):
            peak = int(flat[frame].max())
            rows.append(
                (
                    -peak,
                    int(s.unix_t_ns[frame]),
                    module,
                    frame,
                    run,
                    product,
                    int(np.argmax(flat[frame])),
                )
            )
    rows.sort()
    expected = [
        (run, product, module, frame, -neg, arg // 32, arg % 32)
        for neg, _, module, frame, run, product, arg in rows[:20]
    ]
    assert (
        got.select(
            "run", "data_product", "module", "frame", "pixel_max", "peak_row", "peak_col"
        ).rows()
        == expected
    )
    assert got["pixel_max"][0] > 1000


def check_coincidences(sample, got):
    run = sample.runs[0]
    expected = []
    for a, b in ((1, 2), (1, 3), (2, 3)):
        for event in EVENTS:
            if event.applies_to("img16", a) and event.applies_to("img16", b):
                ta = int(run.stream("img16", a).expected_unix_t_ns[event.frame])
                tb = int(run.stream("img16", b).expected_unix_t_ns[event.frame])
                expected.append((a, b, ta, tb))
    assert sorted(
        got.select("module_a", "module_b", "unix_t_ns_a", "unix_t_ns_b").rows()
    ) == sorted(expected)
    assert (got["dt_ns"].abs() <= 1000).all()


def check_hk_trends(sample, got):
    expected = {}
    for run, records in sample.hk.items():
        for t, device, fields in records:
            if device.startswith("QUABO_") and "TEMP1" in fields:
                module = int(fields["BOARDLOC"]) >> 2
                key = (run, module, t // 3_600_000_000_000 * 3_600_000_000_000)
                expected.setdefault(key, []).append(float(fields["TEMP1"]))
    assert got.height == len(expected)
    for row in got.iter_rows(named=True):
        hour_ns = round(row["hour"].timestamp() * 1e9)
        values = np.array(expected[(row["run"], row["module"], hour_ns)])
        assert row["readings"] == len(values)
        assert row["mean_det_temp"] == pytest.approx(values.mean())
        assert (row["min_det_temp"], row["max_det_temp"]) == (values.min(), values.max())


def check_run_quality(sample, got):
    assert got.height == len(sample.streams)
    for row in got.iter_rows(named=True):
        s = sample.streams[(row["run"], row["data_product"], row["module"])]
        assert row["frames"] == len(s.flags)
        assert row["ok_frames"] == int((s.flags == 0).sum())
        assert row["ok_percent"] == pytest.approx(100 * (s.flags == 0).mean(), abs=1e-3)
        assert row["no_wr_frames"] == int((s.flags & 1 != 0).sum())
        assert row["clock_desync_frames"] == int((s.flags & 2 != 0).sum())
        assert row["quabo_missing_frames"] == int((s.flags & 4 != 0).sum())
        assert row["files"] == len(s.file_frames)
        assert row["truncated_files"] == sum(1 for t in s.tail_bytes if t)
        trusted = s.unix_t_ns[(s.flags & 2) == 0]
        assert row["duration_s"] == pytest.approx((trusted.max() - trusted.min()) / 1e9)


def check_clock_desync(sample, got):
    expected = []
    for (run, product, module), s in sample.streams.items():
        frames = np.flatnonzero(s.flags & 2)
        for episode in np.split(frames, np.flatnonzero(np.diff(frames) != 1) + 1):
            if len(episode):
                times = s.unix_t_ns[episode]
                expected.append(
                    (
                        run,
                        product,
                        module,
                        int(episode[0]),
                        int(episode[-1]),
                        len(episode),
                        int(times.min()),
                        int(times.max()),
                    )
                )
    assert sorted(got.rows()) == sorted(expected)
    assert {(r[3], r[5]) for r in expected} == {(3, 1), (400, 3)}


def check_dropped_frames(sample, got):
    expected = []
    for (run, product, module), s in sample.streams.items():
        if product in ("ph256", "ph1024"):
            continue  # triggered: no nominal period, so no "dropped frames"
        dt = naive_intervals(s)
        median = np.median(dt)
        long = dt[dt > 1.5 * median]
        if len(long):
            expected.append(
                (run, product, module, len(long), int(np.sum(np.round(long / median) - 1)))
            )
    assert got.select("run", "data_product", "module", "gaps", "dropped_frames_est").rows() == (
        expected
    )
    product, module, _, drop = DROPPED
    assert expected == [(sample.runs[0].path.name, product, module, 1, len(drop))]


def check_dl1_width_size(sample, got):
    dl1 = sample.lake.scan("dl1").collect()
    want = dl1.filter((pl.col("size") > 1000) & (pl.col("width") < 0.5)).sort(
        "size", descending=True).head(50)
    key = ["run", "data_product", "module", "frame"]
    assert got.select(key).rows() == want.select(key).rows()
    assert np.allclose(got["size"].to_numpy(), want["size"].to_numpy())
    # every hit is an injected bright event (a Gaussian blob: narrow, thousands of ADC)
    frames = sample.lake.scan("frames").collect().join(got.select(key), on=key)
    assert frames.height == got.height and (frames["pixel_max"] > 1000).all()


CHECKS = {
    "dl1_width_size": check_dl1_width_size,
    "brightest_events": check_brightest_events,
    "coincidences": check_coincidences,
    "hk_trends": check_hk_trends,
    "run_quality": check_run_quality,
    "clock_desync": check_clock_desync,
    "dropped_frames": check_dropped_frames,
}


def test_every_example_has_a_check():
    assert {p.stem for p in EXAMPLES} == set(CHECKS)


@pytest.mark.parametrize("name", [p.stem for p in EXAMPLES])
def test_example_answers_equal_truth(sample, name):
    text = (Q.examples_dir() / f"{name}.sql").read_text()
    assert text.startswith("--"), f"{name}.sql needs a comment on top saying what it answers"
    got = run_example(sample.lake, name)
    assert got.height > 0
    CHECKS[name](sample, got)


@pytest.mark.parametrize("name", [p.stem for p in EXAMPLES])
def test_example_runs_on_an_empty_lake(tmp_path, name):
    assert run_example(Lake(tmp_path / "empty", create=True), name).height == 0
