"""A lake with two versions (run 1, then run 2) and the naive truth of both runs.

Shared by the time-travel tests of views, images and analysis; truth is the PFF
files themselves, parsed frame by frame with ``json.loads`` (``tests/naive.py``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from pfflake import PFFWarning
from pfflake.lake import Lake
from pfflake.simulate import DEFAULT_START, simulate_run
from tests.naive import naive_flat, naive_read, naive_unix_t_ns, product_from_name


def naive_counts(run_dir: Path) -> dict[tuple[str, int], np.ndarray]:
    """(data_product, module) -> unix_t_ns of every whole frame, from the PFF bytes."""
    out: dict[tuple[str, int], list[int]] = {}
    for path in sorted(run_dir.glob("*.pff")):
        if ".dp_" not in path.name:
            continue
        product = product_from_name(path)
        module = int(path.name.split(".module_")[1].split(".")[0])
        parsed = naive_read(path)
        times = [naive_unix_t_ns(naive_flat(h), product)[0] for h in parsed.headers]
        out.setdefault((product, module), []).extend(times)
    return {k: np.array(v, dtype=np.int64) for k, v in out.items()}


def make_runs(root: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        one = simulate_run(root / "src", products=["img16"], modules=(1, 2), n_frames=300,
                           frame_rate_hz=100, seed=3)
        two = simulate_run(root / "src", start=DEFAULT_START + timedelta(hours=2),
                           products=["img16"], modules=(1,), n_frames=200, frame_rate_hz=100,
                           seed=4)
    return one, two


def build_travel(tmp_path_factory):
    """A lake with run 1 at version 1 and runs 1 + 2 at version 2, and a time between."""
    root = tmp_path_factory.mktemp("travel")
    one, two = make_runs(root)
    lake = Lake(root / "lake")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        assert lake.ingest([one.path], workers=1, progress=False).version == 1
        time.sleep(0.05)
        between = datetime.now(UTC)
        time.sleep(0.05)
        assert lake.ingest([two.path], workers=1, progress=False).version == 2
    truth = {one.path.name: naive_counts(one.path), two.path.name: naive_counts(two.path)}
    yield lake, one, two, between, truth
    lake.close()


def frame_total(truth_run) -> int:
    return sum(len(t) for t in truth_run.values())


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pfflake", *args], capture_output=True,
                          text=True, timeout=120)


def json_rows(out: str) -> list[dict]:
    """``pfflake sql --format json`` output: JSON lines, one object per row."""
    return [json.loads(line) for line in out.splitlines() if line.strip()]
