"""pfflake.lake.log: typed commit records. A log written by main 9616544's own code (the
golden fixture) replays to what a naive json.loads replay says; every record round-trips;
unknown keys at every level are kept and written back."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pfflake.lake.log import (
    LOG_DIR,
    AddFile,
    Commit,
    FileState,
    StreamState,
    load_snapshot,
    log_versions,
    publish_commit,
    read_commit,
)

GOLDEN = Path(__file__).parent / "data" / "lake-log-9616544"


def _naive_replay(log: Path) -> dict:
    """Independent truth: the log's JSON replayed with plain dicts, as the format says."""
    files: dict[str, list[dict]] = {}
    streams: dict[tuple[str, str], dict] = {}
    hk: dict[str, int] = {}
    runs: set[str] = set()
    version = 0
    for p in sorted(log.glob("*.json")):
        c = json.loads(p.read_text())
        gone = {e["path"] for e in c.get("remove", [])}
        files = {t: [e for e in es if e["path"] not in gone] for t, es in files.items()}
        for e in c.get("add", []):
            files.setdefault(e["table"], []).append(e)
        for s in c.get("streams", []):
            st = streams.setdefault((s["run"], s["stream"]), {**s, "files": {}, "store": None})
            st["frames"] = s["frames"]
            st["store"] = s.get("store") or st["store"]
            st["files"].update({f["name"]: f for f in s.get("files", [])})
        hk.update(c.get("hk_records", {}))
        runs.update(c.get("runs", []))
        version = c["version"]
    return {"files": files, "streams": streams, "hk": hk, "runs": runs, "version": version}


def test_golden_log_of_9616544_reads_the_same():
    snap = load_snapshot(GOLDEN)
    naive = _naive_replay(GOLDEN / LOG_DIR)
    expected = json.loads((GOLDEN / "expected_snapshot.json").read_text())
    assert snap.version == naive["version"] == expected["version"] == 3
    for table, entries in naive["files"].items():
        got = snap.table_files(table)
        assert [e.path for e in got] == [e["path"] for e in entries]
        assert [e.to_json() for e in got] == entries  # nothing lost, nothing added
        assert sorted(e.path for e in got) == expected["files"][table]
        assert sum(e.rows for e in got) == expected["rows"][table]
    assert set(snap.streams) == set(naive["streams"])
    for key, s in naive["streams"].items():
        st = snap.streams[key]
        assert (st.frames, st.store, st.data_product, st.module) == (
            s["frames"], s["store"], s["data_product"], s["module"])
        assert {n: f.to_json() for n, f in st.files.items()} == s["files"]
        want = expected["streams"]["|".join(key)]
        assert sorted(st.files) == want["files"] and st.frames == want["frames"]
    assert snap.hk_records == naive["hk"] == expected["hk_records"]
    assert sorted(snap.runs) == sorted(naive["runs"]) == expected["runs"]


def test_golden_commits_round_trip_exactly():
    for version in log_versions(GOLDEN):
        raw = json.loads((GOLDEN / LOG_DIR / f"{version:020d}.json").read_text())
        commit = read_commit(GOLDEN, version)
        assert commit.to_json() == raw


def test_records_round_trip():
    fs = FileState("a.pff", 10, 3, "fp", 1, 2)
    assert FileState.from_json(fs.to_json()) == fs
    st = StreamState("r", "s", "img16", 1, 5, "zarr/x", {"a.pff": fs})
    assert StreamState.from_json(st.to_json()) == st
    add = AddFile("frames", "frames/x.parquet", 5, 100, {"data_product": "img16", "module": 1},
                  "r", "s", 0, 4, 10, 20, [{"path": "a.pff", "offset": 0, "length": 9}])
    assert AddFile.from_json(add.to_json()) == add
    small = AddFile("runs", "runs/t.parquet", 1, 10)
    assert small.to_json() == {"table": "runs", "path": "runs/t.parquet", "rows": 1, "bytes": 10}
    c = Commit(7, "ingest", [add, small], [], [st], ["r"], {"r": 3}, {"r": None}, {"r": {}})
    assert Commit.from_json(c.to_json()) == c
    assert add["path"] == add.path and add.get("nope", 1) == 1 and "sources" in add
    assert {**small} == small.to_json()


def test_unknown_keys_at_every_level_are_kept(tmp_path):
    root = tmp_path / "lake"
    body = {
        "operation": "future",
        "new_commit_key": {"a": 1},
        "add": [{"table": "frames", "path": "frames/x.parquet", "rows": 1, "bytes": 2,
                 "new_entry_key": [1, 2]}],
        "streams": [{"run": "r", "stream": "s", "data_product": "img16", "module": 1,
                     "frames": 1, "new_stream_key": True,
                     "files": [{"name": "a.pff", "size": 1, "frames": 1, "fingerprint": "f",
                                "new_file_key": "crc"}]}],
    }
    path = publish_commit(root, 1, body)
    written = json.loads(path.read_text())
    assert written["new_commit_key"] == {"a": 1}
    assert written["add"][0]["new_entry_key"] == [1, 2]
    assert written["streams"][0]["new_stream_key"] is True
    assert written["streams"][0]["files"][0]["new_file_key"] == "crc"
    snap = load_snapshot(root)  # 9616544's FileState(**f) raised TypeError here
    assert snap.streams[("r", "s")].files["a.pff"].extra == {"new_file_key": "crc"}
    again = read_commit(root, 1)
    assert again.to_json() == written
    publish_commit(root, again.__class__.from_json({**again.to_json(), "version": 2}))
    assert json.loads((root / LOG_DIR / f"{2:020d}.json").read_text())["new_commit_key"]


def test_typed_commit_publishes_like_a_dict_body(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    add = {"table": "hk", "path": "hk/x.parquet", "rows": 3, "bytes": 9}
    publish_commit(a, 1, {"operation": "ingest", "add": [add], "remove": [], "streams": [],
                          "runs": [], "hk_records": {}})
    publish_commit(b, Commit(1, "ingest", [AddFile.from_json(add)]))
    ja, jb = (json.loads((p / LOG_DIR / f"{1:020d}.json").read_text()) for p in (a, b))
    for j in (ja, jb):
        j.pop("committed_at"), j.pop("writer")
    assert ja == jb


def test_golden_fixture_is_small():
    assert sum(p.stat().st_size for p in GOLDEN.rglob("*") if p.is_file()) < 100_000
    assert shutil.which  # the fixture is plain files: copyable into any checkout
    with pytest.raises(FileNotFoundError):
        read_commit(GOLDEN, 99)


# -- issue 16: removed runs/streams and checkpoints -------------------------------------------


def _naive_replay_upto(log: Path, upto: int) -> dict:
    """The naive replay of :func:`_naive_replay`, plus removed runs/streams, to ``upto``."""
    files: dict[str, list[dict]] = {}
    streams: dict[tuple[str, str], dict] = {}
    hk: dict[str, int] = {}
    runs: set[str] = set()
    version = 0
    for p in sorted(log.glob("0*.json")):
        if not p.name.removesuffix(".json").isdigit():
            continue
        c = json.loads(p.read_text())
        if c["version"] > upto:
            break
        gone_runs = set(c.get("removed_runs") or [])
        gone = {(d["run"], d["stream"]) for d in c.get("removed_streams") or []}
        streams = {k: s for k, s in streams.items() if k[0] not in gone_runs and k not in gone}
        runs -= gone_runs
        hk = {r: n for r, n in hk.items() if r not in gone_runs}
        paths = {e["path"] for e in c.get("remove", [])}
        files = {t: [e for e in es if e["path"] not in paths] for t, es in files.items()}
        for e in c.get("add", []):
            files.setdefault(e["table"], []).append(e)
        for s in c.get("streams", []):
            st = streams.setdefault((s["run"], s["stream"]), {**s, "files": {}, "store": None})
            st["frames"] = s["frames"]
            st["store"] = s.get("store") or st["store"]
            st["files"].update({f["name"]: f for f in s.get("files", [])})
        hk.update(c.get("hk_records", {}))
        runs.update(c.get("runs", []))
        version = c["version"]
    return {"files": {t: es for t, es in files.items() if es}, "streams": streams, "hk": hk,
            "runs": runs, "version": version}


def _as_naive(snap) -> dict:
    return {
        "files": {t: [e.to_json() for e in es] for t, es in snap.files.items() if es},
        "streams": {k: {**s.to_json(), "files": {n: f.to_json() for n, f in s.files.items()}}
                    for k, s in snap.streams.items()},
        "hk": snap.hk_records, "runs": snap.runs, "version": snap.version,
    }


def _naive_streams(d: dict) -> dict:
    return {k: {"frames": s["frames"], "store": s["store"], "files": s["files"]}
            for k, s in d["streams"].items()}


def _same(snap, naive: dict) -> None:
    got = _as_naive(snap)
    assert got["version"] == naive["version"]
    assert got["files"] == naive["files"]
    assert _naive_streams(got) == _naive_streams(naive)
    assert got["hk"] == naive["hk"] and got["runs"] == naive["runs"]


def _generated_log(root: Path, n: int, seed: int = 0) -> None:
    """``n`` small commits: ingests of growing streams, compactions, removed runs, dl1-like
    replacements, a re-ingest of a removed run in the same commit (replace)."""
    import random

    rng = random.Random(seed)
    live: dict[str, list[str]] = {}
    for v in range(1, n + 1):
        body: dict = {"operation": "ingest", "add": [], "remove": [], "streams": [], "runs": [],
                      "hk_records": {}}
        op = rng.random()
        if live and op < 0.1:  # remove a run (and maybe re-ingest it: replace)
            run = rng.choice(sorted(live))
            body.update(operation="remove", removed_runs=[run],
                        removed_streams=[{"run": run, "stream": "s", "store": f"zarr/{run}"}])
            body["remove"] = [{"table": "frames", "path": p, "rows": 1, "bytes": 1}
                              for p in live.pop(run)]
            if rng.random() < 0.5:
                live[run] = []
                body["runs"] = [run]
            else:
                publish_commit(root, v, body)
                continue
        elif live and op < 0.2:  # compact one run's files
            run = rng.choice(sorted(live))
            body["operation"] = "compact"
            body["remove"] = [{"table": "frames", "path": p, "rows": 1, "bytes": 1}
                              for p in live[run]]
            live[run] = []
        else:
            run = f"run{rng.randrange(5)}"
            if run not in live:
                live[run] = []
                body["runs"] = [run]
        path = f"frames/{run}.{v}.parquet"
        live[run].append(path)
        body["add"].append({"table": "frames", "path": path, "rows": 1, "bytes": 1, "run": run,
                            "stream": "s", "first_frame": v, "last_frame": v})
        body["streams"].append({"run": run, "stream": "s", "data_product": "img16", "module": 1,
                                "frames": v, "store": f"zarr/{run}",
                                "files": [{"name": f"f{v % 3}.pff", "size": v, "frames": v,
                                           "fingerprint": str(v)}]})
        body["hk_records"] = {run: v}
        publish_commit(root, v, body)


def test_removed_runs_round_trip_and_old_logs_read():
    c = Commit(3, "remove", removed_runs=["r"],
               removed_streams=[{"run": "r", "stream": "s", "store": "zarr/r"}])
    assert Commit.from_json(c.to_json()) == c
    assert "removed_runs" not in Commit(4).to_json()  # absent in older logs, not written
    assert Commit.from_json({"version": 1}).removed_runs is None


def test_checkpoint_equals_full_replay_at_every_version(tmp_path, monkeypatch):
    from pfflake.lake import log as L

    monkeypatch.setattr(L, "CHECKPOINT_INTERVAL", 7)
    root = tmp_path / "lake"
    _generated_log(root, 60)
    assert L.checkpoint_versions(root) == list(range(7, 61, 7))
    assert L.last_checkpoint(root) == 56
    for v in range(0, 61):
        naive = _naive_replay_upto(root / LOG_DIR, v)
        _same(load_snapshot(root, v), naive)
        _same(load_snapshot(root, version=v, checkpoints=False), naive)
        assert load_snapshot(root, v) == load_snapshot(root, v, checkpoints=False)
    _same(load_snapshot(root), _naive_replay_upto(root / LOG_DIR, 60))


def test_checkpoint_of_the_golden_log(tmp_path):
    from pfflake.lake.log import read_checkpoint, write_checkpoint

    root = tmp_path / "golden"
    shutil.copytree(GOLDEN, root)
    write_checkpoint(root, load_snapshot(root, 2))
    assert read_checkpoint(root, 2) == load_snapshot(root, 2, checkpoints=False)
    for v in range(0, 4):
        _same(load_snapshot(root, v), _naive_replay_upto(root / LOG_DIR, v))


def test_damaged_or_missing_checkpoint_falls_back_to_replay(tmp_path, monkeypatch):
    from pfflake.lake import log as L

    monkeypatch.setattr(L, "CHECKPOINT_INTERVAL", 10)
    root = tmp_path / "lake"
    _generated_log(root, 35, seed=3)
    want = load_snapshot(root, checkpoints=False)
    p30 = L.checkpoint_path(root, 30)
    data = p30.read_bytes()
    p30.write_bytes(data[: len(data) // 2])  # truncated
    assert L.read_checkpoint(root, 30) is None
    assert load_snapshot(root) == want
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 1  # one bit: the checksum catches it
    p30.write_bytes(bytes(flipped))
    assert L.read_checkpoint(root, 30) is None and load_snapshot(root) == want
    p30.unlink()
    (root / LOG_DIR / L.LAST_CHECKPOINT).write_text("garbage")
    assert load_snapshot(root) == want
    for p in root.joinpath(LOG_DIR).glob("*.checkpoint.json"):
        p.write_text("{}")
    assert load_snapshot(root) == want and load_snapshot(root, 25) == load_snapshot(
        root, 25, checkpoints=False)


def test_fsck_reports_and_repairs_a_wrong_checkpoint(tmp_path, monkeypatch):
    from pfflake.lake import Lake
    from pfflake.lake import log as L

    monkeypatch.setattr(L, "CHECKPOINT_INTERVAL", 10)
    root = tmp_path / "lake"
    _generated_log(root, 25, seed=5)
    lake = Lake(root)
    wrong = load_snapshot(root, 20)
    wrong.runs.add("ghost")  # a checkpoint with a valid checksum but wrong content
    L.write_checkpoint(root, wrong)
    L.checkpoint_path(root, 10).write_text("x")
    report = lake.fsck()
    found = [x for x in report.leftovers if "checkpoint" in x]
    assert len(found) == 2 and any("disagrees" in x for x in found)
    assert any("damaged" in x for x in found)
    lake.fsck(repair=True)
    assert L.checkpoint_versions(root) == []
    assert load_snapshot(root) == load_snapshot(root, checkpoints=False)
    assert "ghost" not in load_snapshot(root).runs


# -- checkpoint format 2 (columnar file lists) and opens that do not list the log ---------


def _entries() -> list[AddFile]:
    """Entries as the log has them: frames with every optional, a bare one, one with keys
    this version does not know (dl1's data_product/module), one with a None in between."""
    return [
        AddFile.from_json({"table": "frames", "path": "a.parquet", "rows": 3, "bytes": 10,
                           "partition": {"data_product": "img16", "module": 1}, "run": "r",
                           "stream": "s", "first_frame": 0, "last_frame": 2,
                           "min_unix_t_ns": 5, "max_unix_t_ns": 9,
                           "sources": [{"path": "/x.pff", "offset": 0, "length": 9,
                                        "crc32": 7, "frames": [0, 3]}]}),
        AddFile.from_json({"table": "frames", "path": "b.parquet", "rows": 0, "bytes": 1}),
        AddFile.from_json({"table": "frames", "path": "c.parquet", "rows": 1, "bytes": 2,
                           "run": "r", "data_product": "ph256", "module": 254}),
        AddFile.from_json({"table": "frames", "path": "d.parquet", "rows": 1, "bytes": 2,
                           "last_frame": 4}),
    ]


def test_columnar_file_lists_round_trip():
    from pfflake.lake.records import files_from_columns, files_to_columns

    es = _entries()
    assert es[2].extra == {"data_product": "ph256", "module": 254}
    cols = json.loads(json.dumps(files_to_columns(es)))
    back = files_from_columns("frames", cols)
    assert back == es and [e.to_json() for e in back] == [e.to_json() for e in es]
    assert files_from_columns("frames", files_to_columns([])) == []
    bare = files_to_columns(es[1:2])["columns"]
    assert sorted(bare) == ["bytes", "path", "rows"]  # all-None columns are left out
    with pytest.raises(ValueError, match="unequal"):
        files_from_columns("frames", {**cols, "n": 3})
    with pytest.raises(ValueError, match="required"):
        files_from_columns("frames", {"n": 1, "columns": {"path": ["x"], "rows": [1]}})


def _format1_checkpoint(root: Path, snap) -> None:
    """A checkpoint as pfflake wrote it before format 2 (lists of entries), by hand."""
    import hashlib

    from pfflake.lake import log as L

    body = json.dumps(snap.to_json(), sort_keys=True, separators=(",", ":")).encode()
    head = (f'{{"format":1,"sha256":"{hashlib.sha256(body).hexdigest()}",'
            f'"version":{snap.version},"snapshot":').encode()
    L.checkpoint_path(root, snap.version).write_bytes(head + body + b"}")


def test_checkpoints_are_columnar_and_format_1_still_reads(tmp_path, monkeypatch):
    from pfflake.lake import log as L

    monkeypatch.setattr(L, "CHECKPOINT_INTERVAL", 10)
    root = tmp_path / "lake"
    _generated_log(root, 25, seed=7)
    raw = L.checkpoint_path(root, 20).read_bytes()
    assert raw.startswith(b'{"format":2,')
    doc = json.loads(raw)["snapshot"]
    assert set(doc["files"]["frames"]) == {"n", "columns"}
    for v in (10, 20):  # a lake written by an older pfflake: format 1 checkpoints
        _format1_checkpoint(root, load_snapshot(root, v, checkpoints=False))
        assert L.read_checkpoint(root, v) == load_snapshot(root, v, checkpoints=False)
    assert load_snapshot(root) == load_snapshot(root, checkpoints=False)
    _same(load_snapshot(root), _naive_replay_upto(root / LOG_DIR, 25))


def test_latest_version_and_open_follow_the_log_not_the_pointer(tmp_path, monkeypatch):
    """The pointer only says where to start: every later commit is found, and a pointer
    that is missing, garbage, too new or names a damaged checkpoint changes nothing."""
    from pfflake.lake import log as L

    monkeypatch.setattr(L, "CHECKPOINT_INTERVAL", 10)
    root = tmp_path / "lake"
    _generated_log(root, 37, seed=11)
    pointer = root / LOG_DIR / L.LAST_CHECKPOINT
    want = {v: _naive_replay_upto(root / LOG_DIR, v) for v in (25, 30, 37)}

    def check():
        assert L.latest_version(root) == 37 == log_versions(root)[-1]
        _same(load_snapshot(root), want[37])
        _same(load_snapshot(root, 25), want[25])
        _same(load_snapshot(root, 30), want[30])

    assert L.last_checkpoint(root) == 30
    check()
    for text in ("garbage", '{"version": 90}', '{"version": 5}'):
        pointer.write_text(text)
        check()
    pointer.write_text('{"version": 30}')
    L.checkpoint_path(root, 30).write_text("x")  # damaged: an older one serves
    check()
    pointer.unlink()
    check()
    publish_commit(root, 38, {"runs": ["late"]})  # a commit after the open sees it
    assert L.latest_version(root) == 38 and "late" in load_snapshot(root).runs


def test_fsck_reports_a_gap_in_the_log(tmp_path, monkeypatch):
    from pfflake.lake import Lake
    from pfflake.lake import log as L

    monkeypatch.setattr(L, "CHECKPOINT_INTERVAL", 10)
    root = tmp_path / "lake"
    _generated_log(root, 15, seed=2)
    assert not [e for e in Lake(root).fsck().errors if "misses" in e]
    (root / LOG_DIR / f"{12:020d}.json").unlink()
    errors = [e for e in Lake(root).fsck().errors if "misses" in e]
    assert errors == ["the commit log misses 1 version(s): 12 (of 1..15); readers stop "
                      "before the first gap"]
