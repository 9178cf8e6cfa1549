"""The query layer against independent truth.

Truth is the naive parse of the simulated PFF files (``tests/naive.py``) and
the simulator's own record of the bright events it injected at the same true
time in several modules. One sample lake serves the whole module: two runs
(img16 + ph256 on modules 1-3 with desync, missing quabos, a cut tail and
three frames cut out of one file; and a later img16 run without White Rabbit).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from pfflake import PFFWarning
from pfflake import query as Q
from pfflake.lake import Lake
from pfflake.simulate import DEFAULT_START, BrightEvent, SimulatedRun, simulate_run
from tests.naive import naive_flat, naive_hk, naive_read, naive_unix_t_ns

FRAME_RATE_HZ = 100
PERIOD_NS = 1_000_000_000 // FRAME_RATE_HZ
EVENTS = (
    BrightEvent(50),
    BrightEvent(500),
    BrightEvent(1200, modules=(1, 3)),
    BrightEvent(2500, modules=(2,)),
    BrightEvent(2800, modules=(1, 2), products=("img16",)),
)
DROPPED = ("img16", 2, 1, (100, 101, 102))  # product, module, seqno, file frames cut out
HK_NAMES = {"TEMP1": "DET_TEMP", "TEMP2": "FPGA_TEMP"}


@dataclass
class NaiveStream:
    """One stream as the naive parser sees its files, in frame order."""

    run: str
    data_product: str
    module: int
    unix_t_ns: np.ndarray
    flags: np.ndarray
    images: np.ndarray
    file_frames: list[int]
    tail_bytes: list[int]


@dataclass
class Sample:
    lake: Lake
    runs: list[SimulatedRun]
    streams: dict[tuple[str, str, int], NaiveStream] = field(default_factory=dict)
    hk: dict[str, list[tuple[int, str, dict]]] = field(default_factory=dict)

    def stream(self, product: str, module: int, run: int = 0) -> NaiveStream:
        return self.streams[(self.runs[run].path.name, product, module)]


def cut_frames(path: Path, drop: tuple[int, ...]) -> None:
    """Rewrite a PFF file without some of its frames (frames lost by the DAQ)."""
    parsed = naive_read(path)
    data = path.read_bytes()
    ends = [*parsed.offsets[1:], len(data) - parsed.truncated_tail_bytes]
    keep = [
        data[a:b]
        for i, (a, b) in enumerate(zip(parsed.offsets, ends, strict=True))
        if i not in drop
    ]
    path.write_bytes(b"".join(keep) + data[len(data) - parsed.truncated_tail_bytes :])


def naive_stream(run: str, product: str, module: int, files: list[Path]) -> NaiveStream:
    parsed = [naive_read(p) for p in files]
    times = [naive_unix_t_ns(naive_flat(h), product) for f in parsed for h in f.headers]
    return NaiveStream(
        run,
        product,
        module,
        np.array([t for t, _ in times], dtype=np.int64),
        np.array([q for _, q in times], dtype=np.uint8),
        np.concatenate([f.images for f in parsed]),
        [len(f.headers) for f in parsed],
        [f.truncated_tail_bytes for f in parsed],
    )


def utc_ns(text: str) -> int:
    return int(Decimal(text) * 1_000_000_000)


def build_sample(root: Path) -> Sample:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        first = simulate_run(
            root / "src",
            products=["img16", "ph256"],
            modules=(1, 2, 3),
            n_frames=3000,
            frame_rate_hz=FRAME_RATE_HZ,
            frames_per_file=1000,
            desync_frames=[3, 400, 401, 402],
            missing_quabo_frames={0: [0], 10: [0, 1], 650: [3]},
            truncate_tail_bytes=100,
            bright_events=EVENTS,
            seed=1,
        )
        second = simulate_run(
            root / "src",
            start=DEFAULT_START + timedelta(hours=1, minutes=5),
            products=["img16"],
            modules=(1,),
            n_frames=500,
            frame_rate_hz=FRAME_RATE_HZ,
            no_wr=True,
            seed=2,
        )
        product, module, seqno, drop = DROPPED
        cut_frames(first.stream(product, module).files[seqno], drop)
        lake = Lake(root / "lake")
        lake.ingest([first.path, second.path], workers=1)
    sample = Sample(lake, [first, second])
    for run in sample.runs:
        for s in run.streams.values():
            key = (run.path.name, s.data_product, s.module)
            sample.streams[key] = naive_stream(*key, s.files)
        records = []
        for device, fields in naive_hk(run.hk_path):
            records.append((utc_ns(fields["Computer_UTC"]), device, fields))
        sample.hk[run.path.name] = records
    return sample


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Sample:
    return build_sample(tmp_path_factory.mktemp("query"))


def naive_frames(sample: Sample) -> pl.DataFrame:
    parts = []
    for (run, product, module), s in sample.streams.items():
        flat = s.images.reshape(len(s.images), -1).astype(np.int64)
        parts.append(
            pl.DataFrame(
                {
                    "run": [run] * len(flat),
                    "data_product": [product] * len(flat),
                    "module": pl.Series(np.full(len(flat), module, np.int32)),
                    "frame": np.arange(len(flat), dtype=np.int64),
                    "unix_t_ns": s.unix_t_ns,
                    "time_quality": s.flags,
                    "pixel_sum": flat.sum(axis=1),
                    "pixel_max": flat.max(axis=1).astype(np.int32),
                }
            )
        )
    return pl.concat(parts).sort(["run", "data_product", "module", "frame"])


def naive_image(sample: Sample, run: str, product: str, module: int, frame: int) -> np.ndarray:
    return sample.streams[(run, product, module)].images[frame]


# -- views and scans ------------------------------------------------------------------------


KEYS = ["run", "data_product", "module", "frame"]
COLUMNS = [*KEYS, "unix_t_ns", "time_quality", "pixel_sum", "pixel_max"]


def test_scan_equals_sql_equals_naive(sample):
    lake = sample.lake
    scanned = Q.scan(lake).select(COLUMNS).collect().sort(KEYS)
    queried = lake.sql(f"SELECT {', '.join(COLUMNS)} FROM frames ORDER BY ALL").pl()
    truth = naive_frames(sample)
    assert scanned.equals(queried)
    assert scanned.equals(truth)
    everything = Q.scan(lake).collect().sort(KEYS)
    via_sql = lake.sql("SELECT * FROM frames ORDER BY run, data_product, module, frame").pl()
    assert sorted(everything.columns) == sorted(via_sql.columns)
    for column in everything.columns:
        a, b = everything[column], via_sql[column]
        if column == "time":
            assert (a.dt.epoch("ns") == everything["unix_t_ns"]).all()
            a, b = a.dt.epoch("ns"), b.dt.epoch("ns")
        assert a.equals(b, check_names=False), column


def test_scan_prunes_partitions_and_filters_time(sample):
    lake = sample.lake
    s = sample.stream("img16", 2)
    lo, hi = int(s.unix_t_ns[1000]), int(s.unix_t_ns[1999])
    query = Q.scan(lake).filter(
        (pl.col("module") == 2)
        & (pl.col("data_product") == "img16")
        & pl.col("unix_t_ns").is_between(lo, hi)
    )
    plan = query.explain()
    assert "module=2" in plan and "module=1" not in plan and "ph256" not in plan
    got = query.select("unix_t_ns").collect()["unix_t_ns"].sort().to_numpy()
    np.testing.assert_array_equal(
        got, np.sort(s.unix_t_ns[(s.unix_t_ns >= lo) & (s.unix_t_ns <= hi)])
    )


def test_scan_runs_and_files_latest_like_sql(tmp_path):
    from tests.test_lake import grow_copy

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        src = simulate_run(tmp_path / "src", n_frames=300, frames_per_file=100).path
        live = tmp_path / src.name
        lake = Lake(tmp_path / "lake")
        for fraction in (0.5, 1.0):
            grow_copy(src, live, fraction)
            lake.ingest([live], workers=1)
    assert lake.sql("SELECT count(*) FROM files_all").fetchall()[0][0] > 3
    for name, keys in (
        ("files", ["run", "file"]),
        ("runs", ["run"]),
        ("files_all", None),
        ("runs_all", None),
        ("hk", None),
    ):
        scanned = Q.scan(lake, name).collect()
        queried = lake.sql(f"SELECT * FROM {name}").pl()
        assert scanned.columns == queried.columns, name
        order = keys or scanned.columns
        order = [
            c
            for c in order
            if scanned[c].dtype != pl.Datetime("ns", "UTC")
            and not isinstance(scanned[c].dtype, pl.Datetime)
        ]
        a, b = scanned.sort(order), queried.sort(order)
        for column in a.columns:
            x, y = a[column], b[column]
            if isinstance(x.dtype, pl.Datetime):
                x, y = x.dt.epoch("us"), y.dt.epoch("us")
            assert x.equals(y, check_names=False), (name, column)
    files = Q.scan(lake, "files").collect()
    assert files.height == 3 and files["frames"].sum() == 300


def test_empty_lake_answers_every_view_and_scan(tmp_path):
    lake = Lake(tmp_path / "empty", create=True)
    views = ["frames", "runs", "files", "hk", "runs_all", "files_all"]
    views += [p.stem for p in Q.views_dir().glob("*.sql")]
    assert {"run_quality", "module_rate", "frame_gaps"} <= set(views)
    for view in views:
        assert lake.sql(f"SELECT count(*) FROM {view}").fetchall() == [(0,)], view
    for name in Q.SCAN_TABLES:
        assert Q.scan(lake, name).collect().height == 0
    assert lake.coincidences([1, 2], 1000).fetchall() == []
    assert lake.light_curve(10**9).fetchall() == []
    assert lake.light_curve(10**9, pixel=(1, 1)).fetchall() == []
    assert lake.frames_with_hk().fetchall() == []
    with pytest.raises(Q.FrameNotFoundError):
        lake.images_at(1, 10**18, 10)


def test_run_quality_view(sample):
    got = {
        (r["run"], r["data_product"], r["module"]): r
        for r in sample.lake.sql("SELECT * FROM run_quality").pl().iter_rows(named=True)
    }
    assert got.keys() == sample.streams.keys()
    for key, s in sample.streams.items():
        row = got[key]
        trusted = s.unix_t_ns[(s.flags & 2) == 0]
        assert row["frames"] == len(s.unix_t_ns)
        assert (row["first_unix_t_ns"], row["last_unix_t_ns"]) == (trusted.min(), trusted.max())
        assert row["frame_rate_hz"] == pytest.approx(
            (len(s.unix_t_ns) - 1) * 1e9 / (trusted.max() - trusted.min())
        )
        assert row["ok_frames"] == int((s.flags == 0).sum())
        for bit, name in ((1, "no_wr"), (2, "clock_desync"), (4, "quabo_missing")):
            assert row[f"{name}_frames"] == int((s.flags & bit != 0).sum()), (key, name)
        assert row["files"] == len(s.file_frames)
        assert row["truncated_files"] == sum(1 for t in s.tail_bytes if t)
        assert row["truncated_tail_bytes"] == sum(s.tail_bytes)
        assert row["damaged_files"] == 0
    assert got[(sample.runs[1].path.name, "img16", 1)]["no_wr_frames"] == 500


def naive_intervals(s: NaiveStream) -> np.ndarray:
    trusted = ((s.flags & 2) == 0) & (s.unix_t_ns > 0)
    both = trusted[:-1] & trusted[1:]
    return np.diff(s.unix_t_ns)[both]


def test_module_rate_and_frame_gaps_views(sample):
    rates = {
        (r["run"], r["data_product"], r["module"]): r
        for r in sample.lake.sql("SELECT * FROM module_rate").pl().iter_rows(named=True)
    }
    gaps = sample.lake.sql("SELECT * FROM frame_gaps ORDER BY ALL").pl()
    expected_gaps = []
    for key, s in sample.streams.items():
        dt = naive_intervals(s)
        median = np.median(dt)
        long = dt[dt > 1.5 * median]
        row = rates[key]
        assert row["median_interval_ns"] == median
        triggered = key[1] in ("ph256", "ph1024")
        assert row["triggered"] == triggered
        if triggered:  # no nominal period: mean trigger rate, gaps not applicable
            assert row["frame_rate_hz"] == pytest.approx(len(dt) * 1e9 / dt.sum())
            assert row["gaps"] is None and row["dropped_frames_est"] is None
            continue
        assert row["frame_rate_hz"] == pytest.approx(1e9 / median)
        assert row["gaps"] == len(long)
        assert row["dropped_frames_est"] == int(np.sum(np.round(long / median) - 1))
        expected_gaps += [key] * len(long)
    product, module, _, drop = DROPPED
    dropped_key = (sample.runs[0].path.name, product, module)
    assert rates[dropped_key]["dropped_frames_est"] == len(drop)
    assert [tuple(r) for r in gaps.select("run", "data_product", "module").iter_rows()] == sorted(
        expected_gaps
    )
    row = gaps.filter(pl.col("module") == module, pl.col("data_product") == product).row(
        0, named=True
    )
    assert row["missing_frames_est"] == len(drop)
    assert row["frame_after"] == row["frame_before"] + 1
    assert row["stop_unix_t_ns"] - row["start_unix_t_ns"] == pytest.approx(
        (len(drop) + 1) * PERIOD_NS, abs=20
    )


# -- images -----------------------------------------------------------------------------


def picks(sample: Sample, product: str = "img16", n: int = 40, seed: int = 0) -> pl.DataFrame:
    """Frames of several streams in a random order, with duplicates."""
    rng = np.random.default_rng(seed)
    keys = [k for k in sample.streams if k[1] == product]
    rows = []
    for _ in range(n):
        run, _, module = keys[rng.integers(len(keys))]
        frame = int(rng.integers(len(sample.streams[(run, product, module)].unix_t_ns)))
        rows.append((run, product, module, frame))
    rows += rows[:5]
    rng.shuffle(rows)
    return pl.DataFrame(rows, schema=KEYS, orient="row")


def expected_images(sample: Sample, keys: pl.DataFrame) -> np.ndarray:
    return np.stack([naive_image(sample, *row) for row in keys.select(KEYS).iter_rows()])


def test_images_in_row_order_from_every_result_type(sample):
    pd = pytest.importorskip("pandas")
    lake = sample.lake
    keys = picks(sample).with_columns(pl.col("module").cast(pl.Int32))
    truth = expected_images(sample, keys)
    results = {
        "polars": keys,
        "lazy": keys.lazy().with_columns(pl.lit(1).alias("extra")),
        "arrow": keys.to_arrow(),
        "batch": keys.to_arrow().to_batches()[0],
        "pandas": pd.DataFrame(keys.to_dict(as_series=False)),
    }
    for name, result in results.items():
        got = lake.images(result)
        assert got.dtype == np.uint16 and got.shape == (keys.height, 32, 32), name
        np.testing.assert_array_equal(got, truth, err_msg=name)
    rel = lake.sql(
        "SELECT * FROM (SELECT * FROM frames WHERE data_product = 'img16' AND frame % 101 = 7 "
        "UNION ALL SELECT * FROM frames WHERE data_product = 'img16' AND frame = 714) "
        "ORDER BY hash(frame, module), run, module"
    )
    order = rel.pl().select(KEYS)
    assert order.height > 10 and order.is_duplicated().any()
    np.testing.assert_array_equal(lake.images(rel), expected_images(sample, order))


def test_images_by_module_and_time(sample):
    lake = sample.lake
    keys = picks(sample, seed=1)
    times = np.array([sample.streams[(r, p, m)].unix_t_ns[f] for r, p, m, f in keys.iter_rows()])
    by_time = pl.DataFrame(
        {"module": keys["module"], "unix_t_ns": times, "data_product": keys["data_product"]}
    )
    np.testing.assert_array_equal(lake.images(by_time), expected_images(sample, keys))
    # both search paths: streams in time order, and streams with desync jumps back in time
    picked = {(r, p, m) for r, p, m, _ in keys.iter_rows()}
    backwards = [bool(np.any(np.diff(sample.streams[k].unix_t_ns) < 0)) for k in picked]
    assert any(backwards) and not all(backwards)
    # without data_product: unique only when no ph256 frame of the module has the same ns
    ph = {(m, t) for (r, p, m), s in sample.streams.items() if p == "ph256" for t in s.unix_t_ns}
    unique = [(m, t) not in ph for m, t in zip(keys["module"], times, strict=True)]
    clash = [i for i, u in enumerate(unique) if not u]
    good = [i for i, u in enumerate(unique) if u]
    np.testing.assert_array_equal(
        lake.images(by_time[good].drop("data_product")), expected_images(sample, keys[good])
    )
    s = sample.stream("img16", 1)
    collided = next(t for t in s.unix_t_ns if (1, t) in ph)
    with pytest.raises(Q.QueryError, match="several frames"):
        lake.images(pl.DataFrame({"module": [1], "unix_t_ns": [collided]}))
    assert clash or collided
    with pytest.raises(Q.FrameNotFoundError, match="match no committed frame"):
        lake.images(
            pl.DataFrame(
                {"module": [1], "unix_t_ns": [int(s.unix_t_ns[5]) + 1], "data_product": ["img16"]}
            )
        )


def test_images_errors(sample):
    lake = sample.lake
    mixed = pl.concat([picks(sample, "img16", 3), picks(sample, "ph256", 3)])
    with pytest.raises(Q.QueryError, match="one data product"):
        lake.images(mixed)
    with pytest.raises(Q.QueryError, match="needs columns"):
        lake.images(pl.DataFrame({"frame": [1]}))
    state = next(iter(lake.snapshot().streams.values()))
    beyond = pl.DataFrame(
        {
            "run": [state.run],
            "data_product": [state.data_product],
            "module": [state.module],
            "frame": [state.frames],
        }
    )
    with pytest.raises(Q.FrameNotFoundError, match="not committed"):
        lake.images(beyond)
    with pytest.raises(TypeError):
        lake.images([1, 2, 3])
    assert lake.images(picks(sample).head(0)).shape[0] == 0


def test_images_as_xarray(sample):
    pytest.importorskip("xarray")
    keys = picks(sample, "ph256", 12, seed=3)
    da = sample.lake.images(keys, as_xarray=True)
    assert da.dims == ("time", "y", "x") and da.shape == (keys.height, 16, 16)
    np.testing.assert_array_equal(da.values, expected_images(sample, keys))
    times = np.array([sample.streams[(r, p, m)].unix_t_ns[f] for r, p, m, f in keys.iter_rows()])
    assert da["time"].dtype == np.dtype("datetime64[ns]")
    np.testing.assert_array_equal(da["time"].values.view(np.int64), times)
    assert da["module"].values.tolist() == keys["module"].to_list()
    assert da["frame"].values.tolist() == keys["frame"].to_list()
    assert da.attrs["data_product"] == "ph256"


def test_images_at_nearest(sample):
    lake = sample.lake
    s = sample.stream("img16", 2)
    image, rows = lake.images_at(
        2, int(s.unix_t_ns[700]) + 3_000_000, 4_000_000, data_product="img16"
    )
    np.testing.assert_array_equal(image, s.images[700])
    assert rows.num_rows == 1 and rows.column("frame").to_pylist() == [700]
    assert rows.column("offset_ns").to_pylist() == [-3_000_000]
    frames = np.array([5, 999, 1500, 20, 20, 2990])
    wanted = s.unix_t_ns[frames] - 2_000_000
    got, rows = lake.images_at(2, wanted, 4_000_000, data_product="img16")
    np.testing.assert_array_equal(got, s.images[frames])
    assert rows.column("frame").to_pylist() == frames.tolist()
    assert rows.column("requested_unix_t_ns").to_pylist() == wanted.tolist()
    assert (
        rows.column("pixel_sum").to_pylist()
        == s.images[frames].reshape(len(frames), -1).astype(np.int64).sum(axis=1).tolist()
    )
    with pytest.raises(Q.FrameNotFoundError, match="no frame within"):
        lake.images_at(2, int(s.unix_t_ns[700]) + 5_000_000, 1_000_000, data_product="img16")
    with pytest.raises(Q.QueryError, match="data_product"):
        lake.images_at(2, int(s.unix_t_ns[700]), 4_000_000)
    second = sample.stream("img16", 1, run=1)
    image, rows = lake.images_at(1, int(second.unix_t_ns[10]), 10, run=sample.runs[1].path.name)
    np.testing.assert_array_equal(image, second.images[10])


# -- timestamp joins --------------------------------------------------------------------------


def naive_asof(records, device: str, raw_field: str, times: np.ndarray):
    series = sorted(
        (t, float(f[raw_field])) for t, d, f in records if d == device and raw_field in f
    )
    stamps = np.array([t for t, _ in series], dtype=np.int64)
    idx = np.searchsorted(stamps, times, side="right") - 1
    return [series[i][1] if i >= 0 else None for i in idx], [
        int(stamps[i]) if i >= 0 else None for i in idx
    ]


def test_frames_with_hk_matches_naive_asof(sample):
    rel = sample.lake.frames_with_hk(["DET_TEMP", "FPGA_TEMP"])
    got = rel.pl().sort(KEYS)
    assert got.height == sum(len(s.unix_t_ns) for s in sample.streams.values())
    for (run, product, module), s in sample.streams.items():
        rows = got.filter(
            pl.col("run") == run, pl.col("data_product") == product, pl.col("module") == module
        )
        for raw, name in HK_NAMES.items():
            values, stamps = naive_asof(sample.hk[run], f"QUABO_{4 * module}", raw, s.unix_t_ns)
            assert rows[name].to_list() == values, (run, product, module, name)
            assert rows[f"{name}_unix_t_ns"].to_list() == stamps
    # frames desynchronised to seconds before the first reading get nothing
    assert got["DET_TEMP"].null_count() == sum(
        1
        for (run, _, _), s in sample.streams.items()
        for t in s.unix_t_ns
        if t < min(r[0] for r in sample.hk[run] if r[1].startswith("QUABO"))
    )


def test_frames_with_hk_devices_and_where(sample):
    lake = sample.lake
    run = sample.runs[0].path.name
    got = lake.frames_with_hk("HVMON2", devices="QUABO_9", where="data_product = 'ph256'").pl()
    assert set(got["data_product"]) == {"ph256"}
    for module in (1, 2, 3):
        s = sample.stream("ph256", module)
        rows = got.filter(pl.col("module") == module, pl.col("run") == run).sort("frame")
        values, _ = naive_asof(sample.hk[run], "QUABO_9", "HVMON2", s.unix_t_ns)
        assert rows["HVMON2"].to_list() == values
    with pytest.warns(Q.HKCoverageWarning, match="module 3: no DET_TEMP readings"):
        mapped = lake.frames_with_hk(  # module 3 is not in the mapping: all NULL, said so
            "DET_TEMP",
            devices={1: "QUABO_7", 2: "QUABO_8"},
            where="data_product = 'img16' AND run = " + Q.sql_literal(run),
        ).pl()
    for module, device in ((1, "QUABO_7"), (2, "QUABO_8")):
        s = sample.stream("img16", module)
        rows = mapped.filter(pl.col("module") == module).sort("frame")
        assert (
            rows["DET_TEMP"].to_list()
            == naive_asof(sample.hk[run], device, "TEMP1", s.unix_t_ns)[0]
        )
    assert mapped.filter(pl.col("module") == 3)["DET_TEMP"].null_count() == 3000


def injected(sample: Sample, modules: tuple[int, ...], product: str = "img16") -> list[tuple]:
    """Times of the frames the simulator made bright in every one of ``modules``."""
    run = sample.runs[0]
    out = []
    for event in EVENTS:
        if all(event.applies_to(product, m) for m in modules):
            out.append(
                tuple(int(run.stream(product, m).expected_unix_t_ns[event.frame]) for m in modules)
            )
    return sorted(out)


def test_coincidences_find_exactly_the_injected_events(sample):
    lake = sample.lake
    for modules in ((1, 2), (1, 3), (2, 3), (1, 2, 3), (3, 1)):
        rel = lake.coincidences(modules, 1000, where="pixel_max > 1000", data_product="img16")
        got = sorted(rel.pl().select([f"unix_t_ns_{i + 1}" for i in range(len(modules))]).rows())
        assert got == injected(sample, modules), modules
        assert got
    frame_of = {
        tuple(r)
        for r in lake.coincidences((1, 2), 1000, where="pixel_max > 1000", data_product="img16")
        .pl()
        .select("frame_1", "frame_2")
        .rows()
    }
    assert (2800, 2800 - len(DROPPED[3])) in frame_of  # frames cut out shift module 2's index


@pytest.mark.parametrize("window_ns", [5, 2 * PERIOD_NS + 3])
def test_coincidences_equal_brute_force(sample, window_ns):
    a, b = sample.stream("img16", 1), sample.stream("img16", 3)
    dt = b.unix_t_ns[None, :] - a.unix_t_ns[:, None]
    i, j = np.nonzero(np.abs(dt) <= window_ns)
    truth = sorted(zip(i.tolist(), j.tolist(), strict=True))
    where = f"run = {Q.sql_literal(a.run)}"
    for method in ("band", "range"):
        rel = sample.lake.sql(
            Q.coincidence_sql((1, 3), window_ns, where=where, data_product="img16", method=method)
        )
        got = sorted(rel.pl().select("frame_1", "frame_2").rows())
        assert got == truth, method
    asof = sample.lake.sql(
        Q.coincidence_sql((1, 3), window_ns, where=where, data_product="img16", method="asof")
    )
    assert set(asof.pl().select("frame_1", "frame_2").rows()) <= set(truth)
    if window_ns == 5:
        assert 0 < len(truth) < len(a.unix_t_ns)
    else:
        assert len(truth) > 4 * len(a.unix_t_ns)


def test_coincidences_reject_bad_arguments(sample):
    with pytest.raises(Q.QueryError):
        sample.lake.coincidences([1], 1000)
    with pytest.raises(Q.QueryError):
        sample.lake.coincidences([1, 1], 1000)
    with pytest.raises(Q.QueryError):
        sample.lake.coincidences([1, 2], 0)


# -- light curves ---------------------------------------------------------------------------


def naive_curve(sample: Sample, bucket_ns: int, values_of, select) -> dict:
    out: dict = {}
    for (_, product, module), s in sample.streams.items():
        if not select(product, module):
            continue
        values = values_of(s)
        buckets = (s.unix_t_ns // bucket_ns) * bucket_ns
        for b in np.unique(buckets):
            v = values[buckets == b]
            entry = out.setdefault((int(b), product, module), [0, 0, None])
            entry[0] += len(v)
            entry[1] += int(v.sum())
            entry[2] = int(v.max()) if entry[2] is None else max(entry[2], int(v.max()))
    return out


def curve_rows(rel) -> dict:
    df = rel.pl()
    assert (df["time"].dt.epoch("ns") == df["bucket_ns"]).all()
    got = {}
    for r in df.iter_rows(named=True):
        got[(r["bucket_ns"], r["data_product"], r["module"])] = [r["frames"], r["sum"], r["max"]]
        assert r["mean"] == pytest.approx(r["sum"] / r["frames"])
    return got


def test_light_curve_sums_equal_numpy(sample):
    bucket = 1_000_000_000
    truth = naive_curve(
        sample,
        bucket,
        lambda s: s.images.reshape(len(s.images), -1).astype(np.int64).sum(axis=1),
        lambda p, m: True,
    )
    assert curve_rows(sample.lake.light_curve(bucket)) == truth
    small = 250_000_000
    truth = naive_curve(
        sample,
        small,
        lambda s: s.images.reshape(len(s.images), -1).astype(np.int64).sum(axis=1),
        lambda p, m: p == "ph256" and m in (1, 3),
    )
    assert curve_rows(sample.lake.light_curve(small, module=[1, 3], data_product="ph256")) == truth


def test_light_curve_of_one_pixel_equals_numpy(sample):
    bucket = 2_000_000_000
    truth = naive_curve(
        sample,
        bucket,
        lambda s: s.images[:, 5, 7].astype(np.int64),
        lambda p, m: p == "img16" and m == 1,
    )
    got = curve_rows(sample.lake.light_curve(bucket, module=1, data_product="img16", pixel=(5, 7)))
    assert got == truth
    ph = naive_curve(
        sample, bucket, lambda s: s.images[:, 15, 0].astype(np.int64), lambda p, m: p == "ph256"
    )
    assert curve_rows(sample.lake.light_curve(bucket, data_product="ph256", pixel=(15, 0))) == ph
    with pytest.raises(Q.QueryError, match="outside"):
        sample.lake.light_curve(bucket, data_product="ph256", pixel=(16, 0))


def test_light_curve_where(sample):
    bucket = 1_000_000_000
    rel = sample.lake.light_curve(bucket, module=2, where="(time_quality & 2) = 0")
    frames = rel.aggregate("sum(frames)").fetchall()[0][0]
    assert frames == sum(
        int(((s.flags & 2) == 0).sum()) for (_, _, m), s in sample.streams.items() if m == 2
    )


def test_arrow_results_can_be_fed_back(sample):
    """A coincidence result's sides go straight back into images()."""
    rel = sample.lake.coincidences((1, 3), 1000, where="pixel_max > 1000", data_product="img16")
    side = rel.select(
        "run_2 AS run, data_product_2 AS data_product, module_2 AS module, frame_2 AS frame"
    )
    got = sample.lake.images(side)
    keys = side.pl()
    np.testing.assert_array_equal(got, expected_images(sample, keys))
    assert (got.reshape(len(got), -1).max(axis=1) > 1000).all()
    assert isinstance(side.to_arrow_table(), pa.Table)
