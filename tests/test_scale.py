"""GB-scale memory bounds (slow: run with ``uv run --group bench pytest -m slow``)."""

import subprocess
import sys
import textwrap

import pytest

from pfflake.simulate import make_big_stream, simulate_run

pytestmark = pytest.mark.slow


def peak_rss_mb(code: str, out_lines: list[str] | None = None) -> float:
    probe = "\nprint([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])"
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code) + probe],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    if out_lines is not None:
        out_lines.extend(out.stdout.splitlines())
    return int(out.stdout.split()[-1]) / 1024


def test_streaming_2gb_stays_under_300mb(tmp_path):
    stream = make_big_stream(tmp_path, "img16", 2.0)
    rss = peak_rss_mb(f"""
        import numpy as np
        from pfflake import PFFSequence
        seq = PFFSequence({[str(p) for p in stream.files]!r})
        total = 0
        for batch in seq.iter_batches(4096):
            total += int(batch.sum(dtype=np.int64))
        meta = seq.get_metadata_arrays(["quabo_0.pkt_num", "unix_t_ns"])
    """)
    assert rss < 300, f"peak RSS {rss:.0f} MB"


def test_ingest_2gb_run_stays_under_500mb(tmp_path):
    n = int(2e9 / 2540 / 2)
    run = simulate_run(tmp_path / "src", products=("img16",), modules=(1, 2), n_frames=n,
                       frames_per_file=200_000, frame_rate_hz=10_000)
    lines: list[str] = []
    rss = peak_rss_mb(f"""
        import resource, warnings
        warnings.simplefilter("ignore")
        from pfflake.lake import Lake
        lake = Lake({str(tmp_path / "lake")!r})
        lake.ingest([{str(run.path)!r}], workers=2, progress=False)
        assert lake.sql("SELECT count(*) FROM frames").fetchall()[0][0] == {2 * n}
        child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
        print("children", child)
    """, lines)
    assert rss < 500, f"coordinator peak RSS {rss:.0f} MB"
    # ru_maxrss of the spawned workers (at least their peak; fork/exec inherits the parent's)
    child = int(next(x for x in lines if x.startswith("children")).split()[1])
    assert child < 500, f"worker peak RSS {child} MB"
