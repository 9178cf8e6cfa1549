"""Build hook: compile pfflake's optional C header decoder (``pfflake/_header.c``).

pfflake works without it (``pfflake.header`` then decodes with numpy), so a
machine without a C compiler still installs pfflake: the hook warns and the
wheel stays pure Python. ``PFFLAKE_NO_NATIVE=1`` skips the build on purpose.
The extension is built in place (next to its source), so editable installs
(``uv sync``, ``pip install -e .``) import it from the source tree; a regular
wheel carries it as ``pfflake/_header.<abi>.so``. uv rebuilds when the source
changes: ``pfflake/_header.c`` is one of ``[tool.uv] cache-keys``.
"""

from __future__ import annotations

import os
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


def build_in_place(root: Path) -> Path:
    """Compile the extension next to its source with setuptools; return the built file."""
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    ext = Extension(
        "pfflake._header",
        sources=["pfflake/_header.c"],
        extra_compile_args=["-O3", "-std=c99", "-Wall", "-Wno-unused-function"],
    )
    cwd = os.getcwd()
    os.chdir(root)  # setuptools resolves sources and the in-place target from here
    try:
        dist = Distribution({"name": "pfflake", "ext_modules": [ext]})
        cmd = build_ext(dist)
        cmd.inplace = True
        cmd.build_temp = str(root / "build" / "native")
        cmd.ensure_finalized()
        cmd.run()
        return root / cmd.get_ext_filename("pfflake._header")
    finally:
        os.chdir(cwd)


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel" or os.environ.get("PFFLAKE_NO_NATIVE") == "1":
            return
        try:
            built = build_in_place(Path(self.root))
        except Exception as exc:  # no compiler, no headers: pfflake runs on numpy
            self.app.display_warning(
                f"pfflake: the C header decoder was not built ({exc}); "
                "pfflake.header uses its numpy decoder"
            )
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if version != "editable":
            build_data["force_include"][str(built)] = f"pfflake/{built.name}"
