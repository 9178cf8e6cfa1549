"""Analysis of one snapshot (:mod:`pfflake.lake.analysis`) against a naive recount of the PFF
files: an old version's light curve, coincidences and hk join see only its frames."""

from __future__ import annotations

import numpy as np
import pytest

from pfflake.lake.analysis import coincidences, frames_with_hk, light_curve
from tests.lake_travel import build_travel, frame_total

travel = pytest.fixture(scope="module")(build_travel)


def test_analysis_of_an_old_version(travel):
    lake, one, _, _, truth = travel
    curve = light_curve(lake.at(1), 10**9).fetchall()
    assert sum(r[4] for r in curve) == frame_total(truth[one.path.name])


def test_coincidences_and_hk_of_an_old_version(travel):
    """Run 2 (module 1 only, two hours later) adds no pair; the pairs of version 1 are the
    brute-force pairs of the naive times of modules 1 and 2 within the window."""
    lake, one, _, _, truth = travel
    t1, t2 = (np.sort(truth[one.path.name][("img16", m)]) for m in (1, 2))
    window = 5_000_000
    naive = sum(int(np.sum(np.abs(t2 - t) <= window)) for t in t1)
    assert naive >= len(t1)  # the simulated modules share one time grid
    for view in (lake.at(1), lake.at(2)):
        got = coincidences(view, [1, 2], window).to_arrow_table()
        assert got.num_rows == naive
    hk = frames_with_hk(lake.at(1), ["DET_TEMP"]).aggregate("count(*)").fetchall()[0][0]
    assert hk == frame_total(truth[one.path.name])
