"""The sky simulator (pfflake.simulate_sky): its files read back as its truth says, through
the naive parser and through a lake."""

import numpy as np
import pytest

from pfflake.lake import Lake
from pfflake.simulate_sky import ModuleClock, simulate_sky
from tests.naive import naive_flat, naive_hk, naive_host_t_ns, naive_read, naive_unix_t_ns


@pytest.mark.parametrize("product", ["ph256", "ph1024"])
def test_files_match_the_truth(tmp_path, product):
    truth = simulate_sky(tmp_path, modules=(1, 2), duration_s=120, data_product=product,
                         packet_loss_fraction=0.05, wr_out_of_sync=[2],
                         not_tracking=[(1, 30, 20)], seed=7)
    for m in (1, 2):
        files = sorted(truth.path.glob(f"*dp_{product}*module_{m}.*.pff"))
        headers = [naive_flat(h) for f in files for h in naive_read(f).headers]
        f = truth.frames[m]
        assert len(headers) == len(f["true_ns"]) > 500
        host = [naive_host_t_ns(h, product) for h in headers]
        assert [t for t, _ in host] == f["host_ns"].tolist()
        assert [lost for _, lost in host] == f["packet_loss"].tolist()
        wr = [naive_unix_t_ns(h, product) for h in headers]
        assert [t for t, _ in wr] == f["wr_ns"].tolist()
        flags = np.array([q for _, q in wr])
        if m == 2:  # WR out of sync: flagged, except in seconds whose pkt_tai reads 0 (no WR)
            assert ((flags & 3) != 0).all() and ((flags & 2) != 0).mean() > 0.98
        else:
            assert not (flags & 2).any()
        # the host clock: true time + the module's offset and drift + a latency in range
        clock = truth.clocks[m]
        lag = f["host_ns"] - f["true_ns"] - clock.host_offset(f["true_ns"], truth.t0_ns)
        assert lag.min() >= clock.latency_ns[0] - 1000 and lag.max() <= clock.latency_ns[1]
    seen = truth.seen.sum()
    assert sum(int((f["shower"] >= 0).sum()) for f in truth.frames.values()) == seen
    mounts = [(d, r) for d, r in naive_hk(truth.path / "hk.pff") if d == "MOUNT_1"]
    off = [r for _, r in mounts if r["tracking"] == "False"]
    assert 1 <= len(off) <= 3


def test_lake_reads_the_truth_and_expected_offsets(tmp_path):
    clocks = {1: ModuleClock(offset_ns=-2_000_000, drift_ppb=100),
              2: ModuleClock(offset_ns=5_000_000, drift_ppb=-200, latency_ns=(0, 400_000))}
    truth = simulate_sky(tmp_path / "runs", modules=(1, 2), duration_s=60, clocks=clocks)
    lake = Lake(tmp_path / "lake")
    lake.ingest([truth.path], workers=1)
    for m in (1, 2):
        got = lake.sql(f"SELECT host_unix_t_ns, unix_t_ns, packet_loss FROM frames "
                       f"WHERE module = {m} ORDER BY frame").fetchnumpy()
        np.testing.assert_array_equal(got["host_unix_t_ns"], truth.frames[m]["host_ns"])
        np.testing.assert_array_equal(got["unix_t_ns"], truth.frames[m]["wr_ns"])
    t = truth.t0_ns + 30 * 10**9
    want = (5_000_000 + 30 * -200) - (-2_000_000 + 30 * 100) + 200_000 - 700_000
    assert int(truth.expected_offset(2, 1, t)) == want
    with pytest.raises(ValueError, match="pulse-height"):
        simulate_sky(tmp_path / "x", data_product="img16")
