"""Fetch pypff 1.0.4's sdist (its test suite and the public example run) into a cache dir.

``pip download --no-binary :all: --no-deps pypff==1.0.4`` into
``$PFFLAKE_BENCH_CACHE`` (default ``~/.cache/pfflake-bench``), unpacked once.
Nothing from it is copied into this repository.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

VERSION = "1.0.4"
CACHE = Path(os.environ.get("PFFLAKE_BENCH_CACHE", Path.home() / ".cache" / "pfflake-bench"))


def sdist_dir(cache: Path = CACHE) -> Path:
    """The unpacked ``pypff-1.0.4/`` directory, downloading it on first use."""
    root = cache / f"pypff-{VERSION}"
    if (root / "src" / "ci").is_dir():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    archive = cache / f"pypff-{VERSION}.tar.gz"
    if not archive.exists():
        args = ["download", "--no-binary", ":all:", "--no-deps", f"pypff=={VERSION}"]
        args += ["-d", str(cache)]
        try:
            subprocess.run([sys.executable, "-m", "pip", *args], check=True, capture_output=True)
        except subprocess.CalledProcessError:
            # a uv venv has no pip: any pip on PATH fetches the same file
            subprocess.run(["pip", *args], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(cache, filter="data")
    return root


def example_run(cache: Path = CACHE) -> Path:
    """The public example run (``example/example-data``: 35 MB, 25,061 frames)."""
    return sdist_dir(cache) / "example" / "example-data"
