"""pypff's ``io2`` module: ``PanosetiRun``, ``PFFSequence`` and the legacy shims.

``PanosetiRun`` and ``PFFSequence`` are pfflake's own classes (same API; the
differences are listed in the README, "Differences from pypff").
``hkpff(fn).readhk()`` gives ``{device: {field: np.ndarray}}`` and
``qconfig(glob).config`` the configs by stem (quabo configs validated and
dumped, the rest as parsed JSON), as pypff's ``io2`` does.
"""

from __future__ import annotations

import json
import logging
from glob import glob
from pathlib import Path
from typing import Any

import numpy as np

from ..hk import read_hk
from ..models import FrameConfig, ModuleHeader, QuaboConfig, QuaboHeader
from ..run import PanosetiRun
from ..sequence import PFFSequence
from .utils import extract_seqno, parse_filename

logger = logging.getLogger(__name__)


class hkpff:
    """``hk.pff`` reader; prefer ``PanosetiRun.get_hk()``."""

    def __init__(self, fn: str | Path = "hk.pff") -> None:
        self.fn = Path(fn)
        self.hk_info: dict[str, dict[str, np.ndarray]] = {}

    def readhk(self) -> dict[str, dict[str, np.ndarray]]:
        """``{device: {field: array}}`` (``TEMP1`` -> ``DET_TEMP``, ``TEMP2`` -> ``FPGA_TEMP``)."""
        self.hk_info = read_hk(self.fn)
        return self.hk_info


class qconfig:
    """Config files matching a glob; prefer ``PanosetiRun.get_config()``.

    ``.config[stem]``: quabo configs as ``QuaboConfig(...).model_dump()``
    (register strings -> ints / int lists), others as parsed JSON. A file that
    does not parse is skipped with a warning naming it (not its contents).
    """

    def __init__(self, fn: str) -> None:
        self.config: dict[str, Any] = {}
        files = glob(fn)
        if not files:
            raise FileNotFoundError(f"No config files matched: {fn!r}")
        for file in files:
            p = Path(file)
            try:
                data = json.loads(p.read_bytes())
                if p.stem.startswith("quabo_config"):
                    self.config[p.stem] = QuaboConfig.model_validate(data).reveal()
                else:
                    self.config[p.stem] = data
            except (ValueError, OSError) as e:
                logger.warning("Skipping config %s: %s", p.name, type(e).__name__)


__all__ = [
    "FrameConfig",
    "ModuleHeader",
    "PFFSequence",
    "PanosetiRun",
    "QuaboHeader",
    "extract_seqno",
    "hkpff",
    "parse_filename",
    "qconfig",
]
