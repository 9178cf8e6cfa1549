"""pypff's ``models`` module: pfflake's Pydantic models under pypff's names.

Header models (``PFFHeader``, ``QuaboHeader``, ``ModuleHeader``,
``FrameConfig``) and config models (``ObsConfig``, ``DataConfig``,
``QuaboConfig``, ...) are :mod:`pfflake.models`' classes. They differ from
pypff's in that secrets are redacted in ``repr``/``str``/``model_dump`` (use
``.reveal()`` for the raw values) and that a module frame's time comes from
the first quabo that sent a packet.
"""

from __future__ import annotations

from ..models import *  # noqa: F403 - the face re-exports the whole module
from ..models import __all__ as _models_all
from .utils import get_precise_time_ns

__all__ = [*_models_all, "get_precise_time_ns"]
