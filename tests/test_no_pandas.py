"""pandas and xarray are optional: the CLI and the demo's tables work without them."""

import subprocess
import sys
import textwrap

from tests.conftest import EXAMPLE_RUN

BLOCK = """import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pandas", "xarray"):
            raise ImportError(f"{name} is blocked for this test")
sys.meta_path.insert(0, _Block())
"""


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=300)


def test_sql_table_and_json_with_nanosecond_times(tmp_path):
    lake = tmp_path / "lake"
    out = run(f"""
        import warnings; warnings.simplefilter("ignore")
        from pfflake.lake import Lake
        Lake({str(lake)!r}).ingest([{str(EXAMPLE_RUN)!r}], workers=1)
        sys.argv = ["pfflake", "sql", {str(lake)!r},
                    "SELECT time, unix_t_ns FROM frames ORDER BY unix_t_ns LIMIT 2"]
        from pfflake.cli import main
        main()
    """)
    assert out.returncode == 0, out.stderr
    assert "2023-06-08 04:30:35.480007492" in out.stdout
    js = run(f"""
        sys.argv = ["pfflake", "sql", {str(lake)!r}, "SELECT min(time) AS t FROM frames",
                    "--format", "json"]
        from pfflake.cli import main
        main()
    """)
    assert js.returncode == 0, js.stderr
    assert "04:30:35.480007492" in js.stdout
