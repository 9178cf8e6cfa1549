"""Snapshot-bound reads (``Lake.at``, :class:`LakeView`) and time travel, against a naive recount.

The lake at version 1 must hold exactly run 1's frames (counted from the PFF
files with ``json.loads``), at version 2 runs 1 and 2, whatever was committed
after; a relation held from version 1 keeps answering version 1.
"""

from __future__ import annotations

import gc
import warnings
from datetime import UTC, datetime

import duckdb
import numpy as np
import pytest

from pfflake import PFFWarning
from pfflake.errors import FrameNotFoundError, LakeError
from pfflake.lake import Lake
from tests.lake_travel import (
    build_travel,
    frame_total,
    json_rows,
    make_runs,
    naive_counts,
    run_cli,
)

COUNT = "SELECT run, count(*) FROM frames GROUP BY run ORDER BY run"
travel = pytest.fixture(scope="module")(build_travel)


def test_at_version_sees_exactly_its_runs(travel):
    lake, one, two, _, truth = travel
    r1, r2 = one.path.name, two.path.name
    assert lake.at(1).sql(COUNT).fetchall() == [(r1, frame_total(truth[r1]))]
    assert lake.at(2).sql(COUNT).fetchall() == sorted(
        [(r1, frame_total(truth[r1])), (r2, frame_total(truth[r2]))])
    assert lake.at().version == 2 and lake.at() is lake.at(2)
    assert lake.at(0).sql("SELECT count(*) FROM frames").fetchall()[0] == (0,)
    # the Polars scan and the per-stream times of version 1 equal the files' own
    got = lake.at(1).scan().select("data_product", "module", "unix_t_ns").collect()
    for (product, module), times in truth[r1].items():
        mine = got.filter((got["data_product"] == product) & (got["module"] == module))
        assert np.array_equal(np.sort(mine["unix_t_ns"].to_numpy()), np.sort(times))
    assert sorted(lake.at(1).snapshot.runs) == [r1]


def test_at_time_picks_the_last_commit_at_or_before(travel):
    lake, _, _, between, _ = travel
    assert lake.at(time=between).version == 1
    assert lake.at(time=between.isoformat()).version == 1
    assert lake.at(time=between.replace(tzinfo=None).isoformat()).version == 1  # naive: UTC
    ns = int(between.timestamp()) * 1_000_000_000 + between.microsecond * 1000
    assert lake.at(time=ns).version == 1
    assert lake.at(time=datetime.now(UTC)).version == 2
    with pytest.raises(LakeError, match="no commit at or before"):
        lake.at(time="2001-01-01T00:00:00Z")
    with pytest.raises(ValueError, match="not both"):
        lake.at(1, time=between)


def test_unknown_version_names_the_lake_and_the_range(travel):
    lake = travel[0]
    for bad in (3, 17, -1):
        with pytest.raises(LakeError) as err:
            lake.at(bad)
        assert str(lake.root) in str(err.value)
        assert f"no version {bad}" in str(err.value) and "0..2" in str(err.value)


def test_held_relations_survive_a_new_version(tmp_path):
    one, two = make_runs(tmp_path)
    lake = Lake(tmp_path / "lake")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        lake.ingest([one.path], workers=1, progress=False)
        n1 = lake.sql("SELECT count(*) FROM frames").fetchall()[0][0]
        rel = lake.sql("SELECT count(*) FROM frames")
        con = lake.connection()
        v1 = lake.at()
        lake.ingest([two.path], workers=1, progress=False)  # version 2
    n2 = lake.sql("SELECT count(*) FROM frames").fetchall()[0][0]
    assert n2 > n1 == frame_total(naive_counts(one.path))
    assert n2 == n1 + frame_total(naive_counts(two.path))
    assert rel.fetchall()[0] == (n1,)  # the relation of version 1 still answers version 1
    assert con.sql("SELECT count(*) FROM frames").fetchall()[0] == (n1,)
    assert v1.sql("SELECT count(*) FROM frames").fetchall()[0] == (n1,)
    assert lake.connection() is not con
    # dropping every reference to the view leaves the relation valid (DuckDB keeps the
    # connection alive for it)
    rel2 = lake.at(1).sql("SELECT count(*) FROM frames")
    del v1, con
    gc.collect()
    assert rel2.fetchall()[0] == (n1,) and rel.fetchall()[0] == (n1,)
    # a view is a context manager; closing it closes its relations
    with lake.at(1) as v:
        inner = v.sql("SELECT count(*) FROM frames")
        assert inner.fetchall()[0] == (n1,)
    with pytest.raises(duckdb.ConnectionException):
        inner.fetchall()[0]
    with pytest.raises(LakeError, match="closed"):
        v.sql("SELECT 1")
    assert lake.at(1).sql("SELECT count(*) FROM frames").fetchall()[0] == (n1,)  # a new view
    latest = lake.sql("SELECT count(*) FROM frames")
    lake.close()  # closes what it made
    with pytest.raises(duckdb.ConnectionException):
        latest.fetchall()[0]
    assert lake.sql("SELECT count(*) FROM frames").fetchall()[0] == (n2,)  # reopens on use
    lake.close()


def test_stream_lookups(travel):
    lake, one, _, _, _ = travel
    snap = lake.at(1).snapshot
    state = snap.find_stream(one.path.name, data_product="img16", module=2)
    assert state.module == 2 and state.frames == 300
    assert snap.stream_index()[(one.path.name, "img16", 2)] is state
    with pytest.raises(FrameNotFoundError, match="2 streams"):
        snap.find_stream(one.path.name, data_product="img16")
    with pytest.raises(FrameNotFoundError, match="no stream"):
        snap.find_stream("no-such-run")


def test_cli_sql_as_of(travel):
    lake, one, _, between, truth = travel
    q = "SELECT count(*) AS n FROM frames"
    for as_of in ("1", between.isoformat()):
        done = run_cli("sql", str(lake.root), q, "--as-of", as_of, "--format", "json")
        assert done.returncode == 0, done.stderr
        assert json_rows(done.stdout) == [{"n": frame_total(truth[one.path.name])}]
    latest = run_cli("sql", str(lake.root), q, "--format", "json")
    assert json_rows(latest.stdout) == [{"n": sum(frame_total(t) for t in truth.values())}]
    bad = run_cli("sql", str(lake.root), q, "--as-of", "9")
    assert bad.returncode == 1
    assert bad.stderr.count("\n") == 1 and "no version 9" in bad.stderr
    assert "0..2" in bad.stderr


@pytest.mark.parametrize("name", sorted(__import__("pfflake.lake.tables").lake.tables.VIEWS))
def test_an_empty_view_has_the_types_of_committed_files(tmp_path, name):
    """A view with no committed file yet selects typed NULLs; its columns and DuckDB types
    are the ones read_parquet gives for a Parquet file of the table (written here by
    pyarrow, as an ingest writes them), so a query's types do not change at the first
    commit."""
    import pyarrow.parquet as pq

    from pfflake.lake.tables import VIEWS
    from pfflake.lake.views import empty_select

    schema = VIEWS[name].spec.view_schema()
    pq.write_table(schema.empty_table(), tmp_path / "t.parquet")
    con = duckdb.connect()
    truth = con.sql(f"DESCRIBE SELECT * FROM read_parquet('{tmp_path / 't.parquet'}')").fetchall()
    got = con.sql(f"DESCRIBE {empty_select(schema)}").fetchall()
    assert [r[:2] for r in got] == [r[:2] for r in truth]
    assert con.sql(f"SELECT count(*) FROM ({empty_select(schema)})").fetchall() == [(0,)]


def test_a_fresh_connect_imports_no_pandas(tmp_path):
    """Views over tables with no files (here calibration and dl1) used to register empty
    Arrow tables, which made DuckDB import pandas: 0.2-1.4 s on every `pfflake sql`."""
    import subprocess
    import sys

    from tests.conftest import EXAMPLE_RUN

    lake = Lake(tmp_path / "lake")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        lake.ingest([EXAMPLE_RUN], workers=1)
    code = (
        "import sys; from pfflake.lake import Lake\n"
        f"con = Lake({str(tmp_path / 'lake')!r}).connect()\n"
        "print(con.sql('SELECT count(*) FROM frames').fetchall()[0][0],"
        " con.sql('SELECT count(*) FROM dl1').fetchall()[0][0], 'pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    frames, dl1, pandas = out.stdout.split()
    assert int(frames) > 0 and int(dl1) == 0, out.stderr
    assert pandas == "False"
