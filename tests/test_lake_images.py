"""Images of one snapshot (:mod:`pfflake.lake.images`): old versions, one log read per call,
file pruning by the commits' time ranges; truth is the PFF files read naively."""

from __future__ import annotations

import numpy as np
import pytest

from pfflake.errors import FrameNotFoundError
from pfflake.lake import Lake
from pfflake.lake import views as V
from pfflake.lake.images import images, images_at
from tests.lake_travel import build_travel, run_cli
from tests.naive import naive_read

travel = pytest.fixture(scope="module")(build_travel)


def test_images_of_an_old_version_are_its_frames(travel):
    lake, one, two, _, _ = travel
    v1 = lake.at(1)
    rows = v1.sql("SELECT run, data_product, module, frame FROM frames "
                  "WHERE module = 2 ORDER BY frame LIMIT 5").pl()
    got = images(v1, rows)
    files = sorted(one.path.glob("*.dp_img16.*module_2.*.pff"))
    naive = np.concatenate([naive_read(p).images for p in files])
    assert np.array_equal(got, naive[:5])
    # run 2 is not in version 1: its frames are not committed there
    with pytest.raises(FrameNotFoundError):
        images(v1, lake.at(2).sql(f"SELECT run, data_product, module, frame FROM frames "
                                  f"WHERE run = '{two.path.name}' LIMIT 1").pl())
    t2 = int(lake.at(2).sql(f"SELECT min(unix_t_ns) FROM frames WHERE run = "
                            f"'{two.path.name}'").fetchall()[0][0])
    with pytest.raises(FrameNotFoundError):
        images_at(v1, 1, t2, 1000)  # nearest frame in version 1 is two hours away
    _, found = images_at(lake.at(2), 1, t2, 1000)
    assert found.column("run").to_pylist() == [two.path.name]


def test_images_at_and_images_read_the_log_once(travel, monkeypatch):
    lake, one, _, _, _ = travel
    calls = []
    real = V.load_snapshot

    def counting(root, as_of=None):
        calls.append(as_of)
        return real(root, as_of)

    monkeypatch.setattr(V, "load_snapshot", counting)
    fresh = Lake(lake.root)
    first = fresh.at(1).sql("SELECT unix_t_ns FROM frames WHERE module = 1 LIMIT 1")
    t = int(first.fetchall()[0][0])
    calls.clear()
    fresh2 = Lake(lake.root)
    fresh2.images_at(1, [t, t + 10_000_000], 5_000_000, run=one.path.name)
    assert len(calls) == 1
    calls.clear()
    fresh3 = Lake(lake.root)
    fresh3.images(fresh3.sql("SELECT run, data_product, module, frame FROM frames LIMIT 3"))
    assert len(calls) == 1  # sql and images share the latest view
    for lk in (fresh, fresh2, fresh3):
        lk.close()


def test_files_between_keeps_every_file_with_rows_in_the_window(travel):
    lake = travel[0]
    view = lake.at(2)
    everything = view.scan().select("unix_t_ns").collect()["unix_t_ns"].to_numpy()
    lo, hi = int(np.quantile(everything, 0.3)), int(np.quantile(everything, 0.35))
    kept = view.snapshot.files_between("frames", lo, hi)
    assert 0 < len(kept) < len(view.snapshot.table_files("frames"))
    pruned = V.scan_files("frames", [view.root / e.path for e in kept])
    got = pruned.select("unix_t_ns").collect()["unix_t_ns"].to_numpy()
    want = everything[(everything >= lo) & (everything <= hi)]
    assert np.array_equal(np.sort(got[(got >= lo) & (got <= hi)]), np.sort(want))


def test_cli_images_as_of(travel, tmp_path):
    lake, _, two, _, _ = travel
    q = (f"SELECT run, data_product, module, frame FROM frames WHERE run = '{two.path.name}' "
         "ORDER BY frame LIMIT 2")
    out = tmp_path / "x.npy"
    assert run_cli("images", str(lake.root), "--sql", q, "--out", str(out), "--as-of", "2",
                "--data-product", "img16").returncode == 0
    assert np.load(out).shape == (2, 32, 32)
    old = run_cli("images", str(lake.root), "--sql", q, "--out", str(out), "--as-of", "1",
               "--data-product", "img16")
    assert old.returncode == 0 and np.load(out).shape == (0, 32, 32)  # run 2 not there yet
