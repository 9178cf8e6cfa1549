"""pfflake.lake.tables: the three readers (DuckDB views, Polars scans, Dask frames) derive
from one TableSpec/ViewSpec and return the same rows and columns for every view, including
a "latest row per key" tie that ingest never makes but a hand-made commit can."""

from __future__ import annotations

import math
import warnings
from datetime import timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pfflake.file import PFFWarning
from pfflake.lake import Lake
from pfflake.lake.query import scan
from pfflake.lake.tables import TABLES, VIEWS
from pfflake.log import load_snapshot, publish_commit
from pfflake.simulate import DEFAULT_START, simulate_run

pytest.importorskip("dask.dataframe")


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("tables")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        a = simulate_run(root / "src", products=["img16", "ph256"], modules=(1,), n_frames=300,
                         frames_per_file=200, seed=1)
        b = simulate_run(root / "src", start=DEFAULT_START + timedelta(hours=2),
                         products=["img16"], modules=(2,), n_frames=100, seed=2)
        lake = Lake(root / "lake")
        lake.ingest([a.path], workers=1)  # version 1
        lake.ingest([b.path], workers=1)  # version 2
    return lake


def _tie(lake: Lake) -> None:
    """Hand-publish a commit whose ``files`` row repeats a key at that key's max version."""
    snap = load_snapshot(lake.root)
    row = pq.read_table(lake.root / snap.table_files("files")[-1]["path"]).slice(0, 1)
    row = row.set_column(row.schema.get_field_index("status"), "status",
                         pa.array(["tie"], pa.string()))
    rel = "files/tie.parquet"
    pq.write_table(row, lake.root / rel)
    publish_commit(lake.root, snap.version + 1, {
        "operation": "test-tie",
        "add": [{"table": "files", "path": rel, "rows": 1,
                 "bytes": (lake.root / rel).stat().st_size}],
        "remove": [], "streams": [], "runs": [], "hk_records": {},
    })


def _norm(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if hasattr(v, "to_pydatetime"):  # pandas Timestamp (hk.time has ns: compare as ns)
        return v.value
    try:
        import pandas as pd

        if v is pd.NA:
            return None
    except ImportError:  # pragma: no cover
        pass
    if hasattr(v, "item"):
        return v.item()
    if hasattr(v, "timestamp") and hasattr(v, "tzinfo"):  # datetime: as ns like pandas
        import pandas as pd

        return pd.Timestamp(v).value
    return v


def _rows(records: list[dict], columns: list[str]) -> list[tuple]:
    out = [tuple(_norm(r[c]) for c in columns) for r in records]
    return sorted(out, key=repr)


def _three(lake: Lake, name: str):
    duck = lake.connect().sql(f"SELECT * FROM {name}").arrow()
    if hasattr(duck, "read_all"):
        duck = duck.read_all()
    polars = scan(lake, name).collect()
    dask_df = lake.to_dask(name).compute(scheduler="sync")
    return duck, polars, dask_df


@pytest.mark.parametrize("tie", [False, True], ids=["ingested", "tie"])
def test_three_readers_agree_on_every_view(lake, tie):
    if tie:
        _tie(lake)
    for name, view in VIEWS.items():
        duck, polars, dask_df = _three(lake, name)
        want = view.columns()
        assert duck.column_names == want, name
        assert polars.columns == want, name
        assert list(dask_df.columns) == want, name
        d = _rows(duck.to_pylist(), want)
        assert d == _rows(polars.to_arrow().to_pylist(), want), name
        assert d == _rows(dask_df.to_dict("records"), want), name
        if name in ("frames", "runs_all", "files_all", "files", "runs"):
            assert d, name  # the lake has rows there: the comparison is not vacuous
    if tie:
        files = lake.connect().sql("SELECT status FROM files WHERE status = 'tie'").fetchall()
        assert files == [("tie",)]  # every row at the key's max version, in all three


def test_specs_are_consistent():
    assert set(TABLES) == {v.table for v in VIEWS.values()}
    frames = TABLES["frames"]
    assert frames.key_names == ("data_product", "module")
    assert frames.view_schema().names[-2:] == ["data_product", "module"]
    assert frames.file_schema().get_field_index("module") == -1
    assert "version" not in VIEWS["runs"].columns()
    assert "version" in VIEWS["runs_all"].columns()
