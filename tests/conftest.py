from __future__ import annotations

import compileall
import shutil
import sys
from pathlib import Path

import pytest

# pyproject.toml no longer sets uv's compile-bytecode (uv then recompiled the whole
# environment on every `uv run`). Let this process cache the .pyc files of what it
# imports even where PYTHONDONTWRITEBYTECODE is set: the CLI and worker subprocesses
# the tests start then read them instead of recompiling pyarrow, zarr and pydantic
# (~2 s per process). Subprocesses keep the environment as it is, so one that runs
# under a file-size limit (tests/reliability) cannot leave a truncated .pyc behind.
sys.dont_write_bytecode = False
# pfflake's own modules (an editable install: uv never compiles them) are compiled
# here, before any test starts a subprocess that might import one first.
compileall.compile_dir(Path(__file__).parent.parent / "pfflake", quiet=1)

DATA = Path(__file__).parent / "data"
EXAMPLE_RUN = DATA / "example-data"
LEGACY_RUN = DATA / "legacy-run"
IMG16_FILE = EXAMPLE_RUN / "start_2023-06-08T04:30:29Z.dp_img16.bpp_2.module_1.seqno_0.pff"
PH256_FILE = EXAMPLE_RUN / "start_2023-08-02T00:39:53Z.dp_ph256.bpp_2.module_254.seqno_0.pff"
LEGACY_PH256 = LEGACY_RUN / "start_2025-08-02T04-31-52Z.dp_ph256.bpp_2.module_254.seqno_0.pff"
SINGLE_PH256 = (
    DATA / "single-files" / "start_2025-08-02T05:31:36Z.dp_ph256.bpp_2.module_254.seqno_0.pff"
)
REAL_PFF_FILES = [IMG16_FILE, PH256_FILE, LEGACY_PH256, SINGLE_PH256]


@pytest.fixture
def tmp_copy(tmp_path):
    """Copy a file into tmp_path (writable) and return the copy's path."""

    def copy(src: Path, name: str | None = None) -> Path:
        dst = tmp_path / (name or src.name)
        shutil.copyfile(src, dst)
        return dst

    return copy


@pytest.fixture(params=["c", "c-scalar", "numpy"])
def decode_kernel(request, monkeypatch):
    """Run the test once per header decode kernel (pfflake.header.KERNEL): the C one with
    its SSE4.1 path (where the CPU has it) and with its scalar path, and numpy.

    The C kernel must be there: it is built at install (hatch_build.py), and a
    silent fallback would leave it untested. Set PFFLAKE_KERNEL=numpy where no
    compiler is available, and the C runs skip.
    """
    import os

    from pfflake import header

    kernel, _, path = request.param.partition("-")
    if kernel not in header.KERNELS:
        if os.environ.get("PFFLAKE_KERNEL") == "numpy":
            pytest.skip("PFFLAKE_KERNEL=numpy: the C kernel is not tested")
        pytest.fail("the C header decoder (pfflake._header) is not built: see hatch_build.py")
    monkeypatch.setattr(header, "KERNEL", kernel)
    if kernel != "c":
        yield request.param
        return
    import pfflake._header as c_kernel

    before = c_kernel.set_simd(path != "scalar")
    try:
        yield request.param
    finally:
        c_kernel.set_simd(before)
