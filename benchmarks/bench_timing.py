"""Clock offsets + k-of-N coincidences: pfflake vs "the pipeline way", side by side.

Run:  uv run python benchmarks/bench_timing.py [--frames 1000000] [--runs 3] [--e2e-frames N]

Data: 4 modules x --frames frames of host-clock times (int64 ns) from the
sky simulator's model, made in numpy: Poisson background triggers at 8 Hz
per module plus air showers at 5 Hz seen by each module with p = 0.7
(11.5 Hz a module: 10^6 frames are 24 h of triggers; inside +-20 ms the
accidental pairs are twice the true ones, the issue's realistic case), module
clocks offset by -3..+4 ms and drifting -40..+80 ns/s, arrival latency
0.2-1.2 ms.

Chain, both ways: offsets of modules 2, 3, 4 against module 1 (pairs within
+-20 ms, per 120 s bin), correct, then coincidence groups within +-1 ms of
any 2+ of the 4 modules.

* pfflake: :func:`pfflake.timing.offsets_table` + :func:`pfflake.timing.apply_offsets`
  + :func:`pfflake.coincidence.find_groups` on the int64 arrays.
* the pipeline way (as the high-energy pipeline's ``coincidences.py`` does
  it, written here): times as float seconds; per 120 s bin, ``searchsorted``
  for the +-20 ms neighbours and a Python loop collecting ``t1 - t2``, then
  ``np.median``; subtract; for each pair of telescopes ``searchsorted`` for
  +-1 ms and a Python loop over the matches; triples by matching each pair's
  mean time with a third telescope (``searchsorted`` + loop); a Python
  union-find over all pairs (the generalised groups).

pfflake runs its heavy numpy steps on a thread pool of ``os.cpu_count()``
threads (offset chunks, independent time ranges of the groups); the pipeline
way is one Python thread. ``--single-thread`` adds the figure with pfflake on
one thread. Each is timed as the median of --runs (alternating, see
``_common.paired``).
The end-to-end figure writes --e2e-frames frames per module as ph256 PFF
files (``simulate_sky``), ingests them into a lake once (under --dir,
reused), and times ``Lake.time_offsets`` + ``Lake.coincidence_groups``
(DuckDB scan included). Prints the load average next to the figures: the
machine is shared.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import paired, timeit

MODULES = (1, 2, 3, 4)
BG_HZ, SHOWER_HZ, SHOWER_P = 8.0, 5.0, 0.7
WINDOW_OFF, BIN, WINDOW = 20_000_000, 120_000_000_000, 1_000_000
T0 = 1_719_810_000_000_000_000


def make_times(frames: int, seed: int = 0) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Host times (sorted int64 ns) per module, and the true shower times."""
    rng = np.random.default_rng(seed)
    rate = BG_HZ + SHOWER_HZ * SHOWER_P
    duration = int(frames / rate * 1e9)
    showers = T0 + np.sort(rng.integers(0, duration, rng.poisson(SHOWER_HZ * duration / 1e9)))
    out = {}
    for i, m in enumerate(MODULES):
        bg = T0 + rng.integers(0, duration, frames - int(SHOWER_P * len(showers)))
        seen = showers[rng.random(len(showers)) < SHOWER_P]
        t = np.concatenate([bg, seen + np.rint(rng.normal(0, 100, len(seen))).astype(np.int64)])
        offset = (i * 2 - 3) * 1_000_000 + i * 370_000 + (t - T0) * ((i - 1) * 40) // 10**9
        t = t + offset + rng.integers(200_000, 1_200_000, len(t))
        out[m] = np.sort(t // 1000 * 1000)[:frames]
    return out, showers


# -- pfflake ------------------------------------------------------------------------------


def ours(times: dict[int, np.ndarray]):
    from pfflake.coincidence import find_groups
    from pfflake.timing import apply_offsets, offsets_table

    table = offsets_table(times, 1, window_ns=WINDOW_OFF, bin_ns=BIN)
    corrected = [apply_offsets(times[m], m, table) for m in MODULES]
    return table, find_groups(corrected, WINDOW)


# -- the pipeline way ------------------------------------------------------------------------


def pipeline(times: dict[int, np.ndarray]):
    sec = {m: t / 1e9 for m, t in times.items()}  # float seconds, as the pipeline reads them
    ref = sec[1]
    corrected = {1: ref}
    for m in MODULES[1:]:
        t1 = sec[m]
        start = ref[0]
        n_bins = int((ref[-1] - start) // 120.0) + 1
        new = t1.copy()
        edges = np.searchsorted(t1, start + 120.0 * np.arange(n_bins + 1))
        for b in range(n_bins):
            sel = np.arange(edges[b], edges[b + 1])
            lo = np.searchsorted(ref, t1[sel] - 0.02)
            hi = np.searchsorted(ref, t1[sel] + 0.02)
            diffs = []
            for k in range(len(sel)):
                for j in range(lo[k], hi[k]):
                    diffs.append(t1[sel[k]] - ref[j])
            if diffs:
                new[sel] = t1[sel] - np.median(diffs)
        corrected[m] = new
    # pairwise matches within +-1 ms, then union-find over frames
    parent: dict[tuple[int, int], tuple[int, int]] = {}

    def find(a):
        while parent.setdefault(a, a) != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    pairs: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for ia, a in enumerate(MODULES):
        for b in MODULES[ia + 1:]:
            ta, tb = corrected[a], corrected[b]
            lo = np.searchsorted(tb, ta - 0.001)
            hi = np.searchsorted(tb, ta + 0.001, side="right")
            found = pairs.setdefault((a, b), [])
            for i in np.flatnonzero(hi > lo):
                for j in range(lo[i], hi[i]):
                    found.append((int(i), int(j)))
                    parent[find((a, int(i)))] = find((b, int(j)))
    # triples: each pair's mean time matched with a third telescope within the window
    triples = []
    for (a, b), found in pairs.items():
        if not found:
            continue
        ij = np.array(found)
        mean = (corrected[a][ij[:, 0]] + corrected[b][ij[:, 1]]) / 2
        for c in MODULES:
            if c in (a, b):
                continue
            lo = np.searchsorted(corrected[c], mean - 0.001)
            hi = np.searchsorted(corrected[c], mean + 0.001, side="right")
            for p in np.flatnonzero(hi > lo):
                for k in range(lo[p], hi[p]):
                    triples.append(((a, int(ij[p, 0])), (b, int(ij[p, 1])), (c, int(k))))
    groups: dict = {}
    for node in list(parent):
        groups.setdefault(find(node), []).append(node)
    return [g for g in groups.values() if len({m for m, _ in g}) >= 2], triples


# -- end to end through a lake ---------------------------------------------------------------


def lake_for(frames: int, root: Path):
    from pfflake.lake import Lake
    from pfflake.simulate_sky import simulate_sky

    lake_dir = root / f"lake-{frames}"
    if not (lake_dir / "_pfflake_log").is_dir():
        duration = int(frames / (BG_HZ + SHOWER_HZ * SHOWER_P))
        t = time.perf_counter()
        truth = simulate_sky(root / f"runs-{frames}", duration_s=duration,
                             trigger_rate_hz=BG_HZ, shower_rate_hz=SHOWER_HZ,
                             shower_p=SHOWER_P, frames_per_file=250_000)
        print(f"  simulated {sum(len(f['true_ns']) for f in truth.frames.values()):,} frames "
              f"in {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        print("  " + Lake(lake_dir).ingest([truth.path]).summary()
              + f" ({time.perf_counter() - t:.1f} s)")
    return Lake(lake_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=1_000_000, help="frames per module")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--e2e-frames", type=int, default=1_000_000,
                        help="frames per module for the lake figure (0: skip)")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "bench-timing")
    parser.add_argument("--single-thread", action="store_true",
                        help="also time pfflake on one thread")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()} ({os.cpu_count()} cores)")
    times, showers = make_times(args.frames)
    print(f"{len(MODULES)} modules x {args.frames:,} frames, {len(showers):,} showers")

    table, groups = ours(times)
    got, triples = pipeline(times)
    k = groups.multiplicity
    print(f"  pfflake: {groups.n_groups:,} groups (2/3/4-fold {np.bincount(k, minlength=5)[2:]}),"
          f" {int(groups.ambiguous.sum()):,} ambiguous; pipeline way: {len(got):,} groups,"
          f" {len(triples):,} pair+third matches")
    est = table.column("offset_ns").drop_null().to_numpy()
    print(f"  offsets: {len(est)} bin estimates of {table.num_rows}")

    theirs_s, ours_s, ratio = paired(lambda: pipeline(times), lambda: ours(times), args.runs)
    print(f"chain (offsets + groups), numpy arrays: pfflake {ours_s:.2f} s, "
          f"pipeline way {theirs_s:.1f} s, ratio {ratio:.1f}x   [load {os.getloadavg()[0]:.2f}]")
    if args.single_thread:
        import pfflake.coincidence as coincidence
        import pfflake.timing as timing

        saved = timing._THREADS, coincidence._THREADS
        timing._THREADS = coincidence._THREADS = 1
        theirs_s, ours_s, ratio = paired(lambda: pipeline(times), lambda: ours(times), args.runs)
        timing._THREADS, coincidence._THREADS = saved
        print(f"  the same, pfflake on one thread: pfflake {ours_s:.2f} s, pipeline way "
              f"{theirs_s:.1f} s, ratio {ratio:.1f}x   [load {os.getloadavg()[0]:.2f}]")

    if args.e2e_frames:
        args.dir.mkdir(parents=True, exist_ok=True)
        lake = lake_for(args.e2e_frames, args.dir)

        def chain():
            offsets = lake.time_offsets(1, [2, 3, 4], data_product="ph256")
            return lake.coincidence_groups(list(MODULES), WINDOW, offsets=offsets,
                                           data_product="ph256")

        n = chain().num_rows
        e2e = timeit(chain, args.runs)
        print(f"chain from the lake (4 x {args.e2e_frames:,} frames, DuckDB scan included): "
              f"{e2e:.2f} s, {n:,} member rows   [load {os.getloadavg()[0]:.2f}]")
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
