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
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyAddress,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from .errors import ConfigError
from .redact import (
    REDACTED,
    find_secrets,
    is_blank,
    is_secret_key,
    redact,
    redact_text,
    redact_tree,
    scrub_message,
    secret_values,
)
from .timestamps import QUALITY_QUABO_MISSING, unix_t_ns_scalar

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

logger = logging.getLogger(__name__)

MAX_RUN_TYPE_LENGTH = 14
INVALID_RUN_TYPE_CHARS = [".", "_", " "]
MIN_PULSE_HEIGHT_PE_THRESHOLD = 2.0
MIN_MOVIE_MODE_PE_THRESHOLD = 1.0


# -----------------------------------------------------------------------------
# Redaction: the rules live in pfflake.redact; models only add the reveal switch
# -----------------------------------------------------------------------------

# model_dump context key behind ConfigModel.reveal(); private on purpose.
_REVEAL = "_pfflake_reveal_secrets"


def _describe(error: ValidationError) -> str:
    """``loc: msg`` for each error, without pydantic's ``input_value=`` echo."""
    parts = []
    for err in error.errors(include_url=False, include_input=False, include_context=False):
        loc = ".".join(str(x) for x in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


# -----------------------------------------------------------------------------
# Base models
# -----------------------------------------------------------------------------


class BaseStrictModel(BaseModel):
    """Disallows extra fields and mutation (headers and frame geometry)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ConfigModel(BaseModel):
    """Base of every config model: unknown keys kept, secrets never shown.

    ``repr``/``str``/``model_dump``/``model_dump_json`` redact (see the module
    docstring); :meth:`reveal` is the explicit raw dump. Validation errors do
    not echo input values (``hide_input_in_errors``).
    """

    model_config = ConfigDict(extra="allow", hide_input_in_errors=True)

    @model_serializer(mode="wrap")
    def _redacting_serializer(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> Any:
        data = handler(self)
        if info.context and info.context.get(_REVEAL):
            return data
        return redact_tree(data)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            if name is not None and is_secret_key(name) and not is_blank(value):
                yield name, REDACTED
            else:
                yield name, redact_tree(value, keep_models=True)

    def reveal(self, *, mode: Literal["python", "json"] = "python") -> dict[str, Any]:
        """The raw dump, secrets included: the one explicit way to get them.

        Same as ``model_dump(mode=mode)`` without redaction. Do not log or
        store the result; use :func:`redact` on anything derived from it.
        """
        return self.model_dump(mode=mode, context={_REVEAL: True})


class FrozenConfigModel(ConfigModel):
    """Config parts pypff made strict: still frozen, but unknown keys allowed."""

    model_config = ConfigDict(frozen=True)


class RawConfig(ConfigModel):
    """Any config file without a dedicated model (``sw_info.json``, ``*.toml``).

    Keys are attributes; ``cfg["key"]``/``cfg.get("key")`` read raw values
    like the plain dict pypff returns.
    """

    def __getitem__(self, key: str) -> Any:
        extra = self.model_extra or {}
        if key not in extra:
            raise KeyError(key)
        return extra[key]

    def __contains__(self, key: object) -> bool:
        return key in (self.model_extra or {})

    def get(self, key: str, default: Any = None) -> Any:
        return (self.model_extra or {}).get(key, default)

    def keys(self) -> list[str]:
        return list(self.model_extra or {})


# -----------------------------------------------------------------------------
# PFF headers
# -----------------------------------------------------------------------------


class PFFHeader(BaseStrictModel):
    """One quabo packet's timing fields from a PFF frame header."""

    pkt_num: int
    pkt_tai: int
    pkt_nsec: int
    tv_sec: int
    tv_usec: int

    def _time(self) -> tuple[int, int]:
        return unix_t_ns_scalar(self.tv_sec, self.tv_usec, self.pkt_nsec, self.pkt_tai)

    @property
    def timestamp_ns(self) -> int:
        """UNIX time in ns (int): WR second reconciled with the host clock.

        On a clock desync the host second is kept and :attr:`timestamp_quality`
        has ``QUALITY_DESYNC`` set; check it before trusting the second.
        """
        return self._time()[0]

    @property
    def timestamp_quality(self) -> int:
        """Bit flags of :mod:`pfflake.timestamps` (``QUALITY_OK == 0`` means sound)."""
        return self._time()[1]

    time_quality = timestamp_quality


class QuaboHeader(PFFHeader):
    """Header of a single-quabo product (ph256)."""

    quabo_num: int


class ModuleHeader(BaseStrictModel):
    """Header of a module product (img16, img8, ph1024): one entry per quabo."""

    quabo_0: PFFHeader
    quabo_1: PFFHeader
    quabo_2: PFFHeader
    quabo_3: PFFHeader

    def _time(self) -> tuple[int, int]:
        quabos = (self.quabo_0, self.quabo_1, self.quabo_2, self.quabo_3)
        first = next((q for q in quabos if q.tv_sec != 0), self.quabo_0)
        ns, flags = first._time()
        if any(q.tv_sec == 0 for q in quabos):
            flags |= QUALITY_QUABO_MISSING
        return ns, flags

    @property
    def timestamp_ns(self) -> int:
        """Time of the first quabo that sent a packet (``tv_sec != 0``), else quabo_0."""
        return self._time()[0]

    @property
    def timestamp_quality(self) -> int:
        """That quabo's flags, plus ``QUALITY_QUABO_MISSING`` if any quabo sent nothing."""
        return self._time()[1]

    time_quality = timestamp_quality


class FrameConfig(BaseStrictModel):
    """Byte geometry of one data product's frames."""

    header_size: int
    payload_size: int
    frame_size: int
    image_shape: tuple[int, int]
    dtype_str: str
    bytes_per_pixel: int
    format_name: str

    @functools.cached_property
    def dtype(self) -> np.dtype:
        return np.dtype(self.dtype_str)


# -----------------------------------------------------------------------------
# data_config.json
# -----------------------------------------------------------------------------


class AnyTriggerConfig(FrozenConfigModel):
    """'any_trigger' mode of pulse-height acquisition."""

    group_ph_frames: int = Field(
        0, description="If set to 1, hashpipe will group 4 packets from 4 quabos."
    )


class PulseHeightMode(FrozenConfigModel):
    """Pulse-height (PH) acquisition parameters."""

    pe_threshold: float = Field(..., description="Pulse height threshold in photoelectrons")
    any_trigger: AnyTriggerConfig | None = None
    two_pixel_trigger: int = Field(0, description="If 1, 2-pixel trigger mode is enabled.")
    three_pixel_trigger: int = Field(0, description="If 1, 3-pixel trigger mode is enabled.")


class ImageMode(FrozenConfigModel):
    """Image (movie) mode acquisition parameters."""

    integration_time_usec: int = Field(..., ge=20, description="Integration time in µs")
    pe_threshold: float = Field(..., description="Image mode threshold in photoelectrons")
    quabo_sample_size: Literal[8, 16] = Field(..., description="Bits per sample")

    @field_validator("integration_time_usec")
    @classmethod
    def check_integration_time_divisor(cls, v: int) -> int:
        if 1_000_000 % v != 0:
            raise ValueError(f"integration_time_usec ({v}) must evenly divide 1,000,000 usec.")
        return v


class LongPulseMode(FrozenConfigModel):
    """Long-pulse event detection parameters."""

    octaves: int
    threshold_sigma: list[float]


class FlashParams(FrozenConfigModel):
    """Onboard LED flasher."""

    rate: int = Field(..., ge=0, le=7, description="3-bit value controlling flash rate (0-7)")
    level: int = Field(..., ge=0, le=31, description="Controls DC supply level (0-31)")
    width: int = Field(..., ge=0, le=15, description="Controls pulse width (0-15)")


class StimParams(FrozenConfigModel):
    """Electronic stimulus (test pulse)."""

    rate: int = Field(..., ge=0, le=7, description="Rate from 190 to 24,400 Hz")
    level: int = Field(..., ge=0, le=255)
    mask: list[bool] = Field(..., max_length=4, min_length=4)


class InterleaveState(FrozenConfigModel):
    """One state of an interleaved observing sequence."""

    state_name: str
    duration_seconds: float = Field(..., gt=0.01)
    movie_mode_config: str | None = None
    pulse_height_mode_config: str | None = None

    @model_validator(mode="after")
    def check_at_least_one_mode(self) -> InterleaveState:
        if not self.movie_mode_config and not self.pulse_height_mode_config:
            raise ValueError(
                f"State '{self.state_name}' must have at least one valid mode "
                "(movie or pulse_height)."
            )
        return self


class InterleaveConfig(FrozenConfigModel):
    """Cyclical interleaved observing."""

    enable: bool = Field(False)
    states: list[InterleaveState] = Field([])


def _check_extra(model: type[BaseModel], key: str, value: Any) -> None:
    """Validate an extra key's value against ``model`` with an input-free message."""
    try:
        model.model_validate(value)
    except ValidationError as e:
        raise ValueError(f"invalid '{key}': {_describe(e)}") from None


class DataConfig(ConfigModel):
    """Acquisition parameters (data_config.json).

    Extra ``image_*`` / ``pulse_height_*`` keys (interleave modes) are checked
    against :class:`ImageMode` / :class:`PulseHeightMode` and kept as dicts.
    """

    run_type: str = Field(..., max_length=MAX_RUN_TYPE_LENGTH)
    detector_overvoltage: Literal[2, 3] | None = None
    gain: int | None = None
    max_file_size_mb: int | None = Field(None, gt=0)
    image: ImageMode | None = None
    pulse_height: PulseHeightMode | None = None
    interleave: InterleaveConfig | None = None
    stim_params: StimParams | None = None
    flash_params: FlashParams | None = None
    xfr_bwlimit: int | None = Field(None, gt=0)

    @field_validator("run_type")
    @classmethod
    def validate_run_type(cls, v: str) -> str:
        if any(ch in INVALID_RUN_TYPE_CHARS for ch in v):
            raise ValueError(
                f"Invalid run_type: '{v}' contains at least one invalid character: "
                f"{INVALID_RUN_TYPE_CHARS}"
            )
        return v

    @model_validator(mode="after")
    def validate_dynamic_modes(self) -> DataConfig:
        for key, val in (self.model_extra or {}).items():
            if key.startswith("image_"):
                _check_extra(ImageMode, key, val)
            elif key.startswith("pulse_height_"):
                _check_extra(PulseHeightMode, key, val)
        return self


# -----------------------------------------------------------------------------
# obs_config.json
# -----------------------------------------------------------------------------


class WpsConfig(FrozenConfigModel):
    """A web power switch; ``url`` usually carries ``user:password``."""

    url: str
    quabo_socket: int


class ObsModuleConfig(ConfigModel):
    """One module of a dome."""

    mobo_serialno: str
    quabo_version: str | list[str]
    ip_addr: IPvAnyAddress | str
    wps: str | None = None
    ups: str | None = None
    timing_mode: str | None = Field("wr", pattern="^(wr|gnss)$")
    azimuth: float | None = Field(None, ge=0, le=360)
    elevation: float | None = Field(None, ge=-90, le=90)
    position_angle: float | None = None
    id: int | None = None
    daq_node: Any | None = None


class ObsDomeConfig(FrozenConfigModel):
    """One dome: site and modules."""

    name: str
    obslat: float = Field(..., ge=-90, le=90)
    obslon: float = Field(..., ge=-180, le=180)
    obsalt: float
    modules: list[ObsModuleConfig]
    num: int | None = None


class ObsConfig(ConfigModel):
    """Observatory setup and device mapping (obs_config.json).

    ``wps*`` keys stay plain dicts (as in pypff) after a check against
    :class:`WpsConfig`; their URLs are redacted whenever the model is shown.
    """

    name: str
    comment: str | None = None
    wr_ip_addr: IPvAnyAddress | str | None = None
    dome_controller_ip_addr: IPvAnyAddress | str | None = None
    gps_port: str | None = Field("/dev/ttyUSB0")
    detector_overvoltage: int | None = None
    domes: list[ObsDomeConfig]

    @model_validator(mode="after")
    def validate_wps_extras(self) -> ObsConfig:
        for key, val in (self.model_extra or {}).items():
            if key.startswith("wps"):
                _check_extra(WpsConfig, key, val)
        return self


# -----------------------------------------------------------------------------
# daq_config.json, network_config.json, daemons, firmware
# -----------------------------------------------------------------------------


class PortForwarding(FrozenConfigModel):
    """Port-forwarding through a gateway."""

    status: bool = Field(False)
    gw_ip: IPvAnyAddress | str
    reboot_port: list[int | None] | None = Field(None)
    cmd_port: list[int | None] | None = Field(None)
    port: int | None = None
    grpc_port: int = Field(50051, ge=1, le=65535)


class DaqNode(ConfigModel):
    """One DAQ node. ``module_ids`` ("0-255", "1,2", 3 or a list) becomes a list."""

    username: str
    data_dir: str
    ip_addr: IPvAnyAddress | str
    module_ids: list[int] | str | int
    bindhost: str | None = Field("0.0.0.0")
    port_forwarding: PortForwarding | None = None

    @field_validator("module_ids", mode="after")
    @classmethod
    def parse_module_ids(cls, v: int | str | list[int]) -> list[int]:
        if isinstance(v, list):
            return v
        if isinstance(v, int):
            return [v]
        if re.match(r"^\d+\-\d+$", v):
            start, end = map(int, v.split("-"))
            return list(range(start, end + 1))
        if "," in v:
            return [int(x.strip()) for x in v.split(",")]
        if v.isdigit():
            return [int(v)]
        return []


class DaqConfig(FrozenConfigModel):
    """DAQ nodes and storage (daq_config.json)."""

    comment: str | None = None
    head_node_data_dir: str
    head_node_ip_addr: IPvAnyAddress | str
    head_node_container: bool | None = Field(False)
    daq_node_module_limit: int | None = Field(4)
    daq_nodes: list[DaqNode]


class NetworkModule(FrozenConfigModel):
    ip_addr: IPvAnyAddress | str
    port_forwarding: PortForwarding


class NetworkDaqNode(FrozenConfigModel):
    ip_addr: IPvAnyAddress | str
    port_forwarding: PortForwarding


class NetworkConfig(FrozenConfigModel):
    """Gateways in front of modules and DAQ nodes (network_config.json)."""

    modules: list[NetworkModule] = Field(default_factory=list)
    daq_nodes: list[NetworkDaqNode] = Field(default_factory=list)


class Daemons(ConfigModel):
    """Daemon name -> settings; free-form."""


class DaemonConfig(FrozenConfigModel):
    daemons: Daemons
    permanent_daemons: Daemons | None = None


class FirmwareConfig(ConfigModel):
    """Firmware image names (firmware_config.json)."""

    qfp: str | None = None
    bga: str | None = None
    gold: str | None = None


# -----------------------------------------------------------------------------
# quabo_uids.json, quabo_config_*.json, quabo_ph_baseline.json
# -----------------------------------------------------------------------------


class QuaboUidEntry(FrozenConfigModel):
    uid: str


class QuaboUidModule(ConfigModel):
    ip_addr: IPvAnyAddress | str
    quabos: list[QuaboUidEntry] = Field(..., min_length=4, max_length=4)


class QuaboUidDome(FrozenConfigModel):
    modules: list[QuaboUidModule]


class QuaboUids(FrozenConfigModel):
    """Quabo serial numbers per module (quabo_uids.json)."""

    domes: list[QuaboUidDome]


def parse_csv_ints(v: Any) -> list[int]:
    """``"1, 2,0x3"`` -> ``[1, 2, 3]``; non-strings pass through unchanged."""
    if isinstance(v, str):
        return [int(p, 16) if p.startswith("0x") else int(p) for p in map(str.strip, v.split(","))]
    return v


def _register_value(v: Any) -> Any:
    if not isinstance(v, str):
        return v
    try:
        if "," in v:
            return parse_csv_ints(v)
        if v.startswith("0x"):
            return int(v, 16)
        if v.lstrip("-").isdigit():
            return int(v)
    except ValueError:
        pass
    return v


class QuaboConfig(ConfigModel):
    """Quabo register settings (quabo_config_<ip>.json).

    Like pypff, ``"1,2,3"`` strings become int lists, ``"0x.."`` and decimal
    strings become ints. Unlike pypff, a string that does not parse stays a
    string instead of failing the whole file, and the input dict is not mutated.
    """

    DAC1: str | list[int] | None = None
    DAC2: str | list[int] | None = None
    GAIN0: str | list[int] | None = None

    @model_validator(mode="before")
    @classmethod
    def handle_csv_fields(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return {k: _register_value(v) for k, v in data.items()}


class QuaboPhBaseline(FrozenConfigModel):
    """Pulse-height baseline of one quabo: 256 pixel coefficients."""

    uid: str
    coefs: list[int] = Field(..., min_length=256, max_length=256)


class PhBaselineConfig(FrozenConfigModel):
    """Pulse-height baseline calibration (quabo_ph_baseline.json)."""

    date: str
    quabos: list[QuaboPhBaseline]


# -----------------------------------------------------------------------------
# Loading config files
# -----------------------------------------------------------------------------


#: File stem -> model, as pypff's ``PanosetiRun._load_configs``.
CONFIG_MODELS: dict[str, type[ConfigModel]] = {
    "data_config": DataConfig,
    "obs_config": ObsConfig,
    "daq_config": DaqConfig,
    "quabo_ph_baseline": PhBaselineConfig,
    "ph_baseline_config": PhBaselineConfig,
    "network_config": NetworkConfig,
    "quabo_uids": QuaboUids,
    "firmware_config": FirmwareConfig,
}


def config_model_for(stem: str) -> type[ConfigModel]:
    """The model for a config file stem; :class:`RawConfig` when none fits."""
    if stem in CONFIG_MODELS:
        return CONFIG_MODELS[stem]
    return QuaboConfig if stem.startswith("quabo_config") else RawConfig


def _read(path: Path) -> Any:
    text = path.read_bytes().decode("utf-8")
    if path.suffix == ".toml":
        return tomllib.loads(text)
    return json.loads(text)


def _decode_problem(e: Exception) -> str:
    """Position-only description of a decode error (never the offending text)."""
    if isinstance(e, UnicodeDecodeError):
        return f"bytes are not UTF-8 at byte offset {e.start}"
    return str(e)


def load_config(
    path: str | os.PathLike[str], model: type[ConfigModel] | None = None
) -> ConfigModel:
    """Read and validate one ``.json`` or ``.toml`` config file.

    The model comes from the file stem (:func:`config_model_for`) unless
    ``model`` is given. Raises :class:`ConfigError` (a ``ValueError``) for
    undecodable text, bad JSON/TOML, a top level that is not an object, or a
    validation failure; ``OSError`` propagates. Secrets are scrubbed from the
    message and the original exception is not chained (pydantic errors can
    carry input values).
    """
    path = Path(path)
    cls = model or config_model_for(path.stem)
    # Errors are raised outside the except blocks so that no exception holding
    # the document (JSONDecodeError.doc, pydantic input values) rides along
    # as __context__.
    problem: str | None = None
    try:
        data = _read(path)
    except (UnicodeDecodeError, json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        problem = f"not valid {path.suffix.lstrip('.').upper()}: {_decode_problem(e)}"
    if problem is not None:
        raise ConfigError(problem, path=path)
    if not isinstance(data, dict):
        raise ConfigError(f"top level is a {type(data).__name__}, expected an object", path=path)
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        problem = f"invalid {cls.__name__}: {_describe(e)}"
    raise ConfigError(scrub_message(problem, secret_values(data)), path=path)


def load_configs(run_dir: str | os.PathLike[str]) -> dict[str, ConfigModel]:
    """Every ``*.json`` (but ``dp_manifest*``) and ``*.toml`` config of a run, by stem.

    Files that fail to load are skipped with a warning on this module's
    logger (message without secrets). If ``x.json`` and ``x.toml`` both exist
    the ``.toml`` wins, as in pypff.
    """
    run_dir = Path(run_dir)
    paths = sorted(p for p in run_dir.glob("*.json") if not p.name.startswith("dp_manifest"))
    paths += sorted(run_dir.glob("*.toml"))
    configs: dict[str, ConfigModel] = {}
    for path in paths:
        try:
            configs[path.stem] = load_config(path)
        except (ConfigError, OSError) as e:
            logger.warning("skipping config %s: %s", path.name, e)
    return configs
