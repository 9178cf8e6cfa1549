"""Follow-mode lag: from a frame being written to it being queryable in the lake.

A writer process plays a simulated img16 recording (written once by the project's
simulator, ``pfflake.simulate.simulate_run``) into a fresh run directory at
``--rate`` frames/s (default 10^4), in batches every ``--batch-ms`` ms, rolling over to
a new seqno file every ``--frames-per-file`` frames, and records the wall time at
which each batch's last byte was written. A follow process runs what ``pfflake ingest
RUN --lake L --follow --interval S --workers 1`` runs (``Lake.follow`` with one worker:
one core for the follow, one for the writer), with ``os.fsync`` wrapped to time every
fsync, and logs each commit's phases (:attr:`IngestResult.phases`). This process polls
the lake every ``--poll-ms`` ms with a reader (``Lake.version``; on a new version
``Lake.connect`` on its snapshot, ``SELECT max(frame) FROM frames``).

A batch's lag is the time from its write to the first poll that sees its last frame,
split into ``wait`` (write -> start of the tick that commits it; up to S), ``tick``
(that tick's start -> its commit published) and ``visible`` (published -> seen by the
reader). Prints the median, p95 and max lag and checks p95 <= S + 1 s (issue 16); then
per commit the medians / p95 / max of each ingest phase and of the fsyncs (count, time,
by what was synced), and the reader's poll costs.

``--dirty-gb N`` reproduces background writeback (another process writing to the same
disk): ``--dirty-when during`` (default) writes N GB to a file next to the lake while
the recording plays, without fsync, and deletes it at the end; ``before`` writes and
deletes it just before the recording starts (as the slow tests do before this runs in
CI). The kernel's ``Dirty``/``Writeback`` page counts are sampled while the run plays.
Note ``uptime`` next to the figures.

    uv run --group bench python benchmarks/bench_follow.py --seconds 20 --interval 1
    uv run --group bench python benchmarks/bench_follow.py --seconds 20 --dirty-gb 3
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
import textwrap
import time
import warnings
from pathlib import Path

SENTINELS = ("collect_complete", "run_complete", "recording_ended")

#: The follow process: Lake.follow with one worker, every os.fsync timed, one JSON line
#: per commit (phases, fsyncs since the previous commit, times).
FOLLOW_CODE = textwrap.dedent("""
    import json, os, sys, time, warnings
    from pathlib import Path
    from pfflake.lake import Lake

    lake_path, run, interval, out = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4]
    if sys.argv[5] == "no-zarr-sync":  # A/B only: what durable Zarr writes cost the lag
        import pfflake.store.write as write
        init = write.FrameWriter.__init__
        write.FrameWriter.__init__ = lambda w, *a, **kw: init(w, *a, **{**kw, "durable": False})
    syncs = []
    real_fsync = os.fsync

    def timed_fsync(fd):
        t = time.perf_counter()
        try:
            real_fsync(fd)
        finally:
            dt = time.perf_counter() - t
            try:
                path = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                path = "?"
            syncs.append((path, dt))

    os.fsync = timed_fsync
    ticks = open(out, "w")

    def on_commit(r):
        ticks.write(json.dumps({"version": r.version, "frames": r.frames,
                                "started_at": r.started_at, "published_at": r.published_at,
                                "seconds": r.seconds, "phases": r.phases,
                                "fsyncs": syncs}) + "\\n")
        ticks.flush()
        syncs.clear()

    warnings.simplefilter("ignore")
    res = Lake(lake_path).follow([run], interval=interval, workers=1, on_commit=on_commit,
                                 compact_every=int(sys.argv[6]))
    print(res.summary())
""")


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


def dirty(path: str, gb: float, done: str) -> None:
    """Write ``gb`` GB to ``path`` as fast as the page cache takes it (no fsync); touch
    ``done`` when written. The caller deletes the file."""
    block = b"\x5a" * (16 << 20)
    with open(path, "wb") as f:
        for _ in range(int(gb * 1024 / 16)):
            f.write(block)
    Path(done).touch()


def meminfo() -> tuple[int, int]:
    """The kernel's (Dirty, Writeback) in MB."""
    got = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":", 1)
            if k in ("Dirty", "Writeback"):
                got[k] = int(v.split()[0]) // 1024
    return got.get("Dirty", 0), got.get("Writeback", 0)


def warm_reader(empty: Path) -> None:
    """What a long-running reader has loaded before the first commit: one
    ``Lake.connect`` (of an empty lake at ``empty``). A fresh process's first connect
    costs ~2 s of imports (DuckDB; pandas, which DuckDB loads to register the empty
    tables), which would otherwise count against the first commit's lag."""
    from pfflake.lake import Lake

    shutil.rmtree(empty, ignore_errors=True)
    lake = Lake(empty, create=True)
    lake.connect(lake.snapshot()).close()
    shutil.rmtree(empty)


def poll_lake(lake_path: Path, proc: subprocess.Popen, poll_s: float) -> dict:
    """Poll until the follow ends: (time, version, frames queryable) at each poll that saw
    a new version; the cost of each ``Lake.version`` poll and of each new version's query;
    the page cache's dirty/writeback MB every 0.5 s."""
    from pfflake.lake import Lake, LakeError

    seen: list[tuple[float, int, int]] = []
    version_s: list[float] = []
    query_s: list[tuple[float, float, float]] = []  # snapshot, connect, SQL
    pages: list[tuple[int, int]] = []
    version = -1
    lake = None
    next_pages = 0.0
    while True:
        alive = proc.poll() is None
        t = time.perf_counter()
        try:
            lake = lake or Lake(lake_path)
            v = lake.version
        except LakeError:
            v = -1
        t1 = time.perf_counter()
        version_s.append(t1 - t)
        if v > version and v > 0:
            snap = lake.snapshot(v)
            t2 = time.perf_counter()
            con = lake.connect(snap)
            t3 = time.perf_counter()
            top = con.sql("SELECT max(frame) FROM frames").fetchall()[0][0]
            con.close()
            seen.append((time.time(), v, -1 if top is None else top + 1))
            query_s.append((t2 - t1, t3 - t2, time.perf_counter() - t3))
            version = v
        if t1 >= next_pages:
            pages.append(meminfo())
            next_pages = t1 + 0.5
        if not alive:
            return {"seen": seen, "version_s": version_s, "query_s": query_s, "pages": pages}
        time.sleep(poll_s)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[int(q * (len(xs) - 1))] if xs else float("nan")


def stats(xs: list[float], scale: float = 1.0, fmt: str = "7.3f") -> str:
    if not xs:
        return "-"
    return "  ".join(format(v * scale, fmt) for v in
                     (statistics.median(xs), pct(xs, 0.95), max(xs)))


def sync_kind(path: str, lake: Path) -> str:
    """What an fsync synced, in a few words (the staged frames file, the log dir, ...)."""
    try:
        rel = Path(path).relative_to(lake).parts
    except ValueError:
        return "other"
    if not rel:
        return "lake dir"
    if rel[0] == "_pfflake_log":
        return "log dir" if len(rel) == 1 else ("commit file" if rel[1].startswith(".tmp")
                                                 else "log file")
    if rel[0] == "_staging":
        table = rel[2] if len(rel) > 2 else "?"
        return f"staged {table} file" if len(rel) > 3 else f"staging {table} dir"
    return f"{rel[0]} dir" if Path(path).is_dir() or len(rel) <= 3 else f"{rel[0]} file"


# Ingest phases, in the order a tick runs them (see IngestResult.phases); scan is the
# follow's own look at the run directory before it decides to ingest; zarr_sync is the
# part of zarr spent making the Zarr files durable, fsync the other fsyncs of the ingest
# (publish_commit's two, in pfflake.lake.log, are timed by the fsync wrapper only).
PHASES = ("scan", "plan", "stores", "unit_open", "read", "zarr", "zarr_sync", "checksum",
          "parquet", "tables", "publish_files", "publish_commit", "fsync", "cleanup")


def report_ticks(ticks: list[dict], lake: Path) -> None:
    print(f"per commit ({len(ticks)}), seconds     median      p95      max")
    for name in PHASES:
        xs = [t["phases"].get(name, 0.0) for t in ticks]
        print(f"  {name:<22} {stats(xs, fmt='8.3f')}")
    xs = [t["published_at"] - t["started_at"] for t in ticks]
    print(f"  {'tick (start->publish)':<22} {stats(xs, fmt='8.3f')}")
    counts = [len(t["fsyncs"]) for t in ticks]
    print(f"  {'fsyncs per commit':<22} {stats(counts, fmt='8.0f')}")
    kinds: dict[str, list[float]] = {}
    for t in ticks:
        for path, dt in t["fsyncs"]:
            kinds.setdefault(sync_kind(path, lake), []).append(dt)
    print("fsyncs by what they synced: n, ms median / p95 / max")
    for k, xs in sorted(kinds.items(), key=lambda kv: -sum(kv[1])):
        print(f"  {k:<22} {len(xs):5d}  {stats(xs, 1e3, '8.1f')}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=10_000.0, help="frames/s written")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of the recording")
    ap.add_argument("--interval", type=float, default=1.0, help="follow --interval (s)")
    ap.add_argument("--frames-per-file", type=int, default=60_000)
    ap.add_argument("--batch-ms", type=float, default=10.0)
    ap.add_argument("--poll-ms", type=float, default=20.0)
    ap.add_argument("--dirty-gb", type=float, default=0.0,
                    help="GB another process writes (no fsync) to the lake's disk")
    ap.add_argument("--dirty-when", choices=("during", "before"), default="during")
    ap.add_argument("--ticks", action="store_true", help="print every commit's phases")
    ap.add_argument("--no-zarr-sync", action="store_true",
                    help="A/B only: Zarr files written without fsync (as before they were "
                         "made durable), to measure what durability costs the lag")
    ap.add_argument("--strace", type=Path, default=None,
                    help="run the follow under strace -T (file/fsync syscalls) into this file")
    ap.add_argument("--compact-every", type=int, default=32,
                    help="follow --compact-every (0: compact only at the end, A/B)")
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
    log, ticks_log = args.workdir / "writer.json", args.workdir / "ticks.jsonl"
    ballast, ballast_done = args.workdir / "dirty.bin", args.workdir / "dirty.done"
    ballast_done.unlink(missing_ok=True)
    ctx = mp.get_context("spawn")
    print(f"load before: {load()}; page cache dirty/writeback MB: {meminfo()}")
    if args.dirty_gb and args.dirty_when == "before":
        t = time.perf_counter()
        dirty(str(ballast), args.dirty_gb, str(ballast_done))
        ballast.unlink()
        print(f"wrote and deleted {args.dirty_gb:g} GB in {time.perf_counter() - t:.1f} s; "
              f"dirty/writeback MB now {meminfo()}")
    print(f"{n:,} img16 frames at {args.rate:,.0f}/s ({args.seconds:g} s), files of "
          f"{args.frames_per_file:,} frames, follow --interval {args.interval:g} --workers 1"
          + (f", {args.dirty_gb:g} GB written {args.dirty_when}" if args.dirty_gb else "")
          + (", Zarr files NOT fsynced (A/B)" if args.no_zarr_sync else "")
          + f", --compact-every {args.compact_every}")
    cmd = [sys.executable, "-c", FOLLOW_CODE, str(lake), str(run), str(args.interval),
           str(ticks_log), "no-zarr-sync" if args.no_zarr_sync else "-",
           str(args.compact_every)]
    if args.strace:  # a diagnosis: which system call stalls (adds its own overhead)
        cmd = ["strace", "-f", "-T", "-tt", "-o", str(args.strace), "-e",
               "trace=%file,%desc,fsync,fdatasync,sync_file_range,syncfs", *cmd]
    follow = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    time.sleep(2.0)  # the follow's interpreter is up before the first frame
    writer = ctx.Process(target=play, args=(str(src), str(run), args.rate, args.batch_ms,
                                            str(log)))
    hog = None
    if args.dirty_gb and args.dirty_when == "during":
        hog = ctx.Process(target=dirty, args=(str(ballast), args.dirty_gb, str(ballast_done)))
    warm_reader(args.workdir / "empty-lake")
    t_start = time.time()
    writer.start()
    if hog is not None:
        hog.start()
    polled = poll_lake(lake, follow, args.poll_ms / 1000)
    writer.join()
    if hog is not None:
        hog.join()
        print(f"dirty writer: {args.dirty_gb:g} GB "
              + ("written" if ballast_done.exists() else "NOT finished"))
        ballast.unlink(missing_ok=True)
    out, err = follow.communicate()
    if follow.returncode != 0:
        sys.exit(f"follow failed ({follow.returncode}): {err[-2000:]}")
    marks = json.loads(log.read_text())["marks"]
    ticks = [json.loads(line) for line in ticks_log.read_text().splitlines()]
    total, committed = 0, []  # (cumulative frames, tick) per commit
    for t in ticks:
        total += t["frames"]
        committed.append((total, t))
    seen = polled["seen"]
    lags, parts, i, c = [], [], 0, 0
    for frames, t_written in marks:
        while i < len(seen) and seen[i][2] < frames:
            i += 1
        if i == len(seen):
            sys.exit(f"frames up to {frames} never became queryable")
        while committed[c][0] < frames:
            c += 1
        tick = committed[c][1]
        lag = max(0.0, seen[i][0] - t_written)
        lags.append(lag)
        parts.append((tick["started_at"] - t_written, tick["published_at"] - tick["started_at"],
                      seen[i][0] - tick["published_at"]))
    behind = marks[-1][1] - t_start - args.seconds
    med, p95 = statistics.median(lags), pct(lags, 0.95)
    print(f"writer: {len(marks):,} batches, {behind:+.2f} s behind schedule at the end")
    print(f"follow: {len(ticks)} commits; {out.strip().splitlines()[-1]}")
    pages = polled["pages"]
    print(f"page cache during the run, MB: dirty max {max(p[0] for p in pages):,}, "
          f"writeback max {max(p[1] for p in pages):,}")
    print(f"lag write -> queryable: median {med:.3f} s, p95 {p95:.3f} s, max {max(lags):.3f} s "
          f"(bound S + 1 = {args.interval + 1:.1f} s)")
    print("lag parts, s (median  p95  max):")
    for k, name in enumerate(("wait (write->tick)", "tick (->published)",
                              "visible (->seen)")):
        print(f"  {name:<22} {stats([p[k] for p in parts], fmt='8.3f')}")
    report_ticks(ticks, lake)
    q = polled["query_s"]
    print(f"reader, ms (median  p95  max): Lake.version per poll "
          f"{stats(polled['version_s'], 1e3, '7.2f')}")
    for k, name in enumerate(("snapshot", "connect", "SQL")):
        print(f"  per new version: {name:<9} {stats([x[k] for x in q], 1e3, '7.1f')}")
    if args.ticks:
        print("commit  frames  start->publish  " + " ".join(f"{p[:8]:>8}" for p in PHASES)
              + "  fsyncs")
        t0 = ticks[0]["started_at"]
        for t in ticks:
            print(f"{t['version']:6d} {t['frames']:7d} {t['started_at'] - t0:7.2f}+"
                  f"{t['published_at'] - t['started_at']:5.2f}  "
                  + " ".join(f"{t['phases'].get(p, 0.0):8.3f}" for p in PHASES)
                  + f"  {len(t['fsyncs'])}")
    print(f"load after: {load()}")
    ok = p95 <= args.interval + 1
    print("OK" if ok else "FAIL: p95 lag above S + 1 s")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
