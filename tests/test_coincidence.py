"""k-of-N coincidence groups (pfflake.coincidence) against brute force, simulator truth and
the Poisson prediction of accidentals; the lake and CLI paths on simulated and real runs."""

import os
import shutil
import subprocess
import sys
from itertools import combinations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pfflake.coincidence import (
    GROUPS_SCHEMA,
    brute_force_groups,
    coincidence_rate_arrays,
    find_groups,
    predicted_accidentals,
)
from pfflake.lake import Lake
from pfflake.simulate_sky import ModuleClock, simulate_sky
from tests.conftest import EXAMPLE_RUN, PH256_FILE

T0 = 1_719_810_000_000_000_000  # 2024-07-01 05:00 UTC in ns: far beyond float64's ns precision


def as_sets(groups, times):
    """Groups as sets of (module position, index within module) -- brute force's form."""
    offsets = np.concatenate([[0], np.cumsum([len(t) for t in times])])
    out = []
    for gid in range(groups.n_groups):
        sel = groups.group_id == gid
        out.append(frozenset(
            (int(p), int(i - offsets[p])) for p, i in zip(groups.module_pos[sel],
                                                          groups.index[sel], strict=True)))
    return out


module_times = st.lists(st.lists(st.integers(0, 300), max_size=10), min_size=1, max_size=5)


@settings(max_examples=400, deadline=None)
@given(module_times, st.integers(0, 40), st.integers(2, 4), st.booleans(),
       st.sampled_from([1 << 18, 3, 8, 1]), st.sampled_from([1, 2, 5]))
def test_matches_brute_force(times, window, k, far, chunk, threads):
    """Same groups as every-pair union-find, for any times, ties, windows, k, chunking
    and time ranges on threads (tiny chunks make groups cross chunk and range ends)."""
    import pfflake.coincidence as C

    C._CHUNK, C._THREADS = chunk, threads
    base = T0 if far else 0
    arrays = [np.asarray(t, dtype=np.int64) + base for t in times]
    try:
        got = as_sets(find_groups(arrays, window, min_multiplicity=k), times)
    finally:
        C._CHUNK, C._THREADS = 1 << 18, os.cpu_count() or 1
    want = brute_force_groups([[v + base for v in t] for t in times], window,
                              min_multiplicity=k)
    assert len(got) == len(set(got))
    assert set(got) == set(want)


@settings(max_examples=100, deadline=None)
@given(module_times, st.integers(0, 40), st.randoms(use_true_random=False))
def test_groups_do_not_depend_on_input_order(times, window, rnd):
    arrays = [np.asarray(t, dtype=np.int64) for t in times]
    perms = [np.asarray(rnd.sample(range(len(a)), len(a)), dtype=np.int64) for a in arrays]
    g1 = find_groups(arrays, window)
    g2 = find_groups([a[p] for a, p in zip(arrays, perms, strict=True)], window)
    # Same groups in the same (time) order, identified by module and time.
    key1 = [sorted(zip(g1.module_pos[g1.group_id == g], g1.t_ns[g1.group_id == g],
                       strict=True)) for g in range(g1.n_groups)]
    key2 = [sorted(zip(g2.module_pos[g2.group_id == g], g2.t_ns[g2.group_id == g],
                       strict=True)) for g in range(g2.n_groups)]
    assert key1 == key2
    np.testing.assert_array_equal(g1.t_first_ns, np.sort(g1.t_first_ns))


def test_int64_exact_at_the_window_edge():
    """1 ns decides, at 1.7e18 ns (float64 seconds would blur ~200 ns here)."""
    w = 1_000
    a = np.array([T0, T0 + 10_000_000], dtype=np.int64)
    b = np.array([T0 + w, T0 + 10_000_000 + w + 1], dtype=np.int64)
    g = find_groups([a, b], w)
    assert g.n_groups == 1 and g.t_first_ns[0] == T0 and g.span_ns[0] == w
    with pytest.raises(TypeError, match="integer ns"):
        find_groups([a.astype(np.float64), b], w)


def test_multiplicity_ambiguity_and_chains():
    w = 10
    a = np.array([0, 5, 100, 300], dtype=np.int64)  # 0 and 5: one module twice -> ambiguous
    b = np.array([8, 109, 500], dtype=np.int64)
    c = np.array([118, 700], dtype=np.int64)  # 100-109-118 chains: 3-fold, span 18 > w
    g = find_groups([a, b, c], w)
    assert g.n_groups == 2
    assert g.multiplicity.tolist() == [2, 3]
    assert g.ambiguous.tolist() == [True, False]
    assert g.span_ns.tolist() == [8, 18]
    assert find_groups([a, b, c], w, min_multiplicity=3).n_groups == 1


def test_accidentals_at_the_poisson_rate():
    """Background only: 2-fold groups at sum_ij R_i R_j 2w per second, within 5 sigma."""
    rng = np.random.default_rng(5)
    rates, duration_s, w = [40.0, 50.0, 60.0, 30.0], 2000, 200_000  # +-200 us
    times = [np.sort(rng.integers(0, duration_s * 10**9, rng.poisson(r * duration_s)))
             for r in rates]
    g = find_groups(times, w)
    expected = predicted_accidentals(rates, w, duration_s * 10**9)
    for k in (2, 3):
        got = int((g.multiplicity == k).sum())
        assert abs(got - expected[k]) < 4 * np.sqrt(expected[k]), (k, got, expected)
    # the plain pair count (no isolation) is clearly off: the test can tell
    naive = sum(ri * rj for ri, rj in combinations(rates, 2)) * 2 * w / 1e9 * duration_s
    assert abs(int((g.multiplicity == 2).sum()) - naive) > 4 * np.sqrt(naive)


def test_rate_bins_count_groups():
    t = np.array([0, 5, 12, 12, 31], dtype=np.int64) + T0
    k = np.array([2, 3, 2, 2, 4], dtype=np.int32)
    rate = coincidence_rate_arrays(t, k, 10).to_pydict()
    rows = {(s - T0, m): n for s, m, n in zip(rate["bin_start_ns"], rate["multiplicity"],
                                              rate["groups"], strict=True)}
    assert rows[(0, 2)] == 1 and rows[(0, 3)] == 1 and rows[(10, 2)] == 2
    assert rows[(30, 4)] == 1 and rows[(20, 2)] == 0
    assert sum(rate["groups"]) == 5


# -- against the simulator's truth, through a lake ------------------------------------------


@pytest.fixture(scope="module")
def sky(tmp_path_factory):
    root = tmp_path_factory.mktemp("sky")
    truth = simulate_sky(root / "runs", modules=(1, 2, 3, 4), duration_s=900,
                         shower_rate_hz=0.5, seed=3)
    lake = Lake(root / "lake")
    lake.ingest([truth.path], workers=1)
    return truth, lake


def shower_members(truth):
    """shower index -> {(module, frame)} of the frames that saw it."""
    out: dict[int, set] = {}
    for m, f in truth.frames.items():
        for frame in np.flatnonzero(f["shower"] >= 0):
            out.setdefault(int(f["shower"][frame]), set()).add((m, int(frame)))
    return out


def check_every_shower_found_once(groups: pa.Table, truth, k: int, window_ns: int):
    rows = groups.to_pydict()
    group_of = {(m, f): g for g, m, f in zip(rows["group_id"], rows["module"], rows["frame"],
                                             strict=True)}
    found = 0
    showers = truth.showers_ns
    for s, members in shower_members(truth).items():
        if len(members) < k:
            continue
        gids = {group_of.get(x) for x in members}
        assert len(gids) == 1 and None not in gids, (s, members, gids)
        found += 1
        # another shower in the same group only when the two are within reach in time
        others = [o for o, mm in shower_members(truth).items()
                  if o != s and group_of.get(next(iter(mm))) in gids]
        for o in others:
            assert abs(int(showers[o]) - int(showers[s])) < 4 * window_ns
    assert found == int((truth.multiplicity() >= k).sum()) > 50


def test_wr_time_finds_every_shower_exactly_once(sky):
    truth, lake = sky
    g = lake.coincidence_groups([1, 2, 3, 4], 1_000, time_base="wr")
    assert g.schema.remove_metadata() == GROUPS_SCHEMA
    check_every_shower_found_once(g, truth, 2, 1_000)
    g3 = lake.coincidence_groups([1, 2, 3, 4], 1_000, time_base="wr", min_multiplicity=3)
    check_every_shower_found_once(g3, truth, 3, 1_000)
    assert set(g3.column("multiplicity").to_pylist()) <= {3, 4}
    # WR time: nothing but showers within 1 us at these rates.
    assert g.column("group_id").to_numpy().max() + 1 == int((truth.multiplicity() >= 2).sum())


def test_host_time_with_offsets_finds_every_shower(sky):
    truth, lake = sky
    offsets = lake.time_offsets(1, [2, 3, 4])
    g = lake.coincidence_groups([1, 2, 3, 4], 2_000_000, offsets=offsets)
    check_every_shower_found_once(g, truth, 2, 2_000_000)
    # corrected times of one shower agree to the latency spread (+ estimate error)
    t = g.column("t_corrected_ns").to_numpy()
    gid = g.column("group_id").to_numpy()
    multi = g.column("multiplicity").to_numpy()
    clean = ~g.column("ambiguous").to_numpy() & (multi == 4)
    spans = [np.ptp(t[gid == i]) for i in np.unique(gid[clean])]
    assert np.median(spans) < 1_500_000
    # without the offsets (clocks differ by up to ~15 ms) the 4-fold showers are lost
    raw = lake.coincidence_groups([1, 2, 3, 4], 2_000_000, min_multiplicity=4)
    assert raw.num_rows < g.filter(pa.compute.equal(g.column("multiplicity"), 4)).num_rows / 4


def test_accidentals_in_host_time_match_prediction(tmp_path):
    """No showers: groups found at the rate the four trigger rates predict."""
    rate, w, duration = 10.0, 1_000_000, 1200
    clocks = {m: ModuleClock(latency_ns=(0, 0)) for m in (1, 2, 3, 4)}
    truth = simulate_sky(tmp_path / "runs", duration_s=duration, trigger_rate_hz=rate,
                         shower_rate_hz=0.0, clocks=clocks, seed=9)
    lake = Lake(tmp_path / "lake")
    lake.ingest([truth.path], workers=1)
    g = lake.coincidence_groups([1, 2, 3, 4], w)
    gid, k = g.column("group_id").to_numpy(), g.column("multiplicity").to_numpy()
    two = int((k[np.unique(gid, return_index=True)[1]] == 2).sum())
    n = [len(truth.frames[m]["host_ns"]) / duration for m in (1, 2, 3, 4)]
    expected = predicted_accidentals(n, w, duration * 10**9)[2]
    assert abs(two - expected) < 4 * np.sqrt(expected), (two, expected)
    rate_table = lake.coincidence_rate(g, 240 * 10**9)
    assert sum(rate_table.column("groups").to_pylist()) == len(np.unique(gid))


def test_groups_table_follows_the_frames(sky):
    truth, lake = sky
    g = lake.coincidence_groups("1,2,3", 1_000, time_base="wr")
    for row in g.slice(0, 20).to_pylist():
        f = truth.frames[row["module"]]
        assert row["t_ns"] == f["wr_ns"][row["frame"]] == row["t_corrected_ns"]
        assert row["run"] == truth.run and row["data_product"] == "ph256"
    with pytest.raises(ValueError, match="min_multiplicity"):
        lake.coincidence_groups([1, 2], 1_000, min_multiplicity=3)
    with pytest.raises(ValueError, match="two or more"):
        lake.coincidence_groups([1], 1_000)


# -- real samples --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_twin(tmp_path_factory):
    """The real example run plus a twin module: the real ph256 file copied as module 253."""
    root = tmp_path_factory.mktemp("real")
    run = root / "example-data"
    shutil.copytree(EXAMPLE_RUN, run)
    shutil.copyfile(PH256_FILE, run / PH256_FILE.name.replace("module_254", "module_253"))
    lake = Lake(root / "lake")
    lake.ingest([run], workers=1)
    return lake


def test_real_twin_every_frame_pairs_with_its_copy(real_twin):
    g = real_twin.coincidence_groups([253, 254], 0, data_product="ph256")
    n = real_twin.sql("SELECT count(*) FROM frames WHERE module = 254").fetchall()[0][0]
    rows = g.to_pydict()
    assert len(rows["group_id"]) == 2 * n
    pairs = {}
    for gid, m, f in zip(rows["group_id"], rows["module"], rows["frame"], strict=True):
        pairs.setdefault(gid, set()).add((m, f))
    assert all(len(p) == 2 and {m for m, _ in p} == {253, 254} and len({f for _, f in p}) == 1
               for p in pairs.values())
    # the img16 module 1 was recorded on another date: nothing in common
    assert real_twin.coincidence_groups([1, 254], 1_000_000).num_rows == 0


def pfflake(*args):
    cmd = [sys.executable, "-c", "from pfflake.cli import main; main()", *map(str, args)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_cli_coincidences(sky, real_twin, tmp_path):
    _truth, lake = sky
    csv = pfflake("coincidences", lake.root, "--modules", "1,2,3,4", "--window-us", "1",
                  "--min-multiplicity", "3", "--time-base", "wr", "--format", "csv")
    lines = csv.strip().splitlines()
    assert lines[0].split(",")[:3] == ['"group_id"', '"run"', '"data_product"']
    want = lake.coincidence_groups([1, 2, 3, 4], 1_000, time_base="wr", min_multiplicity=3)
    assert len(lines) - 1 == want.num_rows
    out = tmp_path / "off.parquet"
    pfflake("offsets", lake.root, "--reference", "1", "--modules", "2,3,4", "--format",
            "parquet", "--out", out)
    rate = pfflake("coincidences", lake.root, "--modules", "1,2,3,4", "--window-us", "2000",
                   "--offsets", out, "--rate-bin-s", "240", "--format", "csv")
    assert rate.startswith('"bin_start_ns","bin_end_ns","multiplicity","groups"')
    twin = pfflake("coincidences", real_twin.root, "--modules", "253,254", "--window-us", "0",
                   "--data-product", "ph256", "--format", "csv")
    assert len(twin.strip().splitlines()) == 1 + 2 * 1500
