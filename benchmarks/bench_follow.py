"""Follow-mode lag: from a frame being written to it being queryable in the lake.

A writer process plays a simulated img16 recording (written once by the project's
simulator, ``pfflake.simulate.simulate_run``) into a fresh run directory at
``--rate`` frames/s (default 10^4), in batches every ``--batch-ms`` ms, rolling over to
a new seqno file every ``--frames-per-file`` frames, and records the wall time at
which each batch's last byte was written. ``pfflake ingest --follow --interval S
--workers 1`` follows it (one core for the follow, one for the writer), and this
process polls the lake every ``--poll-ms`` ms with a reader (``Lake.connect`` on the
latest snapshot, ``SELECT max(frame) FROM frames``). A batch's lag is the time from
its write to the first poll that sees its last frame. Prints the median, p95 and
max lag and checks p95 <= S + 1 s (issue 16). Note ``uptime`` next to the figures.

    uv run --group bench python benchmarks/bench_follow.py --seconds 20 --interval 1
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

SENTINELS = ("collect_complete", "run_complete", "recording_ended")


def make_source(root: Path, n_frames: int, rate: float, per_file: int) -> Path:
    """The recording to play (cached by its parameters)."""
    from pfflake.simulate import simulate_run

    tag = root / f"src-{n_frames}-{int(rate)}-{per_file}"
    done = tag / "done"
    if not done.exists():
        shutil.rmtree(tag, ignore_errors=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sim = simulate_run(tag, products=("img16",), modules=(1,), n_frames=n_frames,
                               frame_rate_hz=rate, frames_per_file=per_file)
        done.write_text(sim.path.name)
    return tag / done.read_text()


def play(src: str, dst: str, rate: float, batch_ms: float, log: str) -> None:
    """The writer process: append the source's frames at ``rate``, log batch times."""
    from pfflake.writer import fixed_layout

    src_dir, dst_dir = Path(src), Path(dst)
    frame = fixed_layout("img16").frame_bytes
    files = sorted(src_dir.glob("start_*.pff"),
                   key=lambda p: int(p.name.split(".seqno_")[1].split(".")[0]))
    counts = [p.stat().st_size // frame for p in files]
    total = sum(counts)
    per_batch = max(1, round(rate * batch_ms / 1000))
    marks = []
    t0 = time.time()
    written, k, in_file = 0, 0, 0
    src_f = open(files[0], "rb")  # noqa: SIM115
    out = open(dst_dir / files[0].name, "ab")  # noqa: SIM115
    while written < total:
        n = min(per_batch, total - written)
        due = t0 + (written + n) / rate
        wait = due - time.time()
        if wait > 0:
            time.sleep(wait)
        left = n
        while left:
            if in_file == counts[k]:  # seqno rollover
                src_f.close()
                out.close()
                k, in_file = k + 1, 0
                src_f = open(files[k], "rb")  # noqa: SIM115
                out = open(dst_dir / files[k].name, "ab")  # noqa: SIM115
            m = min(left, counts[k] - in_file)
            out.write(src_f.read(m * frame))
            out.flush()
            in_file, left = in_file + m, left - m
        written += n
        marks.append((written, time.time()))
    src_f.close()
    out.close()
    for name in SENTINELS:
        (dst_dir / name).write_text("done\n")
    Path(log).write_text(json.dumps({"t0": t0, "marks": marks}))


def poll_lake(lake_path: Path, proc: subprocess.Popen, poll_s: float) -> list[tuple[float, int]]:
    """(time, frames queryable) at each poll that saw a new version, until the follow ends."""
    from pfflake.lake import Lake, LakeError

    seen: list[tuple[float, int]] = []
    version = -1
    lake = None
    while True:
        alive = proc.poll() is None
        try:
            lake = lake or Lake(lake_path)
            v = lake.version
        except LakeError:
            v = -1
        if v > version and v > 0:
            snap = lake.snapshot(v)
            con = lake.connect(snap)
            top = con.sql("SELECT max(frame) FROM frames").fetchall()[0][0]
            con.close()
            seen.append((time.time(), -1 if top is None else top + 1))
            version = v
        if not alive:
            return seen
        time.sleep(poll_s)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=10_000.0, help="frames/s written")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of the recording")
    ap.add_argument("--interval", type=float, default=1.0, help="follow --interval (s)")
    ap.add_argument("--frames-per-file", type=int, default=60_000)
    ap.add_argument("--batch-ms", type=float, default=10.0)
    ap.add_argument("--poll-ms", type=float, default=20.0)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/pfflake-bench-follow"))
    args = ap.parse_args()

    n = int(args.rate * args.seconds)
    src = make_source(args.workdir, n, args.rate, args.frames_per_file)
    run = args.workdir / "run" / src.name
    lake = args.workdir / "lake"
    for p in (run.parent, lake):
        shutil.rmtree(p, ignore_errors=True)
    run.mkdir(parents=True)
    for p in src.iterdir():
        if p.is_file() and p.name not in SENTINELS and not p.name.startswith("start_"):
            shutil.copyfile(p, run / p.name)
    log = args.workdir / "writer.json"
    print(f"load before: {load()}")
    print(f"{n:,} img16 frames at {args.rate:,.0f}/s ({args.seconds:g} s), files of "
          f"{args.frames_per_file:,} frames, follow --interval {args.interval:g} --workers 1")
    follow = subprocess.Popen(
        [sys.executable, "-m", "pfflake", "ingest", str(run), "--lake", str(lake), "--follow",
         "--interval", str(args.interval), "--workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    time.sleep(2.0)  # the follow's interpreter is up before the first frame
    writer = mp.get_context("spawn").Process(
        target=play, args=(str(src), str(run), args.rate, args.batch_ms, str(log)))
    t_start = time.time()
    writer.start()
    seen = poll_lake(lake, follow, args.poll_ms / 1000)
    writer.join()
    out, err = follow.communicate()
    if follow.returncode != 0:
        sys.exit(f"follow failed ({follow.returncode}): {err[-2000:]}")
    marks = json.loads(log.read_text())["marks"]
    lags, i = [], 0
    for frames, t_written in marks:
        while i < len(seen) and seen[i][1] < frames:
            i += 1
        if i == len(seen):
            sys.exit(f"frames up to {frames} never became queryable")
        lags.append(max(0.0, seen[i][0] - t_written))
    commits = [line for line in out.splitlines() if line.startswith("version ")]
    behind = marks[-1][1] - t_start - args.seconds
    lags.sort()
    med, p95 = statistics.median(lags), lags[int(0.95 * (len(lags) - 1))]
    print(f"writer: {len(marks):,} batches, {behind:+.2f} s behind schedule at the end")
    print(f"follow: {len(commits)} commits; {out.splitlines()[-1]}")
    print(f"lag write -> queryable: median {med:.3f} s, p95 {p95:.3f} s, max {lags[-1]:.3f} s "
          f"(bound S + 1 = {args.interval + 1:.1f} s)")
    print(f"load after: {load()}")
    ok = p95 <= args.interval + 1
    print("OK" if ok else "FAIL: p95 lag above S + 1 s")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
