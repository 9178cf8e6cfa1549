"""Opening a lake vs the number of commits in its log, with and without checkpoints.

Run:  uv run --group bench python benchmarks/bench_log.py [--commits 10,1000,10000] [--runs 5]

For each size, a log of that many small commits is generated with the real
``publish_commit`` (checkpoints every ``CHECKPOINT_INTERVAL`` = 100 written as a
writer would; ``os.fsync`` is a no-op while generating, which changes no byte and
saves ~2 fsyncs per commit). Each commit is a follow-mode-like ingest of one
stream: one frames file (with its source range), the stream's state, hk count.
Every commit adds a file, so without compaction the snapshot grows with the
log (the worst case); ``--compact-every 100`` makes every 100th commit a
compaction of the files since the last one, as a lake that is compacted keeps it.

Printed, as medians of --runs, on a warm page cache:
- ``open``: ``Lake(path).version`` plus ``Lake(path).snapshot()`` (what a reader pays);
- ``replay``: the same with ``load_snapshot(..., checkpoints=False)`` (the log alone);
- ``list``: listing the log directory (``log_versions``): what a replay pays (an open
  whose ``_last_checkpoint`` is intact lists nothing);
- the checkpoint's size on disk.
Note ``uptime`` next to the figures: the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from _common import timeit

from pfflake.lake import Lake
from pfflake.lake import log as L


def commit_body(v: int) -> dict:
    run = "obs_Lick.start_2024-07-01T05:00:00Z.runtype_sci-obs.pffd"
    lo, hi = (v - 1) * 10_000, v * 10_000 - 1
    return {
        "operation": "ingest",
        "add": [{
            "table": "frames", "rows": 10_000, "bytes": 850_000,
            "path": f"frames/data_product=img16/module=1/{run}.{lo}-{hi}.txn{v}.parquet",
            "partition": {"data_product": "img16", "module": 1}, "run": run,
            "stream": "img16.module_1", "first_frame": lo, "last_frame": hi,
            "min_unix_t_ns": 1_719_810_000_000_000_000 + lo * 100_000,
            "max_unix_t_ns": 1_719_810_000_000_000_000 + hi * 100_000,
            "sources": [{"path": f"/data/{run}/start.dp_img16.module_1.seqno_0.pff",
                         "offset": lo * 2540, "length": 10_000 * 2540, "crc32": v,
                         "frames": [lo, hi + 1]}],
        }],
        "remove": [],
        "streams": [{"run": run, "stream": "img16.module_1", "data_product": "img16",
                     "module": 1, "frames": hi + 1, "store": f"zarr/{run}/x.zarr",
                     "files": [{"name": "start.dp_img16.module_1.seqno_0.pff",
                                "size": (hi + 1) * 2540, "frames": hi + 1,
                                "fingerprint": f"{v:016x}", "damaged_frames": 0,
                                "truncated_tail_bytes": 0}]}],
        "runs": [run] if v == 1 else [],
        "hk_records": {run: v},
    }


def make_log(root: Path, n: int, compact_every: int = 0) -> None:
    """``n`` commits; with ``compact_every``, every such commit is a compaction that merges
    the frames files of the commits since the last one (as ``pfflake compact`` would)."""
    real = os.fsync
    os.fsync = lambda fd: None  # generation only: no byte changes
    pending: list[dict] = []
    try:
        for v in range(1, n + 1):
            body = commit_body(v)
            if compact_every and v % compact_every == 0:
                merged = {**body["add"][0], "path": f"frames/merged.{v}.parquet",
                          "rows": sum(e["rows"] for e in pending),
                          "first_frame": pending[0]["first_frame"],
                          "sources": [s for e in pending for s in e["sources"]]}
                body = {"operation": "compact", "add": [merged], "remove": pending,
                        "streams": []}
                pending = []
            else:
                pending += body["add"]
            L.publish_commit(root, v, body)
    finally:
        os.fsync = real


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--commits", default="10,1000,10000")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--compact-every", type=int, default=0,
                    help="Make every Nth commit a compaction of the files since the last one.")
    args = ap.parse_args()
    print(f"load: {os.getloadavg()[0]:.2f} (1-min)")
    print(f"{'commits':>8} {'open (ckpt)':>12} {'replay':>10} {'ratio':>7} {'list':>8} "
          f"{'ckpt MB':>8} {'files':>6}")
    base = Path(tempfile.mkdtemp(prefix="pfflake-bench-log-"))
    try:
        for n in (int(x) for x in args.commits.split(",")):
            root = base / f"lake{n}"
            make_log(root, n, args.compact_every)

            def opened(root=root):
                lake = Lake(root)
                lake.version  # noqa: B018 (what a reader pays)
                return lake.snapshot()

            def replayed(root=root):
                Lake(root).version  # noqa: B018
                return L.load_snapshot(root, checkpoints=False)

            assert opened() == replayed()
            t_open = timeit(opened, args.runs)
            t_replay = timeit(replayed, max(1, min(args.runs, 3)))
            t_list = timeit(lambda root=root: L.log_versions(root), args.runs)
            ck = L.checkpoint_versions(root)
            size = L.checkpoint_path(root, ck[-1]).stat().st_size / 1e6 if ck else 0.0
            print(f"{n:>8} {t_open * 1e3:>9.1f} ms {t_replay * 1e3:>7.1f} ms "
                  f"{t_replay / t_open:>6.1f}x {t_list * 1e3:>5.2f} ms {size:>8.2f} "
                  f"{len(opened().table_files('frames')):>6}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"load: {os.getloadavg()[0]:.2f} (1-min)")


if __name__ == "__main__":
    main()
