"""``pfflake show`` / ``pfflake profile`` (pypff's CLI faces) on the real sample runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from pfflake.profile import profile_run
from tests.conftest import EXAMPLE_RUN
from tests.naive import naive_read


def pfflake(*args, check=True):
    cmd = [sys.executable, "-c", "from pfflake.cli import main; main()", *map(str, args)]
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"}
    )
    if check:
        assert out.returncode == 0, out.stderr
    return out


def test_show_tree_and_details():
    plain = pfflake("show", EXAMPLE_RUN).stdout
    assert "dp_img16.bpp_2.module_1 (400 frames)" in plain and "Housekeeping" in plain
    assert ".seqno_0.pff" not in plain
    detailed = pfflake("show", EXAMPLE_RUN, "--details").stdout
    assert "start_2023-06-08T04:30:29Z.dp_img16.bpp_2.module_1.seqno_0.pff" in detailed
    missing = pfflake("show", "/no/such/run", check=False)
    assert missing.returncode == 1 and missing.stderr.startswith("pfflake: error:")


def test_profile_rows_count_the_right_frames():
    rows = profile_run(EXAMPLE_RUN, n_frames=50, step=5, random_samples=7, compare=False)
    n_img16 = len(naive_read(next(EXAMPLE_RUN.glob("*dp_img16*.pff"))).headers)
    by = {(r.product, r.test): r for r in rows}
    assert len(rows) == 10
    assert by["dp_img16.bpp_2.module_1", "Sequential Read"].frames == 50
    assert by["dp_img16.bpp_2.module_1", "Strided Read (step=5)"].frames == 10
    assert by["dp_img16.bpp_2.module_1", "Random Access"].frames == 7
    assert by["dp_img16.bpp_2.module_1", "Metadata Extraction"].frames == n_img16
    assert all(r.seconds > 0 and r.pypff_seconds is None for r in rows)
    with pytest.raises(KeyError):
        profile_run(EXAMPLE_RUN, ["dp_nope"], compare=False)


def test_profile_cli_side_by_side_with_pypff():
    pytest.importorskip("pypff.io2")
    out = pfflake("profile", EXAMPLE_RUN, "-n", "20", "-r", "5").stdout
    assert "Performance Profile: example-data" in out
    assert "Metadata Extraction" in out and "speed-up" in out
    assert len(re.findall(r"\d+\.\dx", out)) == 10  # pypff's time and the ratio on every row
