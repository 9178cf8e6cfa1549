"""pypff 1.0.4's public API on pfflake: ``import pfflake.pypff as pypff``.

Every public module of pypff has a face here -- :mod:`.io` (legacy
``datapff``/``hkpff``/``qconfig``), :mod:`.io2`, :mod:`.models`,
:mod:`.utils`, :mod:`.pixelmap`, :mod:`.zarr` -- and this package exports
pypff's top-level names. Each face is thin: the bytes are read by pfflake's
reader, the models are pfflake's, the stores are written by pfflake's Zarr
code. Where pypff is wrong pfflake is right; each such difference is listed
in the module's docstring and the README ("Coming from pypff").

Submodules load on first use, so ``from pfflake.pypff.io import datapff``
does not import Zarr or pydantic.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "datapff": "io",
    "PanosetiRun": "io2",
    "PFFSequence": "io2",
    "hkpff": "io2",
    "qconfig": "io2",
    "FrameConfig": "models",
    "ModuleHeader": "models",
    "PFFHeader": "models",
    "QuaboHeader": "models",
    "maroc2phys_bga": "pixelmap",
    "maroc2phys_qfp": "pixelmap",
    "phys2maroc_bga": "pixelmap",
    "phys2maroc_qfp": "pixelmap",
}
_MODULES = ("io", "io2", "models", "utils", "pixelmap", "zarr")


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _NAMES:
        value = getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*_NAMES, *_MODULES])


__all__ = sorted(_NAMES)
