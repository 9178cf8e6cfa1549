"""Pydantic models for PFF headers and PANOSETI run configs, with secrets redacted.

A drop-in for ``pypff.models``: the same public names and validation rules, with
three differences.

* **Headers** (:class:`PFFHeader`, :class:`QuaboHeader`, :class:`ModuleHeader`)
  stay strict and frozen. ``timestamp_ns`` follows the WR/host reconciliation
  of :mod:`pfflake.timestamps` in integer arithmetic, and ``timestamp_quality``
  says when the answer is doubtful (clock desync, no WR, a missing quabo).
* **Configs** accept unknown keys at every level (``extra="allow"``): real
  config files grow new keys faster than this module does.
* **Secrets.** Configs can hold credentials (a power-switch URL with
  ``user:password``). Every way of *showing* a config model -- ``repr()``,
  ``str()``, ``model_dump()``, ``model_dump_json()``, validation errors,
  :func:`load_config` errors and logs -- replaces the password of a URL with
  ``***`` and the value of any secret-looking key (see :func:`is_secret_key`)
  with ``***``. The one way to get raw values back is :meth:`ConfigModel.reveal`.
  Attribute access (``cfg.wps["url"]``, ``cfg.model_extra``, ``dict(cfg)``) and
  pickling return raw values: they are data access, not display, so never log
  them.

:func:`redact` and :func:`find_secrets` apply the same rules to plain
dicts/lists/strings (e.g. before a config is stored in Parquet or Zarr).

Layout: :mod:`~pfflake.models.base` (base classes, redaction hooks),
:mod:`~pfflake.models.headers`, :mod:`~pfflake.models.configs`,
:mod:`~pfflake.models.loading`. Import every name from here.
"""

from __future__ import annotations

from ..errors import ConfigError
from ..redact import REDACTED, find_secrets, is_secret_key, redact, redact_text
from .base import BaseStrictModel, ConfigModel, FrozenConfigModel, RawConfig
from .configs import (
    INVALID_RUN_TYPE_CHARS,
    MAX_RUN_TYPE_LENGTH,
    MIN_MOVIE_MODE_PE_THRESHOLD,
    MIN_PULSE_HEIGHT_PE_THRESHOLD,
    AnyTriggerConfig,
    DaemonConfig,
    Daemons,
    DaqConfig,
    DaqNode,
    DataConfig,
    FirmwareConfig,
    FlashParams,
    ImageMode,
    InterleaveConfig,
    InterleaveState,
    LongPulseMode,
    NetworkConfig,
    NetworkDaqNode,
    NetworkModule,
    ObsConfig,
    ObsDomeConfig,
    ObsModuleConfig,
    PhBaselineConfig,
    PortForwarding,
    PulseHeightMode,
    QuaboConfig,
    QuaboPhBaseline,
    QuaboUidDome,
    QuaboUidEntry,
    QuaboUidModule,
    QuaboUids,
    StimParams,
    WpsConfig,
    parse_csv_ints,
)
from .headers import FrameConfig, ModuleHeader, PFFHeader, QuaboHeader
from .loading import CONFIG_MODELS as CONFIG_MODELS
from .loading import config_model_for, load_config, load_configs
from .loading import logger as logger  # the "pfflake.models" logger, as before the split

__all__ = [
    "INVALID_RUN_TYPE_CHARS",
    "MAX_RUN_TYPE_LENGTH",
    "MIN_MOVIE_MODE_PE_THRESHOLD",
    "MIN_PULSE_HEIGHT_PE_THRESHOLD",
    "REDACTED",
    "AnyTriggerConfig",
    "BaseStrictModel",
    "ConfigError",
    "ConfigModel",
    "DaemonConfig",
    "Daemons",
    "DaqConfig",
    "DaqNode",
    "DataConfig",
    "FirmwareConfig",
    "FlashParams",
    "FrameConfig",
    "FrozenConfigModel",
    "ImageMode",
    "InterleaveConfig",
    "InterleaveState",
    "LongPulseMode",
    "ModuleHeader",
    "NetworkConfig",
    "NetworkDaqNode",
    "NetworkModule",
    "ObsConfig",
    "ObsDomeConfig",
    "ObsModuleConfig",
    "PFFHeader",
    "PhBaselineConfig",
    "PortForwarding",
    "PulseHeightMode",
    "QuaboConfig",
    "QuaboHeader",
    "QuaboPhBaseline",
    "QuaboUidDome",
    "QuaboUidEntry",
    "QuaboUidModule",
    "QuaboUids",
    "RawConfig",
    "StimParams",
    "WpsConfig",
    "config_model_for",
    "find_secrets",
    "is_secret_key",
    "load_config",
    "load_configs",
    "parse_csv_ints",
    "redact",
    "redact_text",
]
