"""pfflake.lake.follow: ingest while the DAQ records.

A real recording (tests/data/example-data: img16 module 1, 400 frames; ph256 module 254,
1500 frames) is played into a fresh run directory by a writer thread at a fixed frame
rate: frames appended in bursts, half frames visible between bursts, each stream rolling
over from seqno 0 to seqno 1 halfway (the new file's first bytes are half a frame), the
end sentinels last. ``pfflake ingest --follow`` runs in a subprocess meanwhile, and the
test polls the lake: every version it sees is a whole commit (the frames rows are
exactly the stream states' counts, frame indices 0..n-1, each once), counts only grow,
and the end state equals a one-shot ingest of the finished run, row for row and array for
array. Truth for pixels and counts: ``tests/naive.py`` on the played files.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from pfflake.lake import Lake, LakeError
from pfflake.lake.follow import follow
from pfflake.lake.ingest import IngestOptions
from pfflake.lake.log import read_commit
from pfflake.store.layout import ArrayLayout
from tests.conftest import EXAMPLE_RUN
from tests.naive import naive_read
from tests.reliability._lakes import assert_same_lake, naive_truth

SENTINELS = ("collect_complete", "run_complete", "recording_ended")


class Player:
    """Plays ``src``'s streams into ``dst`` at ``rate`` frames/s (all streams together).

    Frames of all streams are interleaved in time (each stream spread over the same
    duration) and written in bursts of 1..``burst`` frames; after a burst a stream's next
    frame is left half written with probability ``half`` (the rest comes with its next
    burst). Frames [n//2, n) of each stream go to a new seqno-1 file. ``pause_at``: stop
    (with nothing half written) once each of these fractions of frames is out, until
    ``resume()``; ``paused[i]`` is set at the i-th pause.
    """

    def __init__(self, src: Path, dst: Path, rate: float, *, burst: int = 40,
                 half: float = 0.4, seed: int = 0, pause_at: tuple[float, ...] = (),
                 sentinels: bool = True) -> None:
        self.dst, self.rate, self.burst, self.half = dst, rate, burst, half
        self.rng = random.Random(seed)
        self.pause_at, self.sentinels = list(pause_at), sentinels
        self.paused = [threading.Event() for _ in pause_at]
        self._resume = [threading.Event() for _ in pause_at]
        self._pauses = 0
        self.error: BaseException | None = None
        dst.mkdir(parents=True)
        for p in src.iterdir():  # configs and housekeeping first, no sentinel, no data
            if p.is_file() and p.name not in SENTINELS and not p.name.startswith("start_"):
                shutil.copyfile(p, dst / p.name)
        self.streams = []
        for p in sorted(src.glob("start_*.pff")):
            data = p.read_bytes()
            nf = naive_read(p)
            ends = [*nf.offsets[1:], len(data) - nf.truncated_tail_bytes]
            frames = [data[a:b] for a, b in zip(nf.offsets, ends, strict=True)]
            cut = len(frames) // 2
            files = [dst / p.name, dst / p.name.replace(".seqno_0.", ".seqno_1.")]
            self.streams.append({"frames": frames, "cut": cut, "files": files,
                                 "next": 0, "pending": b""})
        self.total = sum(len(s["frames"]) for s in self.streams)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Player:
        self.thread.start()
        return self

    def resume(self) -> None:
        self._resume[self._pauses - 1].set()

    def join(self, timeout: float = 120) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "player did not finish"
        if self.error is not None:
            raise self.error

    def _append(self, s: dict, index: int, data: bytes) -> None:
        with open(s["files"][index >= s["cut"]], "ab") as f:
            f.write(data)

    def _run(self) -> None:
        try:
            self._play()
        except BaseException as e:  # re-raised in join()
            self.error = e

    def _play(self) -> None:
        duration = self.total / self.rate
        schedule = sorted(
            (i * duration / len(s["frames"]), k, i)
            for k, s in enumerate(self.streams) for i in range(len(s["frames"]))
        )
        t0 = time.monotonic()
        done, out = 0, 0
        while done < len(schedule):
            n = self.rng.randint(1, self.burst)
            burst, done = schedule[done:done + n], done + len(schedule[done:done + n])
            wait = t0 + burst[-1][0] - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            for k in sorted({k for _, k, _ in burst}):
                s = self.streams[k]
                last = max(i for _, kk, i in burst if kk == k)
                while s["next"] <= last:
                    i = s["next"]
                    self._append(s, i, s["frames"][i][len(s["pending"]):])
                    s["pending"], s["next"] = b"", i + 1
                if s["next"] < len(s["frames"]) and self.rng.random() < self.half:
                    frame = s["frames"][s["next"]]
                    s["pending"] = frame[: self.rng.randint(1, len(frame) - 1)]
                    self._append(s, s["next"], s["pending"])
            if self.pause_at and out + done >= self.pause_at[0] * self.total:
                self.pause_at.pop(0)
                for s in self.streams:  # finish half-written frames: a fixed state
                    if s["pending"]:
                        i = s["next"]
                        self._append(s, i, s["frames"][i][len(s["pending"]):])
                        s["pending"], s["next"] = b"", i + 1
                schedule = [e for e in schedule if e[2] >= self.streams[e[1]]["next"]]
                done, out = 0, self.total - len(schedule)
                self._pauses += 1
                self.paused[self._pauses - 1].set()
                self._resume[self._pauses - 1].wait(120)
                t0 = time.monotonic() - (schedule[0][0] if schedule else 0)
        if self.sentinels:
            self.finish()

    def finish(self) -> None:
        for name in SENTINELS:
            (self.dst / name).write_text("2023-08-02T00:40:00Z\n")


def follow_cmd(run: Path, lake: Path, interval: float = 0.2) -> list[str]:
    return [sys.executable, "-m", "pfflake", "ingest", str(run), "--lake", str(lake),
            "--follow", "--interval", str(interval)]


class Poller:
    """Reads the lake while it is written; checks each version it sees is one whole commit."""

    def __init__(self, lake: Path) -> None:
        self.path = lake
        self.seen: dict[int, dict[tuple[str, int], int]] = {}
        self.last: dict[tuple[str, int], int] = {}

    def poll(self) -> None:
        try:
            lake = Lake(self.path)
            snap = lake.snapshot()
        except LakeError:  # not created yet
            return
        if snap.version in self.seen or snap.version == 0:
            return
        con = lake.connect(snap)
        try:
            rows = con.sql(
                "SELECT data_product, module, count(*), count(DISTINCT frame), min(frame), "
                "max(frame) FROM frames GROUP BY ALL"
            ).fetchall()
        finally:
            con.close()
        counts = {}
        for dp, m, n, distinct, lo, hi in rows:
            assert n == distinct == hi + 1 and lo == 0, (snap.version, dp, m, n, distinct, hi)
            counts[(dp, int(m))] = n
        want = {(s.data_product, s.module): s.frames for s in snap.streams.values() if s.frames}
        assert counts == want, f"version {snap.version}: rows {counts} != commit {want}"
        for key, n in self.last.items():
            assert counts.get(key, 0) >= n, f"count of {key} went down at {snap.version}"
        self.last = counts
        self.seen[snap.version] = counts


def frames_sorted(lake: Lake, table: str = "frames"):
    order = {"frames": "run, data_product, module, frame", "files": "run, file",
             "runs": "run"}[table]
    rel = lake.sql(f"SELECT * FROM {table} ORDER BY {order}")
    t = rel.to_arrow_table()
    return t.drop_columns([c for c in ("version",) if c in t.column_names])


def assert_equals_one_shot(followed: Lake, run: Path, tmp: Path) -> Lake:
    ref = Lake(tmp / "one_shot")
    ref.ingest([run], workers=1)
    assert_same_lake(followed, ref)  # frames (all but time), hk, every Zarr array
    assert frames_sorted(followed).equals(frames_sorted(ref))  # with time too
    assert frames_sorted(followed, "files").equals(frames_sorted(ref, "files"))
    runs = frames_sorted(followed, "runs")
    assert runs.drop_columns(["source_path"]).equals(
        frames_sorted(ref, "runs").drop_columns(["source_path"]))
    assert runs.column("complete").to_pylist() == [True]
    truth = naive_truth(run)  # independent: counts and pixels of the played files
    got = {(s.data_product, s.module): s.frames for s in followed.snapshot().streams.values()}
    assert got == truth.frames
    for st in followed.snapshot().streams.values():  # grown during the follow, exact after
        assert ArrayLayout(followed.root / st.store / "images").n_frames == st.frames
    assert followed.fsck().clean
    for (dp, m), images in truth.images.items():
        picks = sorted({0, len(images) // 2, len(images) // 2 - 1, len(images) - 1})
        rows = followed.sql(
            f"SELECT run, data_product, module, frame FROM frames WHERE data_product = '{dp}' "
            f"AND module = {m} AND frame IN ({', '.join(map(str, picks))}) ORDER BY frame"
        ).to_arrow_table()
        np.testing.assert_array_equal(followed.images(rows), images[picks])
    return ref


@pytest.fixture
def played(tmp_path):
    return tmp_path / "runs" / EXAMPLE_RUN.name


def test_follow_while_recording_equals_one_shot(played, tmp_path):
    lake = tmp_path / "lake"
    # A pause after the first frames until the follow has committed them: the rest of
    # the recording (~5 s) then plays while the follow is up, however slow its start.
    player = Player(EXAMPLE_RUN, played, rate=350, seed=1, pause_at=(0.05,))
    proc = subprocess.Popen(follow_cmd(played, lake), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    poller = Poller(lake)
    try:
        player.start()
        deadline = time.monotonic() + 120
        while not poller.seen and proc.poll() is None and time.monotonic() < deadline:
            poller.poll()
            time.sleep(0.05)
        player.resume()
        while proc.poll() is None:
            poller.poll()
            time.sleep(0.05)
        poller.poll()
        out, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
    player.join()
    assert proc.returncode == 0, err[-3000:]
    assert "the recording ended" in out, out
    assert "cut short" not in err, err[-3000:]  # expected while recording: not reported
    commits = [line for line in out.splitlines() if line.startswith("version ")]
    assert len(commits) >= 5, out  # ~5 s of recording at 0.2 s per commit
    assert len(poller.seen) >= 3, poller.seen  # the reader saw the lake grow
    followed = Lake(lake)
    assert followed.version >= len(commits)  # (+ a compaction commit, once there is one)
    assert_equals_one_shot(followed, played, tmp_path)
    # The frames' commits: each frame once, in order, across many commits.
    seen = sorted(poller.seen.items())
    assert seen[-1][1] == {k: v for k, v in naive_truth(played).frames.items() if v}
    assert followed.fsck().clean


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_makes_a_final_commit_and_exits_0(played, tmp_path, sig):
    lake = tmp_path / "lake"
    player = Player(EXAMPLE_RUN, played, rate=800, seed=2, pause_at=(0.3, 0.6)).start()
    proc = subprocess.Popen(follow_cmd(played, lake, interval=5.0), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert player.paused[0].wait(60)
        deadline = time.monotonic() + 120  # the follow's first commit: it is up
        while not (lake / "_pfflake_log").is_dir() or Lake(lake).version < 1:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        player.resume()
        assert player.paused[1].wait(60)  # the follow is waiting out its 5 s interval
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert "stopped" in out and sig.name in err, (out, err)
    # The final commit holds every whole frame on disk at the signal (the writer paused).
    paused = naive_truth(played)
    Poller(lake).poll()  # the last commit is whole
    got = {(s.data_product, s.module): s.frames for s in Lake(lake).snapshot().streams.values()}
    assert got == paused.frames and 0 < sum(got.values()) < player.total
    # The first tick's commit, the final one, then the automatic compaction of the two.
    assert [read_commit(lake, v).operation for v in (1, 2, 3)] == ["ingest", "ingest",
                                                                  "compact"]
    assert Lake(lake).version == 3
    player.resume()
    player.join()
    again = subprocess.run(follow_cmd(played, lake), capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "the recording ended" in again.stdout
    assert_equals_one_shot(Lake(lake), played, tmp_path)


def test_python_follow_with_stop_event_and_unchanged_ticks(played, tmp_path):
    """``follow(stop=...)`` from a thread: no signal handlers, idle ticks skipped, the
    completion row written when the sentinel appears later."""
    player = Player(EXAMPLE_RUN, played, rate=4000, seed=3, sentinels=False).start()
    player.join()
    lake = Lake(tmp_path / "lake")
    stop = threading.Event()
    commits = []
    before = signal.getsignal(signal.SIGTERM)
    t = threading.Thread(target=lambda: commits.append(follow(
        lake, [played], IngestOptions(workers=1), interval=0.05, stop=stop)))
    t.start()
    time.sleep(1.0)
    stop.set()
    t.join(30)
    (result,) = commits
    assert result.reason == "stopped" and len(result.commits) == 1
    assert result.ticks <= 2  # one ingest, then (at most) the final one: idle ticks skipped
    assert signal.getsignal(signal.SIGTERM) is before
    assert lake.sql("SELECT complete FROM runs").fetchall() == [(False,)]
    player.finish()
    r = lake.follow([played], interval=0.05)
    assert r.reason == "complete" and len(r.commits) == 1 and r.frames == 0
    assert lake.sql("SELECT complete FROM runs").fetchall() == [(True,)]
    assert lake.sql("SELECT count(*) FROM runs_all").fetchall() == [(2,)]
    assert_equals_one_shot(lake, played, tmp_path)


def test_follow_waits_for_the_first_data_file_and_refuses_a_missing_dir(tmp_path):
    with pytest.raises(LakeError, match="not found"):
        Lake(tmp_path / "lake").follow([tmp_path / "nope"], interval=0.05)
    run = tmp_path / "runs" / EXAMPLE_RUN.name
    player = Player(EXAMPLE_RUN, run, rate=4000, seed=4)
    stop = threading.Event()
    out = []
    t = threading.Thread(target=lambda: out.append(
        Lake(tmp_path / "lake").follow([run], interval=0.05, stop=stop)))
    t.start()
    time.sleep(0.3)  # nothing to ingest yet: the follow waits, nothing is created
    assert t.is_alive() and not os.path.exists(tmp_path / "lake")
    player.start()
    player.join()
    t.join(60)
    assert out and out[0].reason == "complete", out
    assert_equals_one_shot(Lake(tmp_path / "lake"), run, tmp_path)


def test_a_stream_with_only_half_a_frame_waits_for_its_first_frame(tmp_path):
    """At a tick where a new stream's first file holds half a frame, the stream is not
    part of the commit yet (no state, no store); the commit with its first whole frame
    creates it."""
    run = tmp_path / "runs" / EXAMPLE_RUN.name
    player = Player(EXAMPLE_RUN, run, rate=1e6, seed=5, sentinels=False)
    first, second = player.streams
    player._append(first, 0, b"".join(first["frames"][:10]))
    player._append(second, 0, second["frames"][0][:300])  # half of frame 0
    lake = Lake(tmp_path / "lake")
    lake.ingest([run], workers=1)
    states = {s.data_product: s for s in lake.snapshot().streams.values()}
    assert list(states) == ["img16"] and states["img16"].frames == 10
    assert lake.fsck().ok
    player._append(second, 0, second["frames"][0][300:] + second["frames"][1])
    lake.ingest([run], workers=1)
    states = {s.data_product: s for s in lake.snapshot().streams.values()}
    assert states["ph256"].frames == 2 and states["ph256"].store is not None
    truth = naive_truth(run)
    rows = lake.sql("SELECT run, data_product, module, frame FROM frames "
                    "WHERE data_product = 'ph256' ORDER BY frame").to_arrow_table()
    np.testing.assert_array_equal(lake.images(rows), truth.images[("ph256", 254)])
    assert lake.fsck().clean


def test_follow_compacts_while_it_runs(played, tmp_path, monkeypatch):
    """``compact_every``: readers of a long follow see tens of files, not one per tick.
    Tier 1 merges the ticks' files every 3 commits, tier 2 every 2nd time; the frames a
    reader counts only grow and the end state equals a one-shot ingest."""
    from pfflake.lake import follow as F

    monkeypatch.setattr(F, "TIER_2_EVERY", 2)
    player = Player(EXAMPLE_RUN, played, rate=500, seed=5, pause_at=(0.02,)).start()
    lake = Lake(tmp_path / "lake")
    poller = Poller(lake.root)
    files_seen: list[int] = []

    def on_commit(r):
        poller.poll()
        files_seen.append(len(lake.snapshot().table_files("frames")))
        if len(files_seen) == 1:  # the rest (~4 s) plays while the follow is up
            assert player.paused[0].wait(30)
            player.resume()

    result = lake.follow([played], interval=0.1, on_commit=on_commit, compact_every=3)
    player.join()
    assert result.reason == "complete" and len(result.commits) >= 9, result.summary()
    assert result.compactions >= 3 and "compaction(s) meanwhile" in result.summary()
    ops = [read_commit(lake.root, v).operation for v in range(1, lake.version + 1)]
    first = ops.index("compact")
    assert "ingest" in ops[first + 1:]  # compacted while following, not only at the end
    streams = len(lake.snapshot().streams)
    # One file per stream per tick without compaction; with it, bounded by the tiers.
    assert max(files_seen) < len(result.commits) * streams
    assert_equals_one_shot(lake, played, tmp_path)
    assert lake.fsck().clean
