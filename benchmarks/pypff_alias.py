"""pytest plugin: make ``import pypff`` (and every public submodule) resolve to ``pfflake.pypff``.

Loaded by ``benchmarks/bench_pypff_suite.py`` with ``-p pypff_alias`` so that
pypff 1.0.4's own test suite runs unchanged against pfflake. Installed at
plugin import, before any test module is collected.
"""

from __future__ import annotations

import importlib
import sys

import pfflake.pypff as _face

sys.modules["pypff"] = _face
for _name in ("io", "io2", "models", "utils", "pixelmap", "zarr"):
    sys.modules[f"pypff.{_name}"] = importlib.import_module(f"pfflake.pypff.{_name}")
