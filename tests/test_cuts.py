"""Event-selection cuts (pfflake.cuts) against simulator truth, plain-Python versions of each
rule, and the real samples."""

import itertools
import json
import statistics
import warnings

import numpy as np
import pyarrow as pa
import pytest

from pfflake import PFFWarning
from pfflake.cuts import (
    CUT_NAMES,
    Y2000_NS,
    Cuts,
    invalid_time_cut,
    not_tracking_intervals,
    rate_spike_cut,
    select,
)
from pfflake.lake import Lake
from pfflake.simulate import simulate_run
from pfflake.simulate_sky import simulate_sky
from tests.conftest import EXAMPLE_RUN, LEGACY_RUN

S = 1_000_000_000


@pytest.fixture(scope="module")
def sky(tmp_path_factory):
    root = tmp_path_factory.mktemp("sky")
    truth = simulate_sky(root / "runs", modules=(1, 2, 3, 4), duration_s=900,
                         packet_loss_fraction=0.02, spikes=[(2, 100, 20, 100.0)],
                         not_tracking=[(4, 300, 40)], wr_out_of_sync=[3], seed=21)
    lake = Lake(root / "lake")
    lake.ingest([truth.path], workers=1)
    return truth, lake


def naive_rate_spike(t_ns, spike_bin_ns=30 * S, factor=3.0):
    """The rule in plain Python: bins between first and last frame, empty ones included."""
    bins = [t // spike_bin_ns for t in t_ns]
    counts = {b: 0 for b in range(min(bins), max(bins) + 1)}
    for b in bins:
        counts[b] += 1
    median = statistics.median(counts.values())
    return [median > 0 and counts[b] > factor * median for b in bins]


def naive_not_tracking(t_ns, hk_t, tracking, pad_after_ns=60 * S):
    """Per not-tracking sample: [previous sample, next sample + pad) in plain Python."""
    hk = sorted(zip(hk_t, tracking, strict=True))
    cadence = statistics.median(b[0] - a[0] for a, b in itertools.pairwise(hk))
    intervals = []
    for i, (t, ok) in enumerate(hk):
        if not ok:
            lo = hk[i - 1][0] if i > 0 else t - cadence
            hi = hk[i + 1][0] if i + 1 < len(hk) else t + cadence
            intervals.append((lo, hi + pad_after_ns))
    return [any(lo <= t <= hi for lo, hi in intervals) for t in t_ns]


def frames_of(sel, module):
    t = sel.table.filter(pa.compute.equal(sel.table.column("module"), module))
    return t.sort_by("frame")


def test_packet_loss_and_invalid_time_follow_the_truth(sky):
    truth, lake = sky
    sel = lake.select(Cuts(rate_spike=False, not_tracking=False))
    for m in truth.modules:
        rows = frames_of(sel, m)
        lost = rows.column("cut_packet_loss").to_numpy(zero_copy_only=False)
        np.testing.assert_array_equal(lost, truth.frames[m]["packet_loss"])
        assert 0 < lost.sum() < 0.05 * len(lost)
        assert not rows.column("cut_invalid_time").to_numpy(zero_copy_only=False).any()
    # WR time: module 3's White Rabbit is out of sync, every frame is unusable
    wr = lake.select(Cuts(rate_spike=False, not_tracking=False), time_base="wr")
    bad = {m: frames_of(wr, m).column("cut_invalid_time").to_numpy(zero_copy_only=False)
           for m in truth.modules}
    assert bad[3].mean() > 0.99 and not any(bad[m].any() for m in (1, 2, 4))
    # the rest are frames whose pkt_tai happens to be 0, read as "no WR" (pkt_nsec + host s)
    q = frames_of(wr, 3).column("time_quality").to_numpy()
    np.testing.assert_array_equal(bad[3], (q & 2) == 2)
    assert (q[~bad[3]] == 1).all()


def test_invalid_time_without_any_quabo(tmp_path):
    """A module frame whose quabos all sent nothing has host time 0: cut."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        sim = simulate_run(tmp_path / "runs", products=("img16",), modules=(1,), n_frames=50,
                           missing_quabo_frames={7: [0, 1, 2, 3], 9: [1]})
    lake = Lake(tmp_path / "lake")
    lake.ingest([sim.path], workers=1)
    sel = lake.select(Cuts(rate_spike=False, not_tracking=False))
    rows = sel.table.sort_by("frame").to_pydict()
    assert rows["host_unix_t_ns"][7] == 0
    assert [i for i, c in enumerate(rows["cut_invalid_time"]) if c] == [7]
    assert [i for i, c in enumerate(rows["cut_packet_loss"]) if c] == [7, 9]
    t = np.array([0, Y2000_NS - 1, Y2000_NS], dtype=np.int64)
    assert invalid_time_cut(t, np.zeros(3, np.uint8), "host").tolist() == [True, True, False]
    assert invalid_time_cut(t, np.array([2, 2, 2]), "wr").tolist() == [True, True, True]


def test_rate_spike_matches_the_rule_and_the_truth(sky):
    truth, lake = sky
    sel = lake.select(Cuts(packet_loss=False, not_tracking=False))
    for m in truth.modules:
        rows = frames_of(sel, m)
        t = rows.column("host_unix_t_ns").to_pylist()
        got = rows.column("cut_rate_spike").to_numpy(zero_copy_only=False)
        assert got.tolist() == naive_rate_spike(t)
        if m == 2:
            assert got[truth.frames[2]["spike"]].all()  # every injected spike frame
            # exactly the 30 s bin holding the 20 s spike (100..120 s into the run)
            th = np.asarray(t)
            bin_lo = (truth.t0_ns + 100 * S) // (30 * S) * (30 * S)
            np.testing.assert_array_equal(got, (th >= bin_lo) & (th < bin_lo + 30 * S))
        else:
            assert not got.any()
    # absolute threshold, and the eligibility of frames
    t = np.array([0, 1, 2, 3, 40 * S, 41 * S, 70 * S], dtype=np.int64)
    s = np.zeros(len(t), np.int64)
    assert rate_spike_cut(s, t, spike_factor=None, spike_max_hz=3 / 30).tolist() == [
        True] * 4 + [False] * 3
    eligible = np.array([False, False, False, True, True, True, True])
    assert not rate_spike_cut(s, t, spike_factor=None, spike_max_hz=3 / 30,
                              eligible=eligible).any()


def test_not_tracking_matches_the_rule_and_the_truth(sky):
    truth, lake = sky
    sel = lake.select(Cuts(packet_loss=False, rate_spike=False))
    hk = lake.sql("SELECT unix_t_ns, text FROM hk WHERE device = 'MOUNT_4' "
                  "AND field = 'tracking' ORDER BY unix_t_ns").fetchnumpy()
    tracking = [x == "True" for x in hk["text"]]
    rows = frames_of(sel, 4)
    t = rows.column("host_unix_t_ns").to_numpy()
    got = rows.column("cut_not_tracking").to_numpy(zero_copy_only=False)
    assert got.tolist() == naive_not_tracking(t.tolist(), hk["unix_t_ns"].tolist(), tracking)
    (_, lo, hi), = truth.not_tracking
    assert got[(t >= lo) & (t < hi)].all()
    assert not got[t < lo - truth.hk_cadence_ns].any()
    assert not got[t > hi + truth.hk_cadence_ns + 60 * S].any()
    assert got[(t > hi) & (t < hi + 60 * S)].all()  # 60 s after
    for m in (1, 2, 3):
        assert not frames_of(sel, m).column("cut_not_tracking").to_numpy(
            zero_copy_only=False).any()
    starts, stops = not_tracking_intervals(np.array([0, 9, 18, 27]) * S,
                                           np.array([True, False, False, True]))
    assert starts.tolist() == [0] and stops.tolist() == [(27 + 60) * S + 1]


def test_summary_and_recorded_parameters(sky):
    truth, lake = sky
    cuts = Cuts(spike_factor=4.0)
    sel = lake.select(cuts)
    summary = {r["module"]: r for r in sel.summary().to_pylist()}
    for m in truth.modules:
        rows = frames_of(sel, m)
        for c in CUT_NAMES:
            assert summary[m][c] == rows.column(f"cut_{c}").to_numpy(zero_copy_only=False).sum()
        assert summary[m]["frames"] == len(truth.frames[m]["true_ns"])
        assert summary[m]["kept"] == rows.column("keep").to_numpy(zero_copy_only=False).sum()
    assert summary[4]["not_tracking"] > 0 and summary[2]["rate_spike"] > 0
    params = json.loads(sel.table.schema.metadata[b"pfflake.cuts"])
    assert params == sel.parameters
    assert params["spike_factor"] == 4.0 and params["time_base"] == "host"
    assert params["source_version"] == lake.version and params["pad_after_ns"] == 60 * S
    kept = sel.kept()
    assert kept.num_rows == sum(r["kept"] for r in summary.values())
    # cuts feed the chain: coincidences of kept frames only
    groups = lake.coincidence_groups([1, 2, 3, 4], 1_000, time_base="wr", cuts=cuts)
    keys = set(zip(kept.column("module").to_pylist(), kept.column("frame").to_pylist(),
                   strict=True))
    assert groups.num_rows > 0
    assert all(k in keys for k in zip(groups.column("module").to_pylist(),
                                       groups.column("frame").to_pylist(), strict=True))


def test_real_samples(tmp_path):
    lake = Lake(tmp_path / "lake")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        lake.ingest([EXAMPLE_RUN, LEGACY_RUN], workers=1)
    sel = lake.select()
    rows = sel.table
    assert rows.num_rows == 2107
    assert not rows.column("cut_packet_loss").to_numpy(zero_copy_only=False).any()
    assert any("no mount housekeeping" in n for n in sel.notes)
    for run, product, module in {(r["run"], r["data_product"], r["module"])
                                 for r in rows.select(["run", "data_product", "module"])
                                 .to_pylist()}:
        pc = pa.compute
        part = rows.filter(pc.and_(pc.and_(pc.equal(rows.column("run"), run),
                                           pc.equal(rows.column("data_product"), product)),
                                   pc.equal(rows.column("module"), module)))
        t = part.column("host_unix_t_ns").to_pylist()
        assert part.column("cut_rate_spike").to_pylist() == naive_rate_spike(t), (run, product)
    # the legacy run's WR clock is out of sync on every frame: unusable on the WR time base
    wr = lake.select(time_base="wr").summary().to_pylist()
    legacy = next(r for r in wr if r["run"] == "legacy-run")
    assert legacy["invalid_time"] == legacy["frames"] == 207
    with pytest.raises(ValueError, match="time_base"):
        select(rows, time_base="utc")
