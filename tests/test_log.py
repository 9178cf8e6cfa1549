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
