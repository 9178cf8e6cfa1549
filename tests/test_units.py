"""pfflake.lake.units: helpers of one ingest work unit (the unit itself runs in every
ingest test; here the parts a follow's lag depends on)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pytest

from pfflake.lake.units import Phases, column_numpy
from tests.conftest import EXAMPLE_RUN


@pytest.mark.parametrize("dtype", ["int8", "uint16", "int32", "uint64", "int64", "float32",
                                   "float64"])
def test_column_numpy_is_the_arrow_column_also_sliced(dtype):
    values = (np.arange(1000) * 7 - 300).astype(dtype)
    col = pa.array(values)
    for sliced, truth in ((col, values), (col.slice(123, 400), values[123:523])):
        got = column_numpy(sliced)
        assert got.dtype == truth.dtype
        np.testing.assert_array_equal(got, truth)
        np.testing.assert_array_equal(got, sliced.to_numpy())


def test_column_numpy_falls_back_for_nulls_and_other_types():
    with pytest.raises(pa.ArrowInvalid):  # as to_numpy(): a null has no numpy value
        column_numpy(pa.array([1, None, 3], pa.int64()))
    ts = pa.array(np.array([1, 2], dtype="datetime64[ns]"))
    assert column_numpy(ts).dtype == np.dtype("datetime64[ns]")


def test_phases_add_up():
    ph = Phases()
    with ph.timed("a"):
        pass
    ph.add("a", 1.0)
    ph.merge({"a": 0.5, "fsyncs": 2})
    assert 1.5 <= ph["a"] < 1.6 and ph["fsyncs"] == 2


def test_an_ingest_reports_its_phases_and_its_unit_loads_no_pandas(tmp_path):
    """Each ingest says where its time went; the work unit (what a worker process runs)
    converts Arrow columns without pyarrow's pandas probe, which imports pandas (seconds
    in a fresh worker process)."""
    code = textwrap.dedent(f"""
        import sys, warnings
        warnings.simplefilter("ignore")
        from pfflake.lake import Lake
        from pfflake.lake.ingest import IngestOptions, ingest
        import pfflake.lake.units as units
        real = units.run_unit
        seen = []
        def unit(task):
            r = real(task)
            seen.append("pandas" in sys.modules)
            return r
        units.run_unit = unit
        import pfflake.lake.ingest as ing
        ing.run_unit = unit
        r = ingest(Lake({str(tmp_path / 'lake')!r}), [{str(EXAMPLE_RUN)!r}],
                   IngestOptions(workers=1, progress=False))
        print(sorted(k for k, v in r.phases.items() if v > 0), seen, r.published_at > 0)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    for name in ("plan", "read", "zarr", "parquet", "fsync", "fsyncs", "publish_commit"):
        assert f"'{name}'" in out.stdout, out.stdout
    assert "[False, False] True" in out.stdout, out.stdout
